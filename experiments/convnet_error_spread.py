"""How firm is a round's ConvNet test error, and how far is the ConvNet from its own targets?

For each finished round of a workflow results folder of the synthetic data, prints:

* the ConvNet's test PA-MPJPE over the whole test split and over its first ``--first`` persons
  (a smaller split of the same seed: image ``i`` is drawn from ``(seed, split, i)``, so the first
  100 of a 400-person split are the 100-person split), with the per-person spread and the
  standard error of the mean that the split's size gives;
* the constant predictor's test PA (what the untrained network outputs: the mean of round 0's
  registrations, facing the camera; PA does not see the rotation), the floor a ConvNet that
  learnt no pose stays at;
* on the train split: the ConvNet's PA-MPJPE against the truth and against its training targets
  (the round's registrations), and the registrations' against the truth. A ConvNet far from its
  own targets on the images it trained on is limited by what it can fit, not by the targets.

    PYTHONPATH=. .venv/bin/python experiments/convnet_error_spread.py results_learning --first 100

The table is in docs/regressor_study.md, "Test split, data and steps".
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch

from dlearn.body.io import load_body_model
from dlearn.body.model import BodyModel
from dlearn.data.store import open_store, read_aligned, read_sample_ids
from dlearn.evaluation.evaluate import PoseSet, ground_truth, stored_poses
from dlearn.evaluation.metrics import pa_mpjpe
from dlearn.params import PARAM_KEYS, params_from_theta, theta_from_arrays
from dlearn.regressor.train import reference_theta


def per_person_pa(pred: PoseSet, truth: PoseSet) -> np.ndarray:
    """(N,) PA-MPJPE in mm of each person's 24 joints."""
    return pa_mpjpe(pred.joints24 * 1000.0, truth.joints24 * 1000.0).mean(axis=1)


def split_poses(results: Path, split: str) -> tuple[list[str], PoseSet]:
    ids = read_sample_ids(open_store(results / f"data/crops_{split}.zarr", stage="crops"))
    return ids, ground_truth(results / f"data/gt_{split}.zarr", ids)


def constant_joints(results: Path) -> np.ndarray:
    """(24, 3) body-frame joints of the untrained network's output (the reference theta of round
    0's registrations; every round-0 fit is a target there, none is kept from an earlier round)."""
    path = results / "round_0/registration.zarr"
    store = open_store(path, stage="merge_registration")
    arrays = read_aligned(store, read_sample_ids(store), PARAM_KEYS, path)
    params = params_from_theta(reference_theta(theta_from_arrays(arrays))[None])
    body = BodyModel(load_body_model(results / "body/model.pkl"), dtype=torch.float32)
    with torch.no_grad():
        return body(params.pose, params.scales, vertex_ids=torch.zeros(0, dtype=torch.long)).joints[0].numpy()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("results", type=Path, help="a finished workflow results folder (synthetic data)")
    parser.add_argument("--first", type=int, default=100, help="size of the smaller test split to compare")
    args = parser.parse_args()
    test_ids, test_truth = split_poses(args.results, "test")
    train_ids, train_truth = split_poses(args.results, "train")
    first = min(args.first, len(test_ids))
    joints = np.broadcast_to(constant_joints(args.results), test_truth.joints24.shape)
    constant = per_person_pa(PoseSet(joints, test_truth.coco12), test_truth)
    print(
        f"{args.results}: {len(test_ids)} test persons, {len(train_ids)} train persons; constant predictor "
        f"test PA {constant.mean():.1f} (first {first}: {constant[:first].mean():.1f})"
    )
    print(
        f"| round | test PA, all {len(test_ids)} | first {first} | per-person sd | s.e. ({len(test_ids)} / {first}) "
        "| train: ConvNet vs truth | ConvNet vs its targets | targets vs truth |"
    )
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    # store name -> (the split's sample ids, the stage that wrote it)
    stores = {
        "predictions_test": (test_ids, "predict"),
        "predictions_train": (train_ids, "predict"),
        "registration": (train_ids, "merge_registration"),
    }
    for round_dir in sorted(args.results.glob("round_*"), key=lambda p: int(p.name.split("_")[1])):
        if not all((round_dir / f"{name}.zarr").exists() for name in stores):
            continue
        poses = {}
        for name, (ids, stage) in stores.items():
            path = round_dir / f"{name}.zarr"
            poses[name] = stored_poses(open_store(path, stage=stage), path, ids, stage)
        test = per_person_pa(poses["predictions_test"], test_truth)
        sd = float(test.std())
        convnet_truth = per_person_pa(poses["predictions_train"], train_truth).mean()
        convnet_targets = per_person_pa(poses["predictions_train"], poses["registration"]).mean()
        targets_truth = per_person_pa(poses["registration"], train_truth).mean()
        print(
            f"| {round_dir.name} | {test.mean():.1f} | {test[:first].mean():.1f} | {sd:.1f} "
            f"| {sd / np.sqrt(len(test)):.1f} / {sd / np.sqrt(first):.1f} | {convnet_truth:.1f} "
            f"| {convnet_targets:.1f} | {targets_truth:.1f} |"
        )


if __name__ == "__main__":
    main()
