"""The Snakemake workflow driven through its command line, as a user runs it."""

from __future__ import annotations

import csv
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from dlearn.data.store import open_store, read_sample_ids

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def snakemake(workdir: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    """Run the repository's Snakefile in ``workdir`` with the venv's tools on PATH."""
    env = dict(os.environ, PATH=f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}")
    cmd = [str(BIN / "snakemake"), "-s", str(REPO / "Snakefile"), "-d", str(workdir), "--cores", "2", *args]
    proc = subprocess.run(cmd, cwd=workdir, env=env, capture_output=True, text=True, timeout=600)
    if check and proc.returncode != 0:
        raise AssertionError(f"snakemake failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    return proc


#: A tiny experiment: every rule runs, in seconds.
TINY = {
    "dataset__synthetic__num_train": 6,
    "dataset__synthetic__num_test": 4,
    "dataset__synthetic__image_size": 64,
    "crops__image_size": 32,
    "cgan__epochs": 2,
    "cgan__min_steps_per_epoch": 20,
    "cgan__hidden_size": 64,
    "registration__steps": 60,
    "iterations": 2,
    "regressor__backbone": "resnet18",
    "regressor__head_hidden": 16,
    "regressor__epochs": 1,
    "regressor__batch_size": 4,
    "regressor__workers": 0,
    "report__overlay_samples": 2,
    "report__meshes": 1,
}


def write_config(workdir: Path, **overrides: object) -> Path:
    """The default config with ``TINY`` and ``overrides`` (``a__b`` = key b of block a) applied."""
    config = yaml.safe_load((REPO / "config.yaml").read_text())
    overrides = {**TINY, **overrides}
    for dotted, value in overrides.items():
        node = config
        *parents, leaf = dotted.split("__")
        for key in parents:
            node = node.setdefault(key, {})
        node[leaf] = value
    path = workdir / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def test_default_config_dry_run_plans_every_rule(tmp_path: Path) -> None:
    write_config(tmp_path)
    proc = snakemake(tmp_path, "-n")
    out = proc.stdout + proc.stderr
    assert "body_model" in out


@pytest.mark.parametrize(
    ("overrides", "named"),
    [
        ({"device": "gpu"}, "device"),
        ({"body__modle": "standin"}, "modle"),
        ({"resources__body_model__threads": 0}, "threads"),
        ({"body__model": "/data/SMPL_NEUTRAL.pkl"}, "uv"),
    ],
)
def test_invalid_config_is_rejected_before_any_job(tmp_path: Path, overrides: dict, named: str) -> None:
    write_config(tmp_path, **overrides)
    proc = snakemake(tmp_path, "-n", check=False)
    assert proc.returncode != 0
    message = proc.stdout + proc.stderr
    assert "ValidationError" in message or "validation" in message.lower()
    assert named in message
    assert not (tmp_path / "results").exists()


def _dry_run(workdir: Path) -> str:
    proc = snakemake(workdir, "-n")
    return proc.stdout + proc.stderr


def test_full_run_writes_every_output_and_reruns_only_what_changed(tmp_path: Path) -> None:
    write_config(tmp_path)
    snakemake(tmp_path)
    results = tmp_path / "results"
    for name in ("body/model.pkl", "body/uv.mat", "body/preview.png", "data/contact_sheet.png"):
        assert (results / name).stat().st_size > 0
    for split in ("train", "test"):
        assert (results / f"data/crops_{split}.zarr/zarr.json").exists()
        assert (results / f"correspondences_{split}.zarr/zarr.json").exists()
        assert (results / f"cgan/depths_{split}.zarr/zarr.json").exists()
    assert json.loads((results / "cgan/evaluation.json").read_text())["mpjpe_mm"]["cgan"] > 0
    assert (results / "round_0/registration_overlay.png").stat().st_size > 0
    assert (results / "cgan/training_curve.png").stat().st_size > 0
    registration = open_store(results / "round_0/registration.zarr", stage="merge_registration")
    assert read_sample_ids(registration) == read_sample_ids(open_store(results / "data/crops_train.zarr"))
    for k in (0, 1):
        assert (results / f"round_{k}/regressor/model.pt").stat().st_size > 0
        for split in ("train", "test"):
            predictions = open_store(results / f"round_{k}/predictions_{split}.zarr", stage="predict")
            assert read_sample_ids(predictions) == read_sample_ids(open_store(results / f"data/crops_{split}.zarr"))
        assert (results / f"report/overlay_round_{k}.png").stat().st_size > 0
    with (results / "evaluation/summary.csv").open() as fh:
        summary = list(csv.DictReader(fh))
    assert {(r["round"], r["split"], r["source"]) for r in summary if r["metric"] == "coco12_mpjpe_bone_scaled"} == {
        (str(k), split, source) for k in (0, 1)
        for split, source in (("train", "registration"), ("train", "convnet"), ("test", "convnet"), ("test", "cgan"))
    }  # fmt: skip
    assert (results / "report/mpjpe_history.png").stat().st_size > 0
    assert len(list((results / "report/meshes").glob("*.obj"))) == 2
    for rule in ("body_model", "synth", "crops_train", "match_test", "cgan_train", "register_round0_shard1",
                 "regress_round1", "predict_round1_test", "evaluate_round1", "report"):  # fmt: skip
        assert (tmp_path / "logs" / f"{rule}.log").exists()
        assert (tmp_path / "logs" / "benchmarks" / f"{rule}.tsv").exists()
    assert "Nothing to be done" in _dry_run(tmp_path)
    # The browsable report gathers the figures with their captions.
    snakemake(tmp_path, "--report", str(tmp_path / "report.html"))
    assert (tmp_path / "report.html").stat().st_size > 100_000
    # A changed crop size reruns the crops and what depends on them, not the data generation.
    write_config(tmp_path, crops__image_size=48)
    plan = _dry_run(tmp_path)
    assert "crops" in plan and "match" in plan
    assert "rule synth" not in plan and "rule body_model" not in plan


def test_body_model_rule_links_user_files(tmp_path: Path, standin_files: tuple[Path, Path]) -> None:
    model, uv = standin_files
    user = tmp_path / "user"
    user.mkdir()
    shutil.copy(model, user / "SMPL_MALE.pkl")
    shutil.copy(uv, user / "UV_Processed.mat")
    write_config(tmp_path, body__model=str(user / "SMPL_MALE.pkl"), body__uv=str(user / "UV_Processed.mat"))
    snakemake(tmp_path, "body_model")
    linked = tmp_path / "results" / "body" / "model.pkl"
    assert linked.is_symlink() and linked.resolve() == (user / "SMPL_MALE.pkl").resolve()


def test_bad_user_model_fails_naming_the_file(tmp_path: Path) -> None:
    bad = tmp_path / "broken.pkl"
    bad.write_bytes(b"not a pickle")
    write_config(tmp_path, body__model=str(bad), body__uv=str(tmp_path / "UV_Processed.mat"))
    proc = snakemake(tmp_path, "body_model", check=False)
    assert proc.returncode != 0
    log = (tmp_path / "logs" / "body_model.log").read_text()
    assert str(bad) in log


def test_lint_and_format_are_clean() -> None:
    lint = subprocess.run(
        [str(BIN / "snakemake"), "--lint"], cwd=REPO, capture_output=True, text=True, timeout=120
    )
    assert lint.returncode == 0, lint.stdout + lint.stderr
    fmt = subprocess.run(
        [str(BIN / "snakefmt"), "--check", "Snakefile", "workflow/rules"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert fmt.returncode == 0, fmt.stdout + fmt.stderr
