"""The one table that maps the 17 COCO keypoints onto the body model.

Face keypoints (nose, eyes, ears) are surface vertices named in the model file's ``vertex_ids``
(SMPL's own ids when a 6890-vertex file has none); limb keypoints are skeleton joints. The
synthetic generator projects exactly these points to make its keypoint annotations, and the
registration's key-point loss compares the same points with the annotations, so the two can
never disagree.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from dlearn.body.io import SMPL_JOINT_NAMES, BodyModelData
from dlearn.body.symmetry import swap_left_right
from dlearn.densepose.coco import COCO_KEYPOINT_NAMES

#: Face keypoints and the ``vertex_ids`` entry that places each one.
FACE_VERTEX_NAMES = {"nose": "nose", "left_eye": "leye", "right_eye": "reye", "left_ear": "lear", "right_ear": "rear"}

#: SMPL's vertex ids for the face keypoints (smplx.vertex_ids["smplh"]), for 6890-vertex files.
SMPL_FACE_VERTEX_IDS = {"nose": 332, "reye": 6260, "leye": 2800, "rear": 4071, "lear": 583}
SMPL_NUM_VERTICES = 6890

#: Body joint of each limb keypoint.
LIMB_JOINTS = {
    name: SMPL_JOINT_NAMES.index(name)
    for name in (
        "left_shoulder", "right_shoulder", "left_elbow", "right_elbow", "left_wrist", "right_wrist",
        "left_hip", "right_hip", "left_knee", "right_knee", "left_ankle", "right_ankle",
    )
}  # fmt: skip

#: COCO keypoints whose midpoint is the root used to centre 2D and 3D keypoints.
ROOT_KEYPOINTS = (COCO_KEYPOINT_NAMES.index("left_hip"), COCO_KEYPOINT_NAMES.index("right_hip"))

#: COCO keypoint index of each keypoint's left/right mirror (for flips).
COCO_FLIP = swap_left_right(COCO_KEYPOINT_NAMES)


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


def coco_keypoints(face_vertices: Tensor, joints: Tensor) -> Tensor:
    """Assemble the 17 COCO keypoints from the face vertices and the joints.

    Args:
        face_vertices: (B, 5, 3) posed vertices at :func:`keypoint_vertex_ids`.
        joints: (B, 24, 3) posed joints.

    Returns:
        (B, 17, 3) keypoints in COCO order.
    """
    limbs = joints[:, [LIMB_JOINTS[n] for n in COCO_KEYPOINT_NAMES[5:]]]
    return torch.cat([face_vertices, limbs], dim=1)
