"""Joints and keypoints of body parameters through the torch body model, for the evaluations
that must pose a body: Human3.6M's joints regressed from the full mesh (:mod:`dlearn.evaluation.h36m`),
and the studies under ``experiments/``.

The `evaluate` stage does not pose bodies: it reads the body-frame ``joints`` and ``keypoints``
the registration and prediction stores hold (:mod:`dlearn.evaluation.evaluate`, torch-free).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from dlearn.body.io import load_body_model
from dlearn.body.keypoints import coco_keypoint_model
from dlearn.body.model import BodyModel
from dlearn.evaluation.evaluate import PoseSet, rest_bone_sums, rotate


class PoseComputer:
    """Joints and COCO keypoints of body parameters, through the body model (float64)."""

    def __init__(self, body_model: Path, keypoint_regressor: Path | None = None):
        data = load_body_model(body_model)
        self.parents = np.asarray(data.parents)
        self.model = BodyModel(data, dtype=torch.float64)
        self.keypoints = coco_keypoint_model(self.model, data, keypoint_regressor)
        #: Per joint set, the rest skeleton's bone-length sum in metres.
        self.canonical_bone_sum = rest_bone_sums(data, self.keypoints.definition)

    def body_points(self, pose: np.ndarray, scales: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Body-frame (N, 24, 3) joints and (N, 17, 3) COCO keypoints."""
        pose_t = torch.as_tensor(pose, dtype=torch.float64).reshape(-1, 23, 3)
        with torch.no_grad():
            # Keypoints come from the skinning transforms: no vertex needs skinning.
            out = self.model(pose_t, torch.as_tensor(scales, dtype=torch.float64), torch.zeros(0, dtype=torch.long))
            kp = self.keypoints(out, pose_t)
        return out.joints.numpy(), kp.numpy()

    def regressed_joints(self, arrays: dict[str, np.ndarray], regressor: np.ndarray) -> np.ndarray:
        """(N, J, 3) camera-oriented joints ``regressor @ vertices`` of the full posed mesh (the
        Human3.6M protocols' joints with J_regressor_h36m; H36M_TO_LSP14 picks the 14-joint set)."""
        with torch.no_grad():
            vertices = self.model(
                torch.as_tensor(arrays["pose"], dtype=torch.float64).reshape(-1, 23, 3),
                torch.as_tensor(arrays["scales"], dtype=torch.float64),
            ).vertices.numpy()
        joints = np.einsum("jv,nvk->njk", regressor, vertices)
        return rotate(joints, np.asarray(arrays["rotation"], np.float64).reshape(-1, 3, 3))

    def pose_set(self, arrays: dict[str, np.ndarray]) -> PoseSet:
        """The :class:`PoseSet` of parameters (pose, scales, rotation), posed here."""
        joints, kp = self.body_points(arrays["pose"], arrays["scales"])
        return PoseSet.from_body_frame(joints, kp, arrays["rotation"])
