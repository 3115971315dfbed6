"""Left/right mirroring of body and camera parameters (horizontal flips of a training crop).

The body frame's lateral axis is x (SMPL's and the stand-in's), so the mirror of a body is
X -> M X with M = diag(-1, 1, 1), every left/right joint, segment and vertex swapped with its
partner. For a body whose rest shape is left/right symmetric (the stand-in exactly; SMPL up to
its small asymmetries) the mirrored body is the model posed with

- the pose of each joint's partner conjugated by M: M exp([w]x) M = exp([(w_x, -w_y, -w_z)]x)
  (SPIN's ``flip_pose``);
- the segment scales of each segment's partner;
- the camera rotation R -> M R M, which keeps the projection's x negated, the depth unchanged
  and det R unchanged. Gram-Schmidt commutes with it, so it applies to the raw 9 numbers too.

A horizontally flipped image then shows the mirrored body with the 2D translation's x negated
(crop coordinates are centred) and the same camera scale.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from dlearn.body.io import SMPL_JOINT_NAMES
from dlearn.coco_keypoints import swap_left_right

if TYPE_CHECKING:
    from torch import Tensor


#: Body joint (and segment) index of each joint's mirror partner.
JOINT_FLIP = swap_left_right(SMPL_JOINT_NAMES)
#: The same for the 23 pose rows (joints 1..23; the root's rotation is the camera's).
POSE_FLIP = JOINT_FLIP[1:] - 1
_AXIS_SIGNS = (1.0, -1.0, -1.0)
_MIRROR = (-1.0, 1.0, 1.0)


def mirror_pose(pose: Tensor) -> Tensor:
    """(B, 23, 3) axis-angle pose -> the mirrored body's pose."""
    return pose[:, POSE_FLIP] * pose.new_tensor(_AXIS_SIGNS)


def mirror_scales(scales: Tensor) -> Tensor:
    """(B, 24) or (B, 24, 3) segment scales -> the mirrored body's."""
    return scales[:, JOINT_FLIP]


def mirror_rotation(rotation: Tensor) -> Tensor:
    """(B, 9) row-major or (B, 3, 3) camera rotation R -> M R M (same layout as given)."""
    m = rotation.reshape(-1, 3, 3)
    signs = m.new_tensor(_MIRROR)
    return (signs[:, None] * m * signs[None, :]).reshape(rotation.shape)
