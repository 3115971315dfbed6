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

from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn

from dlearn.body.io import NUM_JOINTS, BodyModelData
from dlearn.body.keypoint_definition import (  # the definition, re-exported: one import for both halves
    COCO_FLIP,
    COCO_KEYPOINT_NAMES,
    COCOPLUS_NAMES,
    COCOPLUS_TO_COCO,
    FACE_VERTEX_NAMES,
    LIMB_JOINTS,
    NUM_KEYPOINTS,
    ROOT_KEYPOINTS,
    SMPL_FACE_VERTEX_IDS,
    SMPL_NUM_VERTICES,
    KeypointDefinition,
    KeypointRegressorError,
    fallback_definition,
    keypoint_definition,
    keypoint_vertex_ids,
    load_keypoint_regressor,
)
from dlearn.body.model import BodyModel, BodyModelOutput
from dlearn.body.rotations import axis_angle_to_matrix

__all__ = [
    "COCOPLUS_NAMES", "COCOPLUS_TO_COCO", "COCO_FLIP", "COCO_KEYPOINT_NAMES", "FACE_VERTEX_NAMES", "LIMB_JOINTS",
    "NUM_KEYPOINTS", "ROOT_KEYPOINTS", "SMPL_FACE_VERTEX_IDS", "SMPL_NUM_VERTICES", "CocoKeypoints",
    "KeypointDefinition", "KeypointRegressorError", "coco_keypoint_model", "fallback_definition",
    "keypoint_definition", "keypoint_vertex_ids", "load_keypoint_regressor",
]  # fmt: skip


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
