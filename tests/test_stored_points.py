"""The body-frame points the registration and prediction stores hold (``joints``, ``keypoints``)
are the body model's of the stored parameters, and the evaluation's numpy rest skeleton is the
torch model's at rest: the `evaluate` stage reads these instead of posing bodies (issue 21)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from dlearn.body.io import BodyModelData, load_body_model
from dlearn.body.keypoint_definition import KeypointDefinition, fallback_definition, keypoint_definition
from dlearn.body.keypoints import CocoKeypoints
from dlearn.body.model import BodyModel
from dlearn.data.store import StoreError, open_store, read_sample_ids, write_store
from dlearn.evaluation.body_points import PoseComputer
from dlearn.evaluation.evaluate import COCO12_PARENTS, coco12, rest_bone_sums, rest_keypoints
from dlearn.evaluation.metrics import bone_lengths
from dlearn.params import PARAM_KEYS, STATUS
from dlearn.registration import stage
from dlearn.registration.merge import merge_registration
from dlearn.registration.options import RegistrationOptions
from dlearn.registration.stage import register
from helpers import constant_regressor, killed_on_call, with_body_points

FAST = RegistrationOptions(steps=60, patience=20, batch_size=4, chunk_size=4, device="cpu")
#: float32 stores of points about a metre from the origin.
ATOL = 2e-6


def _assert_points_of_parameters(path: Path, body_model: Path, keypoint_regressor: Path | None = None) -> None:
    """The store's joints and keypoints equal the float64 body model's of its pose and scales."""
    store = open_store(path)
    joints, keypoints = PoseComputer(body_model, keypoint_regressor).body_points(store["pose"][...], store["scales"][...])
    assert store["joints"].shape == joints.shape and store["keypoints"].shape == keypoints.shape == (len(joints), 17, 3)
    np.testing.assert_allclose(store["joints"][...], joints, atol=ATOL, rtol=0)
    np.testing.assert_allclose(store["keypoints"][...], keypoints, atol=ATOL, rtol=0)


def test_a_registration_stores_the_points_of_its_kept_fits(exact_data: dict, tmp_path: Path) -> None:
    # Keep-best against a previous round of true bodies, three of them wrongly posed and seen
    # from behind: those take this fit (its points), the others keep the previous fit's.
    truth = open_store(exact_data["truth"])
    arrays = {k: np.asarray(truth[k][...]) for k in PARAM_KEYS}
    arrays["pose"][:3] += np.random.default_rng(0).normal(scale=0.5, size=arrays["pose"][:3].shape)
    arrays["rotation"][:3] = arrays["rotation"][:3] @ np.diag([-1.0, 1.0, -1.0])
    previous = tmp_path / "previous.zarr"
    write_store(previous, {**with_body_points(arrays, exact_data["model"]), "status": np.zeros(6, np.uint8)},
                stage="merge_registration", sample_id=read_sample_ids(truth))  # fmt: skip
    out = tmp_path / "reg.zarr"
    register(exact_data["corr"], exact_data["crops"], exact_data["model"], out, FAST, depths=exact_data["depths"],
             previous=previous)  # fmt: skip
    status = open_store(out)["status"][...]
    kept = status == STATUS["kept_previous"]
    assert kept.any() and (status == STATUS["ok"]).any(), status
    _assert_points_of_parameters(out, exact_data["model"])
    np.testing.assert_allclose(open_store(out)["keypoints"][...][kept], open_store(previous)["keypoints"][...][kept], atol=ATOL)
    # An empty shard (more shards than samples: shard 3 of 7 of six) has them too, with no rows,
    # and merge_registration carries them.
    empty = tmp_path / "empty.zarr"
    summary = register(exact_data["corr"], exact_data["crops"], exact_data["model"], empty, FAST, shard=3, num_shards=7)
    assert summary["samples"] == 0 and open_store(empty)["keypoints"].shape == (0, 17, 3)
    merge_registration([out, empty], exact_data["corr"], tmp_path / "merged.zarr")
    np.testing.assert_array_equal(open_store(tmp_path / "merged.zarr")["keypoints"][...], open_store(out)["keypoints"][...])


def test_shards_of_two_dlearn_versions_are_not_merged(exact_data: dict, tmp_path: Path) -> None:
    ids = read_sample_ids(open_store(exact_data["corr"]))
    truth = open_store(exact_data["truth"])
    arrays = {k: np.asarray(truth[k][...]) for k in (*PARAM_KEYS, "joints", "keypoints", "status")}
    shards = [tmp_path / "shard_0.zarr", tmp_path / "shard_1.zarr"]
    write_store(shards[0], {k: v[:3] for k, v in arrays.items()}, stage="register", sample_id=ids[:3])
    old = {k: v[3:] for k, v in arrays.items() if k != "keypoints"}  # an older dlearn's shard
    write_store(shards[1], old, stage="register", sample_id=ids[3:])
    with pytest.raises(StoreError, match=r"shard_1.zarr: arrays .*shard_0.zarr has .*keypoints.*rerun the shards"):
        merge_registration(shards, exact_data["corr"], tmp_path / "merged.zarr")


def test_a_checkpointed_chunk_of_an_older_dlearn_is_refitted(exact_data: dict, tmp_path: Path) -> None:
    options = replace(FAST, chunk_size=2)
    checkpoint = tmp_path / "ckpt"
    args = (exact_data["corr"], exact_data["crops"], exact_data["model"], tmp_path / "reg.zarr", options)
    with killed_on_call(stage, "_fit_chunk", 2):
        register(*args, depths=exact_data["depths"], checkpoint_dir=checkpoint)
    (chunk,) = checkpoint.glob("chunk_*.npz")
    with np.load(chunk) as npz:
        old = {k: npz[k] for k in npz.files if k != "keypoints"}
    np.savez(chunk, **old)
    summary = register(*args, depths=exact_data["depths"], checkpoint_dir=checkpoint)
    assert summary["resumed_chunks"] == 0
    _assert_points_of_parameters(tmp_path / "reg.zarr", exact_data["model"])


def test_predictions_store_the_points_of_their_parameters(exact_data: dict, tmp_path: Path) -> None:
    from dlearn.cli import main
    from dlearn.regressor.model import THETA_SIZE, THETA_SLICES

    rng = np.random.default_rng(0)
    theta = np.zeros(THETA_SIZE, np.float32)
    theta[THETA_SLICES["pose"]] = rng.normal(scale=0.3, size=69)
    theta[THETA_SLICES["scales"]] = rng.uniform(0.8, 1.2, size=24)
    theta[THETA_SLICES["rotation"]] = np.eye(3).reshape(9)
    theta[THETA_SLICES["cam_scale"]] = 0.9
    model = constant_regressor(tmp_path / "model.pt", theta)
    # A keypoint regressor of its own (--keypoint-regressor): the predictions' keypoints are its.
    n = load_body_model(exact_data["model"]).num_vertices
    regressor = rng.random((17, n)) * (rng.random((17, n)) < 0.01)
    regressor[:, 0] += 1e-3
    regressor /= regressor.sum(1, keepdims=True)
    np.save(tmp_path / "kp.npy", regressor)
    args = ["predict", "--model", str(model), "--crops", str(exact_data["crops"]), "--body-model", str(exact_data["model"]),
            "--device", "cpu", "--batch-size", "4"]  # fmt: skip
    assert main([*args, "--out", str(tmp_path / "kp.zarr"), "--keypoint-regressor", str(tmp_path / "kp.npy")]) == 0
    _assert_points_of_parameters(tmp_path / "kp.zarr", exact_data["model"], tmp_path / "kp.npy")
    assert open_store(tmp_path / "kp.zarr").attrs["keypoint_definition"] == str(tmp_path / "kp.npy")
    # Without the flag: the model file's keypoints, which are others.
    assert main([*args, "--out", str(tmp_path / "own.zarr")]) == 0
    _assert_points_of_parameters(tmp_path / "own.zarr", exact_data["model"])
    own, given = (open_store(tmp_path / name)["keypoints"][...] for name in ("own.zarr", "kp.zarr"))
    assert not np.allclose(own, given, atol=1e-3)


def _torch_rest(data: BodyModelData, definition: KeypointDefinition) -> tuple[np.ndarray, np.ndarray]:
    model = BodyModel(data, dtype=torch.float64)
    pose = torch.zeros(1, 23, 3, dtype=torch.float64)
    with torch.no_grad():
        out = model(pose, torch.ones(1, 24, dtype=torch.float64))
        keypoints = CocoKeypoints(model, definition)(out, pose)
    np.testing.assert_allclose(out.joints[0].numpy(), model.rest_joints.numpy(), atol=1e-12)
    return out.joints[0].numpy(), keypoints[0].numpy()


@pytest.mark.parametrize("source", ["model file", "fallback"])
def test_the_numpy_rest_skeleton_is_the_torch_models_at_zero_pose(
    source: str, standin_files: tuple[Path, Path], random_model_data: BodyModelData
) -> None:
    # The stand-in's own regressor (vertex rows only); the fallback puts the limb keypoints on
    # joints (a random model with pose blend shapes, which are zero at rest).
    data = load_body_model(standin_files[0]) if source == "model file" else random_model_data
    definition = keypoint_definition(data) if source == "model file" else fallback_definition(data)
    assert definition.uses_joints == (source == "fallback")
    joints, keypoints = _torch_rest(data, definition)
    np.testing.assert_allclose(data.rest_joints, joints, atol=1e-12)
    np.testing.assert_allclose(rest_keypoints(data, definition), keypoints, atol=1e-12)
    sums = rest_bone_sums(data, definition)
    assert sums["joints24"] == pytest.approx(bone_lengths(joints, np.asarray(data.parents)).sum(), rel=1e-12)
    assert sums["coco12"] == pytest.approx(bone_lengths(coco12(keypoints[None])[0], COCO12_PARENTS).sum(), rel=1e-12)
