"""`dlearn true-depths`: the ground truth's keypoint depths in the cGAN's format."""

from __future__ import annotations

import argparse
from pathlib import Path

NAME = "true-depths"
HELP = "stage true_depths: the ground truth's keypoint depths in the cGAN's format (synthetic data)"
DESCRIPTION = (
    "Root-relative depths of the 17 keypoints from gt_{split}.zarr, in the frame and "
    "units of cgan-predict, so that the registration and the regressor can run with perfect depths "
    "(config depth_source: ground_truth): what a better depth source could give."
)
OUTPUTS = {"out": "store"}


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--crops", type=Path, required=True, help="crops_{split}.zarr (crop boxes)")
    p.add_argument("--gt", type=Path, required=True, help="gt_{split}.zarr")
    p.add_argument("--out", type=Path, required=True, help="output true_depths_{split}.zarr")


def run(args: argparse.Namespace) -> None:
    from dlearn.cgan.evaluate import true_depths

    true_depths(args.crops, args.gt, args.out)
