"""The one definition of the 17 COCO keypoints on the body model.

COCO (and DensePose-COCO) annotators click surface landmarks, not the skeleton: the hip keypoint
is on the outside of the hip (the greater trochanter), where SMPL's hip joint sits inside the
pelvis. So each keypoint is a vertex regressor, a (17, N) matrix R in COCO's keypoint order with
rows summing to 1: keypoint k of a posed body is ``sum_i R[k, i] * vertex_i`` (HMR's cocoplus
regressor, SPIN's J_regressor_extra). Where it comes from, first found first:

1. ``body.keypoint_regressor`` (``--keypoint-regressor``): a ``.npy`` file, (17, N) in COCO's
   order, or (19, N) in HMR's cocoplus order (:data:`COCOPLUS_NAMES`: the 14 LSP joints, then
   nose, eyes, ears; src/datasets/coco_to_tfrecords.py of github.com/akanazawa/hmr), whose two
   extra rows (neck, head top) are dropped. HMR ships it as ``cocoplus_regressor`` in
   ``neutral_smpl_with_cocoplus_reg.pkl``; save it with ``np.save(path, r.toarray())``.
2. The model file's ``coco_keypoint_regressor`` key (:data:`~dlearn.body.io.KEYPOINT_REGRESSOR_KEY`):
   the stand-in has one (face keypoints on single vertices, hips on the outside of the hip
   surface, limb keypoints on vertex rings around the joints).
3. Otherwise (an official SMPL file and no regressor given), with a logged warning, the fallback:
   face keypoints at single vertices (the file's ``vertex_ids``, or SMPL's), limb keypoints at
   the skeleton's joints, hips included, inside the pelvis, where annotators do not click.

Every stage that computes keypoints of the model (registration's L_KP, the regressor's loss,
the evaluation's keypoint joints, the synthetic generator) uses :class:`CocoKeypoints`, so they
never disagree. It computes the regressed points from the skinning transforms, exactly (linear
blend skinning is linear in the rest vertex), without skinning the regressor's vertices.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn

from dlearn.body.io import (
    KEYPOINT_REGRESSOR_KEY,
    NUM_JOINTS,
    SMPL_JOINT_NAMES,
    BodyModelData,
    keypoint_regressor_problem,
)
from dlearn.body.model import BodyModel, BodyModelOutput
from dlearn.body.rotations import axis_angle_to_matrix
from dlearn.body.symmetry import swap_left_right
from dlearn.densepose.coco import COCO_KEYPOINT_NAMES
from dlearn.errors import InputError

log = logging.getLogger(__name__)

#: Face keypoints and the ``vertex_ids`` entry that places each one.
FACE_VERTEX_NAMES = {"nose": "nose", "left_eye": "leye", "right_eye": "reye", "left_ear": "lear", "right_ear": "rear"}

#: SMPL's vertex ids for the face keypoints (smplx.vertex_ids["smplh"]), for 6890-vertex files.
SMPL_FACE_VERTEX_IDS = {"nose": 332, "reye": 6260, "leye": 2800, "rear": 4071, "lear": 583}
SMPL_NUM_VERTICES = 6890

#: Body joint of each limb keypoint (the fallback definition, and the stand-in's rings).
LIMB_JOINTS = {
    name: SMPL_JOINT_NAMES.index(name)
    for name in (
        "left_shoulder", "right_shoulder", "left_elbow", "right_elbow", "left_wrist", "right_wrist",
        "left_hip", "right_hip", "left_knee", "right_knee", "left_ankle", "right_ankle",
    )
}  # fmt: skip

#: HMR's 19 cocoplus rows (src/datasets/coco_to_tfrecords.py ``joint_names`` of akanazawa/hmr):
#: the 14 LSP joints, then COCO's five face keypoints.
COCOPLUS_NAMES = (
    "right_ankle", "right_knee", "right_hip", "left_hip", "left_knee", "left_ankle", "right_wrist",
    "right_elbow", "right_shoulder", "left_shoulder", "left_elbow", "left_wrist", "neck", "head_top",
    "nose", "left_eye", "right_eye", "left_ear", "right_ear",
)  # fmt: skip
#: The cocoplus row of each COCO keypoint (HMR's ``convert_coco2universal`` inverted).
COCOPLUS_TO_COCO = np.array([COCOPLUS_NAMES.index(name) for name in COCO_KEYPOINT_NAMES])

#: COCO keypoints whose midpoint is the root used to centre 2D and 3D keypoints.
ROOT_KEYPOINTS = (COCO_KEYPOINT_NAMES.index("left_hip"), COCO_KEYPOINT_NAMES.index("right_hip"))

#: COCO keypoint index of each keypoint's left/right mirror (for flips).
COCO_FLIP = swap_left_right(COCO_KEYPOINT_NAMES)

NUM_KEYPOINTS = len(COCO_KEYPOINT_NAMES)


class KeypointRegressorError(InputError):
    """A keypoint regressor file is unreadable or of the wrong shape or values; names the file."""


@dataclass(frozen=True)
class KeypointDefinition:
    """Where the 17 COCO keypoints sit on the body.

    Attributes:
        vertex_weights: (17, N) vertex regressor; a row is all zero where ``joint`` places it.
        joint: (17,) the skeleton joint of a keypoint, -1 where the regressor places it (only
            the fallback uses joints).
        source: where the definition came from, for logs.
    """

    vertex_weights: np.ndarray
    joint: np.ndarray
    source: str

    @property
    def uses_joints(self) -> bool:
        return bool((self.joint >= 0).any())


def keypoint_vertex_ids(data: BodyModelData) -> np.ndarray:
    """(5,) vertex ids of nose, left eye, right eye, left ear, right ear, in COCO order.

    Raises:
        ValueError: the model names no face vertices and is not a 6890-vertex SMPL model.
    """
    ids = data.vertex_ids
    if not all(v in ids for v in FACE_VERTEX_NAMES.values()):
        if data.num_vertices != SMPL_NUM_VERTICES:
            raise ValueError(
                f"{data.source}: key 'vertex_ids' must name the nose, eye and ear vertices "
                f"({', '.join(FACE_VERTEX_NAMES.values())}) for a model with {data.num_vertices} vertices"
            )
        ids = SMPL_FACE_VERTEX_IDS
    return np.array([ids[FACE_VERTEX_NAMES[n]] for n in COCO_KEYPOINT_NAMES[:5]], dtype=np.int64)


def fallback_definition(data: BodyModelData) -> KeypointDefinition:
    """Face keypoints at :func:`keypoint_vertex_ids`, limb keypoints at the skeleton's joints."""
    weights = np.zeros((NUM_KEYPOINTS, data.num_vertices))
    weights[np.arange(5), keypoint_vertex_ids(data)] = 1.0
    joint = np.full(NUM_KEYPOINTS, -1, dtype=np.int64)
    joint[5:] = [LIMB_JOINTS[n] for n in COCO_KEYPOINT_NAMES[5:]]
    return KeypointDefinition(weights, joint, "fallback: face vertices and skeleton joints")


def load_keypoint_regressor(path: str | Path, num_vertices: int) -> np.ndarray:
    """A user's (17, N) COCO-order regressor from a ``.npy`` of 17 (COCO) or 19 (cocoplus) rows.

    Raises:
        KeypointRegressorError: unreadable, not (17 or 19, ``num_vertices``), non-finite, or a
            row not summing to 1; the message names the file and what was found.
    """
    path = Path(path)
    try:
        matrix = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise KeypointRegressorError(f"{path}: unreadable keypoint regressor, expected a .npy array ({exc})") from exc
    if matrix.ndim != 2 or matrix.shape[0] not in (NUM_KEYPOINTS, len(COCOPLUS_NAMES)) or matrix.shape[1] != num_vertices:
        raise KeypointRegressorError(
            f"{path}: keypoint regressor of shape {matrix.shape}, expected ({NUM_KEYPOINTS}, {num_vertices}) in "
            f"COCO's order or ({len(COCOPLUS_NAMES)}, {num_vertices}) in HMR's cocoplus order"
        )
    if not np.issubdtype(matrix.dtype, np.number):
        raise KeypointRegressorError(f"{path}: keypoint regressor of dtype {matrix.dtype}, expected numbers")
    matrix = matrix.astype(np.float64)
    if matrix.shape[0] == len(COCOPLUS_NAMES):
        matrix = matrix[COCOPLUS_TO_COCO]
    problem = keypoint_regressor_problem(matrix, num_vertices)
    if problem:
        raise KeypointRegressorError(f"{path}: keypoint regressor (in COCO order) {problem}")
    return matrix


def keypoint_definition(data: BodyModelData, regressor_path: str | Path | None = None) -> KeypointDefinition:
    """The COCO keypoints of ``data``: a user's regressor file, else the model file's, else the
    fallback (logged as a warning). See the module docstring.

    Raises:
        KeypointRegressorError: ``regressor_path`` is bad.
        ValueError: the fallback needs face vertex ids the model lacks.
    """
    joints = np.full(NUM_KEYPOINTS, -1, dtype=np.int64)
    if regressor_path is not None and str(regressor_path) != "none":
        matrix = load_keypoint_regressor(regressor_path, data.num_vertices)
        return KeypointDefinition(matrix, joints, str(regressor_path))
    if data.keypoint_regressor is not None:
        return KeypointDefinition(data.keypoint_regressor, joints, f"{data.source}: key '{KEYPOINT_REGRESSOR_KEY}'")
    log.warning(
        "%s has no COCO keypoint regressor and none was given (body.keypoint_regressor): COCO's limb "
        "keypoints fall back to the skeleton's joints, so the hips sit inside the pelvis where annotators "
        "click the outside of the hips",
        data.source,
    )
    return fallback_definition(data)


class CocoKeypoints(nn.Module):
    """The (B, 17, 3) COCO keypoints of a posed body, from :meth:`BodyModel.forward`'s transforms.

    Linear blend skinning is linear in the rest vertex, so a regressed point is exact from
    per-(keypoint, joint) sums of the rows: with T_j = [A_j | b_j] and v'_i = sum_j w_ij
    T_j [v_i + P_i f; 1],
        k = sum_i R_ki v'_i = sum_j T_j [sum_i R_ki w_ij (v_i + P_i f); sum_i R_ki w_ij].
    A keypoint on joint j is T_j [J_j; 1] (the posed joint).

    Args:
        model: the body model the transforms come from (its pose blend shapes, when used).
        definition: the keypoints' :class:`KeypointDefinition`.
    """

    points: Tensor  # (P, 4) homogeneous sums of the rows, one per (keypoint, joint) pair
    blend: Tensor | None  # (207, P * 3) the same sums of the pose blend shapes
    pair_keypoint: Tensor  # (P,) keypoint of each pair
    pair_joint: Tensor  # (P,) joint of each pair

    def __init__(self, model: BodyModel, definition: KeypointDefinition):
        super().__init__()
        self.definition = definition
        dtype = model.dtype
        weights = model.weights.detach().cpu().double().numpy()  # (N, 24)
        template = model.v_template.detach().cpu().double().numpy()  # (N, 3)
        rows = definition.vertex_weights
        support = np.flatnonzero(np.abs(rows).sum(axis=0))  # the few vertices the rows use
        blended = np.einsum("kv,vj->kjv", rows[:, support], weights[support])  # R_ki w_ij
        points = np.concatenate(
            [np.einsum("kjv,vc->kjc", blended, template[support]), blended.sum(-1)[..., None]], axis=-1
        )
        rest_joints = model.rest_joints.detach().cpu().double().numpy()
        for k in np.flatnonzero(definition.joint >= 0):
            j = int(definition.joint[k])
            blended[k] = 0.0
            points[k] = 0.0
            points[k, j] = [*rest_joints[j], 1.0]
        # Only the (keypoint, joint) pairs that carry weight: a keypoint's vertices are skinned
        # to a few joints, so this is a few dozen pairs instead of 17 x 24.
        pair_k, pair_j = np.nonzero(np.abs(points).sum(-1) + np.abs(blended).sum(-1))
        self.register_buffer("points", torch.as_tensor(points[pair_k, pair_j], dtype=dtype))
        self.register_buffer("pair_keypoint", torch.as_tensor(pair_k))
        self.register_buffer("pair_joint", torch.as_tensor(pair_j))
        blend = None
        if model.posedirs is not None:
            posedirs = model.posedirs.detach().cpu().double().numpy()[..., support]  # (207, 3, S)
            sums = np.einsum("pv,fcv->fpc", blended[pair_k, pair_j], posedirs)  # (207, P, 3)
            blend = torch.as_tensor(sums.reshape(sums.shape[0], -1), dtype=dtype)
        self.register_buffer("blend", blend)

    def forward(self, out: BodyModelOutput, pose: Tensor) -> Tensor:
        """Keypoints (B, 17, 3) of ``out`` = ``model(pose, ...)`` (pose (B, 23, 3) or (B, 69))."""
        transforms = out.transforms[:, :, :3, :].index_select(1, self.pair_joint)  # (B, P, 3, 4)
        points = self.points.to(transforms.dtype).expand(transforms.shape[0], -1, -1)
        if self.blend is not None:
            rot = axis_angle_to_matrix(pose.reshape(pose.shape[0], NUM_JOINTS - 1, 3).to(transforms.dtype))
            feature = (rot - torch.eye(3, dtype=rot.dtype, device=rot.device)).reshape(pose.shape[0], -1)
            offsets = (feature @ self.blend.to(rot.dtype)).reshape(pose.shape[0], -1, 3)  # (B, P, 3)
            points = points + torch.cat([offsets, torch.zeros_like(offsets[..., :1])], dim=-1)
        posed = (transforms @ points[..., None])[..., 0]  # (B, P, 3)
        keypoints = posed.new_zeros(posed.shape[0], NUM_KEYPOINTS, 3)
        return keypoints.index_add(1, self.pair_keypoint, posed)


def coco_keypoint_model(
    model: BodyModel, data: BodyModelData, regressor_path: str | Path | None = None
) -> CocoKeypoints:
    """:class:`CocoKeypoints` of :func:`keypoint_definition`, on the model's device and dtype."""
    return CocoKeypoints(model, keypoint_definition(data, regressor_path)).to(model.v_template.device)
