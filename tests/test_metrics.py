"""Joint error metrics against hand-computed cases and scipy."""

from __future__ import annotations

import numpy as np
from scipy.spatial import procrustes
from scipy.spatial.transform import Rotation

from dlearn.body.io import SMPL_PARENTS
from dlearn.evaluation.metrics import bone_lengths, mpjpe, mpjpe_bone_scaled, pa_mpjpe, procrustes_align


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
    err = mpjpe_bone_scaled(pred, gt, SMPL_PARENTS, canonical_bone_sum=canonical)
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
