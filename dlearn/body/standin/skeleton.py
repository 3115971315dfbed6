"""The stand-in's designed skeleton: SMPL's 24 joints in T-pose (metres, y up, facing +z, the
person's left side at +x), close to SMPL's mean neutral body; the left side and the midline are
designed, the right side is their mirror image."""

from __future__ import annotations

import numpy as np

from dlearn.body.io import NUM_JOINTS, SMPL_JOINT_NAMES

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


def rest_joints() -> np.ndarray:
    """(24, 3) designed T-pose joints, in SMPL joint order."""
    joints = np.zeros((NUM_JOINTS, 3))
    for name, pos in _HALF_JOINTS.items():
        joints[_J[name]] = pos
        if name.startswith("left_"):
            joints[_J["right_" + name[5:]]] = (-pos[0], pos[1], pos[2])
    return joints
