"""The workflow on a real SLURM cluster (slurmctld + slurmd on localhost) through the executor plugin.

Needs root and Debian's package manager to set the cluster up (tests/slurm/localhost_cluster.sh);
skipped, saying why, where either is missing.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from test_workflow import BIN, REPO, write_config
from test_workflow_commands import without_venv_path

SCRIPT = REPO / "tests" / "slurm" / "localhost_cluster.sh"

pytestmark = pytest.mark.slow  # sets up a SLURM cluster and runs the workflow on it


def _why_not() -> str | None:
    if os.geteuid() != 0:
        return "setting up a SLURM cluster on localhost needs root"
    if shutil.which("slurmctld") is None and shutil.which("apt-get") is None:
        return "no slurmctld and no apt-get to install it"
    return None


@pytest.fixture(scope="module")
def slurm_cluster() -> None:
    reason = _why_not()
    if reason:
        pytest.skip(reason)
    subprocess.run([str(SCRIPT), "install"], check=True, timeout=900)
    subprocess.run([str(SCRIPT), "start"], check=True, timeout=120)
    yield
    subprocess.run([str(SCRIPT), "stop"], check=False, timeout=60)


def _command(workdir: Path, target: str) -> list[str]:
    return [
        str(BIN / "snakemake"), "-s", str(REPO / "Snakefile"), "-d", str(workdir),
        "--profile", str(REPO / "workflow" / "profiles" / "slurm"),
        "--slurm-init-seconds-before-status-checks", "1", "--jobs", "4", "--retries", "0", target,
    ]  # fmt: skip


def _job_state(job_id: str) -> str:
    out = subprocess.run(["scontrol", "show", "job", job_id], capture_output=True, text=True, check=False).stdout
    match = re.search(r"JobState=(\w+)", out)
    return match.group(1) if match else ""


SUBMITTED = re.compile(r"Job \d+ has been submitted with SLURM jobid (\d+) \(log: [^)]*rule_(\w+?)/")


def test_workflow_runs_through_slurm_and_resumes_after_scancel(slurm_cluster: None, tmp_path: Path) -> None:
    write_config(tmp_path)
    # As README runs it: .venv/bin/snakemake, the venv not activated (the jobs must find dlearn).
    env = without_venv_path()
    target = "results/round_0/registration.zarr"
    first_log = tmp_path / "first.log"
    with first_log.open("w") as out:
        proc = subprocess.Popen(_command(tmp_path, target), cwd=tmp_path, env=env, stdout=out, stderr=subprocess.STDOUT)
        cancelled = None
        deadline = time.monotonic() + 600
        while proc.poll() is None and time.monotonic() < deadline:
            jobs = SUBMITTED.findall(first_log.read_text())
            register = [job_id for job_id, rule in jobs if rule == "register"]
            if cancelled is None and register and _job_state(register[0]) == "RUNNING":
                cancelled = register[0]
                subprocess.run(["scancel", cancelled], check=True)
            time.sleep(0.1)
        proc.wait(timeout=60)
    text = first_log.read_text()
    jobs = SUBMITTED.findall(text)
    # Every rule ran as a SLURM job, known to slurmctld.
    assert {rule for _, rule in jobs} >= {"body_model", "synth", "crops", "match", "cgan_train", "register"}, text
    assert all(_job_state(job_id) in ("COMPLETED", "CANCELLED", "FAILED") for job_id, _ in jobs)
    assert cancelled is not None, f"no register job was seen running:\n{text}"
    assert _job_state(cancelled) == "CANCELLED"
    assert proc.returncode != 0  # the cancelled job failed the run
    finished = {p: p.stat().st_mtime_ns for p in (tmp_path / "results" / "data").rglob("*")}

    rerun = subprocess.run(_command(tmp_path, target), cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert rerun.returncode == 0, rerun.stdout + rerun.stderr
    rerun_rules = {rule for _, rule in SUBMITTED.findall(rerun.stdout + rerun.stderr)}
    # The rerun submits what was not finished (the cancelled shard, the merge), nothing upstream.
    assert "register" in rerun_rules and not rerun_rules & {"body_model", "synth", "crops", "match", "cgan_train"}
    assert {p: p.stat().st_mtime_ns for p in finished} == finished
    assert (tmp_path / target / "zarr.json").exists()
