r"""A procedural stand-in for SMPL, written in SMPL's own file format.

Real SMPL cannot be shipped, so the default pipeline runs on this humanoid: SMPL's 24-joint
skeleton in T-pose (metres, y up, facing +z, the person's left side at +x) wrapped in a closed,
exactly left/right symmetric surface, with smooth skinning weights, a joint regressor that
reproduces the designed joints, zero pose and shape blend shapes, and DensePose's 24 parts, each
flattened into an injective UV chart.

Construction:

1. Surface: the smooth union of capsules and ellipsoids (one or two per segment) as a signed
   distance field, sampled on the half space x >= 0 and polygonised with marching cubes; the
   half is mirrored and stitched along x = 0 (so the mesh and its vertex mirror map are exact),
   then Taubin-smoothed.
2. Parts: each face is labelled by cut planes at the joints (a limb is a tube between two cuts,
   split front/back by the plane through the bone; the torso is split by a coronal plane; the
   head by the sagittal plane), then islands and pinched vertices are cleaned up until every
   part is a topological disc.
3. UV charts: each part's disc is mapped by Tutte's uniform-weight embedding onto a circle
   (boundary by arc length), which is fold-free, and rescaled to [0, 1]^2.
4. Skinning weights: each vertex takes the joint of the nearest bone within its part, and the
   one-hot weights are diffused over the surface, so they blend across joints without leaking
   between segments that are near in space but not on the surface.
5. Joint regressor: per joint, nonnegative weights over the surface vertices around it whose
   weighted mean is the designed joint (regularised NNLS, so the weights spread out).
6. COCO keypoint regressor (key ``coco_keypoint_regressor``, see :mod:`dlearn.body.keypoints`):
   face keypoints on single vertices, each hip on a patch of :data:`_HIP_PATCH` vertices on the
   outside of the hip at the greater trochanter (where COCO annotators click), the shoulders,
   elbows, wrists, knees and ankles on the joint regressor's rings around their joints.

DensePose part convention of this stand-in ("front" faces +z in T-pose, seen from the bone):

====  =====================  ====  =====================
part  region                 part  region
====  =====================  ====  =====================
1     torso, back            13    lower leg right, front
2     torso, front           14    lower leg left, front
3     right hand             15    upper arm left, back
4     left hand              16    upper arm right, back
5     left foot              17    upper arm left, front
6     right foot             18    upper arm right, front
7     upper leg right, back  19    lower arm left, back
8     upper leg left, back   20    lower arm right, back
9     upper leg right, front 21    lower arm left, front
10    upper leg left, front  22    lower arm right, front
11    lower leg right, back  23    head, right half (x < 0)
12    lower leg left, back   24    head, left half (x > 0)
====  =====================  ====  =====================

SMPL segments per part: torso = pelvis, spine1-3, collars; head = neck, head; upper arm =
shoulder; lower arm = elbow; hand = wrist, hand; upper leg = hip; lower leg = knee;
foot = ankle, foot.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import scipy.sparse as sp
import scipy.sparse.linalg as spla
from scipy.optimize import nnls
from skimage.measure import marching_cubes

from dlearn.body.io import (
    NUM_JOINTS,
    NUM_POSE_BLEND,
    SMPL_JOINT_NAMES,
    SMPL_PARENTS,
    BodyModelData,
    write_smpl_pickle,
)
from dlearn.body.symmetry import JOINT_FLIP
from dlearn.densepose.uv import NUM_PARTS, UVCharts, body_face_parts, part_colours, write_uv_charts

if TYPE_CHECKING:
    from matplotlib.axes import Axes

logger = logging.getLogger(__name__)

__all__ = [
    "StandinBody",
    "body_face_parts",
    "body_sdf",
    "build_standin",
    "default_preview_pose",
    "rest_joints",
    "write_body_preview",
    "write_standin",
    "write_standin_preview",
]

_J = {name: i for i, name in enumerate(SMPL_JOINT_NAMES)}

#: Designed rest joints of the left side and the midline (x >= 0), close to SMPL's mean
#: neutral body; right-side joints are their mirror images.
_HALF_JOINTS: dict[str, tuple[float, float, float]] = {
    "pelvis": (0.0, -0.22, 0.03),
    "left_hip": (0.07, -0.31, 0.02),
    "spine1": (0.0, -0.11, 0.0),
    "left_knee": (0.10, -0.67, 0.01),
    "spine2": (0.0, 0.02, 0.01),
    "left_ankle": (0.09, -1.07, -0.04),
    "spine3": (0.0, 0.08, 0.03),
    "left_foot": (0.12, -1.13, 0.08),
    "neck": (0.0, 0.29, -0.02),
    "left_collar": (0.07, 0.19, 0.0),
    "head": (0.0, 0.39, 0.03),
    "left_shoulder": (0.17, 0.22, -0.02),
    "left_elbow": (0.43, 0.21, -0.03),
    "left_wrist": (0.68, 0.22, -0.03),
    "left_hand": (0.77, 0.21, -0.04),
}

# Marching cubes grid: spacing (m) and the extent of the half body x >= 0.
_GRID_STEP = 0.018
_GRID_LO = np.array([0.0, -1.21, -0.19])
_GRID_HI = np.array([0.90, 0.60, 0.24])
_BLEND = 0.025  # smooth-union radius (m): fillets at the joints
_TRUNK_BLEND = 0.07
_TAUBIN_ITERATIONS = 12

# Cut planes between segments (T-pose, left side): the arm is along +x, the leg along -y.
_ARM_CUT_X = 0.215  # torso | upper arm
_ELBOW_CUT_X = 0.43  # upper | lower arm
_WRIST_CUT_X = 0.70  # lower arm | hand
_LEG_CUT_Y = -0.42  # torso | upper leg, below the crotch where the legs are apart
_KNEE_CUT_Y = -0.67  # upper | lower leg
_ANKLE_CUT_Y = -1.01  # lower leg | foot
_NECK_CUT_Y = 0.30  # torso | head


def rest_joints() -> np.ndarray:
    """(24, 3) designed T-pose joints, in SMPL joint order."""
    joints = np.zeros((NUM_JOINTS, 3))
    for name, pos in _HALF_JOINTS.items():
        joints[_J[name]] = pos
        if name.startswith("left_"):
            joints[_J["right_" + name[5:]]] = (-pos[0], pos[1], pos[2])
    return joints


# --------------------------------------------------------------------------------------------
# Surface: signed distance field, marching cubes, mirror and stitch, smoothing.


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


def _uniform_laplacian(faces: np.ndarray, n: int) -> sp.csr_matrix:
    """(n, n) adjacency matrix with rows normalised to 1 (the uniform 'umbrella' operator)."""
    edges = np.concatenate([faces[:, [0, 1]], faces[:, [1, 2]], faces[:, [2, 0]]])
    adj = sp.coo_matrix((np.ones(len(edges)), (edges[:, 0], edges[:, 1])), shape=(n, n)).tocsr()
    adj = ((adj + adj.T) > 0).astype(np.float64)
    return sp.diags(1.0 / np.asarray(adj.sum(axis=1)).ravel()) @ adj


def _taubin_smooth(vertices: np.ndarray, faces: np.ndarray, iterations: int) -> np.ndarray:
    """Taubin's lambda|mu smoothing: removes the marching-cubes staircase without shrinking."""
    avg = _uniform_laplacian(faces, len(vertices))
    v = vertices.copy()
    for _ in range(iterations):
        v += 0.5 * (avg @ v - v)
        v += -0.53 * (avg @ v - v)
    return v


def _signed_volume(vertices: np.ndarray, faces: np.ndarray) -> float:
    """Enclosed volume of a closed mesh, positive when its faces wind outwards."""
    tri = vertices[faces]
    return float(np.einsum("ij,ij->i", tri[:, 0], np.cross(tri[:, 1], tri[:, 2])).sum() / 6.0)


def _build_surface() -> _Surface:
    """Mirror the half mesh about x = 0, stitch along the seam, smooth and re-symmetrise.

    The two halves share the seam vertices, so the seam edges get one face from each half;
    :func:`_edge_topology` later checks that the result is a closed manifold.
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


# --------------------------------------------------------------------------------------------
# Preview rendering.

#: Orthographic views: (screen right, screen up, towards the viewer).
_VIEWS: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]] = {
    "front": (np.array([1.0, 0.0, 0.0]), np.array([0.0, 1.0, 0.0]), np.array([0.0, 0.0, 1.0])),
    "side": (np.array([0.0, 0.0, -1.0]), np.array([0.0, 1.0, 0.0]), np.array([1.0, 0.0, 0.0])),  # from +x
}


def _draw_mesh(ax: Axes, vertices: np.ndarray, faces: np.ndarray, colors: np.ndarray, view: str) -> None:
    """Painter's-algorithm orthographic drawing of a closed mesh on a matplotlib axes.

    Args:
        ax: matplotlib Axes.
        vertices: (N, 3) positions.
        faces: (F, 3) outward-oriented triangles.
        colors: (F, 3) RGB in [0, 1] per face.
        view: a key of ``_VIEWS``.
    """
    from matplotlib.collections import PolyCollection

    right, up, toward = _VIEWS[view]
    tri = vertices[faces]
    normal = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
    normal /= np.maximum(np.linalg.norm(normal, axis=1, keepdims=True), 1e-15)
    facing = normal @ toward
    visible = np.flatnonzero(facing > 0.0)  # back faces of a closed mesh are always hidden
    order = visible[np.argsort(tri[visible].mean(axis=1) @ toward, kind="stable")]
    screen = np.stack([tri[order] @ right, tri[order] @ up], axis=-1)
    shade = (0.35 + 0.65 * facing[order])[:, None]
    ax.add_collection(
        PolyCollection(screen, facecolors=np.clip(colors[order] * shade, 0, 1), edgecolors="none")
    )
    ax.set_xlim(screen[..., 0].min() - 0.05, screen[..., 0].max() + 0.05)
    ax.set_ylim(screen[..., 1].min() - 0.05, screen[..., 1].max() + 0.05)
    ax.set_aspect("equal")
    ax.set_axis_off()


# --------------------------------------------------------------------------------------------
# DensePose parts.

#: Each part's mirror-image part (index 0 unused).
_MIRROR_PART = np.array(
    [0, 1, 2, 4, 3, 6, 5, 8, 7, 10, 9, 12, 11, 14, 13, 16, 15, 18, 17, 20, 19, 22, 21, 24, 23]
)
_CLEANUP_ROUNDS = 30


def _bone_z(t: np.ndarray, start: str, end: str, along: int) -> np.ndarray:
    """z (P,) of the bone start->end where its coordinate ``along`` (0: x, 1: y) equals t (P,).

    The bone's z is clamped to its end joints' z beyond them.
    """
    a, b = _HALF_JOINTS[start], _HALF_JOINTS[end]
    return a[2] + np.clip((t - a[along]) / (b[along] - a[along]), 0.0, 1.0) * (b[2] - a[2])


def _left_face_parts(centroids: np.ndarray) -> np.ndarray:
    """Initial part (F,) of left-half faces from their T-pose centroids (F, 3), by cut planes."""
    x, y, z = centroids.T
    # Torso: split by a coronal surface through the neck, the shoulders and the hips.
    torso_z = 0.02 + np.clip((y + 0.2) / 0.3, 0.0, 1.0) * (-0.035)
    part = np.where(z > torso_z, 2, 1)
    part = np.where((y > _NECK_CUT_Y) & (x < 0.12), 24, part)

    leg = y < _LEG_CUT_Y
    part = np.where(leg, np.where(z > _bone_z(y, "left_hip", "left_knee", 1), 10, 8), part)
    lower_leg = leg & (y < _KNEE_CUT_Y)
    part = np.where(lower_leg, np.where(z > _bone_z(y, "left_knee", "left_ankle", 1), 14, 12), part)
    part = np.where(leg & (y < _ANKLE_CUT_Y), 5, part)

    arm = x > _ARM_CUT_X
    part = np.where(arm, np.where(z > _bone_z(x, "left_shoulder", "left_elbow", 0), 17, 15), part)
    lower_arm = arm & (x > _ELBOW_CUT_X)
    part = np.where(lower_arm, np.where(z > _bone_z(x, "left_elbow", "left_wrist", 0), 21, 19), part)
    part = np.where(arm & (x > _WRIST_CUT_X), 4, part)
    return part.astype(np.int64)


@dataclass(frozen=True)
class _EdgeTopology:
    """Edge adjacency of a closed manifold triangle mesh.

    Attributes:
        edges: (E, 2) vertex pairs, sorted within the row.
        edge_faces: (E, 2) the two faces on each edge.
        face_neighbors: (F, 3) the face across each of a face's three edges.
    """

    edges: np.ndarray
    edge_faces: np.ndarray
    face_neighbors: np.ndarray


def _edge_topology(faces: np.ndarray) -> _EdgeTopology:
    """Edges and face adjacency of a closed manifold mesh (F, 3); raises if it is not one."""
    num_faces = len(faces)
    half_edges = np.sort(np.concatenate([faces[:, [0, 1]], faces[:, [1, 2]], faces[:, [2, 0]]]), axis=1)
    owner = np.tile(np.arange(num_faces), 3)
    edges, inverse, counts = np.unique(half_edges, axis=0, return_inverse=True, return_counts=True)
    if np.any(counts != 2):
        raise RuntimeError("stand-in surface is not a closed manifold (an edge without exactly two faces)")
    inverse = inverse.ravel()
    edge_faces = owner[np.argsort(inverse, kind="stable")].reshape(-1, 2)
    first, second = edge_faces[inverse, 0], edge_faces[inverse, 1]
    across = np.where(first == owner, second, first)
    return _EdgeTopology(edges=edges, edge_faces=edge_faces, face_neighbors=across.reshape(3, num_faces).T)


def _face_components(mask: np.ndarray, topo: _EdgeTopology) -> tuple[int, np.ndarray]:
    """Edge-connected components of the faces where ``mask``: (count, (F,) label or -1)."""
    from scipy.sparse.csgraph import connected_components

    ef = topo.edge_faces
    keep = mask[ef[:, 0]] & mask[ef[:, 1]]
    n = len(mask)
    graph = sp.coo_matrix((np.ones(int(keep.sum())), (ef[keep, 0], ef[keep, 1])), shape=(n, n))
    _, labels = connected_components(graph, directed=False)
    labels = np.where(mask, labels, -1)
    uniq, labels[mask] = np.unique(labels[mask], return_inverse=True)
    return len(uniq), labels


def _absorb_islands(part: np.ndarray, topo: _EdgeTopology) -> bool:
    """Give every part its largest component only; other components join their commonest neighbour."""
    changed = False
    for p in range(1, NUM_PARTS + 1):
        count, comp = _face_components(part == p, topo)
        if count <= 1:
            continue
        sizes = np.bincount(comp[comp >= 0])
        for c in np.argsort(-sizes, kind="stable")[1:]:
            faces = np.flatnonzero(comp == c)
            neighbours = part[topo.face_neighbors[faces]].ravel()
            neighbours = neighbours[neighbours != p]
            part[faces] = np.bincount(neighbours, minlength=NUM_PARTS + 1).argmax()
            changed = True
    return changed


def _absorb_spikes(part: np.ndarray, topo: _EdgeTopology) -> bool:
    """Relabel faces that share two of their three edges with one other part (jagged borders).

    Faces flip one at a time, each flip removing at least one border edge, so this terminates
    (flipping all candidates at once can oscillate).
    """
    changed = False
    nb = part[topo.face_neighbors]
    candidates = np.flatnonzero(((nb != part[:, None]).sum(axis=1) >= 2))
    for f in candidates:
        labels = part[topo.face_neighbors[f]]
        counts = np.bincount(labels, minlength=NUM_PARTS + 1)
        q = int(counts.argmax())
        if q != part[f] and counts[q] >= 2:
            part[f] = q
            changed = True
    return changed


def _border_degree(part: np.ndarray, topo: _EdgeTopology, num_vertices: int) -> np.ndarray:
    """(N, 25) number of border edges of each part at each vertex (a disc's border vertex has 2)."""
    a, b = part[topo.edge_faces[:, 0]], part[topo.edge_faces[:, 1]]
    cut = a != b
    degree = np.zeros((num_vertices, NUM_PARTS + 1), dtype=np.int64)
    for side in (a, b):
        for end in (0, 1):
            np.add.at(degree, (topo.edges[cut, end], side[cut]), 1)
    return degree


def _fill_pinches(part: np.ndarray, faces: np.ndarray, topo: _EdgeTopology) -> bool:
    """Where a part touches itself at a vertex (a bow tie), give it all faces around that vertex."""
    degree = _border_degree(part, topo, int(faces.max()) + 1)
    pinched = np.argwhere(degree > 2)
    for vertex, p in pinched:
        part[np.any(faces == vertex, axis=1)] = p
    return len(pinched) > 0


def _clean_parts(part: np.ndarray, faces: np.ndarray, topo: _EdgeTopology) -> np.ndarray:
    """Clean the cut-plane labelling until every part is one piece with a simple border."""
    part = part.copy()
    for _ in range(_CLEANUP_ROUNDS):
        changed = _absorb_spikes(part, topo)
        changed |= _absorb_islands(part, topo)
        changed |= _fill_pinches(part, faces, topo)
        if not changed:
            return part
    raise RuntimeError("stand-in part labelling did not settle; check the cut planes")


def _boundary_loop(faces: np.ndarray) -> np.ndarray:
    """The border of a disc patch (F, 3) as one vertex loop, in the faces' winding direction.

    Raises:
        RuntimeError: the patch's border is not a single simple loop.
    """
    directed = np.concatenate([faces[:, [0, 1]], faces[:, [1, 2]], faces[:, [2, 0]]])
    key = directed[:, 0] * (faces.max() + 1) + directed[:, 1]
    reverse = directed[:, 1] * (faces.max() + 1) + directed[:, 0]
    border = directed[~np.isin(reverse, key)]
    if len(np.unique(border[:, 0])) != len(border):
        raise RuntimeError("part border touches itself")
    successor = dict(zip(border[:, 0].tolist(), border[:, 1].tolist()))
    start = int(border[:, 0].min())
    loop = [start]
    while (nxt := successor[loop[-1]]) != start:
        loop.append(nxt)
    if len(loop) != len(border):
        raise RuntimeError("part has more than one border loop")
    return np.array(loop)


def _tutte_disc(faces: np.ndarray, vertices: np.ndarray, loop: np.ndarray) -> np.ndarray:
    """Tutte's uniform-weight embedding of a disc patch into the unit disc.

    Args:
        faces: (F, 3) local vertex indices 0..M-1 of the patch.
        vertices: (M, 3) 3D positions (only the border's arc lengths are used).
        loop: (B,) border vertices in order.

    Returns:
        (M, 2) coordinates; the border lies on the unit circle by arc length, every interior
        vertex is the mean of its neighbours, so no triangle folds over (Tutte/Floater).
    """
    m = len(vertices)
    seg = np.linalg.norm(vertices[np.roll(loop, -1)] - vertices[loop], axis=1)
    angle = 2.0 * np.pi * np.concatenate([[0.0], np.cumsum(seg)[:-1]]) / seg.sum()
    uv = np.zeros((m, 2))
    uv[loop] = np.stack([np.cos(angle), np.sin(angle)], axis=1)
    inner = np.setdiff1d(np.arange(m), loop)
    if len(inner):
        avg = _uniform_laplacian(faces, m)
        system = sp.eye(m, format="csr") - avg
        a = system[inner][:, inner].tocsc()
        rhs = -(system[inner][:, loop] @ uv[loop])
        uv[inner] = spla.splu(a).solve(np.ascontiguousarray(rhs))
    return uv


def _euler_characteristic(faces: np.ndarray) -> int:
    """V - E + F of a triangle patch (F, 3): 1 for a disc (given one border loop), 2 for a sphere."""
    edges = np.unique(
        np.sort(np.concatenate([faces[:, [0, 1]], faces[:, [1, 2]], faces[:, [2, 0]]]), axis=1), axis=0
    )
    return len(np.unique(faces)) - len(edges) + len(faces)


def _uv_charts(vertices: np.ndarray, faces: np.ndarray, face_part: np.ndarray) -> UVCharts:
    """One fold-free chart per part (parts in order 1..24, chart vertices by body vertex id)."""
    chart_faces, chart_part, chart_vertex, chart_uv = [], [], [], []
    offset = 0
    for p in range(1, NUM_PARTS + 1):
        patch = faces[face_part == p]
        body_ids, local = np.unique(patch, return_inverse=True)
        local = local.reshape(-1, 3)
        if _euler_characteristic(local) != 1:
            raise RuntimeError(f"stand-in part {p} is not a topological disc")
        uv = _tutte_disc(local, vertices[body_ids], _boundary_loop(local))
        chart_faces.append(local + offset)
        chart_part.append(np.full(len(local), p))
        chart_vertex.append(body_ids)
        chart_uv.append(0.5 + 0.5 * uv)
        offset += len(body_ids)
    uv = np.clip(np.concatenate(chart_uv), 0.0, 1.0)
    return UVCharts(
        face_part=np.concatenate(chart_part).astype(np.int64),
        faces=np.concatenate(chart_faces).astype(np.int64),
        vertex=np.concatenate(chart_vertex).astype(np.int64),
        u=uv[:, 0].copy(),
        v=uv[:, 1].copy(),
    )


def _face_parts(surface: _Surface) -> np.ndarray:
    """(F,) DensePose part of each face: cut planes on the left half, mirrored, then cleaned."""
    centroids = surface.vertices[surface.faces[: surface.num_half_faces]].mean(axis=1)
    left = _left_face_parts(centroids)
    part = np.concatenate([left, _MIRROR_PART[left]])
    return _clean_parts(part, surface.faces, _edge_topology(surface.faces))


# --------------------------------------------------------------------------------------------
# Skinning weights, joint regressor, keypoint vertices.

#: Joints whose segments make up each part (index 0 unused).
_PART_JOINTS: list[tuple[str, ...]] = [
    (),
    ("pelvis", "spine1", "spine2", "spine3", "left_collar", "right_collar"),
    ("pelvis", "spine1", "spine2", "spine3", "left_collar", "right_collar"),
    ("right_wrist", "right_hand"),
    ("left_wrist", "left_hand"),
    ("left_ankle", "left_foot"),
    ("right_ankle", "right_foot"),
    ("right_hip",),
    ("left_hip",),
    ("right_hip",),
    ("left_hip",),
    ("right_knee",),
    ("left_knee",),
    ("right_knee",),
    ("left_knee",),
    ("left_shoulder",),
    ("right_shoulder",),
    ("left_shoulder",),
    ("right_shoulder",),
    ("left_elbow",),
    ("right_elbow",),
    ("left_elbow",),
    ("right_elbow",),
    ("neck", "head"),
    ("neck", "head"),
]

#: Child joint that ends each joint's bone; leaf joints get a fixed extension instead.
_BONE_END = {
    "pelvis": "spine1", "left_hip": "left_knee", "right_hip": "right_knee", "spine1": "spine2",
    "left_knee": "left_ankle", "right_knee": "right_ankle", "spine2": "spine3",
    "left_ankle": "left_foot", "right_ankle": "right_foot", "spine3": "neck",
    "left_collar": "left_shoulder", "right_collar": "right_shoulder", "neck": "head",
    "left_shoulder": "left_elbow", "right_shoulder": "right_elbow", "left_elbow": "left_wrist",
    "right_elbow": "right_wrist", "left_wrist": "left_hand", "right_wrist": "right_hand",
}  # fmt: skip
_LEAF_EXTENSION = {
    "head": (0.0, 0.15, 0.0), "left_hand": (0.08, 0.0, 0.0), "right_hand": (-0.08, 0.0, 0.0),
    "left_foot": (0.0, 0.0, 0.06), "right_foot": (0.0, 0.0, 0.06),
}  # fmt: skip

_SKIN_DIFFUSION = 5.0  # diffusion time, in squared edge lengths: blends over ~3 edges
_SKIN_FLOOR = 1e-4
_REGRESSOR_FIT = 1e4  # weight of the joint-position and sum-to-one rows in the NNLS
_REGRESSOR_TOLERANCE = 1e-12  # m


def _bone_segments(joints: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(24, 3) start and (24, 3) end of each joint's bone."""
    end = np.zeros_like(joints)
    for name, j in _J.items():
        end[j] = joints[_J[_BONE_END[name]]] if name in _BONE_END else joints[j] + _LEAF_EXTENSION[name]
    return joints.copy(), end


def _segment_distance(p: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(P,) distance from points (P, 3) to the segment a-b."""
    ab = b - a
    t = np.clip((p - a) @ ab / (ab @ ab), 0.0, 1.0)
    return np.linalg.norm(p - a - t[:, None] * ab, axis=1)


def _vertex_parts(faces: np.ndarray, face_part: np.ndarray, num_vertices: int) -> np.ndarray:
    """(N,) one part per vertex: the part of its lowest-numbered face (any choice is fine on seams)."""
    part = np.zeros(num_vertices, dtype=np.int64)
    for corner in (2, 1, 0):
        part[faces[::-1, corner]] = face_part[::-1]
    return part


def _skinning_weights(
    vertices: np.ndarray, faces: np.ndarray, face_part: np.ndarray, joints: np.ndarray, mirror: np.ndarray
) -> np.ndarray:
    """(N, 24) skinning weights: nearest bone of the vertex's part, diffused over the surface.

    The diffusion (I + t L)^-1 with the random-walk Laplacian L is a nonnegative matrix with
    rows summing to 1, so the weights stay nonnegative and each row sums to 1. The result is
    averaged with its mirror (vertex ``mirror``, left/right joints swapped): seam vertices take
    the part of one of their faces, which is not a mirror-symmetric choice, and a mirrored pose
    must give the exactly mirrored surface (flip augmentation relies on it).
    """
    n = len(vertices)
    start, end = _bone_segments(joints)
    vpart = _vertex_parts(faces, face_part, n)
    dist = np.stack([_segment_distance(vertices, start[j], end[j]) for j in range(NUM_JOINTS)], axis=1)
    allowed = np.zeros((NUM_PARTS + 1, NUM_JOINTS), dtype=bool)
    for p, names in enumerate(_PART_JOINTS):
        allowed[p, [_J[name] for name in names]] = True
    owner = np.where(allowed[vpart], dist, np.inf).argmin(axis=1)
    one_hot = np.zeros((n, NUM_JOINTS))
    one_hot[np.arange(n), owner] = 1.0
    system = (1.0 + _SKIN_DIFFUSION) * sp.eye(n, format="csc") - _SKIN_DIFFUSION * _uniform_laplacian(
        faces, n
    )
    weights = spla.splu(system.tocsc()).solve(one_hot)
    weights = np.where(weights < _SKIN_FLOOR, 0.0, weights)  # drop the diffusion's far tails
    weights = 0.5 * (weights + weights[mirror][:, JOINT_FLIP])
    return weights / weights.sum(axis=1, keepdims=True)


def _regress_joint(vertices: np.ndarray, joint: np.ndarray) -> np.ndarray:
    """(N,) nonnegative weights summing to 1 whose weighted vertex mean is ``joint``.

    Uses the vertices within a growing radius of the joint and the smallest-norm such weights
    (a ridge term in the NNLS), so the weights spread over a ring instead of 4 vertices; the
    ridge leaves a ~1e-9 m residual, which a projection onto the constraints on the support
    removes.
    """
    dist = np.linalg.norm(vertices - joint, axis=1)
    radius = 1.2 * dist.min() + 0.01
    while True:
        near = np.flatnonzero(dist < radius)
        k = len(near)
        constraints = np.vstack([vertices[near].T, np.ones((1, k))])  # (4, k)
        target = np.append(joint, 1.0)
        w, _ = nnls(
            np.vstack([_REGRESSOR_FIT * constraints, np.eye(k)]),
            np.append(_REGRESSOR_FIT * target, np.zeros(k)),
        )
        support = w > 0
        if support.sum() >= 4:
            c = constraints[:, support]
            w[support] -= c.T @ np.linalg.solve(c @ c.T, c @ w[support] - target)
            if w.min() >= 0.0 and np.abs(constraints @ w - target).max() < _REGRESSOR_TOLERANCE:
                row = np.zeros(len(vertices))
                row[near] = w
                return row
        radius *= 1.25


def _joint_regressor(vertices: np.ndarray, joints: np.ndarray) -> np.ndarray:
    """(24, N) regressor with J_regressor @ vertices == joints (to 1e-12 m)."""
    return np.stack([_regress_joint(vertices, j) for j in joints])


#: Vertices of each hip keypoint's patch, and the patch centre's drop below the hip joint (m):
#: the greater trochanter is a few cm below the hip joint, on the outside of the thigh.
_HIP_PATCH = 6
_TROCHANTER_DROP = 0.03


def _trochanter_patch(vertices: np.ndarray, hip: np.ndarray) -> np.ndarray:
    """(_HIP_PATCH,) vertices around the outermost surface point (largest x) level with the
    trochanter, beside the left ``hip`` joint."""
    level = (np.abs(vertices[:, 1] - (hip[1] - _TROCHANTER_DROP)) < 0.02) & (np.abs(vertices[:, 2] - hip[2]) < 0.03)
    candidates = np.flatnonzero(level & (vertices[:, 0] > hip[0]))
    outermost = vertices[candidates[np.argmax(vertices[candidates, 0])]]
    return np.argsort(np.linalg.norm(vertices - outermost, axis=1), kind="stable")[:_HIP_PATCH]


def _keypoint_regressor(
    vertices: np.ndarray, j_regressor: np.ndarray, vertex_ids: dict[str, int], mirror: np.ndarray
) -> np.ndarray:
    """(17, N) COCO keypoint regressor, rows summing to 1; the right hip's patch mirrors the left's."""
    from dlearn.body.keypoints import FACE_VERTEX_NAMES, LIMB_JOINTS
    from dlearn.densepose.coco import COCO_KEYPOINT_NAMES

    rows = np.zeros((len(COCO_KEYPOINT_NAMES), len(vertices)))
    for k, name in enumerate(COCO_KEYPOINT_NAMES):
        if name in FACE_VERTEX_NAMES:
            rows[k, vertex_ids[FACE_VERTEX_NAMES[name]]] = 1.0
        elif name not in ("left_hip", "right_hip"):
            rows[k] = j_regressor[LIMB_JOINTS[name]]
    left, right = COCO_KEYPOINT_NAMES.index("left_hip"), COCO_KEYPOINT_NAMES.index("right_hip")
    rows[left, _trochanter_patch(vertices, np.array(_HALF_JOINTS["left_hip"]))] = 1.0 / _HIP_PATCH
    rows[right, mirror] = rows[left]  # the mirror vertex of each patch vertex
    return rows


def _keypoint_vertices(vertices: np.ndarray, vertex_part: np.ndarray) -> dict[str, int]:
    """Nose, eyes and ears (smplx's names; 'r' is the person's right, x < 0) on the head."""
    head = np.isin(vertex_part, (23, 24))
    idx = np.flatnonzero(head)
    v = vertices[idx]
    front = v[:, 2] > 0.0

    def nearest(mask: np.ndarray, cost: np.ndarray) -> int:
        return int(idx[np.flatnonzero(mask)[np.argmin(cost[mask])]])

    out = {"nose": nearest(np.abs(v[:, 0]) < 1e-12, -v[:, 2])}
    for side, sign in (("l", 1.0), ("r", -1.0)):
        eye_cost = np.hypot(v[:, 0] - sign * 0.032, v[:, 1] - 0.475)
        out[f"{side}eye"] = nearest(front & (sign * v[:, 0] > 0), eye_cost)
        ear_cost = np.hypot(v[:, 1] - 0.455, v[:, 2] - 0.0)
        out[f"{side}ear"] = nearest(sign * v[:, 0] > 0.05, ear_cost)
    return {name: out[name] for name in ("nose", "reye", "leye", "rear", "lear")}


# --------------------------------------------------------------------------------------------
# Public API.


@dataclass(frozen=True)
class StandinBody:
    """The procedural stand-in body.

    Attributes:
        model: the SMPL-format arrays (template, faces, weights, regressor, blend shapes,
            keypoint vertices and the left/right vertex mirror map).
        face_part: (F,) int64 DensePose part 1..24 of each face of ``model.faces``.
        uv: the per-part UV charts (``UV_Processed.mat`` contents).
    """

    model: BodyModelData
    face_part: np.ndarray
    uv: UVCharts


def build_standin() -> StandinBody:
    """Build the stand-in body. Deterministic: no randomness, same arrays on every run."""
    surface = _build_surface()
    vertices, faces = surface.vertices, surface.faces
    n = len(vertices)
    face_part = _face_parts(surface)
    joints = rest_joints()
    j_regressor = _joint_regressor(vertices, joints)
    vertex_ids = _keypoint_vertices(vertices, _vertex_parts(faces, face_part, n))
    model = BodyModelData(
        v_template=vertices,
        faces=faces,
        weights=_skinning_weights(vertices, faces, face_part, joints, surface.mirror),
        parents=SMPL_PARENTS.copy(),
        j_regressor=j_regressor,
        posedirs=np.zeros((n, 3, NUM_POSE_BLEND)),
        shapedirs=np.zeros((n, 3, 10)),
        vertex_ids=vertex_ids,
        vertex_symmetry=surface.mirror,
        keypoint_regressor=_keypoint_regressor(vertices, j_regressor, vertex_ids, surface.mirror),
        source="<stand-in>",
    )
    model.validate()
    uv = _uv_charts(vertices, faces, face_part)
    logger.info(
        "stand-in body: %d vertices, %d faces, %d chart vertices", n, len(faces), uv.num_chart_vertices
    )
    return StandinBody(model=model, face_part=face_part, uv=uv)


def write_standin(out_dir: str | Path, preview: bool = False) -> tuple[Path, Path]:
    """Build the stand-in and write ``out_dir/SMPL_NEUTRAL.pkl`` and ``out_dir/UV_Processed.mat``.

    The file name lets ``smplx.create(out_dir)`` find the model.

    Args:
        out_dir: output folder (created).
        preview: also render ``out_dir/preview.png`` (rest and sample pose, coloured by part).

    Returns:
        The model and UV paths. Both files have the same bytes on every run.
    """
    out_dir = Path(out_dir)
    body = build_standin()
    model_path = write_smpl_pickle(body.model, out_dir / "SMPL_NEUTRAL.pkl")
    uv_path = write_uv_charts(body.uv, out_dir / "UV_Processed.mat")
    if preview:
        write_standin_preview(body, out_dir / "preview.png")
    return model_path, uv_path


def default_preview_pose() -> np.ndarray:
    """(23, 3) axis-angle sample pose: arms lowered, left elbow and right knee bent."""
    pose = np.zeros((NUM_JOINTS - 1, 3))
    pose[_J["left_shoulder"] - 1] = (0.0, 0.0, -1.1)  # rotate the +x arm down towards -y
    pose[_J["right_shoulder"] - 1] = (0.0, 0.0, 1.2)
    pose[_J["left_elbow"] - 1] = (0.0, -1.3, 0.0)  # forearm forward (+z)
    pose[_J["right_elbow"] - 1] = (0.0, 0.4, 0.0)
    pose[_J["right_hip"] - 1] = (-0.7, 0.0, 0.0)  # thigh forward
    pose[_J["right_knee"] - 1] = (1.2, 0.0, 0.0)  # shin backward
    pose[_J["left_hip"] - 1] = (0.15, 0.0, 0.1)
    pose[_J["neck"] - 1] = (0.15, 0.3, 0.0)
    return pose


def write_body_preview(
    model: BodyModelData, face_part: np.ndarray, png_path: str | Path, pose: np.ndarray | None = None
) -> Path:
    """Render a body model, coloured by DensePose part, in its rest pose and in ``pose``.

    Args:
        model: the body model (the stand-in or a real SMPL-format model).
        face_part: (F,) part 1..24 of each face (:func:`body_face_parts` for a real model).
        png_path: output PNG.
        pose: (23, 3) axis-angle of joints 1..23; default :func:`default_preview_pose`.

    Returns:
        ``png_path``. Four orthographic panels: rest pose front and left side, posed front and
        left side (the person faces screen left there).
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import torch

    from dlearn.body.model import BodyModel

    pose = default_preview_pose() if pose is None else np.asarray(pose, dtype=np.float64)
    body_model = BodyModel(model, dtype=torch.float64)
    with torch.no_grad():
        posed = body_model(torch.as_tensor(pose[None])).vertices[0].numpy()
    colors = part_colours()[face_part]
    fig, axes = plt.subplots(
        1, 4, figsize=(16, 6), dpi=80, gridspec_kw={"width_ratios": [2.0, 1.0, 1.3, 1.0]}
    )
    panels = [
        (model.v_template, "front", "rest pose, front"),
        (model.v_template, "side", "rest pose, left side"),
    ]
    panels += [(posed, "front", "sample pose, front"), (posed, "side", "sample pose, left side")]
    for ax, (verts, view, title) in zip(axes, panels):
        _draw_mesh(ax, verts, model.faces, colors, view)
        ax.set_title(title)
    fig.tight_layout()
    png_path = Path(png_path)
    png_path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(png_path, metadata={"Software": None})
    plt.close(fig)
    return png_path


def write_standin_preview(body: StandinBody, png_path: str | Path, pose: np.ndarray | None = None) -> Path:
    """Render the stand-in in T-pose and in ``pose`` (see :func:`write_body_preview`)."""
    return write_body_preview(body.model, body.face_part, png_path, pose)
