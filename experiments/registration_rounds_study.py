"""Rounds k >= 1 of the registration: does a better start give a better fit, or do the depths bound it?

The paper's Fig. 2 has the registration's train error fall round after round because each round
starts from the ConvNet's predictions instead of the T-pose. This study registers a finished
run's train split (without keep-best, so that every number is the fit from its own start) from
four starts, each with three depth sources, and prints the train PA-MPJPE against the synthetic
ground truth and the registration objective's data terms (dense + key points):

* starts: ``tpose`` (round 0's start: rest pose, camera from the torso's correspondences),
  ``convnet`` (round 0's ConvNet predictions: the paper's round 1), ``registration`` (round 0's
  own fit, a warm start) and ``truth`` (the true parameters: the best start there is);
* depths: ``cgan`` (the method's), ``true`` (the ground truth's key point depths, an upper bound
  of any depth source), ``none`` (no depth term) and ``lifted``: a depth source learnt from round
  0's registrations (the cGAN's generator network trained, supervised, to predict the registered
  bodies' key point depths from the 2D key points: could the rounds improve the depths?).

If the fit from the truth ends no better than the fit from the T-pose, no start can lower the
error: the objective's optimum, not the start, sets it. The weights are config.yaml's rounds
k >= 1 (``registration.weights``), and round 0's stiffer ones for the rows marked so.

    OMP_NUM_THREADS=1 PYTHONPATH=. python experiments/registration_rounds_study.py results [row ...]

``results`` is a finished workflow results folder of the embedded synthetic data (``make demo``:
body/, data/, cgan/, correspondences_train.zarr, round_0/). Each row takes ~40-70 s on the demo's
2,400 samples (one core, unloaded). The table is in docs/regressor_study.md, "Registration rounds".
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from dlearn.cgan.evaluate import camera_keypoints, evaluate_depths, true_depths
from dlearn.cgan.model import Generator, normalise_2d
from dlearn.cgan.train import lift_keypoints, read_keypoints, trainable
from dlearn.data.store import open_store, read_aligned, read_sample_ids, write_store
from dlearn.evaluation.body_points import PoseComputer
from dlearn.evaluation.evaluate import ground_truth
from dlearn.evaluation.metrics import pa_mpjpe
from dlearn.params import PARAM_KEYS
from dlearn.registration.options import LossWeights, RegistrationOptions
from dlearn.registration.stage import register

#: config.yaml's registration block for rounds k >= 1, without keep-best.
LATER = RegistrationOptions(
    weights=LossWeights(dense=1000.0, kp=1.0, scale=10.0, joint=0.1, det=1.0), keep_best=False, device="cpu"
)
#: Round 0's (registration.first_round.weights).
FIRST = replace(LATER, weights=replace(LATER.weights, scale=10.0, joint=0.3))

#: row -> (start, depths, options)
ROWS = {
    "tpose/cgan (round 0)": ("tpose", "cgan", FIRST),
    "tpose/cgan": ("tpose", "cgan", LATER),
    "convnet/cgan (round 1)": ("convnet", "cgan", LATER),
    "registration/cgan": ("registration", "cgan", LATER),
    "truth/cgan": ("truth", "cgan", LATER),
    "tpose/true (round 0)": ("tpose", "true", FIRST),
    "convnet/true": ("convnet", "true", LATER),
    "truth/true": ("truth", "true", LATER),
    "convnet/none": ("convnet", "none", LATER),
    "truth/none": ("truth", "none", LATER),
    "convnet/lifted": ("convnet", "lifted", LATER),
}


def register_and_score(
    results: Path,
    out: Path,
    options: RegistrationOptions,
    poses: PoseComputer,
    *,
    depths: Path | None,
    init: Path | None = None,
) -> tuple[np.ndarray, np.ndarray, float]:
    """Register the train split of the results folder ``results`` into ``out`` (replaced).

    Returns:
        the (N, 24) per-joint train PA-MPJPE errors (mm) against the synthetic ground truth (their
        mean is the PA-MPJPE; the evaluation's median is over samples), the store's (N, 5)
        unweighted loss terms (columns: ``LOSS_TERMS``) and the seconds the registration took.
    """
    shutil.rmtree(out, ignore_errors=True)
    began = time.perf_counter()
    register(
        results / "correspondences_train.zarr", results / "data/crops_train.zarr", results / "body/model.pkl", out,
        options, depths=depths, init=init,
    )  # fmt: skip
    seconds = time.perf_counter() - began
    store = open_store(out)
    ids = read_sample_ids(store)
    pred = poses.pose_set({k: np.asarray(store[k][...]) for k in ("pose", "scales", "rotation")})
    truth = ground_truth(results / "data/gt_train.zarr", ids)
    pa = pa_mpjpe(pred.joints24 * 1000, truth.joints24 * 1000)
    return pa, np.asarray(store["losses"][...], np.float64), seconds


def write_truth_start(results: Path, out: Path) -> Path:
    """The true parameters of the train split as a start store (the regressor's camera layout:
    scale and translation in normalised crop coordinates, from the gt store's pixels and each
    crop's box)."""
    crops_path, gt_path = results / "data/crops_train.zarr", results / "data/gt_train.zarr"
    crops = open_store(crops_path, stage="crops", required=["box"])
    ids = read_sample_ids(crops)
    keys = ("pose", "scales", "cam_rotation", "cam_scale", "cam_translation")
    gt = read_aligned(open_store(gt_path, required=keys), ids, keys, gt_path)
    box = np.asarray(crops["box"][...], np.float64)
    half = box[:, 2] / 2
    arrays = {
        "pose": gt["pose"],
        "scales": gt["scales"],
        "rotation": gt["cam_rotation"],
        "cam_scale": gt["cam_scale"] / half,
        "cam_translation": (gt["cam_translation"] - box[:, :2]) / half[:, None],
    }
    assert set(arrays) == set(PARAM_KEYS)
    return write_store(out, {k: np.asarray(v, np.float32) for k, v in arrays.items()}, stage="truth", sample_id=ids)


def write_lifted_depths(results: Path, out: Path, steps: int = 4000, seed: int = 0) -> dict[str, Path]:
    """Depth stores learnt from round 0's registrations: ``registered`` (train: the registered
    bodies' key point depths themselves) and ``lifted_train`` / ``lifted_test`` (a 2D -> depth
    network trained on them, applied to each split like the cGAN).

    The network is the cGAN's generator (hidden 256, 2 blocks, mirror-symmetric), trained by Adam
    (1e-3, cosine, batch 64, ``steps``) on the squared error between its normalised depths and the
    registered depths (camera frame, mid-hip relative, divided by the 2D normalisation scale) of
    the train samples inside the cGAN's training criteria.
    """
    crops = results / "data/crops_train.zarr"
    registration = results / "round_0/registration.zarr"
    ids, keypoints = read_keypoints(crops)
    fit = read_aligned(open_store(registration), ids, ("keypoints", "rotation", "cam_scale"), registration)
    metres = camera_keypoints(fit["keypoints"].astype(np.float64), fit["rotation"].astype(np.float64))
    depth = metres[..., 2] * fit["cam_scale"][:, None]  # crop units, mid-hip relative
    paths = {"registered": out / "registered_train.zarr"}
    labelled = keypoints[..., 2] > 0
    _, root, scale = normalise_2d(torch.as_tensor(keypoints[..., :2]), torch.as_tensor(labelled))
    arrays = {"depth": depth.astype(np.float32), "valid": labelled, "scale": scale.numpy(), "root": root.numpy()}
    write_store(paths["registered"], arrays, stage="cgan_predict", sample_id=ids)

    keep = trainable(keypoints, 8)
    xy = torch.as_tensor(keypoints[keep, :, :2])
    mask = torch.as_tensor(keypoints[keep, :, 2] > 0)
    target = torch.as_tensor(depth[keep], dtype=torch.float32)
    torch.manual_seed(seed)
    generator = Generator(256, 2, symmetric=True)
    optimiser = torch.optim.Adam(generator.parameters(), lr=1e-3)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimiser, lambda i: 0.5 * (1 + np.cos(np.pi * i / steps)))
    rng = torch.Generator().manual_seed(seed)
    for _ in range(steps):
        index = torch.randint(len(xy), (64,), generator=rng)
        pose, _, scale = normalise_2d(xy[index], mask[index])
        error = (generator(pose, mask[index]) - target[index] / scale[:, None]) ** 2
        loss = (error * mask[index]).sum() / mask[index].sum()
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        schedule.step()
    generator.eval()
    for split in ("train", "test"):
        split_ids, split_keypoints = read_keypoints(results / f"data/crops_{split}.zarr")
        lifted = lift_keypoints(generator, split_keypoints, torch.device("cpu"), min_keypoints=8)
        paths[f"lifted_{split}"] = out / f"lifted_{split}.zarr"
        arrays = {k: lifted[k] for k in ("depth", "valid", "scale", "root")}
        write_store(paths[f"lifted_{split}"], arrays, stage="cgan_predict", sample_id=split_ids)
    return paths


def print_depth_errors(results: Path, stores: dict[str, tuple[Path | None, Path | None]]) -> None:
    """The depth sources' key point MPJPE (mm, :func:`dlearn.cgan.evaluate.evaluate_depths`)."""
    print("| depth source | train depth MPJPE (mm) | test depth MPJPE (mm) |\n| --- | --- | --- |")
    data = results / "data"
    for name, per_split in stores.items():
        cells = []
        for split, path in zip(("train", "test"), per_split):
            if path is None:
                cells.append("-")
                continue
            scores = evaluate_depths(path, data / f"crops_{split}.zarr", data / f"gt_{split}.zarr")["mpjpe_mm"]
            cells.append(f"{scores['cgan']:.1f} (zero depth {scores['zero_depth']:.1f})")
        print(f"| {name} | {' | '.join(cells)} |", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("results", type=Path)
    parser.add_argument("rows", nargs="*", help=f"default: all of {list(ROWS)}")
    args = parser.parse_args()
    r = args.results
    poses = PoseComputer(r / "body/model.pkl")
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        starts = {
            "tpose": None,
            "convnet": r / "round_0/predictions_train.zarr",
            "registration": r / "round_0/registration.zarr",
            "truth": write_truth_start(r, tmp / "truth.zarr"),
        }
        true_depths(r / "data/crops_train.zarr", r / "data/gt_train.zarr", tmp / "true_depths.zarr")
        learnt = write_lifted_depths(r, tmp)
        depths = {
            "cgan": r / "cgan/depths_train.zarr",
            "true": tmp / "true_depths.zarr",
            "none": None,
            "lifted": learnt["lifted_train"],
        }
        print_depth_errors(
            r,
            {
                "cGAN": (depths["cgan"], r / "cgan/depths_test.zarr"),
                "round 0's registrations": (learnt["registered"], None),
                "lifted (trained on them)": (learnt["lifted_train"], learnt["lifted_test"]),
            },
        )
        print("\n| start / depths | train PA-MPJPE mean / median of the joint errors (mm) | data loss (dense + kp) | seconds |")
        print("| --- | --- | --- | --- |")
        for name in args.rows or list(ROWS):
            start, depth, options = ROWS[name]
            pa, losses, seconds = register_and_score(
                r, tmp / "registration.zarr", replace(options, use_depth=depths[depth] is not None), poses,
                depths=depths[depth], init=starts[start],
            )  # fmt: skip
            data = options.weights.dense * losses[:, 0] + options.weights.kp * losses[:, 1]
            print(
                f"| {name} | {pa.mean():.1f} / {np.median(pa):.1f} | {np.median(data):.4g} | {seconds:.0f} |",
                flush=True,
            )


if __name__ == "__main__":
    main()
