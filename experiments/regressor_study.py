"""Regressor study: what is the cheapest setting in which a from-scratch ConvNet learns pose?

Trains dlearn's :class:`~dlearn.regressor.model.Regressor` on the synthetic GROUND-TRUTH
targets (pose, segment scales, camera of ``gt_train.zarr``: the upper bound of what a
registration can give) and reports, on the test split, PA-MPJPE, bone-scaled MPJPE (the
evaluate stage's canonical protocol) and a pose-only error (joints of the predicted pose and
scales rotated by the TRUE camera rotation, root-relative MPJPE), next to the constant predictor
(the mean training theta), overall and per pose mode of the synthesizer.

Data are rendered once with the project's own stages (stand-in body, ``synthesize``,
``make_crops``) into ``--cache`` in shards of 600 training images: shard 0 also holds the test
split (``--num-test`` images, seed 0: its first 100 are the default demo's test set), shards
k >= 1 are the same generator with seed k (disjoint images). A run with ``--crops N`` trains on
the first N crops of shards 0, 1, ... (600 = the demo's training set).

    python experiments/regressor_study.py data --cache /work/study_cache --shards 4 --sizes 64
    python experiments/regressor_study.py run --cache /work/study_cache --crops 600 --epochs 10
    python experiments/regressor_study.py table --cache /work/study_cache

Every ``run`` appends one JSON line to ``--cache/results.jsonl`` (``table`` prints them as
markdown). See docs/regressor_study.md for the rows and their conclusions.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import sys
import time
from dataclasses import dataclass, fields
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from dlearn.body.camera import rotation_from_9d
from dlearn.body.io import load_body_model
from dlearn.body.model import BodyModel
from dlearn.body.rotations import axis_angle_to_matrix, matrix_to_axis_angle
from dlearn.data.crops import CropOptions, make_crops
from dlearn.data.store import open_store, read_aligned, read_sample_ids
from dlearn.data.synth import SPLITS, NoiseOptions, SynthOptions, synthesize
from dlearn.data.synth.options import SPLIT_ID_OFFSET
from dlearn.data.synth.priors import _MODE_PROBS, POSE_MODES
from dlearn.evaluation.body_points import PoseComputer
from dlearn.evaluation.metrics import mpjpe, mpjpe_bone_scaled, pa_mpjpe
from dlearn.registration.fit import FitBatch
from dlearn.regressor.data import AugmentOptions, augment
from dlearn.regressor.model import THETA_SLICES, Regressor, RegressorSpec, SmallConvNet, params_from_theta
from dlearn.regressor.train import reference_theta

log = logging.getLogger("regressor_study")

SHARD_TRAIN = 600
#: The default demo's annotation noise (config.yaml dataset.synthetic.noise); it changes the
#: annotations only, not the images or the 3D truth.
DEMO_NOISE = NoiseOptions(
    dense_jitter_px=0.5, keypoint_jitter_px=1.0, part_confusion=0.02, missing_keypoints=0.02
)


# --------------------------------------------------------------------------------------------
# Data: rendered once per shard, cropped once per crop size


def shard_dir(cache: Path, shard: int) -> Path:
    return cache / f"shard_{shard}"


def body_files(cache: Path) -> tuple[Path, Path]:
    """The stand-in body (``dlearn make-body``'s files), written once."""
    from dlearn.body.standin import write_standin

    model, uv = cache / "body" / "SMPL_NEUTRAL.pkl", cache / "body" / "UV_Processed.mat"
    if not (model.exists() and uv.exists()):
        model, uv = write_standin(cache / "body")
    return model, uv


def ensure_data(cache: Path, shards: int, sizes: list[int], num_test: int, workers: int) -> None:
    """Render the missing shards and crop them at every size in ``sizes``."""
    model, uv = body_files(cache)
    for k in range(shards):
        out = shard_dir(cache, k)
        if not (out / "gt_train.zarr").exists():
            options = SynthOptions(
                num_train=SHARD_TRAIN, num_test=num_test if k == 0 else 0, image_size=128, seed=k,
                noise=DEMO_NOISE, workers=workers,
            )  # fmt: skip
            t = time.perf_counter()
            summary = synthesize(model, uv, out, options)
            log.info(
                "shard %d rendered in %.0f s (%.1f images/s)",
                k,
                time.perf_counter() - t,
                summary["images_per_second"],
            )
        for size in sizes:
            for split in SPLITS if k == 0 else ("train",):
                crops = out / f"crops_{split}_{size}.zarr"
                if not crops.exists():
                    make_crops(
                        out / f"densepose_{split}.json", out, crops, CropOptions(image_size=size, workers=1)
                    )


def pose_mode(seed: int, split: str, image_id: int) -> str:
    """The synthesizer's pose mode of a one-person image, replayed from its random stream
    (``_sample_persons``: the person order's permutation, which draws nothing for one person, then
    ``sample_pose``'s mode draw)."""
    rng = np.random.default_rng([seed, SPLITS.index(split), image_id - SPLIT_ID_OFFSET[split] - 1])
    rng.permutation(1)
    return POSE_MODES[int(rng.choice(len(POSE_MODES), p=_MODE_PROBS))]


@dataclass
class Split:
    """One split's crops and truth, rows aligned by sample id.

    Attributes:
        images: (N, S, S, 3) uint8 crops.
        theta: (N, 105) true theta in the regressor's layout, camera in normalised crop units.
        joints: (N, 24, 3) true body-frame joints (metres).
        rotation: (N, 3, 3) true camera rotations.
        keypoints: (N, 17, 3) annotated crop keypoints (normalised) and visibility.
        keypoints3d: (N, 17, 3) true body-frame COCO keypoints.
        modes: (N,) pose mode of each sample.
    """

    images: np.ndarray
    theta: np.ndarray
    joints: np.ndarray
    rotation: np.ndarray
    keypoints: np.ndarray
    keypoints3d: np.ndarray
    modes: np.ndarray

    def take(self, rows: np.ndarray) -> Split:
        return Split(**{k: v[rows] for k, v in vars(self).items()})

    def __len__(self) -> int:
        return len(self.theta)


def load_split(cache: Path, shard: int, split: str, size: int) -> Split:
    """A shard's crops at ``size`` px with their true theta (the gt store's camera in pixels,
    moved to normalised crop coordinates with the crop's box: s / (side / 2), (t - c) / (side / 2))."""
    crops_path = shard_dir(cache, shard) / f"crops_{split}_{size}.zarr"
    gt_path = shard_dir(cache, shard) / f"gt_{split}.zarr"
    crops = open_store(crops_path, stage="crops", required=["image", "box", "keypoints"])
    ids = read_sample_ids(crops)
    keys = (
        "image_id",
        "pose",
        "scales",
        "cam_rotation",
        "cam_scale",
        "cam_translation",
        "joints3d",
        "keypoints3d",
    )
    gt = read_aligned(open_store(gt_path, required=keys), ids, keys, gt_path)
    box = np.asarray(crops["box"][...], np.float64)
    half = box[:, 2] / 2
    n = len(ids)
    theta = np.concatenate(
        [
            gt["pose"].reshape(n, 69),
            gt["scales"].reshape(n, 24),
            gt["cam_rotation"].reshape(n, 9),
            (gt["cam_scale"] / half)[:, None],
            (gt["cam_translation"] - box[:, :2]) / half[:, None],
        ],
        axis=1,
    ).astype(np.float32)
    modes = np.array([pose_mode(shard, split, int(i)) for i in gt["image_id"]])
    return Split(
        images=np.asarray(crops["image"][...]),
        theta=theta,
        joints=gt["joints3d"].astype(np.float64),
        rotation=gt["cam_rotation"].astype(np.float64),
        keypoints=np.asarray(crops["keypoints"][...], np.float64),
        keypoints3d=gt["keypoints3d"].astype(np.float64),
        modes=modes,
    )


def concat(splits: list[Split]) -> Split:
    return Split(**{k: np.concatenate([getattr(s, k) for s in splits]) for k in vars(splits[0])})


def alignment_residual(data: Split) -> float:
    """Median distance (normalised crop units) between the annotated crop keypoints and the true
    3D keypoints projected with the target camera: ~0 when images, targets and the camera
    conversion are aligned (the annotations carry ~1 px of jitter)."""
    s = THETA_SLICES
    rot = data.theta[:, s["rotation"]].reshape(-1, 3, 3).astype(np.float64)
    proj = (
        data.theta[:, s["cam_scale"]][:, :, None] * np.einsum("nij,nkj->nki", rot, data.keypoints3d)[..., :2]
    )
    proj = proj + data.theta[:, s["translation"]][:, None, :]
    visible = data.keypoints[..., 2] > 0
    return float(np.median(np.linalg.norm(proj - data.keypoints[..., :2], axis=-1)[visible]))


# --------------------------------------------------------------------------------------------
# Networks and output parameterisations


def facing_bin(rotation: Tensor, bins: int) -> Tensor:
    """(...) int64 sector in [0, bins) of the body's heading, for (..., 9) or (..., 3, 3) camera
    rotations: the body's forward axis (its +z) in camera coordinates is ``f = R[:, 2]``, its
    heading ``atan2(f_x, -f_z)`` is 0 facing the camera (the registration's UPRIGHT_FACING) and
    +-pi showing its back. Sector 0 is centred on facing the camera (rows T27, T28)."""
    if rotation.shape[-1] == 9:
        rotation = rotation_from_9d(rotation)
    forward = rotation[..., :, 2]
    heading = torch.atan2(forward[..., 0], -forward[..., 2])
    return torch.remainder(torch.round(heading * (bins / (2 * math.pi))), bins).long()


def output_size(param: str) -> int:
    """Network outputs: theta (105) with the pose as 23 axis-angles, or as 23 6D rotations."""
    return 105 if param == "aa" else 105 - 69 + 23 * 6


def to_output(theta: Tensor, param: str) -> Tensor:
    """(B, 105) theta -> the network's target layout (6D: the first two columns of each joint's
    rotation matrix, as in Zhou et al. / SPIN)."""
    if param == "aa":
        return theta
    b = theta.shape[0]
    rotmat = axis_angle_to_matrix(theta[:, THETA_SLICES["pose"]].reshape(b, 23, 3))
    six = rotmat[..., :2].reshape(b, 23 * 6)
    return torch.cat([six, theta[:, 69:]], dim=1)


def to_theta(out: Tensor, param: str) -> Tensor:
    """The network's output -> (B, 105) theta (6D: Gram-Schmidt, then axis-angle)."""
    if param == "aa":
        return out
    b = out.shape[0]
    six = out[:, : 23 * 6].reshape(b, 23, 3, 2)
    a1, a2 = six[..., 0], six[..., 1]
    c1 = F.normalize(a1, dim=-1)
    c2 = F.normalize(a2 - (c1 * a2).sum(-1, keepdim=True) * c1, dim=-1)
    rotmat = torch.stack([c1, c2, torch.linalg.cross(c1, c2)], dim=-1)
    return torch.cat([matrix_to_axis_angle(rotmat).reshape(b, 69), out[:, 23 * 6 :]], dim=1)


class IterativeHead(nn.Module):
    """HMR's iterative error feedback (Kanazawa et al. 2018): starting from the reference output,
    ``iterations`` times out <- out + MLP([features, out]). Returns out - reference, the offset
    that dlearn's Regressor adds to its reference.

    Input (B, F) features; output (B, O) with O = the output size."""

    def __init__(self, features: int, hidden: int, reference: Tensor, iterations: int):
        super().__init__()
        size = reference.shape[-1]
        self.iterations = iterations
        self.mlp = nn.Sequential(
            nn.Linear(features + size, hidden),
            nn.ReLU(inplace=True),
            nn.Linear(hidden, hidden),
            nn.ReLU(inplace=True),
            nn.Linear(hidden, size),
        )
        nn.init.normal_(self.mlp[-1].weight, std=1e-3)
        nn.init.zeros_(self.mlp[-1].bias)
        self.register_buffer("reference", reference.float().clone())

    def forward(self, features: Tensor) -> Tensor:
        out = self.reference.expand(len(features), -1)
        for _ in range(self.iterations):
            out = out + self.mlp(torch.cat([features, out], dim=1))
        return out - self.reference


def build_model(
    backbone: str, head_hidden: int, param: str, reference: Tensor, no_maxpool: bool, ief: int = 0,
    pool_grid: int = 1, facing_bins: int = 0,
) -> Regressor:
    """dlearn's Regressor (ImageNet input normalisation, reference + head(features)); the tiny
    backbone (dlearn's SmallConvNet of width N for ``tinyN``, its last map pooled to a
    ``pool_grid`` x ``pool_grid`` grid), the 6D output and HMR's iterative head (``ief``
    iterations, 0: dlearn's two-layer head) replace its backbone / last layer / head. With
    ``facing_bins`` K > 0 the last layer has K more outputs: logits of the body's heading sector
    (:func:`facing_bin`), after the parameters (see :func:`split_output`)."""
    resnet = backbone if backbone.startswith("resnet") else "resnet18"
    model = Regressor(RegressorSpec(resnet, head_hidden))
    if backbone.startswith("tiny"):
        width = int(backbone[4:] or 32)
        model.backbone = SmallConvNet(width, pool_grid)
        model.head[0] = nn.Linear(model.backbone.out_features, head_hidden)
    elif no_maxpool:
        model.backbone.maxpool = nn.Identity()
    last = nn.Linear(head_hidden, output_size(param) + facing_bins)
    nn.init.normal_(last.weight, std=1e-3)
    nn.init.zeros_(last.bias)
    model.head[-1] = last
    model.reference_theta = torch.cat([to_output(reference[None], param)[0], torch.zeros(facing_bins)])
    if ief:
        model.head = IterativeHead(model.head[0].in_features, head_hidden, model.reference_theta, ief)
    return model


# --------------------------------------------------------------------------------------------
# Evaluation


SLICES = {
    "pose": THETA_SLICES["pose"],
    "scales": THETA_SLICES["scales"],
    "rotation": THETA_SLICES["rotation"],
    "camera": slice(102, 105),
}


def slice_losses(theta: Tensor, target: Tensor) -> dict[str, float]:
    """Mean per-sample smooth-L1 (dlearn's theta term, summed over the slice's numbers) per slice."""
    loss = F.smooth_l1_loss(theta, target, reduction="none")
    return {name: float(loss[:, s].sum(1).mean()) for name, s in SLICES.items()}


def split_output(out: Tensor, param: str) -> tuple[Tensor, Tensor]:
    """A network's (B, O + K) output -> (B, O) parameters and (B, K) heading logits (K may be 0)."""
    size = output_size(param)
    return out[:, :size], out[:, size:]


def predict_theta(model: nn.Module, images: np.ndarray, param: str, batch: int = 128) -> Tensor:
    model.eval()
    out = []
    with torch.no_grad():
        for i in range(0, len(images), batch):
            x = torch.as_tensor(images[i : i + batch]).permute(0, 3, 1, 2).float().div_(255.0)
            out.append(to_theta(split_output(model(x), param)[0], param))
    return torch.cat(out)


def errors(theta: Tensor, data: Split, poses: PoseComputer) -> dict[str, np.ndarray]:
    """Per-sample (N,) errors in mm: pa (Procrustes), bone (bone-scaled, canonical skeleton, in
    the camera's orientation: predicted vs true rotation), pose (root-relative MPJPE of the
    predicted pose and scales under the TRUE camera rotation), rot (camera rotation error, deg)."""
    params = params_from_theta(theta.double())
    joints, _ = poses.body_points(params.pose.numpy(), params.scales.numpy())
    rotation = rotation_from_9d(params.rotation).numpy()
    pred_cam = np.einsum("nij,nkj->nki", rotation, joints) * 1000.0
    gt_cam = np.einsum("nij,nkj->nki", data.rotation, data.joints) * 1000.0
    bone_sum = poses.canonical_bone_sum["joints24"] * 1000.0
    relative = np.einsum("nji,njk->nik", rotation, data.rotation)
    cos = np.clip((np.trace(relative, axis1=1, axis2=2) - 1) / 2, -1, 1)
    return {
        "pa": pa_mpjpe(joints * 1000.0, data.joints * 1000.0).mean(1),
        "bone": mpjpe_bone_scaled(pred_cam, gt_cam, poses.parents, canonical_bone_sum=bone_sum).mean(1),
        # The same rotation applied to both: distances are those of the body frame.
        "pose": mpjpe(joints * 1000.0, data.joints * 1000.0).mean(1),
        "rot": np.degrees(np.arccos(cos)),
    }


def summarise(err: dict[str, np.ndarray], modes: np.ndarray) -> dict[str, float]:
    out = {"pa": float(err["pa"].mean()), "bone": float(err["bone"].mean()), "pose": float(err["pose"].mean()),
           "rot_median": float(np.median(err["rot"]))}  # fmt: skip
    for mode in POSE_MODES:
        sel = modes == mode
        if sel.any():
            out[f"pa_{mode}"] = float(err["pa"][sel].mean())
    return out


# --------------------------------------------------------------------------------------------
# Training


@dataclass
class RunOptions:
    crops: int = 600
    size: int = 64
    backbone: str = "resnet18"
    no_maxpool: bool = False
    head_hidden: int = 256
    epochs: int = 10
    batch_size: int = 16
    lr: float = 1e-3
    schedule: str = "cosine"
    augment: bool = True
    param: str = "aa"
    modes: str = "all"
    pose_weight: float = 1.0
    joint_weight: float = 0.0
    seed: int = 0
    threads: int = 1
    max_minutes: float = 0.0
    ief: int = 0
    pool_grid: int = 1
    facing_bins: int = 0
    facing_weight: float = 1.0


def _no_points(b: int) -> FitBatch:
    """A FitBatch without annotations, so that dlearn's augment moves only images and theta."""
    z = torch.zeros
    return FitBatch(
        vertex=z(b, 1, dtype=torch.long), point=z(b, 1, 2), point_mask=z(b, 1), keypoints=z(b, 17, 2),
        keypoint_mask=z(b, 17), depth=z(b, 17), depth_mask=z(b, 17),
    )  # fmt: skip


def train_and_evaluate(cache: Path, o: RunOptions) -> dict:
    """Train one configuration on the true targets; return its row of the study."""
    torch.set_num_threads(o.threads)
    torch.manual_seed(o.seed)
    shards = math.ceil(o.crops / SHARD_TRAIN)
    train = concat([load_split(cache, k, "train", o.size) for k in range(shards)])
    train = train.take(np.arange(min(o.crops, len(train))))
    if o.modes == "no_random":
        train = train.take(np.flatnonzero(train.modes != "random"))
    test = load_split(cache, 0, "test", o.size)
    log.info("train %d crops, test %d; keypoint residual of the targets: train %.4f, test %.4f crop units",
             len(train), len(test), alignment_residual(train), alignment_residual(test))  # fmt: skip
    poses = PoseComputer(body_files(cache)[0])

    targets = torch.as_tensor(train.theta)
    reference = reference_theta(train.theta)
    model = build_model(o.backbone, o.head_hidden, o.param, reference, o.no_maxpool, o.ief, o.pool_grid, o.facing_bins)
    params = sum(p.numel() for p in model.parameters())
    optimiser = torch.optim.Adam(model.parameters(), lr=o.lr)
    # dlearn's schedule: cosine over epochs, stepped once per epoch.
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimiser,
        (lambda e: 0.5 * (1 + math.cos(math.pi * e / o.epochs)))
        if o.schedule == "cosine"
        else (lambda e: 1.0),
    )
    generator = torch.Generator().manual_seed(o.seed)
    aug = AugmentOptions() if o.augment else AugmentOptions(scale=0.0, translation=0.0, colour=0.0)
    weight = torch.ones(output_size(o.param))
    weight[: output_size(o.param) - 36] = o.pose_weight
    images_all = torch.as_tensor(train.images)
    body = BodyModel(load_body_model(body_files(cache)[0]), dtype=torch.float32)
    no_vertices = torch.zeros(0, dtype=torch.long)
    true_joints = torch.as_tensor(train.joints - train.joints[:, :1], dtype=torch.float32)
    curve = []
    start = time.perf_counter()
    steps = 0
    for epoch in range(o.epochs):
        model.train()
        order = torch.randperm(len(train), generator=generator)
        batches = [order[i : i + o.batch_size] for i in range(0, len(order), o.batch_size)]
        batches = [b for b in batches if len(b) > 1]  # batch norm
        sums = {name: 0.0 for name in SLICES}
        seen = 0
        for rows in batches:
            x = images_all[rows].permute(0, 3, 1, 2).float().div_(255.0)
            x, target, _ = augment(x, targets[rows], _no_points(len(rows)), aug, generator)
            out, facing_logits = split_output(model(x), o.param)
            loss = (
                (F.smooth_l1_loss(out, to_output(target, o.param), reduction="none") * weight).sum(1).mean()
            )
            if o.facing_bins:
                # The heading as a class: cross-entropy does not average a front and a back view
                # into a degenerate rotation as the regression of its 9 numbers does.
                sector = facing_bin(target[:, THETA_SLICES["rotation"]], o.facing_bins)
                loss = loss + o.facing_weight * F.cross_entropy(facing_logits, sector)
            if o.joint_weight:
                # 3D joint loss (metres, root-relative, body frame): the pose's effect on the body,
                # not its 69 raw numbers.
                pred = params_from_theta(to_theta(out, o.param))
                joints = body(pred.pose, pred.scales, vertex_ids=no_vertices).joints
                joints = joints - joints[:, :1]
                loss = loss + o.joint_weight * (joints - true_joints[rows]).norm(dim=-1).mean()
            optimiser.zero_grad(set_to_none=True)
            loss.backward()
            optimiser.step()
            steps += 1
            with torch.no_grad():
                for name, value in slice_losses(to_theta(out.detach(), o.param), target).items():
                    sums[name] += value * len(rows)
            seen += len(rows)
        scheduler.step()
        row = {
            "epoch": epoch + 1,
            **{k: round(v / seen, 4) for k, v in sums.items()},
            "seconds": round(time.perf_counter() - start, 1),
        }
        curve.append(row)
        log.info("epoch %d/%d: theta smooth-L1 per slice %s", epoch + 1, o.epochs, row)
        if o.max_minutes and time.perf_counter() - start > 60 * o.max_minutes:
            log.warning("time limit: stopped after epoch %d", epoch + 1)
            break
    seconds = time.perf_counter() - start

    train_eval = train.take(np.arange(min(300, len(train))))
    constant = reference[None].expand(len(test), -1)
    result = {
        "options": vars(o),
        "train_crops": len(train),
        "parameters": params,
        "epochs_done": len(curve),
        "steps": steps,
        "seconds": round(seconds, 1),
        "images_per_second": round(steps * o.batch_size / max(seconds, 1e-9), 1),
        "curve": curve,
        "test": summarise(errors(predict_theta(model, test.images, o.param), test, poses), test.modes),
        "train": summarise(
            errors(predict_theta(model, train_eval.images, o.param), train_eval, poses), train_eval.modes
        ),
        "constant_test": summarise(errors(constant, test, poses), test.modes),
        "constant_train": summarise(
            errors(reference[None].expand(len(train_eval), -1), train_eval, poses), train_eval.modes
        ),
        "test_slice_loss": slice_losses(
            predict_theta(model, test.images, o.param), torch.as_tensor(test.theta)
        ),
        "constant_test_slice_loss": slice_losses(constant, torch.as_tensor(test.theta)),
    }
    return result


def _main_data(args: argparse.Namespace) -> None:
    ensure_data(args.cache, args.shards, args.sizes, args.num_test, args.workers)


def _main_run(args: argparse.Namespace) -> None:
    options = RunOptions(**{f.name: getattr(args, f.name) for f in fields(RunOptions)})
    ensure_data(args.cache, math.ceil(options.crops / SHARD_TRAIN), [options.size], 200, 2)
    result = {"name": args.name, "command": " ".join(sys.argv[1:]), **train_and_evaluate(args.cache, options)}
    with open(args.cache / "results.jsonl", "a") as f:
        f.write(json.dumps(result) + "\n")
    print(json.dumps({k: v for k, v in result.items() if k != "curve"}, indent=1))


def _main_table(args: argparse.Namespace) -> None:
    rows = [
        json.loads(line) for line in (args.cache / "results.jsonl").read_text().splitlines() if line.strip()
    ]
    print(
        "| row | train crops | epochs (steps) | min | test PA | test bone-scaled | test pose-only | train PA | "
        "train pose-only | rot. median deg | constant test PA / bone / pose |"
    )
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for r in rows:
        t, tr, c = r["test"], r["train"], r["constant_test"]
        print(
            f"| {r['name']} | {r['train_crops']} | {r['epochs_done']} ({r['steps']}) | {r['seconds'] / 60:.1f} | "
            f"{t['pa']:.1f} | {t['bone']:.1f} | {t['pose']:.1f} | {tr['pa']:.1f} | {tr['pose']:.1f} | "
            f"{t['rot_median']:.0f} | {c['pa']:.1f} / {c['bone']:.1f} / {c['pose']:.1f} |"
        )
    print("\nTest PA-MPJPE per pose mode (mm), ConvNet / constant predictor:\n")
    print("| row | " + " | ".join(POSE_MODES) + " |")
    print("| --- |" + " --- |" * len(POSE_MODES))
    for r in rows:
        t, c = r["test"], r["constant_test"]
        cells = [f"{t['pa_' + m]:.0f} / {c['pa_' + m]:.0f}" for m in POSE_MODES]
        print(f"| {r['name'].split(':')[0]} | " + " | ".join(cells) + " |")
    print("\nTest theta smooth-L1 per slice (dlearn's theta term, summed over the slice's numbers):\n")
    print("| row | " + " | ".join(SLICES) + " |")
    print("| --- |" + " --- |" * len(SLICES))
    for r in rows[:1]:
        c = r["constant_test_slice_loss"]
        print("| constant | " + " | ".join(f"{c[k]:.3f}" for k in SLICES) + " |")
    for r in rows:
        t = r["test_slice_loss"]
        print(f"| {r['name'].split(':')[0]} | " + " | ".join(f"{t[k]:.3f}" for k in SLICES) + " |")


def main(argv: list[str] | None = None) -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("data", help="render and crop the shards (once; cached)")
    p.add_argument("--cache", type=Path, required=True)
    p.add_argument("--shards", type=int, default=1)
    p.add_argument("--sizes", type=int, nargs="+", default=[64])
    p.add_argument("--num-test", type=int, default=200)
    p.add_argument("--workers", type=int, default=2)
    p.set_defaults(func=_main_data)
    p = sub.add_parser(
        "run", help="train one configuration on the true targets; append its row to results.jsonl"
    )
    p.add_argument("--cache", type=Path, required=True)
    p.add_argument("--name", required=True, help="row label")
    for f in fields(RunOptions):
        flag = "--" + f.name.replace("_", "-")
        if f.type in ("bool", bool):
            p.add_argument(flag, type=lambda s: s.lower() in ("1", "true", "on", "yes"), default=f.default)
        else:
            p.add_argument(flag, type=type(f.default), default=f.default)
    p.set_defaults(func=_main_run)
    p = sub.add_parser("table", help="results.jsonl as a markdown table")
    p.add_argument("--cache", type=Path, required=True)
    p.set_defaults(func=_main_table)
    args = parser.parse_args(argv)
    args.func(args)


if __name__ == "__main__":
    main()
