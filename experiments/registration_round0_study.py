"""Round-0 registration: which first-round regulariser weights fit the train split best?

Registers a finished run's train split from the T-pose (round 0) with variants of
``registration.first_round.weights`` and prints the train PA-MPJPE of each against the synthetic
ground truth. Used to choose config.yaml's first-round weights (docs/regressor_study.md,
"Round-0 registration").

    OMP_NUM_THREADS=1 python experiments/registration_round0_study.py results [variant ...]

``results`` is a workflow results folder of the embedded synthetic data (body/, data/, cgan/,
correspondences_train.zarr). Each variant takes ~10-40 s on 600 samples (one core, unloaded).
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

from dlearn.data.store import open_store, read_sample_ids
from dlearn.evaluation.body_points import PoseComputer
from dlearn.evaluation.evaluate import ground_truth
from dlearn.evaluation.metrics import pa_mpjpe
from dlearn.registration.options import LossWeights, RegistrationOptions
from dlearn.registration.stage import register

#: The other registration options are config.yaml's (lr 0.1, 400 steps, patience 25, ...).
BASE = RegistrationOptions(weights=LossWeights(dense=1000.0, kp=1.0, scale=100.0, joint=1.0, det=1.0), device="cpu")


def _weights(**kw: float) -> RegistrationOptions:
    return replace(BASE, weights=replace(BASE.weights, **kw))


VARIANTS = {
    "scale100_joint1 (old default)": BASE,
    "steps800": replace(BASE, steps=800),
    "joint0.3": _weights(joint=0.3),
    "kp3": _weights(kp=3.0),
    "scale30": _weights(scale=30.0),
    "scale30_kp3": _weights(scale=30.0, kp=3.0),
    "scale10": _weights(scale=10.0),
    "scale10_joint0.3 (new default)": _weights(scale=10.0, joint=0.3),
    "scale10_joint0.1 (= rounds k >= 1)": _weights(scale=10.0, joint=0.1),
    "scale3_joint0.3": _weights(scale=3.0, joint=0.3),
    "scale10_joint0.3_kp3": _weights(scale=10.0, joint=0.3, kp=3.0),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("results", type=Path)
    parser.add_argument("variants", nargs="*", help=f"default: all of {list(VARIANTS)}")
    args = parser.parse_args()
    r = args.results
    poses = PoseComputer(r / "body/model.pkl")
    print("| variant | train PA-MPJPE (mm) | seconds |\n| --- | --- | --- |")
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.variants or list(VARIANTS):
            out = Path(tmp) / "registration.zarr"
            shutil.rmtree(out, ignore_errors=True)
            start = time.perf_counter()
            register(
                r / "correspondences_train.zarr", r / "data/crops_train.zarr", r / "body/model.pkl", out,
                VARIANTS[name], depths=r / "cgan/depths_train.zarr",
            )  # fmt: skip
            store = open_store(out)
            ids = read_sample_ids(store)
            pred = poses.pose_set({k: np.asarray(store[k][...]) for k in ("pose", "scales", "rotation")})
            truth = ground_truth(r / "data/gt_train.zarr", ids)
            pa = float(pa_mpjpe(pred.joints24 * 1000, truth.joints24 * 1000).mean())
            print(f"| {name} | {pa:.2f} | {time.perf_counter() - start:.0f} |", flush=True)


if __name__ == "__main__":
    main()
