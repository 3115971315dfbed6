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
import tempfile
from dataclasses import replace
from pathlib import Path

from dlearn.evaluation.body_points import PoseComputer
from dlearn.registration.options import LossWeights, RegistrationOptions
from experiments.registration_rounds_study import register_and_score

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
            pa, _, seconds = register_and_score(
                r, Path(tmp) / "registration.zarr", VARIANTS[name], poses, depths=r / "cgan/depths_train.zarr"
            )
            print(f"| {name} | {pa.mean():.2f} | {seconds:.0f} |", flush=True)


if __name__ == "__main__":
    main()
