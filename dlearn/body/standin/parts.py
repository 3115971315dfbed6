"""The stand-in's DensePose parts: each face is labelled by cut planes at the joints (a limb is a
tube between two cuts, split front/back by the plane through the bone; the torso is split by a
coronal plane; the head by the sagittal plane), then islands and pinched vertices are cleaned up
until every part is a topological disc. The part numbering is in the package docstring."""

from __future__ import annotations

import numpy as np

from dlearn.body.standin.mesh import _edge_topology, _EdgeTopology, _face_components
from dlearn.body.standin.skeleton import _HALF_JOINTS
from dlearn.body.standin.surface import _Surface
from dlearn.densepose.uv import NUM_PARTS

# Cut planes between segments (T-pose, left side): the arm is along +x, the leg along -y.
_ARM_CUT_X = 0.215  # torso | upper arm
_ELBOW_CUT_X = 0.43  # upper | lower arm
_WRIST_CUT_X = 0.70  # lower arm | hand
_LEG_CUT_Y = -0.42  # torso | upper leg, below the crotch where the legs are apart
_KNEE_CUT_Y = -0.67  # upper | lower leg
_ANKLE_CUT_Y = -1.01  # lower leg | foot
_NECK_CUT_Y = 0.30  # torso | head


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
    candidates = np.flatnonzero((nb != part[:, None]).sum(axis=1) >= 2)
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


def _face_parts(surface: _Surface) -> np.ndarray:
    """(F,) DensePose part of each face: cut planes on the left half, mirrored, then cleaned."""
    centroids = surface.vertices[surface.faces[: surface.num_half_faces]].mean(axis=1)
    left = _left_face_parts(centroids)
    part = np.concatenate([left, _MIRROR_PART[left]])
    return _clean_parts(part, surface.faces, _edge_topology(surface.faces))
