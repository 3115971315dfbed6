"""Gram-Schmidt rotation from 9 numbers, determinant, and the weak-perspective projection."""

from __future__ import annotations

import numpy as np
import torch
from scipy.spatial.transform import Rotation

from dlearn.body.camera import (
    rotation_determinant,
    rotation_from_9d,
    weak_perspective_depth,
    weak_perspective_project,
)


def test_rotation_from_9d_is_identity_on_rotations() -> None:
    rot = torch.as_tensor(Rotation.random(20, random_state=0).as_matrix())
    torch.testing.assert_close(rotation_from_9d(rot), rot)
    torch.testing.assert_close(rotation_from_9d(rot.reshape(20, 9)), rot)  # row-major 9 numbers


def test_rotation_from_9d_is_orthonormal_and_follows_column_order() -> None:
    x = torch.randn(4, 7, 9, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    r = rotation_from_9d(x)
    assert r.shape == (4, 7, 3, 3)
    torch.testing.assert_close(r.transpose(-1, -2) @ r, torch.eye(3, dtype=torch.float64).expand(4, 7, 3, 3))
    m = x.reshape(4, 7, 3, 3)
    # First column is the normalised first input column; second lies in span(a1, a2).
    torch.testing.assert_close(r[..., :, 0], m[..., :, 0] / m[..., :, 0].norm(dim=-1, keepdim=True))
    normal = torch.linalg.cross(m[..., :, 0], m[..., :, 1])
    torch.testing.assert_close((normal * r[..., :, 1]).sum(-1), torch.zeros(4, 7, dtype=torch.float64))


def test_reflections_survive_and_show_in_the_determinant() -> None:
    """No cross product: a reflected input stays a reflection (det -1), which L_det penalises."""
    rot = torch.as_tensor(Rotation.random(10, random_state=1).as_matrix())
    reflected = rot * torch.tensor([1.0, 1.0, -1.0], dtype=torch.float64)  # flip the third column
    noisy = reflected + 0.05 * torch.randn(
        10, 3, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(1)
    )
    det = rotation_determinant(rotation_from_9d(noisy))
    torch.testing.assert_close(det, -torch.ones(10, dtype=torch.float64))
    torch.testing.assert_close(rotation_determinant(rot), torch.ones(10, dtype=torch.float64))


def test_rotation_from_9d_gradients_are_finite() -> None:
    x = torch.randn(5, 9, dtype=torch.float64, requires_grad=True)
    torch.autograd.gradcheck(rotation_from_9d, (x,))
    zero = torch.zeros(1, 9, requires_grad=True)  # degenerate input must not give NaN
    rotation_from_9d(zero).sum().backward()
    assert torch.isfinite(zero.grad).all()


def test_weak_perspective_projection_and_depth() -> None:
    rng = np.random.default_rng(2)
    points = rng.normal(size=(3, 11, 3))
    rot = Rotation.random(3, random_state=2).as_matrix()
    scale = rng.uniform(0.5, 2.0, size=3)
    trans = rng.normal(size=(3, 2))
    cam = scale[:, None, None] * np.einsum("bij,bpj->bpi", rot, points)
    args = [torch.as_tensor(a) for a in (points, rot, scale)]
    np.testing.assert_allclose(
        weak_perspective_project(*args, torch.as_tensor(trans)).numpy(),
        cam[..., :2] + trans[:, None],
        atol=1e-12,
    )
    np.testing.assert_allclose(weak_perspective_depth(*args).numpy(), cam[..., 2], atol=1e-12)


def test_identity_camera_keeps_x_and_y() -> None:
    points = torch.randn(2, 5, 3)
    out = weak_perspective_project(points, torch.eye(3).expand(2, 3, 3), torch.ones(2), torch.zeros(2, 2))
    torch.testing.assert_close(out, points[..., :2])
