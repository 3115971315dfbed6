"""Batched axis-angle <-> rotation matrix conversions in torch.

Both functions take any leading batch shape. :func:`axis_angle_to_matrix` is differentiable
everywhere, including at the zero rotation (the registration starts from pose 0, so its
gradient there must be finite); :func:`matrix_to_axis_angle` goes through a quaternion picked
by Shepperd's method, so it stays accurate for angles near pi.
"""

from __future__ import annotations

import torch
from torch import Tensor

# Below this squared angle the Rodrigues coefficients come from their Taylor series: the exact
# expressions divide by the angle, and sqrt has an infinite derivative at 0.
_SMALL_ANGLE_SQ = 1e-6


def skew(v: Tensor) -> Tensor:
    """Cross-product matrices: (..., 3) -> (..., 3, 3) with ``skew(v) @ u == cross(v, u)``."""
    x, y, z = v.unbind(-1)
    zero = torch.zeros_like(x)
    rows = (zero, -z, y, z, zero, -x, -y, x, zero)
    return torch.stack(rows, dim=-1).reshape(*v.shape[:-1], 3, 3)


def axis_angle_to_matrix(axis_angle: Tensor) -> Tensor:
    """Rodrigues' formula, R = I + a K + b K^2 with K = skew(r), a = sin t / t, b = (1 - cos t) / t^2.

    Args:
        axis_angle: (..., 3) rotation vectors r = t * axis, angle t in radians.

    Returns:
        (..., 3, 3) rotation matrices.
    """
    theta_sq = (axis_angle * axis_angle).sum(-1)
    small = theta_sq < _SMALL_ANGLE_SQ
    # Feed the exact branch a harmless value where the series branch is used, so that
    # torch.where does not route a NaN gradient (from sqrt/division at 0) into the result.
    theta = torch.where(small, torch.ones_like(theta_sq), theta_sq).sqrt()
    half_sin = torch.sin(0.5 * theta)
    a_exact = torch.sin(theta) / theta
    b_exact = 2.0 * half_sin * half_sin / (theta * theta)  # 1 - cos t without cancellation
    a_series = 1.0 - theta_sq / 6.0 + theta_sq * theta_sq / 120.0
    b_series = 0.5 - theta_sq / 24.0 + theta_sq * theta_sq / 720.0
    a = torch.where(small, a_series, a_exact)[..., None, None]
    b = torch.where(small, b_series, b_exact)[..., None, None]
    k = skew(axis_angle)
    eye = torch.eye(3, dtype=axis_angle.dtype, device=axis_angle.device)
    return eye + a * k + b * (k @ k)


def matrix_to_quaternion(matrix: Tensor) -> Tensor:
    """Unit quaternions (w, x, y, z) with w >= 0 from (..., 3, 3) rotation matrices.

    Shepperd's method: of the four algebraically equal formulas, use the one whose divisor
    (4 times the largest of |w|, |x|, |y|, |z|) is largest, so no formula loses precision.
    """
    m = matrix
    m00, m11, m22 = m[..., 0, 0], m[..., 1, 1], m[..., 2, 2]
    # 4 q_i^2 for i = w, x, y, z; clamped since rounding can push a small one below 0.
    four_sq = torch.stack(
        [1 + m00 + m11 + m22, 1 + m00 - m11 - m22, 1 - m00 + m11 - m22, 1 - m00 - m11 + m22], dim=-1
    ).clamp_min(0.0)
    d21, d02, d10 = m[..., 2, 1] - m[..., 1, 2], m[..., 0, 2] - m[..., 2, 0], m[..., 1, 0] - m[..., 0, 1]
    s21, s02, s10 = m[..., 2, 1] + m[..., 1, 2], m[..., 0, 2] + m[..., 2, 0], m[..., 1, 0] + m[..., 0, 1]
    # Row i holds 4 q_i * (w, x, y, z): each candidate is scaled by its own large component.
    candidates = torch.stack(
        [
            torch.stack([four_sq[..., 0], d21, d02, d10], dim=-1),
            torch.stack([d21, four_sq[..., 1], s10, s02], dim=-1),
            torch.stack([d02, s10, four_sq[..., 2], s21], dim=-1),
            torch.stack([d10, s02, s21, four_sq[..., 3]], dim=-1),
        ],
        dim=-2,
    )
    best = four_sq.argmax(dim=-1)
    chosen = torch.gather(candidates, -2, best[..., None, None].expand(*best.shape, 1, 4)).squeeze(-2)
    quat = chosen / chosen.norm(dim=-1, keepdim=True)
    return torch.where(quat[..., :1] < 0, -quat, quat)


def matrix_to_axis_angle(matrix: Tensor) -> Tensor:
    """Rotation vectors with angle in [0, pi] from (..., 3, 3) rotation matrices.

    Returns:
        (..., 3) axis-angle vectors. At exactly pi the sign of the axis is arbitrary
        (both signs describe the same rotation).
    """
    quat = matrix_to_quaternion(matrix)
    w, xyz = quat[..., 0], quat[..., 1:]
    sin_half = xyz.norm(dim=-1)
    half = torch.atan2(sin_half, w)
    small = sin_half < 1e-6
    # angle / sin(half) = 2 half / sin(half) -> 2 (1 + half^2 / 6) as half -> 0.
    safe_sin = torch.where(small, torch.ones_like(sin_half), sin_half)
    factor = torch.where(small, 2.0 * (1.0 + half * half / 6.0), 2.0 * half / safe_sin)
    return xyz * factor[..., None]
