"""`dlearn regress`: train the regressor on round k's registrations."""

from __future__ import annotations

import argparse
from pathlib import Path

from dlearn.checkpoint import REGRESSOR_FORMAT
from dlearn.options import add_options, options_from_args
from dlearn.regressor.options import RegressorOptions
from dlearn.stages.common import add_body_model, add_keypoint_regressor

NAME = "regress"
HELP = "stage regress: train the ResNet regressor on round k's registrations"
DESCRIPTION = (
    "Train the regressor (paper section 5) on the train split's crops with the round's "
    "registrations as targets. Per-epoch checkpoints in --checkpoint-dir make a killed run resume."
)
OUTPUTS = {"out": REGRESSOR_FORMAT, "checkpoint_dir": "checkpoint", "curve": "file"}


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--crops", type=Path, required=True, help="crops_train.zarr")
    p.add_argument("--correspondences", type=Path, required=True, help="correspondences_train.zarr (L_dense)")
    p.add_argument("--registration", type=Path, required=True, help="the round's registration.zarr (targets)")
    add_body_model(p)
    p.add_argument("--out", type=Path, required=True, help="output model.pt")
    p.add_argument("--checkpoint-dir", type=Path, required=True, help="per-epoch checkpoints (resume)")
    p.add_argument("--depths", type=Path, help="cGAN depths_train.zarr (L_KP's depth term)")
    p.add_argument("--init-model", type=Path, help="warm start from this model.pt (the previous round's)")
    p.add_argument("--curve", type=Path, help="also plot the training curve into this PNG")
    add_keypoint_regressor(p)
    add_options(p, RegressorOptions)


def run(args: argparse.Namespace) -> None:
    from dlearn.regressor.train import plot_regressor_curve, train_regressor

    summary = train_regressor(
        args.crops,
        args.correspondences,
        args.registration,
        args.body_model,
        args.out,
        args.checkpoint_dir,
        options_from_args(args, RegressorOptions),
        depths=args.depths,
        init_model=args.init_model,
        keypoint_regressor=args.keypoint_regressor,
    )
    if args.curve is not None:
        plot_regressor_curve(summary["curve"], args.curve)
