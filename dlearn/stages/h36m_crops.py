"""`dlearn h36m-crops`: crops of the Human3.6M evaluation frames of a SPIN-style npz (no torch)."""

from __future__ import annotations

import argparse
from pathlib import Path

from dlearn.evaluation.options import H36mCropOptions
from dlearn.options import add_options, check_options, options_from_args

NAME = "h36m-crops"
HELP = "stage h36m_crops: crops of the Human3.6M evaluation frames of a SPIN-style npz"
DESCRIPTION = (
    "Square crops of every frame of the npz, framed like the training crops: side = box_scale x "
    "the person's box (scale x 200 / 0.9: SPIN's boxes are 0.9 x the person's mask box) around center."
)
OUTPUTS = {"out": "store"}


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--npz", type=Path, required=True, help="SPIN-style evaluation .npz (imgname, center, scale, S)")
    p.add_argument("--image-root", type=Path, required=True, help="folder the npz's imgname entries are relative to")
    p.add_argument("--out", type=Path, required=True, help="output crops_h36m.zarr")
    add_options(p, H36mCropOptions)


def run(args: argparse.Namespace) -> None:
    from dlearn.data.h36m_crops import make_h36m_crops

    options = options_from_args(args, H36mCropOptions).crop_options()
    check_options(options)
    make_h36m_crops(args.npz, args.image_root, args.out, options)
