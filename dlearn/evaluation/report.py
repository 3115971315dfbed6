"""The report of a run: every round's evaluation in one table and the paper's Fig. 2 (stage
`report`, no torch), the regressors' loss curves and test meshes (stage `render-report`, which
imports torch where a model file is read or the body model runs)."""

from __future__ import annotations

import csv
import json
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from dlearn.checkpoint import REGRESSOR_FORMAT, CheckpointError, load_tagged
from dlearn.data.store import open_store, read_sample_ids
from dlearn.evaluation.table import CSV_COLUMNS, write_csv
from dlearn.params import PARAM_KEYS
from dlearn.plots import pyplot, save_figure

log = logging.getLogger(__name__)

#: The lines of Fig. 2: (source, split, label). All on the coco12 joints, which the cGAN has too.
HISTORY_LINES = (
    ("convnet", "test", "ConvNet (test)"),
    ("cgan", "test", "cGAN (test)"),
    ("registration", "train", "registration (train)"),
)


def gather_evaluations(csv_paths: Sequence[Path], out_csv: Path) -> list[dict[str, Any]]:
    """Concatenate the rounds' ``evaluation.csv`` files into ``out_csv`` (sorted by round)."""
    rows: list[dict[str, Any]] = []
    for path in csv_paths:
        with Path(path).open(newline="") as fh:
            reader = csv.DictReader(fh)
            if tuple(reader.fieldnames or ()) != CSV_COLUMNS:
                raise ValueError(f"{path}: columns {reader.fieldnames}, expected {list(CSV_COLUMNS)}")
            for row in reader:
                rows.append({**row, "round": int(row["round"]), "value": float(row["value"])})
    rows.sort(key=lambda r: (r["round"], r["split"], r["source"], r["metric"]))
    write_csv(rows, out_csv)
    return rows


def _series(rows: list[dict[str, Any]], source: str, split: str, metric: str) -> tuple[list[int], list[float]]:
    points = sorted((r["round"], r["value"]) for r in rows if (r["source"], r["split"], r["metric"]) == (source, split, metric))
    return [p[0] for p in points], [p[1] for p in points]


def plot_history(rows: list[dict[str, Any]], png_path: Path) -> Path:
    """Fig. 2 of the paper for this run: MPJPE against the round, per source."""
    plt = pyplot()
    fig, (left, right) = plt.subplots(1, 2, figsize=(9, 3.6), dpi=120)
    if not rows:
        fig.text(0.5, 0.5, "no evaluation: the dataset has no 3D ground truth", ha="center", va="center")
    for source, split, label in HISTORY_LINES:
        x, y = _series(rows, source, split, "coco12_mpjpe_bone_scaled")
        if x:
            style = "--" if source == "cgan" else "-o"
            left.plot(x, y, style, label=label)
    left.set_title("12 limb keypoints, bone-scaled MPJPE", fontsize=9)
    for source, split, metric, label in (
        ("convnet", "test", "mpjpe_bone_scaled", "ConvNet (test), bone-scaled"),
        ("convnet", "test", "pa_mpjpe", "ConvNet (test), Procrustes"),
        ("registration", "train", "mpjpe_bone_scaled", "registration (train), bone-scaled"),
        ("registration", "train", "pa_mpjpe", "registration (train), Procrustes"),
        ("convnet", "h36m", "h36m_mpjpe_bone_scaled", "ConvNet (Human3.6M P#1), bone-scaled"),
        ("convnet", "h36m", "h36m_pa_mpjpe", "ConvNet (Human3.6M P#1), Procrustes"),
    ):
        x, y = _series(rows, source, split, metric)
        if x:
            right.plot(x, y, "-o", label=label)
    right.set_title("24 body joints (Human3.6M: 14 LSP joints)", fontsize=9)
    rounds = sorted({r["round"] for r in rows})
    for ax in (left, right):
        ax.set_xlabel("round (deform-and-learn iteration)")
        ax.set_ylabel("MPJPE (mm)")
        ax.set_xticks(rounds)
        ax.set_ylim(bottom=0)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    return save_figure(fig, png_path)


def plot_losses(regressor_models: Sequence[Path], registrations: Sequence[Path], png_path: Path) -> Path:
    """Regressor training curves of every round (one x axis, epochs continue across rounds) and
    the distribution of the registrations' final data losses per round."""
    plt = pyplot()
    fig, (left, right) = plt.subplots(1, 2, figsize=(9.5, 3.6), dpi=120)
    offset = 0
    for k, path in enumerate(regressor_models):
        # A truncated model.pt is an error that names it, not torch's traceback.
        curve = load_tagged(path, REGRESSOR_FORMAT, "regressor model", CheckpointError).get("curve", [])
        epochs = [offset + row["epoch"] for row in curve]
        left.plot(epochs, [row["total"] for row in curve], label=f"round {k}")
        offset = epochs[-1] if epochs else offset
    left.set_yscale("log")
    left.set_xlabel("epoch (cumulative over rounds)")
    left.set_ylabel("mean loss per sample")
    left.set_title("regressor training (eq. 5)", fontsize=9)
    left.legend(fontsize=7)
    data = []
    for path in registrations:
        group = open_store(path, stage="merge_registration", required=["losses"])
        losses = np.asarray(group["losses"][...], np.float64)
        weights = dict(group.attrs.get("options", {})).get("weights", {"dense": 1000.0, "kp": 1.0})
        data.append(np.maximum(weights["dense"] * losses[:, 0] + weights["kp"] * losses[:, 1], 1e-9))
    right.boxplot(data, showfliers=False)
    right.set_xticks(range(1, len(data) + 1), [str(k) for k in range(len(data))])
    right.set_yscale("log")
    right.set_xlabel("round")
    right.set_ylabel("final data loss per sample")
    right.set_title("registration: w_dense L_dense + w_KP L_KP", fontsize=9)
    return save_figure(fig, png_path)


def export_meshes(predictions: Path, body_model: Path, out_dir: Path, num: int, prefix: str) -> list[Path]:
    """The first ``num`` predicted bodies as .obj meshes (body frame, metres) with a .json of
    their parameters."""
    import torch
    import trimesh

    from dlearn.body.model import BodyModel

    group = open_store(predictions, required=PARAM_KEYS)
    ids = read_sample_ids(group)[:num]
    model = BodyModel.from_file(body_model, dtype=torch.float64)
    arrays = {k: np.asarray(group[k][: len(ids)], np.float64) for k in PARAM_KEYS}
    with torch.no_grad():
        vertices = model(torch.as_tensor(arrays["pose"]).reshape(-1, 23, 3), torch.as_tensor(arrays["scales"])).vertices
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for i, sid in enumerate(ids):
        path = out_dir / f"{prefix}{sid}.obj"
        trimesh.Trimesh(vertices[i].numpy(), model.faces.numpy(), process=False).export(path)
        params = {k: np.asarray(v[i]).tolist() for k, v in arrays.items()}
        path.with_suffix(".json").write_text(json.dumps({"sample_id": sid, "source": str(predictions), **params}) + "\n")
        written.append(path)
    return written
