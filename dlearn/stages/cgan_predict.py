"""`dlearn cgan-predict`: root-relative keypoint depths from the trained cGAN."""

from __future__ import annotations

import argparse
from pathlib import Path

NAME = "cgan-predict"
HELP = "stage cgan_predict: root-relative keypoint depths for every sample of a split"
DESCRIPTION = (
    "Depths of the 17 keypoints in normalised crop units, relative to the mid-hip, "
    "camera z away from the viewer (the registration's frame)."
)
OUTPUTS = {"out": "store"}


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", type=Path, required=True, help="cgan model.pt")
    p.add_argument("--crops", type=Path, required=True, help="crops_{split}.zarr")
    p.add_argument("--out", type=Path, required=True, help="output depths_{split}.zarr")
    p.add_argument("--device", default="auto", help="auto, cpu or cuda (default: auto)")


def run(args: argparse.Namespace) -> None:
    from dlearn.cgan.train import predict_depths

    predict_depths(args.model, args.crops, args.out, device=args.device)
