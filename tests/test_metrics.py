"""Joint error metrics against hand-computed cases and scipy."""

from __future__ import annotations

import numpy as np
from scipy.spatial import procrustes
from scipy.spatial.transform import Rotation

from dlearn.body.io import SMPL_PARENTS
from dlearn.evaluation.metrics import (
    bone_lengths,
    limb_depth_flips,
    mpjpe,
    mpjpe_bone_scaled,
    pa_mpjpe,
    procrustes_align,
    rotation_error_deg,
)


def _poses(n: int = 5, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(n, 24, 3))


def test_mpjpe_is_translation_invariant_and_hand_checked() -> None:
    gt = np.zeros((1, 2, 3))
    gt[0, 1] = [1.0, 0, 0]
    pred = gt + 5.0
    pred[0, 1, 1] += 3.0  # 3 units off at joint 1 once roots are aligned
    np.testing.assert_allclose(mpjpe(pred, gt), [[0.0, 3.0]])


def test_bone_scaling_removes_a_global_scale_only() -> None:
    gt = _poses()
    np.testing.assert_allclose(mpjpe_bone_scaled(2.5 * gt, gt, SMPL_PARENTS), 0.0, atol=1e-12)
    assert np.all(mpjpe_bone_scaled(gt + 0.1 * _poses(seed=1), gt, SMPL_PARENTS).mean(1) > 0.01)
    pred = 3.0 * gt
    canonical = 10.0
    # both_to_rest: prediction and ground truth scaled to the same sum.
    err = mpjpe_bone_scaled(pred, gt, SMPL_PARENTS, canonical_bone_sum=canonical, scale_ground_truth=True)
    np.testing.assert_allclose(err, 0.0, atol=1e-12)
    np.testing.assert_allclose(bone_lengths(gt, SMPL_PARENTS).shape, (5, 23))


def test_procrustes_undoes_a_similarity_transform() -> None:
    gt = _poses()
    rot = Rotation.random(5, random_state=0).as_matrix()
    pred = 0.7 * np.einsum("nij,nkj->nki", rot, gt) + np.array([1.0, -2.0, 3.0])
    np.testing.assert_allclose(pa_mpjpe(pred, gt), 0.0, atol=1e-9)


def test_pa_mpjpe_matches_scipy_procrustes_disparity() -> None:
    # scipy allows reflections; near-aligned poses make the best transform a proper rotation.
    gt = _poses(seed=2)
    rot = Rotation.random(5, random_state=1).as_matrix()
    pred = 2.0 * np.einsum("nij,nkj->nki", rot, gt + 0.2 * _poses(seed=3)) - 1.0
    aligned = procrustes_align(pred, gt)
    for i in range(len(gt)):
        # scipy standardises both sets (unit Frobenius norm) before measuring the disparity.
        _, _, disparity = procrustes(gt[i], pred[i])
        g = gt[i] - gt[i].mean(0)
        np.testing.assert_allclose(((aligned[i] - gt[i]) ** 2).sum() / (g**2).sum(), disparity, rtol=1e-9)


def test_rotation_error_is_the_angle_of_the_relative_rotation() -> None:
    gt = Rotation.random(5, random_state=1)
    turn = Rotation.from_rotvec(np.array([[0, 0.3, 0], [0, 0, 1.0], [0.5, 0.5, 0], [0, np.pi, 0], [0, 0, 0]]))
    pred = turn * gt
    np.testing.assert_allclose(rotation_error_deg(pred.as_matrix(), gt.as_matrix()), np.degrees(turn.magnitude()), atol=1e-6)


def test_limb_depth_flips_count_reversed_out_of_plane_bones_only() -> None:
    gt = np.zeros((2, 3, 3))
    gt[:, 1] = [0.0, 0.3, 0.0]  # bone 0-1 lies in the image plane: no depth sign to get wrong
    gt[:, 2] = [0.0, 0.3, 0.2]  # bone 1-2 points away from the camera (z 0.2 of length 0.2)
    bones = np.array([[0, 1], [1, 2]])
    pred = gt.copy()
    pred[1, 2, 2] = -0.2  # sample 1: the second bone mirrored in depth
    pred[1, 1, 2] = 0.01  # and the in-plane bone tilted: not counted
    flipped, counted = limb_depth_flips(pred, gt, bones)
    np.testing.assert_array_equal(counted, [[False, True], [False, True]])
    np.testing.assert_array_equal(flipped, [[False, False], [False, True]])
