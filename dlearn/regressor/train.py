"""The `regress` and `predict` stages: train the ResNet regressor on round k's registrations
(paper section 5, eqs. 5-6), then predict theta for every crop of a split.

Loss per sample (eq. 5):  alpha smoothL1(theta - theta_registration) + beta L_dense + gamma L_KP
(+ delta L_joints, not in the paper), with the smooth-L1 summed over the 105 numbers of theta,
L_dense, L_KP the registration's own terms (:func:`dlearn.registration.fit.data_terms`)
evaluated on the predicted theta, and L_joints the mean distance (metres) between the
root-relative 3D joints of the predicted and the registered body. Batch losses are means over
samples.

Samples whose registration status is neither ``ok`` nor ``kept_previous`` (no correspondences,
non-finite) are excluded and counted. Each epoch ends with a checkpoint (network, optimiser,
scheduler, epoch, RNG state, curve) written atomically outside the declared output; a rerun
resumes after the last finished epoch and gives the same weights as an uninterrupted run.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from dlearn.body.camera import proper_rotation_from_9d, rotation_from_9d
from dlearn.body.io import load_body_model
from dlearn.body.keypoints import CocoKeypoints, coco_keypoint_model
from dlearn.body.model import BodyModel
from dlearn.checkpoint import (
    REGRESSOR_FORMAT,
    CheckpointError,  # noqa: F401 (re-exported: model files raise it)
    atomic_save,
    inputs_fingerprint,
    load_tagged,
    resume_tagged,
)
from dlearn.data.store import open_store, read_aligned, read_sample_ids, write_store
from dlearn.device import resolve_device
from dlearn.outputs import claim_checkpoint_dir, release_checkpoint_dir
from dlearn.params import (
    PARAM_KEYS,
    STATUS,
    THETA_SLICES,
    params_from_theta,
    status_counts,
    theta_from_arrays,
)
from dlearn.plots import pyplot, save_figure
from dlearn.registration.data import load_fit_data, samples_without_depth, to_fit_batch
from dlearn.registration.fit import UPRIGHT_FACING, FitBatch, data_terms, evaluated_vertices
from dlearn.regressor.data import (
    RegressorBatches,
    augment,
    crop_rows,
    epoch_batches,
    images_to_tensor,
)
from dlearn.regressor.model import (
    Regressor,
    RegressorSpec,
    load_backbone_weights,
)
from dlearn.regressor.options import RegressorLossWeights, RegressorOptions

log = logging.getLogger(__name__)

MODEL_VERSION = 1
CHECKPOINT_NAME = "regressor_last.pt"
#: Registration statuses whose fits are training targets.
USABLE_STATUS = (STATUS["ok"], STATUS["kept_previous"])


def regressor_loss(
    body: BodyModel,
    keypoints: CocoKeypoints,
    theta: Tensor,
    target: Tensor,
    batch: FitBatch,
    weights: RegressorLossWeights,
) -> tuple[Tensor, dict[str, Tensor]]:
    """Paper eq. 5 for a batch, plus the 3D joint term: (scalar mean total, per-sample terms
    theta, dense, kp and, when ``weights.joints`` is not 0, joints (B,) each).

    With a joints weight of 0 (the paper's) the targets' body is not posed: the joint term is
    neither computed nor returned, and the total is the same.
    """
    predicted = params_from_theta(theta)
    terms, pred = data_terms(body, predicted, batch, evaluated_vertices(body, batch), keypoints)
    terms = {"theta": F.smooth_l1_loss(theta, target, reduction="none").sum(1), **terms}
    total = weights.theta * terms["theta"] + weights.dense * terms["dense"] + weights.kp * terms["kp"]
    if weights.joints != 0 or weights.camera_joints != 0:
        with torch.no_grad():
            goal = params_from_theta(target)
            no_vertices = torch.zeros(0, dtype=torch.long, device=theta.device)
            target_joints = body(goal.pose, goal.scales, vertex_ids=no_vertices).joints
        pred_relative = pred.joints - pred.joints[:, :1]
        target_relative = target_joints - target_joints[:, :1]
        if weights.joints != 0:
            terms["joints"] = (pred_relative - target_relative).norm(dim=-1).mean(-1)
            total = total + weights.joints * terms["joints"]
        if weights.camera_joints != 0:
            # The prediction's rotation as evaluated (a proper rotation); the registration's is one (L_det).
            pred_rotation = proper_rotation_from_9d(predicted.rotation)
            target_rotation = rotation_from_9d(goal.rotation)
            turned = pred_relative @ pred_rotation.transpose(-1, -2) - target_relative @ target_rotation.transpose(-1, -2)
            terms["camera_joints"] = turned.norm(dim=-1).mean(-1)
            total = total + weights.camera_joints * terms["camera_joints"]
    return total.mean(), terms


def reference_theta(targets: np.ndarray) -> Tensor:
    """Mean training theta, except the rotation: upright and facing the camera (a mean of front
    and back views would be a degenerate matrix)."""
    ref = torch.as_tensor(targets.mean(axis=0), dtype=torch.float32)
    ref[THETA_SLICES["rotation"]] = torch.as_tensor(UPRIGHT_FACING.reshape(9), dtype=torch.float32)
    return ref


def _load(path: Path, what: str) -> dict[str, Any]:
    """A regressor file (model or checkpoint); :class:`~dlearn.checkpoint.CheckpointError` names it otherwise."""
    return load_tagged(path, REGRESSOR_FORMAT, what)


def load_regressor(path: Path, device: torch.device) -> tuple[Regressor, dict[str, Any]]:
    """The trained network of a ``model.pt`` (eval mode) and the file's contents."""
    saved = _load(Path(path), "model")
    model = Regressor(RegressorSpec(**saved["spec"]))
    model.load_state_dict(saved["state_dict"])
    return model.to(device).eval(), saved


def _schedule(options: RegressorOptions) -> Any:
    if options.lr_schedule == "constant":
        return lambda epoch: 1.0
    if options.lr_schedule == "cosine":
        return lambda epoch: 0.5 * (1 + math.cos(math.pi * epoch / max(options.epochs, 1)))
    raise ValueError(f"lr_schedule must be constant or cosine, got {options.lr_schedule!r}")


def _loader(dataset: RegressorBatches, batches: list[np.ndarray], workers: int, pin: bool) -> torch.utils.data.DataLoader:
    # batch_size=None: each sampler item is a whole batch of positions (see RegressorBatches).
    return torch.utils.data.DataLoader(
        dataset, batch_size=None, sampler=batches, num_workers=workers, pin_memory=pin,
        prefetch_factor=4 if workers > 0 else None,
    )  # fmt: skip


@dataclass
class _TrainingData:
    """What a regressor run trains on: the usable registrations of the train split."""

    dataset: RegressorBatches
    image_rows: np.ndarray  # crop store rows of the training samples
    targets: np.ndarray  # (N, 105) theta of their registrations
    chunk_rows: int  # crops per store chunk (batches mix few chunks)
    samples: int
    excluded: dict[str, int]  # registration status -> samples left out
    without_depth: int


def _load_training_data(
    crops: Path, correspondences: Path, registration: Path, options: RegressorOptions, depths: Path | None
) -> _TrainingData:
    """The samples with a usable registration (``ok`` or ``kept_previous``), their crops and targets."""
    fit_data = load_fit_data(correspondences, crops, depths if options.use_depth else None)
    reg = read_aligned(
        open_store(registration, stage="merge_registration", required=[*PARAM_KEYS, "status"]),
        fit_data.ids,
        (*PARAM_KEYS, "status"),
        registration,
    )
    usable = np.isin(reg["status"], USABLE_STATUS)
    excluded = {name: n for name, n in status_counts(reg["status"][~usable]).items() if n}
    if not usable.any():
        raise ValueError(f"{registration}: no sample has a usable registration ({excluded})")
    log.info("%d samples to train on, excluded by registration status: %s", int(usable.sum()), excluded or "none")
    fit_rows = np.flatnonzero(usable)
    without_depth = samples_without_depth(fit_data, fit_rows)
    if options.use_depth and depths is not None and without_depth:
        log.info("%d of them without a depth term in L_KP (%s marks them invalid)", without_depth, depths)
    image_rows = crop_rows(crops, fit_data.ids)[fit_rows]
    targets = theta_from_arrays(reg)[fit_rows]
    num_points = int(min(max(fit_data.counts(fit_rows).max(), 1), options.max_points))
    dataset = RegressorBatches(
        crops, image_rows, targets, fit_data, fit_rows, num_points, seed=options.seed,
        cache_chunks=2 * options.shuffle_chunks,
    )
    chunk_rows = int(open_store(crops, stage="crops")["image"].chunks[0])
    return _TrainingData(dataset, image_rows, targets, chunk_rows, int(usable.sum()), excluded, without_depth)


@dataclass
class _Run:
    """A training run's network, optimiser state, random generator and progress."""

    spec: RegressorSpec
    model: Regressor
    optimiser: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LambdaLR
    scaler: torch.amp.GradScaler
    generator: torch.Generator
    device: torch.device
    use_amp: bool
    channels_last: bool
    epoch: int = 0
    curve: list[dict[str, float]] = field(default_factory=list)

    def checkpoint(self, fingerprint: str) -> dict[str, Any]:
        """The state :func:`_resume` restores (see :func:`dlearn.checkpoint.resume_tagged`)."""
        return {
            "format": REGRESSOR_FORMAT,
            "version": MODEL_VERSION,
            "fingerprint": fingerprint,
            "epoch": self.epoch,
            "curve": self.curve,
            "state_dict": self.model.state_dict(),
            "optimiser": self.optimiser.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "scaler": self.scaler.state_dict(),
            "rng": self.generator.get_state(),
        }


def _build_run(
    options: RegressorOptions, device: torch.device, targets: np.ndarray, init_model: Path | None
) -> _Run:
    """The network (warm-started from ``init_model``, else around the targets' reference theta,
    with ``options.pretrained`` backbone weights), its optimiser, schedule and generator."""
    cuda = device.type == "cuda"
    spec = RegressorSpec(options.backbone, options.head_hidden)
    if init_model is not None:
        previous = _load(Path(init_model), "model")
        if RegressorSpec(**previous["spec"]) != spec:
            raise ValueError(f"{init_model}: a {previous['spec']} network cannot warm-start a {asdict(spec)} one")
        model = Regressor(spec)
        model.load_state_dict(previous["state_dict"])
        log.info("warm start from %s", init_model)
    else:
        model = Regressor(spec, reference_theta(targets))
        if options.pretrained != "none":
            load_backbone_weights(model, Path(options.pretrained))
            log.info("backbone weights from %s", options.pretrained)
    channels_last = cuda and options.channels_last
    model = model.to(device, memory_format=torch.channels_last if channels_last else torch.contiguous_format)
    optimiser = torch.optim.Adam(model.parameters(), lr=options.lr, weight_decay=options.weight_decay)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimiser, _schedule(options))
    use_amp = cuda and options.amp
    scaler = torch.amp.GradScaler("cuda", enabled=use_amp)
    generator = torch.Generator().manual_seed(options.seed)
    return _Run(spec, model, optimiser, scheduler, scaler, generator, device, use_amp, channels_last)


def _resume(run: _Run, ckpt_path: Path, fingerprint: str) -> None:
    """Continue ``run`` after the last epoch saved at ``ckpt_path``, when that is a checkpoint of
    the same options and inputs (:func:`dlearn.checkpoint.resume_tagged`)."""
    ckpt = resume_tagged(ckpt_path, REGRESSOR_FORMAT, fingerprint)
    if ckpt is None:
        return
    run.model.load_state_dict(ckpt["state_dict"])
    run.optimiser.load_state_dict(ckpt["optimiser"])
    run.scheduler.load_state_dict(ckpt["scheduler"])
    run.scaler.load_state_dict(ckpt["scaler"])
    run.generator.set_state(ckpt["rng"])
    run.epoch, run.curve = int(ckpt["epoch"]), list(ckpt["curve"])
    log.info("resuming after epoch %d from %s", run.epoch, ckpt_path)


def _train_epoch(
    run: _Run,
    data: _TrainingData,
    options: RegressorOptions,
    body: BodyModel,
    keypoints: CocoKeypoints,
    vertex_symmetry: Tensor | None,
) -> dict[str, float]:
    """One pass over the training samples; appends its row (mean losses, lr, throughput) to the
    run's curve and returns it."""
    model, device, cuda = run.model, run.device, run.device.type == "cuda"
    model.train()
    batches = epoch_batches(data.image_rows, data.chunk_rows, options.batch_size, options.shuffle_chunks, run.generator)
    data.dataset.set_epoch(run.epoch)
    # The joint terms are logged only where they are trained (regressor_loss skips them at weight 0).
    trained = [name for name in ("joints", "camera_joints") if getattr(options.weights, name)]
    sums = dict.fromkeys(("total", "theta", "dense", "kp", *trained), 0.0)
    seen, wait, t_epoch = 0, 0.0, time.perf_counter()
    t_data = time.perf_counter()
    for item in _loader(data.dataset, batches, options.workers, cuda):
        wait += time.perf_counter() - t_data
        images = images_to_tensor(item["image"], device, run.channels_last)
        theta_target = item["theta"].to(device, non_blocking=True)
        batch = to_fit_batch(item, device, torch.float32)
        images, theta_target, batch = augment(
            images, theta_target, batch, options.augment, run.generator, vertex_symmetry
        )
        with torch.autocast(device.type, dtype=torch.float16, enabled=run.use_amp):
            theta = model(images)
        loss, terms = regressor_loss(body, keypoints, theta.float(), theta_target, batch, options.weights)
        run.optimiser.zero_grad(set_to_none=True)
        run.scaler.scale(loss).backward()
        run.scaler.step(run.optimiser)
        run.scaler.update()
        b = images.shape[0]
        seen += b
        sums["total"] += float(loss.detach()) * b
        for name, value in terms.items():
            sums[name] += float(value.detach().sum())
        t_data = time.perf_counter()
    run.scheduler.step()
    run.epoch += 1
    seconds = time.perf_counter() - t_epoch
    row = {
        "epoch": run.epoch,
        **{k: v / max(seen, 1) for k, v in sums.items()},
        "lr": run.optimiser.param_groups[0]["lr"],
        "images_per_second": seen / max(seconds, 1e-9),
        "data_wait_fraction": wait / max(seconds, 1e-9),
    }
    run.curve.append(row)
    joints = "".join(f", {name} {row[name]:.4f} m" for name in trained)
    log.info(
        "epoch %d/%d: loss %.4f (theta %.4f, dense %.5f, kp %.4f%s), %.1f images/s, %.0f%% waiting for data",
        run.epoch, options.epochs, row["total"], row["theta"], row["dense"], row["kp"], joints,
        row["images_per_second"], 100 * row["data_wait_fraction"],
    )  # fmt: skip
    return row


def _save_model(
    run: _Run, data: _TrainingData, options: RegressorOptions, out_model: Path, init_model: Path | None
) -> None:
    """The trained network with its spec, options and curve (``model.pt``)."""
    atomic_save(
        {
            "format": REGRESSOR_FORMAT,
            "version": MODEL_VERSION,
            "spec": asdict(run.spec),
            "options": asdict(options),
            "state_dict": {k: v.cpu() for k, v in run.model.state_dict().items()},
            "curve": run.curve,
            "samples": data.samples,
            "excluded": data.excluded,
            "warm_start": str(init_model) if init_model is not None else None,
        },
        Path(out_model),
    )


def train_regressor(
    crops: Path,
    correspondences: Path,
    registration: Path,
    body_model: Path,
    out_model: Path,
    checkpoint_dir: Path,
    options: RegressorOptions,
    *,
    depths: Path | None = None,
    init_model: Path | None = None,
    keypoint_regressor: Path | None = None,
) -> dict[str, Any]:
    """Train the regressor on a round's registrations; write ``out_model``.

    Loading (:func:`_load_training_data`), building (:func:`_build_run`), resuming
    (:func:`_resume`), one epoch at a time (:func:`_train_epoch`, a checkpoint after each) and
    saving (:func:`_save_model`).

    Args:
        crops: ``crops_train.zarr``.
        correspondences: ``correspondences_train.zarr`` (L_dense targets).
        registration: the round's ``registration.zarr`` (theta targets, status).
        body_model: the SMPL-format model file.
        out_model: the trained network, its options and training curve.
        checkpoint_dir: per-epoch checkpoints, kept until ``out_model`` is written.
        options: :class:`RegressorOptions`.
        depths: cGAN ``depths_train.zarr`` (L_KP's depth term; None: 2D only).
        init_model: warm start from this ``model.pt`` (the previous round's).
        keypoint_regressor: a COCO keypoint regressor file for L_KP (see
            :mod:`dlearn.body.keypoints`); None: the model file's, else the fallback.

    Returns:
        A summary: samples, excluded counts, seconds, images/s, final losses.
    """
    torch.manual_seed(options.seed)
    device = resolve_device(options.device)
    if device.type == "cpu" and options.workers > 0:
        # The loader's worker processes take cores from the compute threads (OMP_NUM_THREADS,
        # the rule's threads): oversubscribed CPU threads slow small convolutions up to 8x.
        torch.set_num_threads(max(1, torch.get_num_threads() - options.workers))
    body_data = load_body_model(body_model)
    if options.augment.flip and body_data.vertex_symmetry is None:
        raise ValueError(
            f"{body_model}: regressor.augment.flip needs the body model's vertex_symmetry (the left/right "
            "mirror of each vertex), which this file does not have; set regressor.augment.flip: false"
        )
    data = _load_training_data(crops, correspondences, registration, options, depths)
    run = _build_run(options, device, data.targets, init_model)

    body = BodyModel(body_data, dtype=torch.float32).to(device)
    keypoints = coco_keypoint_model(body, body_data, keypoint_regressor)
    symmetry = None if body_data.vertex_symmetry is None else torch.as_tensor(body_data.vertex_symmetry, device=device)

    checkpoint_dir = claim_checkpoint_dir(Path(checkpoint_dir))  # a user's folder is an error
    ckpt_path = checkpoint_dir / CHECKPOINT_NAME
    fingerprint = inputs_fingerprint(
        asdict(options), [crops, correspondences, registration, depths, init_model, body_model, keypoint_regressor]
    )
    _resume(run, ckpt_path, fingerprint)

    start = time.perf_counter()
    while run.epoch < options.epochs:
        _train_epoch(run, data, options, body, keypoints, symmetry)
        atomic_save(run.checkpoint(fingerprint), ckpt_path)
    seconds = time.perf_counter() - start
    _save_model(run, data, options, out_model, init_model)
    release_checkpoint_dir(checkpoint_dir)
    summary = {
        "samples": data.samples,
        "excluded": data.excluded,
        "samples_without_depth": data.without_depth,
        "seconds": round(seconds, 2),
        "curve": run.curve,
    }
    log.info("%s: trained on %d samples in %.1f s", out_model, summary["samples"], seconds)
    return summary


def predict(
    model_path: Path,
    crops: Path,
    body_model: Path,
    out_path: Path,
    *,
    device: str = "auto",
    batch_size: int = 64,
    workers: int = 0,
    keypoint_regressor: Path | None = None,
) -> dict[str, Any]:
    """theta for every crop of a split, written in the registration store's layout.

    Store (stage ``predict``), aligned with the crops store's sample ids: ``pose`` (N, 23, 3),
    ``scales`` (N, 24), ``rotation`` (N, 3, 3) (Gram-Schmidt with c3 = c1 x c2: always a rotation;
    the attribute ``reflections_corrected`` counts predictions whose plain Gram-Schmidt was a
    reflection), ``cam_scale`` (N,),
    ``cam_translation`` (N, 2) normalised crop coordinates, ``joints`` (N, 24, 3) and
    ``keypoints`` (N, 17, 3) (COCO keypoints of ``keypoint_regressor``'s definition, see
    :mod:`dlearn.body.keypoints`) body frame, metres, ``status`` (N,) (all ``ok``).
    """
    dev = resolve_device(device)
    model, saved = load_regressor(model_path, dev)
    ids = read_sample_ids(open_store(crops, stage="crops", required=["image"]))
    rows = np.arange(len(ids))
    dataset = RegressorBatches(crops, rows)
    batches = [rows[i : i + batch_size] for i in range(0, len(rows), batch_size)]
    body_data = load_body_model(body_model)
    body = BodyModel(body_data, dtype=torch.float32).to(dev)
    keypoints = coco_keypoint_model(body, body_data, keypoint_regressor)
    no_vertices = torch.zeros(0, dtype=torch.long, device=dev)
    out: dict[str, list[np.ndarray]] = {k: [] for k in (*PARAM_KEYS, "joints", "keypoints")}
    reflections = 0
    start = time.perf_counter()
    with torch.no_grad():
        for item in _loader(dataset, batches, workers, dev.type == "cuda"):
            params = params_from_theta(model(images_to_tensor(item["image"], dev, channels_last=False)))
            # Keypoints come from the skinning transforms: no vertex needs skinning.
            posed = body(params.pose, params.scales, vertex_ids=no_vertices)
            out["pose"].append(params.pose.cpu().numpy())
            out["scales"].append(params.scales.cpu().numpy())
            # No L_det in the regressor's loss: its 9 numbers can be a reflection (det -1).
            reflections += int((torch.linalg.det(rotation_from_9d(params.rotation)) < 0).sum())
            out["rotation"].append(proper_rotation_from_9d(params.rotation).cpu().numpy())
            out["cam_scale"].append(params.cam_scale.cpu().numpy())
            out["cam_translation"].append(params.translation.cpu().numpy())
            out["joints"].append(posed.joints.cpu().numpy())
            out["keypoints"].append(keypoints(posed, params.pose).cpu().numpy())
    arrays = {
        k: np.concatenate(v) if v else np.zeros((0, *shape), np.float32)
        for (k, v), shape in zip(out.items(), [(23, 3), (24,), (3, 3), (), (2,), (24, 3), (17, 3)])
    }
    arrays["status"] = np.full(len(ids), STATUS["ok"], np.uint8)
    seconds = time.perf_counter() - start
    write_store(
        out_path,
        arrays,
        stage="predict",
        sample_id=ids,
        options={"model": str(model_path), "spec": saved["spec"]},
        attrs={"status_codes": STATUS, "frame": "camera in normalised crop coordinates; joints in the body frame",
               "reflections_corrected": reflections, "keypoint_definition": keypoints.definition.source},
    )
    summary = {"samples": len(ids), "seconds": round(seconds, 2), "images_per_second": round(len(ids) / max(seconds, 1e-9), 1),
               "reflections_corrected": reflections}  # fmt: skip
    log.info("%s: %s", out_path, summary)
    return summary


def plot_regressor_curve(curve: list[dict[str, float]], png_path: Path) -> Path:
    """Per-epoch mean loss terms of a regressor's training (log scale) to ``png_path``."""
    plt = pyplot()

    epochs = [row["epoch"] for row in curve]
    fig, ax = plt.subplots(figsize=(5, 3.2), dpi=120)
    for key, label in (("total", "total (eq. 5)"), ("theta", "smooth-L1 to registration"), ("dense", "L_dense"), ("kp", "L_KP"),
                       ("joints", "3D joints (m)")):  # fmt: skip
        # Models of older versions, and those trained with a joints weight of 0, have no joints term.
        if all(key in row for row in curve):
            ax.plot(epochs, [max(row[key], 1e-12) for row in curve], label=label)
    ax.set_yscale("log")
    ax.set_xlabel("epoch")
    ax.set_ylabel("mean loss per sample")
    ax.legend(fontsize=7)
    return save_figure(fig, png_path)

