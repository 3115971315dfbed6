"""`dlearn render-report`: the report's figures that pose bodies or read networks: per-round
overlays of the registrations and the ConvNet's predictions, test meshes (.obj), loss curves."""

from __future__ import annotations

import argparse
from pathlib import Path

from dlearn.evaluation.options import ReportOptions
from dlearn.options import add_options, options_from_args
from dlearn.stages.common import add_body_model

NAME = "render-report"
HELP = "stage render_report: per-round overlays, test meshes (.obj) and loss curves"
DESCRIPTION = (
    "Draw every round's fits and predictions (overlays, .obj meshes) and the regressors' loss curves; "
    "lists are in round order."
)
OUTPUTS = {"overlays": "file", "losses": "file", "meshes": "folder"}


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--registrations", type=Path, nargs="+", required=True, help="every round's registration.zarr")
    p.add_argument("--predictions", type=Path, nargs="+", required=True, help="every round's predictions_train.zarr")
    p.add_argument("--test-predictions", type=Path, nargs="+", required=True, help="every round's predictions_test.zarr")
    p.add_argument("--regressors", type=Path, nargs="+", required=True, help="every round's regressor model.pt")
    p.add_argument("--crops", type=Path, required=True, help="crops_train.zarr")
    add_body_model(p)
    p.add_argument("--uv", type=Path, required=True, help="UV_Processed.mat (part colours)")
    p.add_argument("--overlays", type=Path, nargs="+", required=True, help="output overlay PNG per round")
    p.add_argument("--losses", type=Path, required=True, help="output loss curves PNG")
    p.add_argument("--meshes", type=Path, required=True, help="output folder of .obj meshes")
    add_options(p, ReportOptions)


def run(args: argparse.Namespace) -> None:
    from dlearn.evaluation.report import export_meshes, plot_losses
    from dlearn.registration.overlay import write_overlay

    options = options_from_args(args, ReportOptions)
    per_round = (args.registrations, args.predictions, args.test_predictions, args.regressors, args.overlays)
    if len({len(files) for files in per_round}) != 1:
        raise ValueError(
            "--registrations, --predictions, --test-predictions, --regressors and --overlays need one "
            f"entry per round, got {[len(files) for files in per_round]}"
        )
    plot_losses(args.regressors, args.registrations, args.losses)
    for registration, predictions, png in zip(args.registrations, args.predictions, args.overlays):
        write_overlay(
            [("registration", registration), ("ConvNet", predictions)], args.crops, args.body_model, args.uv, png,
            num=options.overlay_samples,
        )  # fmt: skip
    for k, predictions in enumerate(args.test_predictions):
        export_meshes(predictions, args.body_model, args.meshes, options.meshes_per_round, prefix=f"round{k}_")
    args.meshes.mkdir(parents=True, exist_ok=True)
