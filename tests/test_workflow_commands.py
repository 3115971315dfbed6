"""The workflow's command lines as README.md gives them, and the code versions that rerun rules.

The Snakemake runs here are dry runs or the single cheap `check_data` job; tests/test_workflow.py
runs whole workflows.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from dlearn import codeversion

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
RULE_FILES = sorted((REPO / "workflow" / "rules").glob("*.smk"))


def without_venv_path() -> dict[str, str]:
    """The environment minus the venv: `make test` puts .venv/bin on PATH, a user may not."""
    venv = BIN.resolve()
    path = [p for p in os.environ.get("PATH", "").split(os.pathsep) if p and Path(p).resolve() != venv]
    # A `dlearn` left on PATH (another install) would hide the bug.
    path = [p for p in path if not (Path(p) / "dlearn").exists()]
    env = {k: v for k, v in os.environ.items() if k != "VIRTUAL_ENV"}
    env["PATH"] = os.pathsep.join(path)
    return env


@pytest.fixture
def checkout(tmp_path: Path) -> Path:
    """A copy of the repository's workflow and package with `.venv` linked to the running venv,
    so README's `.venv/bin/snakemake ...` lines run as written, in a throwaway folder."""
    if not (BIN / "snakemake").exists():
        pytest.skip(f"no snakemake next to {sys.executable}")
    root = tmp_path / "checkout"
    root.mkdir()
    for name in ("Snakefile", "config.yaml"):
        shutil.copy2(REPO / name, root / name)
    for name in ("workflow", "envs", "dlearn"):
        shutil.copytree(REPO / name, root / name, ignore=shutil.ignore_patterns("__pycache__"))
    (root / ".venv").symlink_to(BIN.parent)
    return root


def _run(root: Path, command: str) -> subprocess.CompletedProcess:
    """A README command line, run by bash in ``root`` without the venv on PATH."""
    assert shutil.which("dlearn", path=without_venv_path()["PATH"]) is None
    return subprocess.run(
        ["bash", "-c", command],
        check=False,
        cwd=root,
        env=without_venv_path(),
        capture_output=True,
        text=True,
        timeout=600,
    )


@pytest.mark.slow  # runs a workflow job
def test_readme_snakemake_command_runs_a_job_without_the_venv_on_path(checkout: Path) -> None:
    # README: `.venv/bin/snakemake --cores 2 synth`; check_data is the same line's cheapest job.
    proc = _run(checkout, ".venv/bin/snakemake --cores 2 check_data")
    log = checkout / "logs" / "check_data.log"
    assert proc.returncode == 0, proc.stdout + proc.stderr + (log.read_text() if log.exists() else "")
    assert "0 problems" in log.read_text()
    assert (checkout / "results" / "check_data.txt").exists()


@pytest.mark.workflow  # runs the Snakemake command line (~11 s)
@pytest.mark.parametrize("profile", ["default", "slurm"])
def test_readme_profile_commands_plan_the_workflow(checkout: Path, profile: str) -> None:
    proc = _run(checkout, f".venv/bin/snakemake --profile workflow/profiles/{profile} -n")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "register" in proc.stdout + proc.stderr


@pytest.mark.workflow  # runs the Snakemake command line (~11 s)
def test_nested_config_override_reaches_the_rules_typed(checkout: Path) -> None:
    target = "results/round_0/registration/shard_0.zarr"
    proc = _run(
        checkout,
        f'.venv/bin/snakemake --cores 2 -n -p --config \'registration={{"weights":{{"dense":999}},'
        f'"keep_best":false,"lr":0.05}}\' -- {target}',
    )
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out
    assert "--weights-dense 999 " in out and "--lr 0.05 " in out and "--no-keep-best" in out
    # The other keys of the block keep config.yaml's values.
    steps = yaml.safe_load((checkout / "config.yaml").read_text())["registration"]["steps"]
    assert f"--steps {steps} " in out


@pytest.mark.workflow  # runs the Snakemake command line (~11 s)
def test_nested_config_override_of_the_wrong_type_names_key_and_value(checkout: Path) -> None:
    proc = _run(
        checkout, '.venv/bin/snakemake --cores 2 -n --config \'registration={"weights":{"dense":"heavy"}}\''
    )
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0
    assert "'dense'" in out and "heavy" in out
    assert not (checkout / "results").exists()


def test_conda_env_installs_the_package_dependencies_without_relative_paths() -> None:
    env = yaml.safe_load((REPO / "envs" / "dlearn.yaml").read_text())
    pip = next(dep["pip"] for dep in env["dependencies"] if isinstance(dep, dict))
    # Snakemake copies the file to .snakemake/conda/ before conda reads it: `-e ..` pointed there.
    assert not [line for line in pip if line.startswith("-") or ".." in line or "/" in line]
    tomllib = pytest.importorskip("tomllib")  # Python >= 3.11
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["dependencies"]
    # The jobs need dlearn's dependencies, not the workflow manager that runs them.
    assert sorted(pip) == sorted(d for d in project if not d.startswith("snakemake"))


# Code versions --------------------------------------------------------------------------------


def rule_commands() -> dict[str, tuple[str, str]]:
    """Rule name -> (the `dlearn` command its shell runs, the command its code version hashes)."""
    rules = {}
    for path in RULE_FILES:
        for block in re.split(r"(?m)^(?=rule )", path.read_text())[1:]:
            name = re.match(r"rule (\w+):", block).group(1)
            shell = re.search(r"(?<![\w-])dlearn ([a-z0-9-]+)", block.split("shell:", 1)[1])
            code = re.search(r'code=code_version\("([a-z0-9-]+)"\)', block)
            rules[name] = (shell.group(1), code.group(1) if code else None)
    return rules


def test_every_rule_hashes_the_command_it_runs() -> None:
    rules = rule_commands()
    assert {"check_data", "register", "merge_registration", "predict", "match", "report"} <= set(rules)
    assert {name: shell for name, (shell, code) in rules.items() if code != shell} == {}


#: Runs every command's handler in a fork of one process (third-party imports done once) and
#: prints the dlearn modules each fork has imported: what the command really loads.
RUNTIME_IMPORTS = r"""
import argparse, json, os, sys
import dlearn.cli as cli

class Stop(Exception):
    pass

class Args(argparse.Namespace):
    # The handlers import their stage modules first, then read their arguments.
    def __getattr__(self, name):
        raise Stop(name)

parser = cli.build_parser()
commands = parser._subparsers._group_actions[0].choices
handlers = {name: sub.get_default("handler") for name, sub in commands.items()}
# The stages' third-party libraries, imported once for every fork; dlearn's own modules are not.
for mod in [m for m in list(sys.modules) if m == "dlearn" or m.startswith("dlearn.")]:
    if mod not in ("dlearn", "dlearn.cli", "dlearn.options"):
        del sys.modules[mod]
result = {}
for name, handler in handlers.items():
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(read)
        try:
            handler(Args())
            stopped = False
        except Stop:
            stopped = True
        loaded = sorted(m for m in sys.modules if m == "dlearn" or m.startswith("dlearn."))
        os.write(write, json.dumps({"stopped": stopped, "modules": loaded}).encode())
        os._exit(0)
    os.close(write)
    chunks = []
    while chunk := os.read(read, 65536):
        chunks.append(chunk)
    os.waitpid(pid, 0)
    result[name] = json.loads(b"".join(chunks))
print(json.dumps(result))
"""


@pytest.fixture(scope="module")
def runtime_imports() -> dict[str, dict]:
    if not hasattr(os, "fork"):
        pytest.skip("needs os.fork")
    proc = subprocess.run(
        [sys.executable, "-c", RUNTIME_IMPORTS], check=False, cwd=REPO, capture_output=True, text=True, timeout=600,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_each_command_hashes_every_dlearn_module_it_imports(runtime_imports: dict[str, dict]) -> None:
    rules = rule_commands()
    assert {shell for shell, _ in rules.values()} <= set(runtime_imports)
    missing = {}
    for command, seen in runtime_imports.items():
        assert seen["stopped"], f"{command}'s handler did not reach its arguments"
        hashed = set(codeversion.command_files(REPO, command))
        files = {codeversion.module_file(REPO, module) for module in seen["modules"]}
        if files - hashed:
            missing[command] = sorted(str(f.relative_to(REPO)) for f in files - hashed)
    assert missing == {}
    # The stage modules the old hand-written lists missed are covered now.
    assert REPO / "dlearn" / "data" / "store.py" in codeversion.command_files(REPO, "crops")
    assert REPO / "dlearn" / "registration" / "fit.py" in codeversion.command_files(REPO, "predict")
    assert REPO / "dlearn" / "data" / "crops.py" in codeversion.command_files(REPO, "match")
    assert REPO / "dlearn" / "cli.py" in codeversion.command_files(REPO, "check-data")


def _copy_package(tmp_path: Path) -> Path:
    root = tmp_path / "copy"
    shutil.copytree(REPO / "dlearn", root / "dlearn", ignore=shutil.ignore_patterns("__pycache__"))
    return root


def _versions(root: Path) -> dict[str, str]:
    return {command: codeversion.code_version(root, command) for _, (command, _) in rule_commands().items()}


def test_code_version_changes_only_for_commands_that_import_the_edited_module(tmp_path: Path) -> None:
    root = _copy_package(tmp_path)
    before = _versions(root)
    edited = root / "dlearn" / "data" / "crops.py"
    users = {command for command in before if edited in codeversion.command_files(root, command)}
    # check-data applies crops' image rules (one rule for both), so it reruns with them.
    assert {"crops", "match", "h36m-crops", "check-data"} <= users
    assert not users & {"body-model", "register", "cgan-train", "regress"}
    edited.write_text(edited.read_text() + "\n# an edit\n")
    after = _versions(root)
    assert {command for command in before if before[command] != after[command]} == users
    # Every command runs through cli.py.
    cli = root / "dlearn" / "cli.py"
    cli.write_text(cli.read_text() + "\n# an edit\n")
    assert all(v != after[c] for c, v in _versions(root).items())


def test_code_version_is_the_same_for_the_same_sources_anywhere(tmp_path: Path) -> None:
    here = _versions(REPO)
    assert _versions(_copy_package(tmp_path)) == here
    # In a fresh interpreter, with another hash seed (sets must not decide the order).
    script = (
        "import json, sys; from pathlib import Path; from dlearn import codeversion; "
        "print(json.dumps({c: codeversion.code_version(Path(sys.argv[1]), c) for c in sys.argv[2:]}))"
    )
    for seed in ("1", "2"):
        proc = subprocess.run(
            [sys.executable, "-c", script, str(REPO), *here], capture_output=True, text=True, timeout=120,
            env={**os.environ, "PYTHONHASHSEED": seed, "PYTHONPATH": str(REPO)}, check=True,
        )  # fmt: skip
        assert yaml.safe_load(proc.stdout) == here


def _write(root: Path, files: dict[str, str]) -> None:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)


def test_import_closure_follows_relative_function_level_and_package_imports(tmp_path: Path) -> None:
    _write(tmp_path, {
        "dlearn/__init__.py": "",
        "dlearn/__main__.py": "from dlearn.cli import main\n",
        "dlearn/cli.py": (
            "import argparse\nfrom dlearn import options\n\n"
            "def stages():\n    from dlearn.stages import go, other\n    return [go, other]\n"
        ),
        "dlearn/stages/__init__.py": "",
        "dlearn/stages/go.py": (
            "from dlearn.opts import GoOptions\nNAME = 'go'\n\n"
            "def run(args):\n    from dlearn.stage import run\n"
        ),
        "dlearn/stages/other.py": "NAME = 'other'\n\ndef run(args):\n    import dlearn.other\n",
        "dlearn/options.py": "",
        "dlearn/opts.py": "",
        "dlearn/other.py": "",
        "dlearn/stage.py": "from .pkg import sub\n\ndef run():\n    from . import late\n",
        "dlearn/late.py": "",
        "dlearn/pkg/__init__.py": "",
        "dlearn/pkg/sub.py": "from ..deep.leaf import f\nimport numpy\n",
        "dlearn/deep/__init__.py": "from dlearn.deep import init_dep\n",
        "dlearn/deep/init_dep.py": "",
        "dlearn/deep/leaf.py": "def f():\n    pass\n",
        "dlearn/unused.py": "",
    })  # fmt: skip
    files = {p.relative_to(tmp_path).as_posix() for p in codeversion.command_files(tmp_path, "go")}
    assert files == {
        "dlearn/__init__.py", "dlearn/__main__.py", "dlearn/cli.py", "dlearn/options.py", "dlearn/opts.py",
        "dlearn/stages/__init__.py", "dlearn/stages/go.py", "dlearn/stage.py", "dlearn/late.py",
        "dlearn/pkg/__init__.py", "dlearn/pkg/sub.py",
        "dlearn/deep/__init__.py", "dlearn/deep/init_dep.py", "dlearn/deep/leaf.py",
    }  # fmt: skip
    with pytest.raises(codeversion.UnknownCommandError, match="no command 'gone'.*go, other"):
        codeversion.command_files(tmp_path, "gone")
