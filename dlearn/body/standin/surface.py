"""The stand-in's surface: the smooth union of capsules and ellipsoids (one or two per segment)
as a signed distance field, sampled on the half space x >= 0 and polygonised with marching
cubes; the half is mirrored and stitched along x = 0 (so the mesh and its vertex mirror map are
exact), then Taubin-smoothed."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from skimage.measure import marching_cubes

from dlearn.body.standin.mesh import _signed_volume, _uniform_laplacian
from dlearn.body.standin.skeleton import _HALF_JOINTS

# Marching cubes grid: spacing (m) and the extent of the half body x >= 0.
_GRID_STEP = 0.018
_GRID_LO = np.array([0.0, -1.21, -0.19])
_GRID_HI = np.array([0.90, 0.60, 0.24])
_BLEND = 0.025  # smooth-union radius (m): fillets at the joints
_TRUNK_BLEND = 0.07
_TAUBIN_ITERATIONS = 12


def _capsule(p: np.ndarray, a: np.ndarray, b: np.ndarray, ra: float, rb: float) -> np.ndarray:
    """Approximate signed distance (P,) from points p (P, 3) to a cone-capsule a->b with radii ra->rb."""
    ab = b - a
    t = np.clip((p - a) @ ab / (ab @ ab), 0.0, 1.0)
    return np.linalg.norm(p - a - t[:, None] * ab, axis=1) - (ra + t * (rb - ra))


def _ellipsoid(p: np.ndarray, c: np.ndarray, r: np.ndarray) -> np.ndarray:
    """Approximate signed distance (P,) to an axis-aligned ellipsoid (centre c, radii r)."""
    q = p - c
    k0 = np.linalg.norm(q / r, axis=1)
    k1 = np.maximum(np.linalg.norm(q / (r * r), axis=1), 1e-12)
    return k0 * (k0 - 1.0) / k1


def _round_box(p: np.ndarray, c: np.ndarray, half: np.ndarray, rounding: float) -> np.ndarray:
    """Signed distance (P,) to an axis-aligned box (centre c, half extents) with rounded edges."""
    q = np.abs(p - c) - (half - rounding)
    outside = np.linalg.norm(np.maximum(q, 0.0), axis=1)
    return outside + np.minimum(q.max(axis=1), 0.0) - rounding


def _smooth_union(d1: np.ndarray, d2: np.ndarray, k: float) -> np.ndarray:
    """Polynomial smooth minimum: a union with a fillet of radius about k."""
    h = np.clip(0.5 + 0.5 * (d2 - d1) / k, 0.0, 1.0)
    return d2 * (1.0 - h) + d1 * h - k * h * (1.0 - h)


def _midline_sdf(p: np.ndarray) -> list[np.ndarray]:
    """Distances (P,) to the primitives on the midline: torso, neck, head, nose."""
    a = np.array
    return [
        _ellipsoid(p, a([0.0, -0.27, 0.02]), a([0.165, 0.115, 0.115])),  # pelvis and buttocks
        _ellipsoid(p, a([0.0, -0.08, 0.025]), a([0.145, 0.16, 0.105])),  # abdomen
        _ellipsoid(p, a([0.0, 0.11, 0.02]), a([0.17, 0.14, 0.11])),  # chest
        _capsule(p, a([-0.15, 0.205, -0.02]), a([0.15, 0.205, -0.02]), 0.055, 0.055),  # shoulders
        _capsule(p, a([0.0, 0.22, -0.015]), a([0.0, 0.40, 0.0]), 0.054, 0.05),  # neck
        _ellipsoid(p, a([0.0, 0.455, 0.02]), a([0.078, 0.105, 0.095])),  # head
        _ellipsoid(p, a([0.0, 0.44, 0.112]), a([0.014, 0.024, 0.02])),  # nose
    ]


def _left_sdf(p: np.ndarray) -> list[np.ndarray]:
    """Distances (P,) to the primitives of the left limbs (the right ones are their mirror)."""
    j = {name: np.array(pos) for name, pos in _HALF_JOINTS.items()}
    a = np.array
    return [
        _capsule(p, j["left_shoulder"], j["left_elbow"], 0.053, 0.041),  # upper arm
        _capsule(p, j["left_elbow"], j["left_wrist"], 0.040, 0.028),  # forearm
        _ellipsoid(p, a([0.775, 0.215, -0.035]), a([0.09, 0.024, 0.047])),  # hand
        _capsule(p, a([0.09, -0.33, 0.02]), j["left_knee"], 0.074, 0.05),  # thigh
        _capsule(p, j["left_knee"], j["left_ankle"], 0.047, 0.032),  # shin
        _ellipsoid(p, a([0.10, -0.80, -0.015]), a([0.045, 0.10, 0.047])),  # calf
        _round_box(p, a([0.105, -1.125, 0.035]), a([0.042, 0.045, 0.125]), 0.03),  # foot
    ]


def body_sdf(p: np.ndarray) -> np.ndarray:
    """Signed distance (P,) of points p (P, 3) to the stand-in surface (negative inside)."""
    mirror = p * np.array([-1.0, 1.0, 1.0])
    pelvis, abdomen, chest, *midline = _midline_sdf(p)
    # The trunk blends more softly than the limbs, so it reads as one piece.
    d = _smooth_union(_smooth_union(pelvis, abdomen, _TRUNK_BLEND), chest, _TRUNK_BLEND)
    for other in midline + _left_sdf(p) + _left_sdf(mirror):
        d = _smooth_union(d, other, _BLEND)
    return d


@dataclass(frozen=True)
class _Surface:
    """The stitched template surface.

    Attributes:
        vertices: (N, 3) positions: first the left half's (x >= 0, seam included), then the
            mirror images of its off-seam vertices.
        faces: (F, 3) outward-oriented triangles: first the left half's, then their mirrors.
        mirror: (N,) index of each vertex's mirror image (seam vertices map to themselves).
    """

    vertices: np.ndarray
    faces: np.ndarray
    mirror: np.ndarray

    @property
    def num_half_faces(self) -> int:
        return self.faces.shape[0] // 2


def _half_mesh() -> tuple[np.ndarray, np.ndarray]:
    """Marching cubes on the half space x >= 0: (n, 3) vertices and (f, 3) faces.

    The first grid slice is x = 0 exactly, so the open boundary of the half mesh lies in that
    plane and its vertices have x == 0.0 bit for bit.
    """
    axes = [
        lo + _GRID_STEP * np.arange(int(np.ceil((hi - lo) / _GRID_STEP)) + 1)
        for lo, hi in zip(_GRID_LO, _GRID_HI)
    ]
    grid = np.stack(np.meshgrid(*axes, indexing="ij"), axis=-1)
    volume = body_sdf(grid.reshape(-1, 3)).reshape(grid.shape[:3])
    verts, faces, _, _ = marching_cubes(volume, level=0.0, spacing=(_GRID_STEP,) * 3, allow_degenerate=False)
    verts = verts.astype(np.float64) + _GRID_LO
    verts[:, 0] = np.where(verts[:, 0] <= 0.0, 0.0, verts[:, 0])
    return verts, faces.astype(np.int64)


def _taubin_smooth(vertices: np.ndarray, faces: np.ndarray, iterations: int) -> np.ndarray:
    """Taubin's lambda|mu smoothing: removes the marching-cubes staircase without shrinking."""
    avg = _uniform_laplacian(faces, len(vertices))
    v = vertices.copy()
    for _ in range(iterations):
        v += 0.5 * (avg @ v - v)
        v += -0.53 * (avg @ v - v)
    return v


def _build_surface() -> _Surface:
    """Mirror the half mesh about x = 0, stitch along the seam, smooth and re-symmetrise.

    The two halves share the seam vertices, so the seam edges get one face from each half;
    :func:`~dlearn.body.standin.mesh._edge_topology` later checks that the result is a closed manifold.
    """
    half_v, half_f = _half_mesh()
    n = len(half_v)
    off_seam = np.flatnonzero(half_v[:, 0] != 0.0)
    image = np.arange(n)
    image[off_seam] = n + np.arange(len(off_seam))
    vertices = np.concatenate([half_v, half_v[off_seam] * [-1.0, 1.0, 1.0]])
    faces = np.concatenate([half_f, image[half_f][:, [0, 2, 1]]])  # mirroring flips the winding
    if _signed_volume(vertices, faces) < 0.0:  # marching cubes winds by its own convention
        faces = faces[:, [0, 2, 1]]
    mirror = np.concatenate([image, off_seam])
    vertices = _taubin_smooth(vertices, faces, _TAUBIN_ITERATIONS)
    # Smoothing is mirror-equivariant up to rounding; restore exact symmetry.
    vertices = 0.5 * (vertices + vertices[mirror] * [-1.0, 1.0, 1.0])
    return _Surface(vertices=vertices, faces=faces, mirror=mirror)
