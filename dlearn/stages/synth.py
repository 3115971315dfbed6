"""`dlearn synth`: the synthetic DensePose-COCO-format dataset with exact 3D ground truth.

Its options dataclass lives in :mod:`dlearn.data.synth.options`, whose package imports the
generator (numpy and numba kernels, no torch): unlike the other stages, building this parser
loads it.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from dlearn.options import add_options, options_from_args
from dlearn.stages.common import add_body_model, add_keypoint_regressor

NAME = "synth"
HELP = "stage synth: synthetic DensePose-COCO-format dataset with exact 3D ground truth"
DESCRIPTION = (
    "Render posed, scaled bodies into images and write DensePose-COCO annotations "
    "(densepose_{train,test}.json), images, ground truth (gt_{split}.zarr) and a contact sheet."
)
OUTPUTS = {"out": "folder"}


def add_arguments(p: argparse.ArgumentParser) -> None:
    from dlearn.data.synth.options import SynthOptions

    add_body_model(p)
    p.add_argument("--uv", type=Path, required=True, help="UV_Processed.mat of the body model")
    p.add_argument("--out", type=Path, required=True, help="output folder")
    add_keypoint_regressor(p)
    add_options(p, SynthOptions)


def run(args: argparse.Namespace) -> None:
    from dlearn.data.synth import SynthOptions, synthesize

    synthesize(
        args.body_model, args.uv, args.out, options_from_args(args, SynthOptions), keypoint_regressor=args.keypoint_regressor
    )
