"""Registration: loss terms by hand, recovery of known bodies, keep-best, shards, robustness, resume."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from dlearn.body.io import SMPL_PARENTS
from dlearn.cgan.evaluate import true_depths
from dlearn.data.store import open_store, read_sample_ids, write_store
from dlearn.evaluation.metrics import mpjpe_bone_scaled, pa_mpjpe
from dlearn.registration import losses, stage
from dlearn.registration.fit import LossWeights
from dlearn.registration.merge import merge_registration
from dlearn.registration.stage import STATUS, RegistrationOptions, register
from helpers import killed_on_call

FAST = RegistrationOptions(steps=60, patience=20, batch_size=4, chunk_size=4, device="cpu")


# --- loss terms against hand computations -------------------------------------------------


def test_dense_loss_is_the_mean_squared_distance_over_real_points() -> None:
    projected = torch.tensor([[[0.0, 0.0], [1.0, 1.0], [9.0, 9.0]]])
    points = torch.tensor([[[3.0, 4.0], [1.0, 2.0], [0.0, 0.0]]])
    mask = torch.tensor([[1.0, 1.0, 0.0]])  # the third point is padding
    torch.testing.assert_close(losses.dense_loss(projected, points, mask), torch.tensor([(25.0 + 1.0) / 2]))


def test_keypoint_loss_sums_2d_and_depth_errors_over_labelled_keypoints() -> None:
    projected = torch.tensor([[[0.0, 0.0], [1.0, 0.0]]])
    keypoints = torch.tensor([[[0.0, 2.0], [5.0, 5.0]]])
    kp_mask = torch.tensor([[1.0, 0.0]])
    depth, target, d_mask = torch.tensor([[0.5, 1.0]]), torch.tensor([[0.0, 0.0]]), torch.tensor([[1.0, 1.0]])
    loss = losses.keypoint_loss(projected, keypoints, kp_mask, depth, target, d_mask)
    torch.testing.assert_close(loss, torch.tensor([4.0 + 0.25 + 1.0]))


def test_scale_loss_is_zero_at_unit_scales_and_penalises_jumps() -> None:
    parents = torch.as_tensor(SMPL_PARENTS)
    assert float(losses.scale_loss(torch.ones(1, 24), parents)) == 0.0
    jump = torch.ones(1, 24)
    jump[0, 4] = np.e  # left knee segment: one bone (4 <- 1) and one child bone (7 <- 4) differ by 1 in log
    expected = 2.0 / 23 + 0.1 * 1.0 / 24
    torch.testing.assert_close(losses.scale_loss(jump, parents), torch.tensor([expected]))


def test_joint_loss_penalises_knees_and_elbows_bent_the_wrong_way() -> None:
    natural, wrong = torch.zeros(1, 23, 3), torch.zeros(1, 23, 3)
    natural[0, losses.KNEES[0], 0] = 0.5  # knee flexion
    wrong[0, losses.KNEES[0], 0] = -0.5  # hyper-extension
    torch.testing.assert_close(losses.joint_loss(natural), torch.tensor([0.25 / 23]))
    torch.testing.assert_close(losses.joint_loss(wrong), torch.tensor([0.25 / 23 + 0.25]))
    elbow = torch.zeros(1, 23, 3)
    elbow[0, losses.LEFT_ELBOW, 1] = -1.0  # left forearm forwards: natural
    elbow[0, losses.RIGHT_ELBOW, 1] = -1.0  # right forearm backwards: wrong
    torch.testing.assert_close(losses.joint_loss(elbow), torch.tensor([2.0 / 23 + 1.0]))


def test_det_penalty_is_zero_for_rotations_and_pushes_reflections_back() -> None:
    rotation = torch.eye(3).reshape(1, 9)
    assert float(losses.det_loss(rotation)) == 0.0
    generator = torch.Generator().manual_seed(0)
    m = torch.diag(torch.tensor([1.0, 1.0, -1.0])) + 0.2 * torch.randn(3, 3, generator=generator)
    reflection = m.reshape(1, 9).requires_grad_(True)
    start = float(losses.det_loss(reflection).detach())
    assert start > 3.0
    optimiser = torch.optim.SGD([reflection], lr=0.1)
    for _ in range(200):
        optimiser.zero_grad()
        losses.det_loss(reflection).sum().backward()
        optimiser.step()
    # Gradient descent on L_det alone turns the reflection into a rotation.
    assert float(torch.linalg.det(reflection.detach().reshape(3, 3))) > 0


# --- end to end on exact synthetic data -----------------------------------------------------


def _register(data: dict[str, Path], out: Path, options: RegistrationOptions, **kw: object) -> dict:
    return register(data["corr"], data["crops"], data["model"], out, options, depths=data["depths"], **kw)


def _joint_errors(data: dict[str, Path], store: Path) -> tuple[np.ndarray, np.ndarray]:
    fitted, gt = open_store(store), open_store(data["gt"])
    row = {s: i for i, s in enumerate(read_sample_ids(gt))}
    truth = gt["joints3d"][...][[row[s] for s in read_sample_ids(fitted)]] * 1000
    pred = fitted["joints"][...] * 1000
    return mpjpe_bone_scaled(pred, truth, SMPL_PARENTS).mean(1), pa_mpjpe(pred, truth).mean(1)


@pytest.mark.slow  # a full-length fit of every sample
def test_registration_recovers_known_bodies_from_exact_correspondences(exact_data: dict, tmp_path: Path) -> None:
    options = RegistrationOptions(steps=400, device="cpu", weights=LossWeights(scale=100.0, joint=1.0))
    summary = _register(exact_data, tmp_path / "reg.zarr", options)
    assert summary["status"]["ok"] == 6
    bone, pa = _joint_errors(exact_data, tmp_path / "reg.zarr")
    assert pa.mean() < 35.0 and bone.mean() < 60.0, (pa, bone)
    store = open_store(tmp_path / "reg.zarr", stage="register")
    rotation = store["rotation"][...]
    np.testing.assert_allclose(np.linalg.det(rotation), 1.0, atol=1e-4)


def test_true_depths_are_the_depths_of_the_true_bodies_in_the_registration_frame(
    exact_data: dict, tmp_path: Path
) -> None:
    from dlearn.body.io import load_body_model
    from dlearn.body.keypoints import coco_keypoint_model
    from dlearn.body.model import BodyModel
    from dlearn.registration.data import fit_batch, load_fit_data, read_params
    from dlearn.registration.fit import evaluated_vertices, predict

    true_depths(exact_data["crops"], exact_data["gt"], tmp_path / "depths.zarr")
    data = load_fit_data(exact_data["corr"], exact_data["crops"], tmp_path / "depths.zarr")
    body = load_body_model(exact_data["model"])
    model = BodyModel(body, dtype=torch.float64)
    keypoints = coco_keypoint_model(model, body)
    rows = np.arange(len(data.ids))
    batch = fit_batch(data, rows, torch.device("cpu"), torch.float64)
    truth = stage._params_from(read_params(exact_data["truth"], data.ids), torch.device("cpu"), torch.float64)
    pred = predict(model, truth, batch, evaluated_vertices(model, batch), keypoints)
    assert float(batch.depth.abs().mean()) > 0.05  # people are not flat
    np.testing.assert_allclose(pred.keypoint_depth.numpy(), batch.depth.numpy(), atol=1e-5)
    assert data.depth_mask.all()


def test_keep_best_keeps_a_better_previous_fit_and_flags_it(exact_data: dict, tmp_path: Path) -> None:
    # A short fit from the T-pose cannot match the annotations as well as the true bodies.
    summary = _register(exact_data, tmp_path / "reg.zarr", FAST, previous=exact_data["truth"])
    assert summary["status"]["kept_previous"] >= 1
    store, truth = open_store(tmp_path / "reg.zarr"), open_store(exact_data["truth"])
    kept = store["status"][...] == STATUS["kept_previous"]
    np.testing.assert_allclose(store["pose"][...][kept], truth["pose"][...][kept], atol=1e-6)
    off = _register(exact_data, tmp_path / "off.zarr", replace(FAST, keep_best=False), previous=exact_data["truth"])
    assert off["status"]["kept_previous"] == 0


@pytest.mark.slow  # three registrations of the whole set
def test_shards_merged_equal_a_single_run(exact_data: dict, tmp_path: Path) -> None:
    _register(exact_data, tmp_path / "single.zarr", FAST)
    shards = [tmp_path / f"shard_{i}.zarr" for i in range(3)]
    for i, path in enumerate(shards):
        _register(exact_data, path, FAST, shard=i, num_shards=3)
    merge_registration(shards, exact_data["corr"], tmp_path / "merged.zarr")
    single, merged = open_store(tmp_path / "single.zarr"), open_store(tmp_path / "merged.zarr")
    assert read_sample_ids(single) == read_sample_ids(merged)
    for key in ("pose", "scales", "rotation", "cam_scale", "cam_translation", "joints", "keypoints", "status"):
        np.testing.assert_allclose(merged[key][...], single[key][...], atol=1e-5, err_msg=key)
    with pytest.raises(ValueError, match="shards hold"):
        merge_registration(shards[:2], exact_data["corr"], tmp_path / "bad.zarr")
    # More shards than samples: the extra shards are empty, valid stores.
    many = [tmp_path / f"many_{i}.zarr" for i in range(8)]
    for i, path in enumerate(many):
        _register(exact_data, path, FAST, shard=i, num_shards=8)
    merge_registration(many, exact_data["corr"], tmp_path / "merged8.zarr")
    np.testing.assert_allclose(open_store(tmp_path / "merged8.zarr")["pose"][...], single["pose"][...], atol=1e-5)


def test_empty_and_non_finite_samples_are_flagged_without_disturbing_the_others(
    exact_data: dict, tmp_path: Path
) -> None:
    corr = open_store(exact_data["corr"])
    ids, offsets = read_sample_ids(corr), corr["offsets"][...]
    arrays = {k: corr[k][...] for k in ("vertex", "point", "part", "uv")}
    # Sample 0 loses its dense points; sample 1 gets a NaN point.
    keep = np.ones(offsets[-1], bool)
    keep[offsets[0] : offsets[1]] = False
    counts = np.diff(offsets)
    counts[0] = 0
    arrays = {k: v[keep] for k, v in arrays.items()}
    arrays["point"][counts[0]] = np.nan
    from dlearn.data.store import csr_offsets

    broken = tmp_path / "corr.zarr"
    write_store(broken, {"offsets": csr_offsets(counts), **arrays}, stage="match", sample_id=ids)
    data = {**exact_data, "corr": broken}
    # One of six samples diverges: above the default max_failed_fraction, which would stop the stage.
    summary = _register(data, tmp_path / "reg.zarr", replace(FAST, max_failed_fraction=0.5))
    status = open_store(tmp_path / "reg.zarr")["status"][...]
    assert status[0] == STATUS["no_correspondences"] and status[1] == STATUS["non_finite"]
    assert summary["status"]["ok"] == 4
    fitted = open_store(tmp_path / "reg.zarr")
    for key in ("pose", "joints", "keypoints", "cam_scale"):
        assert np.all(np.isfinite(fitted[key][...])), key
    # The other samples come out exactly as in a run without the broken ones.
    _register(exact_data, tmp_path / "clean.zarr", FAST)
    clean = open_store(tmp_path / "clean.zarr")
    np.testing.assert_allclose(fitted["pose"][...][2:4], clean["pose"][...][2:4], atol=1e-5)


@pytest.mark.slow  # a registration run twice, one killed
def test_a_killed_run_resumes_from_its_checkpoint_and_gives_the_same_result(exact_data: dict, tmp_path: Path) -> None:
    options = replace(FAST, chunk_size=2)
    _register(exact_data, tmp_path / "straight.zarr", options)

    checkpoint = tmp_path / "ckpt"
    with killed_on_call(stage, "_fit_chunk", 2):
        _register(exact_data, tmp_path / "resumed.zarr", options, checkpoint_dir=checkpoint)
    assert not (tmp_path / "resumed.zarr").exists() and len(list(checkpoint.glob("chunk_*.npz"))) == 1
    summary = _register(exact_data, tmp_path / "resumed.zarr", options, checkpoint_dir=checkpoint)
    assert summary["resumed_chunks"] == 1 and not checkpoint.exists()
    straight, resumed = open_store(tmp_path / "straight.zarr"), open_store(tmp_path / "resumed.zarr")
    for key in ("pose", "scales", "joints", "keypoints", "status"):
        np.testing.assert_array_equal(resumed[key][...], straight[key][...])
