"""COCO's 17 person keypoints: their names, order, root and left/right mirror.

The one place both the body model (:mod:`dlearn.body.keypoints`) and the DensePose-COCO reader
(:mod:`dlearn.densepose.coco`) take them from, so neither imports the other for them. Standard
library and numpy only.
"""

from __future__ import annotations

import numpy as np

COCO_KEYPOINT_NAMES = (
    "nose", "left_eye", "right_eye", "left_ear", "right_ear", "left_shoulder", "right_shoulder",
    "left_elbow", "right_elbow", "left_wrist", "right_wrist", "left_hip", "right_hip",
    "left_knee", "right_knee", "left_ankle", "right_ankle",
)  # fmt: skip
NUM_KEYPOINTS = len(COCO_KEYPOINT_NAMES)


def swap_left_right(names: tuple[str, ...] | list[str]) -> np.ndarray:
    """(len(names),) index of each name's left/right partner (itself for central names)."""
    partner = [n.replace("left", "@").replace("right", "left").replace("@", "right") for n in names]
    return np.array([list(names).index(n) for n in partner], dtype=np.int64)


#: COCO keypoints whose midpoint is the root used to centre 2D and 3D keypoints.
ROOT_KEYPOINTS = (COCO_KEYPOINT_NAMES.index("left_hip"), COCO_KEYPOINT_NAMES.index("right_hip"))

#: COCO keypoint index of each keypoint's left/right mirror (for flips).
COCO_FLIP = swap_left_right(COCO_KEYPOINT_NAMES)
