"""The dlearn modules' import-time imports form no cycle, and the light paths stay torch-free.

A cycle between modules that import each other at module level works only as long as neither
uses the other's names while it is half-initialised; the shared definition belongs a layer down.
The graph is read from the sources (``ast``): module-level imports only (not those inside
functions, nor under ``if TYPE_CHECKING:``), ``from dlearn.pkg import Name`` resolved to the
module that defines ``Name`` when the package loads it lazily (:mod:`dlearn.lazy`).

Run as a script to print the graph's edges and any cycle: ``python tests/test_import_graph.py``.
"""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
PACKAGE = REPO / "dlearn"


def _modules() -> dict[str, Path]:
    found = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(REPO).with_suffix("").parts
        found[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return found


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _import_time_nodes(tree: ast.AST) -> list[ast.stmt]:
    """Import statements that run when the module is imported."""
    found, stack = [], list(ast.iter_child_nodes(tree))
    while stack:
        node = stack.pop()
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
            continue
        if isinstance(node, ast.If) and _is_type_checking(node):
            stack.extend(node.orelse)
            continue
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            found.append(node)
        stack.extend(ast.iter_child_nodes(node))
    return found


def _lazy_names(tree: ast.Module) -> dict[str, str]:
    """A package ``__init__``'s lazy attributes, name -> module: its ``_WHERE`` dict, or
    ``dict.fromkeys(__all__, module)``."""
    assigned = {
        target.id: node.value
        for node in tree.body
        if isinstance(node, ast.Assign)
        for target in node.targets
        if isinstance(target, ast.Name)
    }
    if "_WHERE" in assigned:
        return ast.literal_eval(assigned["_WHERE"])
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and getattr(node.func, "attr", None) == "fromkeys" and "__all__" in assigned:
            return dict.fromkeys(ast.literal_eval(assigned["__all__"]), ast.literal_eval(node.args[1]))
    return {}


def import_graph() -> dict[str, set[str]]:
    """dlearn module -> the dlearn modules it imports at import time."""
    modules = _modules()
    trees = {name: ast.parse(path.read_text(), str(path)) for name, path in modules.items()}
    lazy = {name: _lazy_names(tree) for name, tree in trees.items() if modules[name].name == "__init__.py"}
    graph: dict[str, set[str]] = {}
    for name, tree in trees.items():
        is_package = modules[name].name == "__init__.py"
        edges: set[str] = set()
        for node in _import_time_nodes(tree):
            if isinstance(node, ast.Import):
                edges.update(alias.name for alias in node.names if alias.name in modules)
                continue
            base = node.module or ""
            if node.level:
                package = name.split(".") if is_package else name.split(".")[:-1]
                base = ".".join(package[: len(package) - (node.level - 1)] + ([base] if base else []))
            if base not in modules:
                continue
            for alias in node.names:
                sub = f"{base}.{alias.name}"
                edges.add(sub if sub in modules else lazy.get(base, {}).get(alias.name, base))
        edges.discard(name)
        graph[name] = edges
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_the_graph_sees_import_time_imports_only() -> None:
    graph = import_graph()
    assert "dlearn.errors" in graph["dlearn.checkpoint"]
    assert "dlearn.lazy" in graph["dlearn.body"]
    assert "dlearn.body.model" not in graph["dlearn.body"]  # declared under TYPE_CHECKING only
    assert "dlearn.evaluation.evaluate" not in graph["dlearn.stages.evaluate"]  # imported by run()
    # A package's lazy names resolve to the module that defines them.
    tree = ast.parse((PACKAGE / "body" / "__init__.py").read_text())
    assert _lazy_names(tree)["BodyModel"] == "dlearn.body.model"
    tree = ast.parse((PACKAGE / "densepose" / "__init__.py").read_text())
    assert _lazy_names(tree)["UVCharts"] == "dlearn.densepose.uv"
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_module_level_imports_have_no_cycles() -> None:
    assert cycles(import_graph()) == []


def _loads_torch(code: str) -> bool:
    proc = subprocess.run(
        [sys.executable, "-c", f"import sys\n{code}\nprint('torch' in sys.modules)"],
        cwd=REPO, capture_output=True, text=True, timeout=120, check=False,
        env={**os.environ, "PYTHONPATH": str(REPO), "MPLBACKEND": "Agg"},
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.strip().splitlines()[-1] == "True"


def test_the_report_stage_does_not_load_torch(tmp_path: Path) -> None:
    """`dlearn report` (summary and Fig. 2) reads CSVs; posing bodies and reading networks is
    `dlearn render-report`'s."""
    from dlearn.evaluation.table import CSV_COLUMNS, write_csv

    rows = [dict(zip(CSV_COLUMNS, row)) for row in [
        (0, "test", "convnet", "coco12_mpjpe_bone_scaled", 120.0),
        (1, "test", "convnet", "coco12_mpjpe_bone_scaled", 90.0),
    ]]  # fmt: skip
    write_csv(rows, tmp_path / "evaluation.csv")
    argv = ["report", "--evaluations", str(tmp_path / "evaluation.csv"), "--summary", str(tmp_path / "summary.csv"),
            "--history", str(tmp_path / "history.png")]  # fmt: skip
    code = f"from dlearn.cli import main\nassert main({argv!r}) == 0"
    assert _loads_torch(code) is False
    assert (tmp_path / "summary.csv").is_file() and (tmp_path / "history.png").is_file()
    # The check itself sees torch when it is loaded.
    assert _loads_torch("import dlearn.body.model") is True


def test_the_evaluate_stage_does_not_load_torch(exact_data: dict, tmp_path: Path) -> None:
    """`dlearn evaluate` reads the body-frame points the stores hold: no body is posed."""
    from dlearn.data.store import open_store, read_sample_ids, write_store

    truth = open_store(exact_data["truth"])
    predictions = tmp_path / "predictions.zarr"  # the true bodies as the ConvNet's
    write_store(predictions, {k: np.asarray(truth[k][...]) for k in truth.array_keys() if k != "sample_id"},
                stage="predict", sample_id=read_sample_ids(truth))  # fmt: skip
    data = {k: str(v) for k, v in exact_data.items()}
    argv = ["evaluate", "--round", "0", "--body-model", data["model"], "--registration", data["truth"],
            "--cgan-depths", data["depths"], "--bone-scaling", "both_to_rest",
            "--out-json", str(tmp_path / "evaluation.json"), "--out-csv", str(tmp_path / "evaluation.csv")]  # fmt: skip
    for split in ("train", "test"):  # the exact data has one split: it plays both
        argv += [f"--crops-{split}", data["crops"], f"--gt-{split}", data["gt"], f"--predictions-{split}", str(predictions)]
    assert _loads_torch(f"from dlearn.cli import main\nassert main({argv!r}) == 0") is False
    report = json.loads((tmp_path / "evaluation.json").read_text())
    assert report["results"]["test"]["convnet"]["mpjpe_bone_scaled"]["mean"] < 0.5  # mm: exact bodies


if __name__ == "__main__":
    graph = import_graph()
    for module in sorted(graph):
        print(module, "->", ", ".join(sorted(graph[module])) or "-")
    print("cycles:", cycles(graph) or "none")


def test_the_synth_stage_does_not_load_torch(standin_files: tuple[Path, Path], tmp_path: Path) -> None:
    """`dlearn synth` poses one body at a time in numpy: a worker's start-up imports no torch."""
    model, uv = standin_files
    argv = ["synth", "--body-model", str(model), "--uv", str(uv), "--out", str(tmp_path / "synth"),
            "--num-train", "2", "--num-test", "1", "--image-size", "64", "--workers", "1"]  # fmt: skip
    assert _loads_torch(f"from dlearn.cli import main\nassert main({argv!r}) == 0") is False
    assert (tmp_path / "synth" / "densepose_train.json").is_file()


def test_the_merge_registration_stage_does_not_load_torch(
    exact_data: dict, standin_files: tuple[Path, Path], tmp_path: Path
) -> None:
    """`dlearn merge-registration` concatenates shards and draws the overlay with bodies posed in
    numpy: it sits between the register and regress jobs of every round, so torch's import
    (~3 s) would lengthen each round."""
    from dlearn.data.store import open_store, read_sample_ids, write_store
    from dlearn.registration.data import PARAM_KEYS

    ids = read_sample_ids(open_store(exact_data["corr"]))
    truth = open_store(exact_data["truth"])
    arrays = {k: np.asarray(truth[k][...]) for k in (*PARAM_KEYS, "joints", "keypoints", "status")}
    shards = [tmp_path / "shard_0.zarr", tmp_path / "shard_1.zarr"]
    for shard, rows in zip(shards, (slice(0, 3), slice(3, None))):
        write_store(shard, {k: v[rows] for k, v in arrays.items()}, stage="register", sample_id=ids[rows])
    data = {k: str(v) for k, v in exact_data.items()}
    argv = ["merge-registration", "--shards", *map(str, shards), "--correspondences", data["corr"],
            "--out", str(tmp_path / "registration.zarr"), "--overlay", str(tmp_path / "overlay.png"),
            "--crops", data["crops"], "--body-model", data["model"], "--uv", str(standin_files[1])]  # fmt: skip
    assert _loads_torch(f"from dlearn.cli import main\nassert main({argv!r}) == 0") is False
    assert (tmp_path / "overlay.png").is_file()
    np.testing.assert_array_equal(open_store(tmp_path / "registration.zarr")["pose"][...], arrays["pose"])
