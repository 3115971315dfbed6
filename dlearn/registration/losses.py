r"""The loss terms of the registration (paper eq. 2-4), shared with the regressor (eq. 5).

Every term returns one value per sample, (B,), so that samples stay independent: a batch's
total is the sum of its samples' losses, and one sample's divergence never moves another.
All 2D quantities are in normalised crop coordinates (see :mod:`dlearn.data.crops`).

- ``L_dense`` (eq. 3): mean over the sample's annotated points of ||p_i - x_idx(i)||^2, the
  squared distance between the point and the projection of its matched vertex (the paper calls
  it the mean squared error).
- ``L_KP`` (eq. 4): SUM over labelled keypoints of (x_i - x̄_i)^2 + (y_i - ȳ_i)^2, plus the sum
  over keypoints with a cGAN depth of (z_i - z_i^GAN)^2, where z is the keypoint's depth
  relative to the root (mid-hip), s (R X)_z - s (R X_root)_z, in the same units. Eq. 4 sums
  over joints while eq. 3 is described as a mean; with the paper's weights (w_dense 1000,
  w_KP 1) this balance is what makes the key points, and the cGAN depths, matter: with a mean
  over 17 key points they are ignored and limbs flip in depth (measured on synthetic data).
- ``L_scale`` (the paper's supplement is not available; our definition): smoothness of the
  segment scales along the kinematic tree, mean over the 23 bones of
  (log s_j - log s_parent(j))^2, plus ``anchor`` x mean_j (log s_j)^2. The anchor removes the
  one direction the data cannot see: scaling every segment by c and the camera by 1/c projects
  identically.
- ``L_joint`` (our definition): mean squared axis-angle magnitude of the 23 joints, plus a
  hinge penalty on knees and elbows bent the wrong way: relu(-a_x)^2 for knee flexion (about +x
  in SMPL's frame; lower leg backwards), relu(+a_y)^2 for the left and relu(-a_y)^2 for the
  right elbow (forearm forwards), and the off-axis components of the knees squared.
- ``L_det``: (1 - det M̂)^2 for the raw rotation parameters M with unit-length columns M̂.
  The Gram-Schmidt rotation has det exactly +-1, a step function without gradient; the raw
  matrix has the same sign of determinant and a useful gradient. det M̂ <= 1 (Hadamard), with
  equality only for a proper rotation, so the term is 0 there and about 4 for a reflection; a
  one-sided relu(-det)^2 would stall at det = 0, where its gradient vanishes.
"""

from __future__ import annotations

import torch
from torch import Tensor

from dlearn.body.io import SMPL_JOINT_NAMES

_J = {name: i - 1 for i, name in enumerate(SMPL_JOINT_NAMES)}  # index into the 23 pose rows
KNEES = (_J["left_knee"], _J["right_knee"])
LEFT_ELBOW, RIGHT_ELBOW = _J["left_elbow"], _J["right_elbow"]


def _masked_mean(values: Tensor, mask: Tensor) -> Tensor:
    """Mean over the last axis of ``values`` where ``mask``; 0 for a sample with no entry."""
    return (values * mask).sum(-1) / mask.sum(-1).clamp_min(1.0)


def dense_loss(projected: Tensor, points: Tensor, mask: Tensor) -> Tensor:
    """L_dense per sample.

    Args:
        projected: (B, P, 2) projections of the matched vertices.
        points: (B, P, 2) annotated points.
        mask: (B, P) 1 for a real point, 0 for padding.

    Returns:
        (B,) mean squared distance.
    """
    return _masked_mean(((projected - points) ** 2).sum(-1), mask)


def keypoint_loss(
    projected: Tensor,
    keypoints: Tensor,
    keypoint_mask: Tensor,
    depth: Tensor | None = None,
    target_depth: Tensor | None = None,
    depth_mask: Tensor | None = None,
) -> Tensor:
    """L_KP per sample.

    Args:
        projected: (B, K, 2) projected model keypoints.
        keypoints: (B, K, 2) annotated keypoints.
        keypoint_mask: (B, K) 1 where the keypoint is labelled.
        depth: (B, K) root-relative model keypoint depths (None: no depth term).
        target_depth: (B, K) cGAN depths in the same frame.
        depth_mask: (B, K) 1 where a cGAN depth is available.

    Returns:
        (B,) sum of squared errors over the keypoints.
    """
    loss = (((projected - keypoints) ** 2).sum(-1) * keypoint_mask).sum(-1)
    if depth is not None:
        assert target_depth is not None and depth_mask is not None
        loss = loss + (((depth - target_depth) ** 2) * depth_mask).sum(-1)
    return loss


def scale_loss(scales: Tensor, parents: Tensor, anchor: float = 0.1) -> Tensor:
    """L_scale per sample: (B, 24) or (B, 24, 3) scales -> (B,)."""
    log_s = scales.clamp_min(1e-6).log()
    if log_s.dim() == 3:
        log_s = log_s.mean(-1)
    smooth = ((log_s[:, 1:] - log_s[:, parents[1:]]) ** 2).mean(-1)
    return smooth + anchor * (log_s**2).mean(-1)


def joint_loss(pose: Tensor) -> Tensor:
    """L_joint per sample: (B, 23, 3) axis-angle -> (B,)."""
    pose = pose.reshape(pose.shape[0], -1, 3)
    magnitude = (pose**2).sum(-1).mean(-1)
    knees = pose[:, list(KNEES)]
    wrong_way = (
        torch.relu(-knees[..., 0]) ** 2
    ).sum(-1) + (knees[..., 1:] ** 2).sum((-1, -2))  # knees are hinges about x
    wrong_way = wrong_way + torch.relu(pose[:, LEFT_ELBOW, 1]) ** 2 + torch.relu(-pose[:, RIGHT_ELBOW, 1]) ** 2
    return magnitude + wrong_way


def det_loss(rotation_params: Tensor) -> Tensor:
    """L_det per sample: (B, 9) raw rotation parameters (row-major 3x3) -> (B,)."""
    m = rotation_params.reshape(-1, 3, 3)
    m = m / m.norm(dim=-2, keepdim=True).clamp_min(1e-8)  # unit columns
    return (1.0 - torch.linalg.det(m)) ** 2
