"""`dlearn evaluate-h36m`: round k's ConvNet on Human3.6M (Protocol #1, 14 LSP joints)."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from dlearn.evaluation.options import BONE_SCALING
from dlearn.stages.common import add_body_model

log = logging.getLogger("dlearn")

NAME = "evaluate-h36m"
HELP = "stage evaluate_h36m: round k's ConvNet on Human3.6M (Protocol #1, 14 LSP joints)"
DESCRIPTION = (
    "MPJPE (root-aligned, bone-scaled, Procrustes) of the predictions on the npz's frames, "
    "joints from a J_regressor_h36m .npy."
)
OUTPUTS = {"out_json": "file", "out_csv": "file"}


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--round", type=int, required=True, help="round k")
    p.add_argument("--predictions", type=Path, required=True, help="predictions_h36m.zarr")
    p.add_argument("--npz", type=Path, required=True, help="SPIN-style evaluation .npz")
    p.add_argument("--joint-regressor", type=Path, required=True, help="J_regressor_h36m.npy (17 x vertices)")
    add_body_model(p)
    p.add_argument("--bone-scaling", default="canonical_average", choices=BONE_SCALING,
                   help="bone-scaled MPJPE: canonical_average (the paper's: only the prediction, to the mean "
                   "bone-length sum of the --train-npz frames (without one: the rest skeleton's)), both_to_rest "
                   "(prediction and ground truth to the body model's rest skeleton) or ground_truth (the "
                   "prediction to each ground truth)")  # fmt: skip
    p.add_argument("--train-npz", type=Path, help="SPIN-style training npz (h36m_train.npz, S1, S5-S8): its S "
                   "gives the canonical average skeleton")  # fmt: skip
    p.add_argument("--max-skipped", type=float, default=0.01,
                   help="fraction of frames that may lack a joint before the evaluation fails (default: 0.01)")  # fmt: skip
    p.add_argument("--out-json", type=Path, required=True, help="output evaluation_h36m.json")
    p.add_argument("--out-csv", type=Path, required=True, help="output evaluation_h36m.csv")


def run(args: argparse.Namespace) -> None:
    from dlearn.evaluation.h36m import evaluate_h36m
    from dlearn.evaluation.table import write_evaluation

    report = evaluate_h36m(
        args.round, args.predictions, args.npz, args.joint_regressor, args.body_model, bone_scaling=args.bone_scaling,
        train_npz=args.train_npz, max_skipped=args.max_skipped,
    )  # fmt: skip
    write_evaluation(report, args.out_json, args.out_csv)
    shown = {m: round(v["mean"], 1) for m, v in report["results"]["h36m"]["convnet"].items()}
    log.info("round %d Human3.6M ConvNet: %s mm", args.round, shown)
