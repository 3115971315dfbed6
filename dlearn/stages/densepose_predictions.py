"""`dlearn densepose-predictions`: DensePose IUV maps or dumps + COCO keypoints -> DensePose-COCO JSON."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from dlearn.densepose.options import PredictionOptions
from dlearn.errors import InputError
from dlearn.options import add_options, options_from_args

log = logging.getLogger("dlearn")

NAME = "densepose-predictions"
HELP = "stage densepose_predictions: DensePose IUV maps + COCO keypoints -> DensePose-COCO JSON"
DESCRIPTION = (
    "Per person of the keypoint file, a seeded subset of the pixels of its IUV instance "
    "(<image>_IUV.png, <image>_INDS.png as DensePose's infer_simple.py writes them, or detectron2 DensePose's "
    "apply_net.py dump) as dense points, "
    "written as a DensePose-COCO annotation file that crops and match read."
)
OUTPUTS = {"out": "file"}


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--keypoints", type=Path, required=True,
                   help="COCO-format keypoint file (images, annotations), or a SPIN-style .npz (imgname, center, scale, part)")
    p.add_argument("--iuv-dir", type=Path, help="folder of the _IUV.png and _INDS.png files")
    p.add_argument("--dump", type=Path,
                   help="instead of --iuv-dir: a detectron2 DensePose `apply_net.py dump` file, or a folder of them (*.pkl)")
    p.add_argument("--image-root", type=Path, required=True, help="folder the file_name entries are relative to")
    p.add_argument("--out", type=Path, required=True, help="output DensePose-COCO JSON")
    p.add_argument("--allow-absolute-paths", action=argparse.BooleanOptionalAction, default=False,
                   help="accept file_name entries that are absolute or leave the image root (default: False)")  # fmt: skip
    add_options(p, PredictionOptions)


def run(args: argparse.Namespace) -> None:
    from dlearn.densepose.predictions import write_predictions_dataset

    if (args.iuv_dir is None) == (args.dump is None):
        raise InputError("densepose-predictions: give either --iuv-dir (IUV PNGs) or --dump (apply_net dumps)")
    summary = write_predictions_dataset(
        args.keypoints, args.iuv_dir, args.image_root, args.out, options_from_args(args, PredictionOptions),
        allow_absolute_paths=args.allow_absolute_paths, dump=args.dump,
    )  # fmt: skip
    log.info("%s: %s", args.out, summary)
