"""`dlearn evaluate`: 3D joint errors of round k's registrations, predictions and the cGAN."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from dlearn.evaluation.options import EvaluateOptions
from dlearn.options import add_options, options_from_args
from dlearn.stages.common import add_body_model, add_keypoint_regressor

log = logging.getLogger("dlearn")

NAME = "evaluate"
HELP = "stage evaluate: 3D joint errors of round k's registrations, predictions and the cGAN"
DESCRIPTION = (
    "MPJPE (plain, bone-scaled, Procrustes) against synthetic ground truth; writes "
    "evaluation.json (per joint) and evaluation.csv (round,split,source,metric,value)."
)
OUTPUTS = {"out_json": "file", "out_csv": "file"}


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--round", type=int, required=True, help="round k")
    add_body_model(p)
    for split in ("train", "test"):
        p.add_argument(f"--crops-{split}", type=Path, required=True, help=f"crops_{split}.zarr")
        p.add_argument(f"--gt-{split}", type=Path, required=True, help=f"gt_{split}.zarr")
        p.add_argument(f"--predictions-{split}", type=Path, required=True, help=f"predictions_{split}.zarr")
    p.add_argument("--registration", type=Path, required=True, help="the round's registration.zarr")
    p.add_argument("--cgan-depths", type=Path, help="cGAN depths_test.zarr (adds the cGAN's rows)")
    add_options(p, EvaluateOptions)
    add_keypoint_regressor(p)
    p.add_argument("--out-json", type=Path, required=True, help="output evaluation.json")
    p.add_argument("--out-csv", type=Path, required=True, help="output evaluation.csv")


def run(args: argparse.Namespace) -> None:
    from dlearn.evaluation.evaluate import evaluate_round
    from dlearn.evaluation.table import write_evaluation

    report = evaluate_round(
        args.round,
        args.body_model,
        {"train": args.crops_train, "test": args.crops_test},
        {"train": args.gt_train, "test": args.gt_test},
        args.registration,
        {"train": args.predictions_train, "test": args.predictions_test},
        cgan_depths=args.cgan_depths,
        bone_scaling=options_from_args(args, EvaluateOptions).bone_scaling,
        keypoint_regressor=args.keypoint_regressor,
    )
    write_evaluation(report, args.out_json, args.out_csv)
    for split, by_source in report["results"].items():
        for source, metrics in by_source.items():
            shown = {m: round(v["mean"], 1) for m, v in metrics.items() if "mpjpe" in m}
            log.info("round %d %s %s: %s mm", args.round, split, source, shown)
