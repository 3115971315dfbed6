"""`dlearn crops`: square person crops and keypoints in normalised crop coordinates (no torch)."""

from __future__ import annotations

import argparse
from pathlib import Path

from dlearn.data.crop_options import CropOptions
from dlearn.options import add_options, options_from_args

NAME = "crops"
HELP = "stage crops: square person crops and keypoints in normalised crop coordinates"
DESCRIPTION = (
    "Cut every kept person out of its image (square box with margin, resized) into "
    "a zarr store with the keypoints in normalised crop coordinates."
)
OUTPUTS = {"out": "store"}


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--annotations", type=Path, required=True, help="DensePose-COCO JSON file")
    p.add_argument("--image-root", type=Path, required=True, help="folder the JSON's file_name entries are in")
    p.add_argument("--out", type=Path, required=True, help="output crops_{split}.zarr")
    add_options(p, CropOptions)


def run(args: argparse.Namespace) -> None:
    from dlearn.data.crops import make_crops

    make_crops(args.annotations, args.image_root, args.out, options_from_args(args, CropOptions))
