"""`dlearn predict`: the regressor's theta for every crop of a split."""

from __future__ import annotations

import argparse
from pathlib import Path

from dlearn.options import add_options, options_from_args
from dlearn.regressor.options import PredictOptions
from dlearn.stages.common import add_keypoint_regressor

NAME = "predict"
HELP = "stage predict: the regressor's theta for every crop of a split"
DESCRIPTION = (
    "Predict pose, scales and camera for every crop of a split with a trained regressor; "
    "the store has the registration store's layout (with the body-frame joints and COCO keypoints)."
)
OUTPUTS = {"out": "store"}


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", type=Path, required=True, help="regressor model.pt")
    p.add_argument("--crops", type=Path, required=True, help="crops_{split}.zarr")
    p.add_argument("--body-model", type=Path, required=True, help="SMPL-format body model file (joints, keypoints)")
    add_keypoint_regressor(p)
    p.add_argument("--out", type=Path, required=True, help="output predictions_{split}.zarr")
    add_options(p, PredictOptions)


def run(args: argparse.Namespace) -> None:
    from dlearn.regressor.train import predict

    options = options_from_args(args, PredictOptions)
    predict(
        args.model, args.crops, args.body_model, args.out, device=options.device, batch_size=options.batch_size,
        workers=options.workers, keypoint_regressor=args.keypoint_regressor,
    )  # fmt: skip
