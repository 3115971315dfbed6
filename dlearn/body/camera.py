"""Weak-perspective camera of the paper (eq. 1): x = s * Pi(R X) + t.

The global rotation R is optimised as 9 free numbers and orthonormalised by Gram-Schmidt
(:func:`rotation_from_9d`). Gram-Schmidt alone, with no cross product for the third column,
keeps reflections reachable (det R = -1); the registration's L_det penalises those, which is
why the determinant is exposed (:func:`rotation_determinant`).
"""

from __future__ import annotations

import torch
from torch import Tensor

_EPS = 1e-8  # keeps the normalisation finite for a degenerate (zero) column


def _normalise(v: Tensor) -> Tensor:
    return v / v.norm(dim=-1, keepdim=True).clamp_min(_EPS)


def rotation_from_9d(x: Tensor) -> Tensor:
    """Orthonormalise the columns of a 3x3 matrix by Gram-Schmidt, in column order.

    The 9 numbers are row-major: ``M = x.reshape(..., 3, 3)`` and the columns are
    ``a_j = M[..., :, j]``. Then c1 = a1/|a1|, c2 = normalise(a2 - (c1.a2) c1),
    c3 = normalise(a3 - (c1.a3) c1 - (c2.a3) c2); the result has columns c1, c2, c3.

    Args:
        x: (..., 9) or (..., 3, 3).

    Returns:
        (..., 3, 3) orthogonal matrices, determinant +1 or -1.
    """
    m = x.reshape(*x.shape[:-1], 3, 3) if x.shape[-1] == 9 else x
    if m.shape[-2:] != (3, 3):
        raise ValueError(f"expected (..., 9) or (..., 3, 3), got {tuple(x.shape)}")
    a1, a2, a3 = m[..., :, 0], m[..., :, 1], m[..., :, 2]
    c1 = _normalise(a1)
    c2 = _normalise(a2 - (c1 * a2).sum(-1, keepdim=True) * c1)
    c3 = _normalise(a3 - (c1 * a3).sum(-1, keepdim=True) * c1 - (c2 * a3).sum(-1, keepdim=True) * c2)
    return torch.stack([c1, c2, c3], dim=-1)


def proper_rotation_from_9d(x: Tensor) -> Tensor:
    """Like :func:`rotation_from_9d`, but the third column is the cross product c3 = c1 x c2, so
    the result is always a rotation (det +1). Predictions use it: the regressor's loss has no
    L_det, and a reflection would mirror the evaluated joints and start the next round mirrored.

    Args:
        x: (..., 9) row-major or (..., 3, 3).

    Returns:
        (..., 3, 3) rotations.
    """
    r = rotation_from_9d(x)
    c3 = torch.linalg.cross(r[..., :, 0], r[..., :, 1], dim=-1)
    return torch.stack([r[..., :, 0], r[..., :, 1], c3], dim=-1)


def rotation_determinant(rotation: Tensor) -> Tensor:
    """(..., 3, 3) -> (...) determinants (+1 for a rotation, -1 for a reflection)."""
    return torch.linalg.det(rotation)


def camera_points(points: Tensor, rotation: Tensor, scale: Tensor) -> Tensor:
    """Scaled, rotated points s * R X before projection.

    Args:
        points: (B, P, 3) body points X.
        rotation: (B, 3, 3) global rotation R.
        scale: (B,) global scale s.

    Returns:
        (B, P, 3) camera-space points; the first two coordinates are the image axes.
    """
    return scale[:, None, None] * (points @ rotation.transpose(-1, -2))


def weak_perspective_project(points: Tensor, rotation: Tensor, scale: Tensor, translation: Tensor) -> Tensor:
    """Image positions x = s * Pi(R X) + t, Pi keeping the first two coordinates (orthographic).

    Args:
        points: (B, P, 3); rotation: (B, 3, 3); scale: (B,); translation: (B, 2).

    Returns:
        (B, P, 2) image positions.
    """
    return camera_points(points, rotation, scale)[..., :2] + translation[:, None, :]


def weak_perspective_depth(points: Tensor, rotation: Tensor, scale: Tensor) -> Tensor:
    """Depths z = s * (R X)_z, in the same units as the projected positions.

    Args:
        points: (B, P, 3); rotation: (B, 3, 3); scale: (B,).

    Returns:
        (B, P) depths.
    """
    return camera_points(points, rotation, scale)[..., 2]
