"""`dlearn register`: fit the body to dense correspondences and keypoints, one shard of round k."""

from __future__ import annotations

import argparse
from pathlib import Path

from dlearn.options import add_options, options_from_args
from dlearn.registration.options import RegistrationOptions
from dlearn.stages.common import add_body_model, add_keypoint_regressor, int_at_least

NAME = "register"
HELP = "stage register: fit the body to dense correspondences and keypoints (one shard of round k)"
DESCRIPTION = (
    "Deformable registration (paper section 4) of one shard of the train split. Round 0 "
    "starts from the T-pose; later rounds from --init (the previous round's predictions)."
)
OUTPUTS = {"out": "store", "checkpoint_dir": "checkpoint"}


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--correspondences", type=Path, required=True, help="correspondences_train.zarr")
    p.add_argument("--crops", type=Path, required=True, help="crops_train.zarr (keypoints)")
    add_body_model(p)
    p.add_argument("--out", type=Path, required=True, help="output shard store")
    p.add_argument("--depths", type=Path, help="cGAN depths_train.zarr (the key-point loss's z term)")
    p.add_argument("--init", type=Path, help="round k >= 1: the previous round's predictions_train.zarr")
    p.add_argument("--previous", type=Path, help="round k >= 1: the previous round's registration.zarr (keep-best)")
    p.add_argument("--shard", type=int_at_least(0), default=0, help="shard index (default: 0)")
    p.add_argument("--num-shards", type=int_at_least(1), default=1, help="number of shards (default: 1)")
    p.add_argument("--checkpoint-dir", type=Path, help="finished chunks, kept until the output is written")
    add_keypoint_regressor(p)
    add_options(p, RegistrationOptions)


def run(args: argparse.Namespace) -> None:
    from dlearn.registration.stage import register

    register(
        args.correspondences,
        args.crops,
        args.body_model,
        args.out,
        options_from_args(args, RegistrationOptions),
        depths=args.depths,
        init=args.init,
        previous=args.previous,
        shard=args.shard,
        num_shards=args.num_shards,
        checkpoint_dir=args.checkpoint_dir,
        keypoint_regressor=args.keypoint_regressor,
    )
