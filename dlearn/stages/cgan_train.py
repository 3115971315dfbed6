"""`dlearn cgan-train`: Kudo et al.'s cGAN lifting 2D keypoints to depths, trained on 2D only."""

from __future__ import annotations

import argparse
from pathlib import Path

from dlearn.cgan.options import CganOptions
from dlearn.checkpoint import CGAN_FORMAT
from dlearn.options import add_options, options_from_args

NAME = "cgan-train"
HELP = "stage cgan_train: Kudo et al.'s cGAN lifting 2D keypoints to depths, from 2D only"
DESCRIPTION = (
    "Train the depth generator on the train split's 2D keypoints (never on 3D). "
    "Checkpoints every epoch; a killed run resumes from the last one."
)
# The cGAN keeps its checkpoint folder and deletes nothing there (atomic_save checks the file).
OUTPUTS = {"out": CGAN_FORMAT, "checkpoint_dir": "folder", "curve": "file"}


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--crops", type=Path, required=True, help="crops_train.zarr (keypoints)")
    p.add_argument("--out", type=Path, required=True, help="output model.pt")
    p.add_argument("--checkpoint-dir", type=Path, required=True, help="per-epoch checkpoints")
    p.add_argument("--curve", type=Path, help="also plot the training curve to this PNG")
    add_options(p, CganOptions)


def run(args: argparse.Namespace) -> None:
    from dlearn.cgan.evaluate import plot_training_curve
    from dlearn.cgan.train import train_cgan

    summary = train_cgan(args.crops, args.out, args.checkpoint_dir, options_from_args(args, CganOptions))
    if args.curve is not None:
        plot_training_curve(summary["curve"], args.curve)
