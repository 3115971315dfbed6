"""The stand-in's rig: smooth skinning weights (each vertex takes the joint of the nearest bone
within its part, and the one-hot weights are diffused over the surface, so they blend across
joints without leaking between segments that are near in space but not on the surface), a joint
regressor that reproduces the designed joints (regularised NNLS over the vertices around each
joint), the COCO keypoint regressor and the face keypoint vertices."""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
import scipy.sparse.linalg as spla
from scipy.optimize import nnls

from dlearn.body.io import NUM_JOINTS
from dlearn.body.standin.mesh import _segment_distance, _uniform_laplacian, _vertex_parts
from dlearn.body.standin.skeleton import _HALF_JOINTS, _J
from dlearn.body.symmetry import JOINT_FLIP
from dlearn.densepose.uv import NUM_PARTS

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
    level = (np.abs(vertices[:, 1] - (hip[1] - _TROCHANTER_DROP)) < 0.02) & (
        np.abs(vertices[:, 2] - hip[2]) < 0.03
    )
    candidates = np.flatnonzero(level & (vertices[:, 0] > hip[0]))
    outermost = vertices[candidates[np.argmax(vertices[candidates, 0])]]
    return np.argsort(np.linalg.norm(vertices - outermost, axis=1), kind="stable")[:_HIP_PATCH]


def _keypoint_regressor(
    vertices: np.ndarray, j_regressor: np.ndarray, vertex_ids: dict[str, int], mirror: np.ndarray
) -> np.ndarray:
    """(17, N) COCO keypoint regressor, rows summing to 1; the right hip's patch mirrors the left's."""
    # The torch-free definition module: `dlearn body-model` never needs torch (~2.8 s to import).
    from dlearn.body.keypoint_definition import FACE_VERTEX_NAMES, LIMB_JOINTS
    from dlearn.coco_keypoints import COCO_KEYPOINT_NAMES

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
