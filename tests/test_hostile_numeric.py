"""Hostile numbers and broken files: every one is a one-line error naming what is wrong, never a
NaN run, a silently empty fit, zeros read from a lost chunk or a traceback."""

from __future__ import annotations

import dataclasses
import logging
import math
import os
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from dlearn.cgan.train import (
    CHECKPOINT_NAME,
    CganOptions,
    CheckpointError,
    TrainingDivergedError,
    predict_depths,
    train_cgan,
)
from dlearn.cli import main
from dlearn.data.crops import CropOptions
from dlearn.data.store import COMPLETE_CHUNKS, StoreError, open_store, read_sample_ids, write_store
from dlearn.data.synth import SynthOptions
from dlearn.densepose.match import MatchOptions
from dlearn.errors import InputError
from dlearn.options import OptionError, check_options
from dlearn.registration.merge import RegistrationFailedError, merge_registration
from dlearn.registration.stage import STATUS, RegistrationOptions, register
from dlearn.regressor.train import RegressorOptions

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
TINY_CGAN = CganOptions(
    epochs=1, min_steps_per_epoch=3, batch_size=8, hidden_size=32, num_blocks=1, device="cpu"
)
FAST_REG = RegistrationOptions(steps=10, patience=5, batch_size=6, chunk_size=6, device="cpu")


@pytest.fixture
def crops(tmp_path: Path) -> Path:
    """A crops store of 24 persons with 17 labelled key points in normalised crop coordinates."""
    rng = np.random.default_rng(0)
    keypoints = np.concatenate([rng.uniform(-0.8, 0.8, (24, 17, 2)), np.full((24, 17, 1), 2.0)], axis=2)
    path = tmp_path / "crops.zarr"
    write_store(
        path,
        {"keypoints": keypoints.astype(np.float32)},
        stage="crops",
        sample_id=[f"{i}_{i}" for i in range(24)],
    )
    return path


def _with_keypoint(crops: Path, out: Path, value: float) -> Path:
    """A copy of ``crops`` whose sample 3 has one key point coordinate set to ``value``."""
    group = open_store(crops)
    keypoints = np.asarray(group["keypoints"][...])
    keypoints[3, 5, 0] = value
    write_store(out, {"keypoints": keypoints}, stage="crops", sample_id=read_sample_ids(group))
    return out


# --- options: flags and the workflow config ------------------------------------------------------

REGISTER = ["register", "--correspondences", "c", "--crops", "k", "--body-model", "m", "--out", "o"]
CGAN = ["cgan-train", "--crops", "k", "--out", "o", "--checkpoint-dir", "d"]
REGRESS = ["regress", "--crops", "k", "--correspondences", "c", "--registration", "r", "--body-model", "m",
           "--out", "o", "--checkpoint-dir", "d"]  # fmt: skip


@pytest.mark.parametrize(
    ("argv", "flag", "expected"),
    [
        (REGISTER, ["--steps", "0"], "--steps (RegistrationOptions.steps) is 0, expected >= 1"),
        (
            REGISTER,
            ["--chunk-size", "0"],
            "--chunk-size (RegistrationOptions.chunk_size) is 0, expected >= 1",
        ),
        (REGISTER, ["--batch-size", "0"], "--batch-size (RegistrationOptions.batch_size) is 0"),
        (REGISTER, ["--lr", "nan"], "--lr (RegistrationOptions.lr) is nan, expected a finite number"),
        (REGISTER, ["--weights-dense", "inf"], "--weights-dense (LossWeights.dense) is inf"),
        (
            REGISTER,
            ["--max-failed-fraction", "2"],
            "--max-failed-fraction (RegistrationOptions.max_failed_fraction) is 2",
        ),
        (CGAN, ["--epochs", "0"], "--epochs (CganOptions.epochs) is 0, expected >= 1"),
        (CGAN, ["--batch-size", "0"], "--batch-size (CganOptions.batch_size) is 0"),
        (CGAN, ["--lr=-inf"], "--lr (CganOptions.lr) is -inf"),
        (REGRESS, ["--epochs", "0"], "--epochs (RegressorOptions.epochs) is 0"),
        (REGRESS, ["--lr", "0"], "--lr (RegressorOptions.lr) is 0.0, expected > 0"),
    ],
)
def test_out_of_range_or_non_finite_flags_fail_naming_the_flag(
    argv: list[str], flag: list[str], expected: str, caplog: pytest.LogCaptureFixture
) -> None:
    # Checked before any input is read: the input paths here do not exist.
    with caplog.at_level(logging.ERROR, logger="dlearn"):
        assert main([*argv, *flag]) == 1
    assert expected in caplog.text


@pytest.mark.parametrize(
    "options",
    [CganOptions(), RegistrationOptions(), RegressorOptions(), CropOptions(), SynthOptions(), MatchOptions()],
)
def test_default_options_pass_their_own_checks(options: object) -> None:
    check_options(options)


def test_a_bound_names_the_nested_flag() -> None:
    options = replace(RegistrationOptions(), weights=replace(RegistrationOptions().weights, kp=-1.0))
    with pytest.raises(OptionError, match=r"--weights-kp \(LossWeights.kp\) is -1.0, expected >= 0"):
        check_options(options)


def _dry_run(workdir: Path, config: dict) -> subprocess.CompletedProcess:
    (workdir / "config.yaml").write_text(yaml.safe_dump(config))
    env = dict(os.environ, PATH=f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}")
    cmd = [str(BIN / "snakemake"), "-s", str(REPO / "Snakefile"), "-d", str(workdir), "--cores", "1", "-n"]
    return subprocess.run(cmd, check=False, cwd=workdir, env=env, capture_output=True, text=True, timeout=600)


@pytest.mark.workflow  # runs the Snakemake command line (~11 s)
@pytest.mark.parametrize(
    ("block", "key", "value", "named"),
    [
        ("cgan", "lr", math.nan, "config key cgan.lr: nan is not a finite number"),
        ("crops", "min_box_size", math.inf, "config key crops.min_box_size: inf is not a finite number"),
        ("registration", "weights", {"dense": math.nan}, "config key registration.weights.dense: nan"),
    ],
)
def test_config_rejects_non_finite_numbers_before_any_job(
    tmp_path: Path, block: str, key: str, value: object, named: str
) -> None:
    # JSON schema lets NaN through every minimum and maximum; the workflow must not.
    config = yaml.safe_load((REPO / "config.yaml").read_text())
    config[block][key] = value
    proc = _dry_run(tmp_path, config)
    assert proc.returncode != 0
    assert named in proc.stdout + proc.stderr
    assert "Traceback" not in proc.stdout + proc.stderr


@pytest.mark.workflow  # runs the Snakemake command line (~11 s)
def test_results_naming_an_existing_file_is_rejected(tmp_path: Path) -> None:
    (tmp_path / "out").write_text("a file")
    config = {**yaml.safe_load((REPO / "config.yaml").read_text()), "results": "out/run1"}
    proc = _dry_run(tmp_path, config)
    assert proc.returncode != 0
    message = proc.stdout + proc.stderr
    assert "config key results: out is an existing file, not a folder" in message
    assert "NotADirectoryError" not in message


# --- registration: too many diverged samples ----------------------------------------------------


def test_register_fails_naming_shard_count_and_option_when_too_many_samples_diverge(
    exact_data: dict, tmp_path: Path
) -> None:
    diverging = replace(FAST_REG, lr=1e30)  # every sample's loss overflows
    out = tmp_path / "shard_0.zarr"
    args = (exact_data["corr"], exact_data["crops"], exact_data["model"], out)
    checkpoint = tmp_path / "ck"
    with pytest.raises(
        RegistrationFailedError, match=r"shard 0 of 1\): 6 of 6 samples went non-finite"
    ) as err:
        register(*args, diverging, depths=exact_data["depths"], checkpoint_dir=checkpoint)
    assert "max_failed_fraction = 0.05 (--max-failed-fraction)" in str(err.value)
    assert not out.exists()
    # Raising the threshold keeps the fitted chunks: nothing is fitted again.
    summary = register(*args, replace(diverging, max_failed_fraction=1.0), depths=exact_data["depths"],
                       checkpoint_dir=checkpoint)  # fmt: skip
    assert summary["resumed_chunks"] == 1 and summary["status"]["non_finite"] == 6
    assert (np.asarray(open_store(out)["status"][...]) == STATUS["non_finite"]).all()


def test_merge_fails_on_a_shard_with_too_many_diverged_samples(exact_data: dict, tmp_path: Path) -> None:
    ids = read_sample_ids(open_store(exact_data["corr"]))
    status = np.zeros(len(ids), np.uint8)
    status[:2] = STATUS["non_finite"]
    shard = tmp_path / "shard_0.zarr"
    options = dataclasses.asdict(RegistrationOptions())
    write_store(shard, {"status": status, "pose": np.zeros((len(ids), 23, 3))}, stage="register", sample_id=ids,
                options=options)  # fmt: skip
    with pytest.raises(RegistrationFailedError, match=rf"{shard}: 2 of 6 samples went non-finite"):
        merge_registration([shard], exact_data["corr"], tmp_path / "merged.zarr")
    assert not (tmp_path / "merged.zarr").exists()


# --- cGAN: diverged training, bad key points, NaN depths ----------------------------------------


def test_cgan_training_that_diverges_stops_without_writing_nan_weights(crops: Path, tmp_path: Path) -> None:
    with pytest.raises(TrainingDivergedError, match=r"diverged at epoch 1, step \d+.*lower cgan.lr"):
        train_cgan(crops, tmp_path / "model.pt", tmp_path / "ck", replace(TINY_CGAN, lr=1e12))
    assert not (tmp_path / "model.pt").exists()
    assert not (tmp_path / "ck" / CHECKPOINT_NAME).exists()


def test_cgan_refuses_key_points_that_are_not_finite(crops: Path, tmp_path: Path) -> None:
    bad = _with_keypoint(crops, tmp_path / "nan.zarr", math.nan)
    with pytest.raises(InputError, match=rf"{bad}: keypoints of 1 sample\(s\) are not finite \(e.g. 3_3\)"):
        train_cgan(bad, tmp_path / "model.pt", tmp_path / "ck", TINY_CGAN)


def test_cgan_predict_never_marks_a_non_finite_depth_valid(crops: Path, tmp_path: Path) -> None:
    train_cgan(crops, tmp_path / "model.pt", tmp_path / "ck", TINY_CGAN)
    # A key point of 1e30 overflows the normalisation's RMS radius: that sample's depths are NaN.
    huge = _with_keypoint(crops, tmp_path / "huge.zarr", 1e30)
    predict_depths(tmp_path / "model.pt", huge, tmp_path / "depths.zarr", device="cpu")
    depths = open_store(tmp_path / "depths.zarr")
    depth, valid = np.asarray(depths["depth"][...]), np.asarray(depths["valid"][...])
    assert np.isfinite(depth).all()
    assert not valid[3].any() and valid[np.arange(24) != 3].all()
    assert depths.attrs["unusable"] == 1


def test_cgan_model_with_non_finite_weights_is_refused(crops: Path, tmp_path: Path) -> None:
    train_cgan(crops, tmp_path / "model.pt", tmp_path / "ck", TINY_CGAN)
    model = torch.load(tmp_path / "model.pt", weights_only=True)
    next(iter(model["generator"].values())).fill_(float("nan"))
    torch.save(model, tmp_path / "nan.pt")
    with pytest.raises(
        CheckpointError, match=rf"{tmp_path / 'nan.pt'}: the generator's weights are not finite"
    ):
        predict_depths(tmp_path / "nan.pt", crops, tmp_path / "depths.zarr", device="cpu")
    assert not (tmp_path / "depths.zarr").exists()


# --- stores: a lost chunk -----------------------------------------------------------------------


def test_a_store_with_a_lost_chunk_is_refused_naming_the_array(tmp_path: Path) -> None:
    path = tmp_path / "reg.zarr"
    n = 10
    # All-zero status: zarr would skip writing those chunks, so a lost one could not be told apart.
    write_store(path, {"status": np.zeros(n, np.uint8), "total": np.arange(n, dtype=np.float32)}, stage="register",
                sample_id=[str(i) for i in range(n)], chunk_rows=4)  # fmt: skip
    assert open_store(path).attrs[COMPLETE_CHUNKS] is True
    assert sorted(p.name for p in (path / "status" / "c").iterdir()) == ["0", "1", "2"]
    (path / "total" / "c" / "1").unlink()
    with pytest.raises(StoreError, match=rf"{path}: array 'total' lacks 1 of its 3 chunk files"):
        open_store(path)


def test_a_store_of_an_older_dlearn_without_zero_chunks_still_opens(tmp_path: Path) -> None:
    import zarr

    path = tmp_path / "old.zarr"
    write_store(path, {"status": np.zeros(4, np.uint8)}, stage="register", sample_id=list("abcd"))
    group = zarr.open_group(path, mode="r+")
    del group.attrs[COMPLETE_CHUNKS]
    (path / "status" / "c" / "0").unlink()  # as an older dlearn wrote it: no chunk of zeros
    assert (np.asarray(open_store(path)["status"][...]) == 0).all()


# --- checkpoints and output paths: one line, naming the file -------------------------------------


@pytest.mark.parametrize("keep", [0.1, 0.5, 0.9])
def test_truncated_regressor_model_in_the_report_names_the_file(tmp_path: Path, keep: float) -> None:
    from dlearn.checkpoint import REGRESSOR_FORMAT
    from dlearn.evaluation.report import plot_losses
    from dlearn.regressor.train import CheckpointError as RegressorCheckpointError

    whole = tmp_path / "whole.pt"
    torch.save({"format": REGRESSOR_FORMAT, "curve": [], "weights": torch.zeros(20000)}, whole)
    data = whole.read_bytes()
    model = tmp_path / "model.pt"
    model.write_bytes(data[: int(len(data) * keep)])
    with pytest.raises(RegressorCheckpointError, match=rf"{model}: unreadable regressor model .*delete it"):
        plot_losses([model], [], tmp_path / "losses.png")


def test_truncated_cgan_checkpoint_is_one_line_through_the_cli(
    crops: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    train_cgan(crops, tmp_path / "model.pt", tmp_path / "ck", TINY_CGAN)
    ckpt = tmp_path / "ck" / CHECKPOINT_NAME
    ckpt.write_bytes(ckpt.read_bytes()[:3000])
    argv = ["cgan-train", "--crops", str(crops), "--out", str(tmp_path / "m2.pt"), "--checkpoint-dir", str(ckpt.parent),
            "--epochs", "2", "--min-steps-per-epoch", "3", "--hidden-size", "32", "--num-blocks", "1",
            "--device", "cpu"]  # fmt: skip
    with caplog.at_level(logging.ERROR, logger="dlearn"):
        assert main(argv) == 1
    assert f"{ckpt}: unreadable checkpoint" in caplog.text and "delete it" in caplog.text


def test_an_output_folder_blocked_by_a_file_is_named(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    blocked = tmp_path / "results"
    blocked.write_text("a file")
    argv = ["report", "--summary", str(blocked / "evaluation" / "summary.csv"), "--history", str(blocked / "h.png")]
    with caplog.at_level(logging.ERROR, logger="dlearn"):
        assert main(argv) == 1
    assert "a file stands where this path needs a folder" in caplog.text
    assert str(blocked) in caplog.text


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["predict", "--model", "m", "--crops", "k", "--body-model", "b", "--out", "o", "--batch-size", "0"],
         "argument --batch-size: 0 is below the minimum 1"),
        ([*REGISTER, "--num-shards", "0"], "argument --num-shards: 0 is below the minimum 1"),
    ],
)  # fmt: skip
def test_stage_flags_outside_the_options_reject_zero(
    argv: list[str], expected: str, capsys: pytest.CaptureFixture
) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(argv)
    assert exit_.value.code == 2
    assert expected in capsys.readouterr().err


def test_a_missing_model_file_is_not_called_unreadable(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    missing = tmp_path / "model.pt"
    argv = ["cgan-predict", "--model", str(missing), "--crops", "k", "--out", str(tmp_path / "d.zarr")]
    with caplog.at_level(logging.ERROR, logger="dlearn"):
        assert main(argv) == 1
    assert f"{missing}: model file does not exist" in caplog.text
    assert "delete it" not in caplog.text
