"""Axis-angle <-> matrix conversions against scipy, near 0 and near pi, and their gradients at 0."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.spatial.transform import Rotation

from dlearn.body.rotations import axis_angle_to_matrix, matrix_to_axis_angle, matrix_to_quaternion


def _rotvecs(rng: np.random.Generator) -> np.ndarray:
    """Random rotation vectors plus the hard cases: zero, tiny, around the series threshold, near pi."""
    axes = rng.normal(size=(8, 3))
    axes /= np.linalg.norm(axes, axis=1, keepdims=True)
    angles = np.array([0.0, 1e-9, 1e-4, 1e-3, 1.001e-3, np.pi - 1e-7, np.pi - 1e-3, np.pi])
    return np.concatenate([rng.normal(size=(200, 3)), axes * angles[:, None], np.eye(3) * np.pi])


@pytest.mark.parametrize("dtype,tol", [(torch.float64, 1e-12), (torch.float32, 2e-6)])
def test_axis_angle_to_matrix_matches_scipy(dtype: torch.dtype, tol: float) -> None:
    rotvecs = _rotvecs(np.random.default_rng(0))
    expected = Rotation.from_rotvec(rotvecs).as_matrix()
    got = axis_angle_to_matrix(torch.as_tensor(rotvecs, dtype=dtype)).double().numpy()
    np.testing.assert_allclose(got, expected, atol=tol)


def test_axis_angle_to_matrix_keeps_batch_shape() -> None:
    out = axis_angle_to_matrix(torch.zeros(2, 5, 3))
    assert out.shape == (2, 5, 3, 3)
    torch.testing.assert_close(out, torch.eye(3).expand(2, 5, 3, 3))


def test_matrix_to_axis_angle_matches_scipy_away_from_pi() -> None:
    rng = np.random.default_rng(1)
    rotvecs = _rotvecs(rng)
    rotvecs = rotvecs[np.linalg.norm(rotvecs, axis=1) < np.pi - 1e-2]
    # Wrap the random vectors into angle < pi first, as scipy does, so the vectors compare.
    rotvecs = Rotation.from_rotvec(rotvecs).as_rotvec()
    matrices = torch.as_tensor(Rotation.from_rotvec(rotvecs).as_matrix())
    np.testing.assert_allclose(matrix_to_axis_angle(matrices).numpy(), rotvecs, atol=1e-10)


def test_matrix_to_axis_angle_near_pi_gives_the_same_rotation() -> None:
    """Near pi the vector is ill-defined up to sign; the rotation it describes must not be."""
    rng = np.random.default_rng(2)
    axes = rng.normal(size=(50, 3))
    axes /= np.linalg.norm(axes, axis=1, keepdims=True)
    angles = np.pi - rng.choice([0.0, 1e-12, 1e-8, 1e-5], size=50)
    matrices = Rotation.from_rotvec(axes * angles[:, None]).as_matrix()
    back = matrix_to_axis_angle(torch.as_tensor(matrices)).numpy()
    np.testing.assert_allclose(np.linalg.norm(back, axis=1), angles, atol=1e-7)
    np.testing.assert_allclose(Rotation.from_rotvec(back).as_matrix(), matrices, atol=1e-9)


def test_quaternion_matches_scipy_up_to_sign() -> None:
    matrices = Rotation.random(100, random_state=3).as_matrix()
    expected = Rotation.from_matrix(matrices).as_quat()[:, [3, 0, 1, 2]]  # scipy is (x, y, z, w)
    expected *= np.sign(expected[:, :1])
    np.testing.assert_allclose(matrix_to_quaternion(torch.as_tensor(matrices)).numpy(), expected, atol=1e-12)


def test_round_trip_float32() -> None:
    rotvecs = torch.as_tensor(Rotation.random(500, random_state=4).as_rotvec(), dtype=torch.float32)
    torch.testing.assert_close(
        matrix_to_axis_angle(axis_angle_to_matrix(rotvecs)), rotvecs, atol=1e-5, rtol=0
    )


def test_gradient_at_zero_is_finite_and_the_skew_matrix() -> None:
    """dR/dr at r = 0 is d(skew(r)): the registration starts from the zero pose."""
    r = torch.zeros(3, dtype=torch.float64, requires_grad=True)
    jac = torch.autograd.functional.jacobian(axis_angle_to_matrix, r)
    assert torch.isfinite(jac).all()
    expected = torch.zeros(3, 3, 3, dtype=torch.float64)
    expected[2, 1, 0], expected[1, 2, 0] = 1, -1  # d/dx
    expected[0, 2, 1], expected[2, 0, 1] = 1, -1  # d/dy
    expected[1, 0, 2], expected[0, 1, 2] = 1, -1  # d/dz
    torch.testing.assert_close(jac, expected)


def test_gradcheck_across_the_series_threshold() -> None:
    for norm in (0.0, 1e-4, 1e-3, 0.5, 3.0):
        r = torch.tensor([0.6, -0.48, 0.64], dtype=torch.float64) * norm
        torch.autograd.gradcheck(axis_angle_to_matrix, (r.requires_grad_(),))
