"""The Snakemake workflow driven through its command line, as a user runs it."""

from __future__ import annotations

import csv
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import yaml

from dlearn.data.store import open_store, read_sample_ids

#: Every test here runs the Snakemake command line (~11 s a run): not in `make test-fast`.
pytestmark = pytest.mark.workflow

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
    "regressor__backbone": "tiny16",
    "regressor__head_hidden": 16,
    "regressor__epochs": 1,
    "regressor__batch_size": 4,
    "regressor__workers": 0,
    "report__overlay_samples": 2,
    "report__meshes_per_round": 1,
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


#: The jobs a dry run of the default config.yaml plans, per rule: three rounds of two shards,
#: each round's predictions on both splits.
DEFAULT_PLAN = {
    "check_data": 1, "body_model": 1, "synth": 1, "crops": 2, "match": 2, "cgan_train": 1, "cgan_predict": 2,
    "cgan_evaluate": 1, "register": 6, "merge_registration": 3, "regress": 3, "predict": 6,
    "evaluate": 3, "report": 1, "render_report": 1, "all": 1,
}  # fmt: skip
#: The rules the default config does not plan, and the setting that does.
OPTIONAL_RULES = {
    "true_depths": "depth_source: ground_truth",
    "densepose_predictions": "dataset.kind: densepose_predictions",
    "mix_datasets": "dataset.kind: mixed",
    "h36m_crops": "evaluation.h36m.npz",
    "evaluate_h36m": "evaluation.h36m.npz",
}


def _job_counts(jobs: list[PlannedJob]) -> dict[str, int]:
    return dict(Counter(job.rule for job in jobs))


def test_default_config_dry_run_plans_every_rule(tmp_path: Path) -> None:
    shutil.copy(REPO / "config.yaml", tmp_path / "config.yaml")
    assert _job_counts(planned_jobs(tmp_path)) == DEFAULT_PLAN
    # Every rule of the workflow is either planned by default or named above with its setting.
    listing = snakemake(tmp_path, "--list-rules").stdout
    rules = set(re.findall(r"^(\w+)", listing, flags=re.MULTILINE))
    assert rules == set(DEFAULT_PLAN) | set(OPTIONAL_RULES)


def test_the_learning_configuration_is_valid_and_writes_apart_from_the_demo(tmp_path: Path) -> None:
    # `make learning`: config/learning.yaml merged over config.yaml, checked by the schema.
    write_config(tmp_path)
    shutil.copy(REPO / "config" / "learning.yaml", tmp_path / "learning.yaml")
    proc = snakemake(tmp_path, "-n", "-p", "--configfile", "learning.yaml")
    out = proc.stdout + proc.stderr
    assert "results_learning/round_1/regressor/model.pt" in out and "results/round_" not in out
    assert "--num-train 9600" in out and "--backbone tiny16" in out  # the rest is config.yaml's


@pytest.mark.parametrize(
    ("overrides", "named"),
    [
        ({"device": "gpu"}, "device"),
        ({"body__modle": "standin"}, "modle"),
        ({"resources__body_model__threads": 0}, "threads"),
        ({"body__model": "/data/SMPL_NEUTRAL.pkl"}, "uv"),
        # The true depths exist only for synthetic data.
        ({"depth_source": "ground_truth", "dataset__kind": "densepose_coco"}, "synthetic"),
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


@dataclass(frozen=True)
class PlannedJob:
    rule: str
    wildcards: tuple[tuple[str, str], ...]
    inputs: tuple[str, ...]


def planned_jobs(workdir: Path) -> list[PlannedJob]:
    """The jobs of a dry run, parsed from Snakemake's job listing."""
    jobs, current = [], None
    for line in _dry_run(workdir).splitlines():
        match = re.match(r"^(?:local)?rule (\w+):$", line)
        if match:
            current = {"rule": match.group(1), "wildcards": (), "inputs": ()}
            jobs.append(current)
        elif current is not None and line.startswith("    input: "):
            current["inputs"] = tuple(line[len("    input: ") :].split(", "))
        elif current is not None and line.startswith("    wildcards: "):
            pairs = [item.split("=", 1) for item in line[len("    wildcards: ") :].split(", ")]
            current["wildcards"] = tuple((k, v) for k, v in pairs)
    return [PlannedJob(**job) for job in jobs]


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A complete run of the tiny config (two rounds)."""
    workdir = tmp_path_factory.mktemp("run")
    write_config(workdir)
    snakemake(workdir)
    return workdir


@pytest.mark.slow  # a whole workflow run
def test_full_run_writes_every_output(finished_run: Path) -> None:
    tmp_path = finished_run
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
                 "regress_round1", "predict_round1_test", "evaluate_round1", "report", "render_report"):  # fmt: skip
        assert (tmp_path / "logs" / f"{rule}.log").exists()
        assert (tmp_path / "logs" / "benchmarks" / f"{rule}.tsv").exists()
    assert "Nothing to be done" in _dry_run(tmp_path)
    # The browsable report gathers the figures with their captions.
    snakemake(tmp_path, "--report", str(tmp_path / "report.html"))
    assert (tmp_path / "report.html").stat().st_size > 100_000


def _rules(jobs: list[PlannedJob]) -> set[str]:
    return {job.rule for job in jobs} - {"all"}


@pytest.mark.slow  # a whole workflow run
@pytest.mark.parametrize(
    ("change", "expected"),
    [
        # A registration weight: every round's fit and everything downstream, nothing upstream.
        ({"registration__weights__kp": 2.0}, {"register", "merge_registration", "regress", "predict", "evaluate", "report",
                                             "render_report"}),
        ({"evaluation__bone_scaling": "ground_truth"}, {"evaluate", "report"}),
        ({"crops__image_size": 48}, {"crops", "match", "cgan_train", "cgan_predict", "cgan_evaluate", "register",
                                     "merge_registration", "regress", "predict", "evaluate", "report", "render_report"}),
    ],
)  # fmt: skip
def test_a_changed_option_reruns_exactly_the_affected_rules(finished_run: Path, change: dict, expected: set) -> None:
    try:
        write_config(finished_run, **change)
        jobs = planned_jobs(finished_run)
    finally:
        write_config(finished_run)
    assert _rules(jobs) == expected
    if "register" in expected:  # every round, every shard
        assert {job.wildcards for job in jobs if job.rule == "register"} == {
            (("round", str(k)), ("shard", str(i))) for k in (0, 1) for i in (0, 1)
        }


def test_dry_run_of_three_rounds_chains_the_rounds(tmp_path: Path) -> None:
    write_config(tmp_path, iterations=3)
    jobs = planned_jobs(tmp_path)
    assert _job_counts(jobs) == DEFAULT_PLAN  # the default config has three rounds, too

    def inputs(rule: str, **wildcards: str) -> tuple[str, ...]:
        (job,) = [j for j in jobs if j.rule == rule and set(wildcards.items()) <= set(j.wildcards)]
        return job.inputs

    assert not any("round_" in path for path in inputs("register", round="0", shard="0"))
    for k in (1, 2):
        # Round k starts from round k-1's predictions and keeps round k-1's better fits.
        assert f"results/round_{k - 1}/predictions_train.zarr" in inputs("register", round=str(k), shard="1")
        assert f"results/round_{k - 1}/registration.zarr" in inputs("register", round=str(k), shard="1")
        assert f"results/round_{k - 1}/regressor/model.pt" in inputs("regress", round=str(k))
    assert {f"results/round_{k}/evaluation.csv" for k in range(3)} <= set(inputs("report"))


def test_ground_truth_depths_replace_the_cgan_depths_of_registration_and_regressor(tmp_path: Path) -> None:
    write_config(tmp_path, depth_source="ground_truth")
    jobs = planned_jobs(tmp_path)
    true_depths = [job for job in jobs if job.rule == "true_depths"]
    assert [job.wildcards for job in true_depths] == [(("split", "train"),)]
    for job in jobs:
        if job.rule in ("register", "regress"):
            assert "results/data/true_depths_train.zarr" in job.inputs, job
            assert "results/cgan/depths_train.zarr" not in job.inputs, job
    # The cGAN still runs: the evaluation compares its test depths.
    assert "results/cgan/depths_test.zarr" in [p for job in jobs if job.rule == "evaluate" for p in job.inputs]


def test_a_keypoint_regressor_reaches_every_rule_that_places_keypoints(tmp_path: Path) -> None:
    # The predictions store the keypoints the evaluation compares: predict places them by the
    # same regressor as the registration, the regressor's loss and the synthetic data.
    regressor = tmp_path / "cocoplus.npy"
    np.save(regressor, np.full((17, 4), 0.25))  # the plan does not read it
    write_config(tmp_path, body__keypoint_regressor=str(regressor))
    rules = {"synth", "register", "regress", "predict", "evaluate"}
    jobs = [job for job in planned_jobs(tmp_path) if job.rule in rules]
    assert {job.rule for job in jobs} == rules
    assert all(str(regressor) in job.inputs for job in jobs), [job for job in jobs if str(regressor) not in job.inputs]
    commands = snakemake(tmp_path, "-n", "-p").stdout.splitlines()
    for command in ("synth", "register", "regress", "predict", "evaluate"):
        lines = [line for line in commands if f"dlearn {command} " in line]
        assert lines and all(f"--keypoint-regressor {regressor}" in line for line in lines), command


@pytest.mark.slow  # a whole workflow run
def test_a_killed_run_resumes_and_matches_an_uninterrupted_one(tmp_path: Path, finished_run: Path) -> None:
    write_config(tmp_path)
    env = dict(os.environ, PATH=f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}")
    cmd = [str(BIN / "snakemake"), "-s", str(REPO / "Snakefile"), "-d", str(tmp_path), "--cores", "2"]
    proc = subprocess.Popen(cmd, cwd=tmp_path, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)  # fmt: skip
    started = tmp_path / "logs" / "register_round1_shard0.log"
    deadline = time.monotonic() + 400
    while not started.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert proc.poll() is None, "the run ended before round 1's registration started"
    os.killpg(proc.pid, signal.SIGKILL)  # snakemake and its running jobs
    proc.wait()
    # Round 1's registration needs round 0's registration, regressor and train predictions: those
    # had finished. The test predictions and the evaluation may still have been running beside it
    # (one-thread jobs share the 2 cores); Snakemake rightly reruns a job killed mid-way.
    round0 = {
        p: p.stat().st_mtime_ns
        for p in (tmp_path / "results" / "round_0").rglob("*")
        if "predictions_test.zarr" not in p.parts and not p.name.startswith("evaluation.")
    }
    assert not (tmp_path / "results/round_1/registration.zarr").exists()

    snakemake(tmp_path, "--unlock")
    snakemake(tmp_path, "--rerun-incomplete")
    # What round 0 had finished is kept as it was.
    assert {p: p.stat().st_mtime_ns for p in round0} == round0
    assert (tmp_path / "results/round_0/registration.zarr") in round0
    for k in (0, 1):
        resumed = open_store(tmp_path / f"results/round_{k}/registration.zarr")
        straight = open_store(finished_run / f"results/round_{k}/registration.zarr")
        for key in ("pose", "scales", "rotation", "joints", "status"):
            assert np.allclose(resumed[key][...], straight[key][...], atol=1e-5), (k, key)
    with (tmp_path / "results/evaluation/summary.csv").open() as a, (finished_run / "results/evaluation/summary.csv").open() as b:
        ra, rb = list(csv.DictReader(a)), list(csv.DictReader(b))
    assert [r["metric"] for r in ra] == [r["metric"] for r in rb]
    assert np.allclose([float(r["value"]) for r in ra], [float(r["value"]) for r in rb], rtol=1e-3)


@pytest.mark.slow  # runs workflow jobs
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


@pytest.mark.slow  # runs a workflow job
def test_bad_user_model_fails_naming_the_file(tmp_path: Path) -> None:
    bad = tmp_path / "broken.pkl"
    bad.write_bytes(b"not a pickle")
    write_config(tmp_path, body__model=str(bad), body__uv=str(tmp_path / "UV_Processed.mat"))
    proc = snakemake(tmp_path, "body_model", check=False)
    assert proc.returncode != 0
    # The first rule, check_data, stops the run and names the file; no body file is written.
    log = (tmp_path / "logs" / "check_data.log").read_text()
    assert str(bad) in log
    assert not (tmp_path / "results" / "body" / "model.pkl").exists()


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
    ruff = subprocess.run([str(BIN / "ruff"), "check", "."], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert ruff.returncode == 0, ruff.stdout + ruff.stderr
