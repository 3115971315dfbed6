"""The segment-scale body model of :mod:`dlearn.body.model` for one body at a time, in numpy and
numba kernels (float64), without torch: the synthetic data's renderer poses one body per person,
where a torch forward costs ~1-2 ms of per-call overhead for ~0.15 ms of arithmetic (the
skinning runs over each vertex's few non-zero weights).

The formula is :class:`~dlearn.body.model.BodyModel`'s (see its module docstring): pose blend
shapes, the scaled kinematic chain G'_j = G'_p(j) [R_j | S_p(j) (J_j - J_p(j))], linear blend
skinning with T_j = G'_j diag(S_j, 1) [I | -J_j]; the COCO keypoints are the keypoint
definition's vertex rows applied to the posed vertices (a keypoint on a joint: the posed joint),
what :class:`~dlearn.body.keypoints.CocoKeypoints` computes from the transforms. No gradients,
isotropic scales only. The same values as the torch model in float64 up to rounding (a test
compares them).
"""

from __future__ import annotations

import numba
import numpy as np

from dlearn.body.io import NUM_JOINTS, BodyModelData
from dlearn.body.keypoint_definition import KeypointDefinition

# Below this squared angle Rodrigues' coefficients come from their Taylor series (as in
# dlearn.body.rotations): the exact expressions divide by the angle.
_SMALL_ANGLE_SQ = 1e-6


@numba.njit(cache=True, nogil=True)
def axis_angle_to_matrix(axis_angle: np.ndarray) -> np.ndarray:
    """Rodrigues' formula, R = I + a K + b K^2 with K = skew(r), a = sin t / t, b = (1 - cos t)
    / t^2 (:func:`dlearn.body.rotations.axis_angle_to_matrix` in numba): (K, 3) rotation vectors
    -> (K, 3, 3) rotation matrices."""
    out = np.empty((axis_angle.shape[0], 3, 3))
    for i in range(axis_angle.shape[0]):
        x, y, z = axis_angle[i, 0], axis_angle[i, 1], axis_angle[i, 2]
        theta_sq = x * x + y * y + z * z
        if theta_sq < _SMALL_ANGLE_SQ:
            a = 1.0 - theta_sq / 6.0 + theta_sq * theta_sq / 120.0
            b = 0.5 - theta_sq / 24.0 + theta_sq * theta_sq / 720.0
        else:
            theta = np.sqrt(theta_sq)
            half_sin = np.sin(0.5 * theta)
            a = np.sin(theta) / theta
            b = 2.0 * half_sin * half_sin / theta_sq  # 1 - cos t without cancellation
        # I + a K + b K^2, K^2 = r r^T - |r|^2 I.
        out[i, 0, 0] = 1.0 + b * (x * x - theta_sq)
        out[i, 1, 1] = 1.0 + b * (y * y - theta_sq)
        out[i, 2, 2] = 1.0 + b * (z * z - theta_sq)
        out[i, 0, 1], out[i, 1, 0] = -a * z + b * x * y, a * z + b * x * y
        out[i, 0, 2], out[i, 2, 0] = a * y + b * x * z, -a * y + b * x * z
        out[i, 1, 2], out[i, 2, 1] = -a * x + b * y * z, a * x + b * y * z
    return out


@numba.njit(cache=True, nogil=True)
def _chain(
    local: np.ndarray,
    scales: np.ndarray,
    parents: np.ndarray,
    rest_offsets: np.ndarray,
    rest_joints: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """Posed joints (24, 3) and skinning transforms T_j = [A_j | b_j] (24, 3, 4) of the local
    rotations (23, 3, 3) of the non-root joints and the (24,) isotropic scales: G'_j = G'_p(j)
    [R_j | S_p(j) (J_j - J_p(j))], A_j = Rglob_j S_j, b_j = joint_j - A_j J_j (parents come
    before their children)."""
    n = parents.shape[0]
    rot = np.empty((n, 3, 3))
    joints = np.empty((n, 3))
    for a in range(3):
        for b in range(3):
            rot[0, a, b] = 1.0 if a == b else 0.0
        joints[0, a] = rest_offsets[0, a]
    for j in range(1, n):
        p = parents[j]
        for a in range(3):
            for b in range(3):
                rot[j, a, b] = (
                    rot[p, a, 0] * local[j - 1, 0, b]
                    + rot[p, a, 1] * local[j - 1, 1, b]
                    + rot[p, a, 2] * local[j - 1, 2, b]
                )
            offset = 0.0
            for b in range(3):
                offset += rot[p, a, b] * (scales[p] * rest_offsets[j, b])
            joints[j, a] = offset + joints[p, a]
    transforms = np.empty((n, 3, 4))
    for j in range(n):
        for a in range(3):
            shift = joints[j, a]
            for b in range(3):
                transforms[j, a, b] = rot[j, a, b] * scales[j]
                shift -= transforms[j, a, b] * rest_joints[j, b]
            transforms[j, a, 3] = shift
    return joints, transforms


@numba.njit(cache=True, nogil=True)
def _skin(
    transforms: np.ndarray, start: np.ndarray, joint: np.ndarray, weight: np.ndarray, verts: np.ndarray
) -> np.ndarray:
    """(N, 3) skinned vertices sum_j w_ij T_j [v_i; 1] of the (N, 3) ``verts``, with the
    transforms (24, 3, 4) and the non-zero weights of vertex i in CSR form (``joint``,
    ``weight`` from ``start[i]`` to ``start[i + 1]``)."""
    out = np.empty_like(verts)
    blend = np.empty((3, 4))
    for i in range(verts.shape[0]):
        blend[:] = 0.0
        for k in range(start[i], start[i + 1]):
            w, t = weight[k], transforms[joint[k]]
            for a in range(3):
                for b in range(4):
                    blend[a, b] += w * t[a, b]
        x, y, z = verts[i, 0], verts[i, 1], verts[i, 2]
        for a in range(3):
            out[i, a] = blend[a, 0] * x + blend[a, 1] * y + blend[a, 2] * z + blend[a, 3]
    return out


class NumpyBodyModel:
    """Posed vertices, joints and COCO keypoints of one body (see the module docstring).

    Args:
        data: the model arrays (template, weights, regressor, tree, pose blend shapes).
        definition: the COCO keypoints' :class:`KeypointDefinition` (e.g. from
            :func:`dlearn.body.keypoint_definition.keypoint_definition`); None: no keypoints
            (the call returns a (0, 3) array for them).
    """

    def __init__(self, data: BodyModelData, definition: KeypointDefinition | None = None):
        data.validate()
        self.parents = np.asarray(data.parents, dtype=np.int64)
        self.rest_joints = np.asarray(data.rest_joints, dtype=np.float64)  # (24, 3)
        rest_offsets = self.rest_joints.copy()
        rest_offsets[1:] -= self.rest_joints[self.parents[1:]]
        self.rest_offsets = rest_offsets  # (24, 3) J_0, then J_j - J_p(j)
        self.template = np.ascontiguousarray(data.v_template, dtype=np.float64)  # (N, 3)
        # The skinning weights in CSR form: a vertex is skinned to a few joints, not 24.
        weights = np.asarray(data.weights, np.float64)
        vertex, joint = np.nonzero(weights)
        self.weight_start = np.searchsorted(vertex, np.arange(len(weights) + 1))
        self.weight_joint, self.weight = joint, weights[vertex, joint]
        # Files without pose blend shapes store zeros (SMPL format needs the key): skip them.
        self.posedirs: np.ndarray | None = None  # (207, N * 3), vertex-major like ``template``
        if data.posedirs is not None and np.any(data.posedirs):
            posedirs = np.asarray(data.posedirs, np.float64).transpose(2, 0, 1)  # (207, N, 3)
            self.posedirs = np.ascontiguousarray(posedirs.reshape(posedirs.shape[0], -1))
        # The keypoints: the vertex rows on the few vertices they use, and the joint keypoints.
        if definition is None:
            self.kp_joint = np.zeros(0, dtype=np.int64)
            rows = np.zeros((0, len(self.template)))
        else:
            self.kp_joint = np.asarray(definition.joint, dtype=np.int64)  # (17,) -1: from the surface
            rows = np.asarray(definition.vertex_weights, np.float64)
        self.kp_support = np.flatnonzero(np.abs(rows).sum(axis=0))  # (S,)
        self.kp_rows = np.ascontiguousarray(rows[:, self.kp_support])  # (17, S)

    def __call__(self, pose: np.ndarray, scales: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Posed (N, 3) vertices, (24, 3) joints and (17, 3) COCO keypoints of the (23, 3)
        axis-angle ``pose`` and (24,) segment ``scales``."""
        local = axis_angle_to_matrix(np.ascontiguousarray(pose, dtype=np.float64).reshape(NUM_JOINTS - 1, 3))
        scales = np.ascontiguousarray(scales, dtype=np.float64)
        joints, transforms = _chain(local, scales, self.parents, self.rest_offsets, self.rest_joints)
        verts = self.template
        if self.posedirs is not None:
            feature = (local - np.eye(3)).reshape(-1)  # (207,) joint-major, then row, column
            verts = verts + (feature @ self.posedirs).reshape(-1, 3)
        vertices = _skin(transforms, self.weight_start, self.weight_joint, self.weight, verts)
        keypoints = self.kp_rows @ vertices[self.kp_support]
        on_joint = self.kp_joint >= 0
        keypoints[on_joint] = joints[self.kp_joint[on_joint]]
        return vertices, joints, keypoints
