"""Where the 17 COCO keypoints sit on the body model: the vertex regressor, without torch.

See :mod:`dlearn.body.keypoints` for the definition's sources (in order) and the torch module that
computes the keypoints of a posed body. This half is numpy only, so that `dlearn check-data` can
check a keypoint regressor file without importing torch.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from dlearn.body.io import (
    KEYPOINT_REGRESSOR_KEY,
    SMPL_JOINT_NAMES,
    BodyModelData,
    keypoint_regressor_problem,
)
from dlearn.coco_keypoints import COCO_FLIP, COCO_KEYPOINT_NAMES, NUM_KEYPOINTS, ROOT_KEYPOINTS
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

__all__ = [
    "COCOPLUS_NAMES", "COCOPLUS_TO_COCO", "COCO_FLIP", "COCO_KEYPOINT_NAMES", "FACE_VERTEX_NAMES", "LIMB_JOINTS",
    "NUM_KEYPOINTS", "ROOT_KEYPOINTS", "SMPL_FACE_VERTEX_IDS", "SMPL_NUM_VERTICES", "KeypointDefinition",
    "KeypointRegressorError", "fallback_definition", "keypoint_definition", "keypoint_vertex_ids",
    "load_keypoint_regressor",
]  # fmt: skip


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


