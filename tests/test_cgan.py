"""The cGAN stage: normalisation, rotation-projection, training, checkpoints, prediction, evaluation."""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from cgan_toy import _rot_y, make_toy_stores
from dlearn.body.keypoints import COCO_FLIP, ROOT_KEYPOINTS
from dlearn.body.standin import StandinBody
from dlearn.cgan.evaluate import evaluate_depths
from dlearn.cgan.model import Discriminator, Generator, chirality, normalise_2d, rotate_project
from dlearn.cgan.train import (
    CHECKPOINT_NAME,
    CganOptions,
    CheckpointError,
    build_state,
    generator_loss,
    lift_keypoints,
    predict_depths,
    train_cgan,
    trainable,
)
from dlearn.data.store import open_store, read_sample_ids, write_store

TINY = CganOptions(epochs=2, min_steps_per_epoch=5, batch_size=8, hidden_size=32, num_blocks=1, device="cpu")


@pytest.fixture(scope="module")
def toy(tmp_path_factory: pytest.TempPathFactory, standin_body: StandinBody) -> Path:
    """crops/gt stores of 64 train and 32 test persons, exact 2D (no jitter)."""
    out = tmp_path_factory.mktemp("toy")
    body = standin_body.model
    make_toy_stores(out, "train", 64, 1, body, keypoint_jitter_px=0.0)
    make_toy_stores(out, "test", 32, 2, body, keypoint_jitter_px=0.0)
    return out


def _camera_points(toy: Path, split: str) -> tuple[np.ndarray, np.ndarray]:
    """(N, 17, 3) ground truth in camera orientation (metres) and (N, 3, 3) rotations."""
    gt = open_store(toy / f"gt_{split}.zarr")
    rotation = np.asarray(gt["cam_rotation"][...], np.float64)
    return np.einsum("nij,nkj->nki", rotation, np.asarray(gt["keypoints3d"][...], np.float64)), rotation


def test_normalise_round_trip_and_masking() -> None:
    gen = torch.Generator().manual_seed(0)
    xy = torch.randn(5, 17, 2, generator=gen, dtype=torch.float64)
    mask = torch.rand(5, 17, generator=gen) > 0.2
    mask[:, list(ROOT_KEYPOINTS)] = True
    mask[0, ROOT_KEYPOINTS[0]] = False  # one hip missing: the other is the root
    pose, root, scale = normalise_2d(xy, mask)
    assert pose.shape == (5, 17, 2) and root.shape == (5, 2) and scale.shape == (5,)
    back = pose * scale[:, None, None] + root[:, None]
    assert torch.allclose(back[mask], xy[mask])
    assert (pose[~mask] == 0).all()
    rms = ((pose**2).sum(-1) * mask).sum(1) / mask.sum(1)
    assert torch.allclose(rms, torch.ones(5, dtype=torch.float64))
    assert torch.allclose(root[0], xy[0, ROOT_KEYPOINTS[1]])
    assert torch.allclose(root[1], xy[1, list(ROOT_KEYPOINTS)].mean(0))


def test_network_shapes_root_relative_and_masked_inputs_ignored() -> None:
    torch.manual_seed(0)
    g, d = Generator(64, 2), Discriminator(64, 1)
    pose, mask = torch.randn(4, 17, 2), torch.ones(4, 17, dtype=torch.bool)
    mask[:, 3] = False
    depth = g(pose, mask)
    assert depth.shape == (4, 17) and d(pose, mask).shape == (4,)
    assert torch.allclose(depth[:, list(ROOT_KEYPOINTS)].mean(1), torch.zeros(4), atol=1e-6)
    garbage = pose.clone()
    garbage[:, 3] = 100.0  # an unlabelled key point's coordinates must not matter
    assert torch.equal(g(garbage, mask), depth)
    assert not torch.equal(g(pose, torch.ones_like(mask)), depth)  # the mask itself is an input
    # Mirror-equivariance: flipping the person left/right keeps every depth.
    mirrored = g(pose[:, COCO_FLIP] * torch.tensor([-1.0, 1.0]), mask[:, COCO_FLIP])
    assert torch.allclose(mirrored[:, COCO_FLIP], depth, atol=1e-6)


def test_rotation_projection_is_exact(toy: Path) -> None:
    points, _ = _camera_points(toy, "test")
    points = torch.as_tensor(points)
    angle = torch.linspace(-math.pi, math.pi, len(points), dtype=torch.float64)
    expected = torch.einsum("nij,nkj->nki", torch.as_tensor(_rot_y(angle.numpy())), points)[..., :2]
    assert torch.allclose(rotate_project(points, angle), expected, atol=1e-12)
    # Quarter turn: the profile view shows depth as x; half turn mirrors x.
    quarter = rotate_project(points, torch.full((len(points),), math.pi / 2, dtype=torch.float64))
    assert torch.allclose(quarter, torch.stack([points[..., 2], points[..., 1]], -1), atol=1e-12)
    half = rotate_project(points, torch.full((len(points),), math.pi, dtype=torch.float64))
    assert torch.allclose(half, torch.stack([-points[..., 0], points[..., 1]], -1), atol=1e-12)


def test_rotation_equals_another_camera_yaw() -> None:
    """Rotating a camera-frame pose by t about the vertical axis = viewing it from yaw - t."""
    rng = np.random.default_rng(0)
    body = torch.as_tensor(rng.normal(size=(3, 17, 3)))
    base = np.diag([1.0, -1.0, -1.0])
    yaw, t = rng.uniform(-3, 3, 3), rng.uniform(-3, 3, 3)
    seen = torch.einsum("nij,nkj->nki", torch.as_tensor(base @ _rot_y(yaw)), body)
    other = torch.einsum("nij,nkj->nki", torch.as_tensor(base @ _rot_y(yaw - t)), body)
    assert torch.allclose(rotate_project(seen, torch.as_tensor(t)), other[..., :2], atol=1e-12)


def test_chirality_prior_tells_a_pose_from_its_depth_mirror(toy: Path) -> None:
    points, _ = _camera_points(toy, "test")
    true = chirality(torch.as_tensor(points))
    mirrored = chirality(torch.as_tensor(points * np.array([1.0, 1.0, -1.0])))
    assert (true > 0).float().mean() > 0.95
    assert torch.allclose(mirrored, -true)


def test_flip_table_is_an_involution() -> None:
    assert (COCO_FLIP[COCO_FLIP] == np.arange(17)).all()


def test_generator_steps_reduce_its_loss(toy: Path) -> None:
    keypoints = np.asarray(open_store(toy / "crops_train.zarr")["keypoints"][...])
    mask = torch.as_tensor(keypoints[..., 2] > 0)
    pose = normalise_2d(torch.as_tensor(keypoints[..., :2]), mask)[0]
    state = build_state(dataclasses.replace(TINY, hidden_size=64), torch.device("cpu"))
    angle = torch.linspace(-math.pi, math.pi, len(pose))
    losses = []
    for _ in range(10):  # the discriminator stays fixed: the generator's updates must help it fool it
        total, _, _ = generator_loss(state, pose, mask, angle, chirality_weight=1.0)
        state.opt_g.zero_grad()
        total.backward()
        state.opt_g.step()
        losses.append(total.item())
    assert losses[-1] < losses[0]


def _weights(path: Path) -> dict[str, torch.Tensor]:
    return torch.load(path, weights_only=True)["generator"]


@pytest.mark.slow  # three trainings
def test_training_is_deterministic_and_resumes(toy: Path, tmp_path: Path) -> None:
    crops = toy / "crops_train.zarr"
    summary = train_cgan(crops, tmp_path / "a.pt", tmp_path / "ck_a", TINY)
    train_cgan(crops, tmp_path / "b.pt", tmp_path / "ck_b", TINY)
    a, b = _weights(tmp_path / "a.pt"), _weights(tmp_path / "b.pt")
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert len(summary["curve"]) == 2 and summary["steps"] == 2 * max(
        math.ceil(summary["train_poses"] / 8), 5
    )
    model = torch.load(tmp_path / "a.pt", weights_only=True)
    assert model["options"] == dataclasses.asdict(TINY)
    # One epoch, then a rerun asking for two: resumes from the checkpoint, same weights as straight.
    train_cgan(crops, tmp_path / "c.pt", tmp_path / "ck_c", dataclasses.replace(TINY, epochs=1))
    resumed = train_cgan(crops, tmp_path / "c.pt", tmp_path / "ck_c", TINY)
    c = _weights(tmp_path / "c.pt")
    assert all(torch.equal(a[k], c[k]) for k in a)
    assert [e["epoch"] for e in resumed["curve"]] == [1, 2]
    assert resumed["curve"] == summary["curve"]
    other = train_cgan(crops, tmp_path / "d.pt", tmp_path / "ck_d", dataclasses.replace(TINY, seed=1))
    d = _weights(tmp_path / "d.pt")
    assert not all(torch.equal(a[k], d[k]) for k in a) and other["curve"] != summary["curve"]


def test_corrupted_checkpoint_is_an_error_naming_it(toy: Path, tmp_path: Path) -> None:
    ckpt = tmp_path / "ck" / CHECKPOINT_NAME
    ckpt.parent.mkdir()
    ckpt.write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match=str(ckpt)):
        train_cgan(toy / "crops_train.zarr", tmp_path / "m.pt", ckpt.parent, TINY)
    assert not (tmp_path / "m.pt").exists()
    model = tmp_path / "broken.pt"
    model.write_bytes(b"PK\x03\x04 truncated zip")
    with pytest.raises(CheckpointError, match=str(model)):
        predict_depths(model, toy / "crops_test.zarr", tmp_path / "depths.zarr", device="cpu")


def test_predict_writes_the_depth_store(toy: Path, tmp_path: Path) -> None:
    train_cgan(
        toy / "crops_train.zarr", tmp_path / "m.pt", tmp_path / "ck", dataclasses.replace(TINY, epochs=1)
    )
    summary = predict_depths(
        tmp_path / "m.pt", toy / "crops_test.zarr", tmp_path / "depths_test.zarr", device="cpu"
    )
    store = open_store(
        tmp_path / "depths_test.zarr", stage="cgan_predict", required=("depth", "valid", "scale", "root")
    )
    crops = open_store(toy / "crops_test.zarr")
    assert read_sample_ids(store) == read_sample_ids(crops) and summary["samples"] == 32
    depth, valid = store["depth"][...], store["valid"][...]
    assert depth.shape == (32, 17) and depth.dtype == np.float32 and valid.dtype == bool
    keypoints = crops["keypoints"][...]
    # Valid: labelled, in a pose the cGAN was trained on (both hips, min_keypoints labelled).
    np.testing.assert_array_equal(valid, (keypoints[..., 2] > 0) & trainable(keypoints, TINY.min_keypoints)[:, None])
    assert store.attrs["outside_training_criteria"] == int((~trainable(keypoints, TINY.min_keypoints)).sum())
    assert np.allclose(depth[:, list(ROOT_KEYPOINTS)].mean(1), 0, atol=1e-5)
    assert "root-relative" in store.attrs["frame"] and store.attrs["options"]["hidden_size"] == 32


def test_lift_ignores_unlabelled_coordinates() -> None:
    torch.manual_seed(0)
    g = Generator(32, 1).eval()
    kp = np.random.default_rng(0).normal(size=(3, 17, 3)).astype(np.float32)
    kp[..., 2] = 2
    kp[:, 0, 2] = 0
    kp[:, 0, :2] = 0
    out = lift_keypoints(g, kp, torch.device("cpu"))
    kp[:, 0, :2] = 7.0
    again = lift_keypoints(g, kp, torch.device("cpu"))
    np.testing.assert_array_equal(out["depth"], again["depth"])
    assert not out["valid"][:, 0].any() and out["valid"][:, 1:].all()


def test_evaluation_protocol(toy: Path, tmp_path: Path) -> None:
    """Oracle depths (ground truth in crop units) score 0 mm; zero depth scores worse."""
    crops = open_store(toy / "crops_test.zarr")
    gt = open_store(toy / "gt_test.zarr")
    points, _ = _camera_points(toy, "test")
    side = crops["box"][...][:, 2].astype(np.float64)
    z = points[..., 2] * (gt["cam_scale"][...] / (side / 2))[:, None]
    z = z - z[:, list(ROOT_KEYPOINTS)].mean(1, keepdims=True)
    ids = read_sample_ids(crops)
    order = np.arange(len(ids))[::-1]  # stores are aligned by sample id, not by row
    arrays = {
        "depth": z[order].astype(np.float32),
        "valid": np.ones((32, 17), bool),
        "scale": np.ones(32, np.float32),
    }
    write_store(tmp_path / "oracle.zarr", arrays, stage="cgan_predict", sample_id=[ids[i] for i in order])
    result = evaluate_depths(
        tmp_path / "oracle.zarr", toy / "crops_test.zarr", toy / "gt_test.zarr", tmp_path / "oracle.zarr"
    )
    assert result["mpjpe_mm"]["cgan"] < 0.01
    assert result["mpjpe_mm"]["zero_depth"] > 30
    assert result["samples"] + result["skipped_samples"] == 32
    assert set(result["mpjpe_mm"]) == {"cgan", "zero_depth", "train_mean_depth"}
    assert result["improvement_over_zero"] > 0.99


def test_training_curve_plot(tmp_path: Path) -> None:
    from dlearn.cgan.evaluate import plot_training_curve

    curve = [{"epoch": e, "loss_d": 1.3, "loss_g": 0.7, "loss_prior": 0.01} for e in (1, 2, 3)]
    assert plot_training_curve(curve, tmp_path / "curve.png").stat().st_size > 0
