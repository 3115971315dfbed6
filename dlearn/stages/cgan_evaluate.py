"""`dlearn cgan-evaluate`: accuracy of the cGAN depths where 3D is known (synthetic data)."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

log = logging.getLogger("dlearn")

NAME = "cgan-evaluate"
HELP = "stage cgan_evaluate: MPJPE of GT 2D + cGAN depth against zero and mean depth (synthetic data)"
DESCRIPTION = (
    "Accuracy of the cGAN depths where 3D is known, against two baselines computed "
    "the same way: zero depth and the train split's mean depth per keypoint."
)
OUTPUTS = {"out": "file"}


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--depths", type=Path, required=True, help="depths_test.zarr")
    p.add_argument("--crops", type=Path, required=True, help="crops_test.zarr")
    p.add_argument("--gt", type=Path, required=True, help="gt_test.zarr")
    p.add_argument("--train-depths", type=Path, help="depths_train.zarr (mean-depth baseline)")
    p.add_argument("--out", type=Path, required=True, help="output evaluation JSON")


def run(args: argparse.Namespace) -> None:
    import json

    from dlearn.cgan.evaluate import evaluate_depths

    report = evaluate_depths(args.depths, args.crops, args.gt, train_depths_path=args.train_depths)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    log.info("cGAN depth MPJPE (mm): %s", report["mpjpe_mm"])
