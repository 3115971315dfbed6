"""The `cgan_train` and `cgan_predict` stages: train Kudo et al.'s cGAN on 2D key points, predict depths.

Training reads only the 2D key points of a crops store (never 3D ground truth). Each epoch
ends with a checkpoint (networks, optimisers, epoch, RNG state, curve) written atomically into
``checkpoint_dir``, outside the declared output; a rerun resumes after the last finished epoch.
The final generator and the options it was trained with go to ``out_model``.

Prediction writes, per sample of a crops store, 17 root-relative depths in normalised crop
units (see :data:`DEPTH_FRAME`).
"""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import logging
import math
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor
from tqdm import tqdm

from dlearn.body.keypoints import COCO_FLIP, ROOT_KEYPOINTS
from dlearn.cgan.model import (
    CHIRALITY_KEYPOINTS,
    NUM_KEYPOINTS,
    Discriminator,
    Generator,
    chirality,
    fake_views,
    lift,
    normalise_2d,
)
from dlearn.cgan.options import CganOptions
from dlearn.checkpoint import CGAN_FORMAT, CheckpointError, atomic_save, load_tagged, resume_tagged
from dlearn.data.store import open_store, read_sample_ids, write_store
from dlearn.device import resolve_device
from dlearn.errors import InputError

log = logging.getLogger(__name__)

MODEL_VERSION = 1
CHECKPOINT_NAME = "cgan_last.pt"

DEPTH_FRAME = (
    "depth: (N, 17) per COCO key point, normalised crop units (same scale as the crops store's 2D "
    "key points: square box side/2 = 1), root-relative (root = mid-hip, z_i - z_root), camera "
    "convention: z points away from the viewer (smaller = closer), x right, y down. "
    "valid: key point labelled (v > 0) in the crops store and the sample usable: inside the cGAN's "
    "training criteria (both hips and min_keypoints labelled, see trainable()) with finite depths; "
    "every valid of any other sample is False and its depths are 0 (consumers mask its depth term). "
    "scale: RMS distance (crop units) of the labelled 2D key points from the root, the "
    "normalisation the cGAN uses (depth / scale = the network's normalised depth). "
    "root: (N, 2) crop coordinates of the 2D root."
)


class TrainingDivergedError(InputError):
    """The cGAN's loss went non-finite; names the epoch and step and the likely causes."""


# ---------------------------------------------------------------------------------------------
# Data


def read_keypoints(crops_path: Path) -> tuple[list[str], np.ndarray]:
    """Sample ids and (N, 17, 3) key points (x, y normalised crop coordinates, visibility v)."""
    group = open_store(crops_path, stage="crops", required=("keypoints",))
    keypoints = np.asarray(group["keypoints"][...], dtype=np.float32)
    if keypoints.ndim != 3 or keypoints.shape[1:] != (NUM_KEYPOINTS, 3):
        raise ValueError(f"{crops_path}: keypoints have shape {keypoints.shape}, expected (N, 17, 3)")
    ids = read_sample_ids(group)
    # A NaN key point would turn the whole batch's loss, and so every weight, into NaN.
    bad = ~np.isfinite(keypoints).all(axis=(1, 2))
    if bad.any():
        first = [ids[i] for i in np.flatnonzero(bad)[:5]]
        raise InputError(
            f"{crops_path}: keypoints of {int(bad.sum())} sample(s) are not finite "
            f"(e.g. {', '.join(first)}): rebuild the crops store"
        )
    return ids, keypoints


def trainable(keypoints: np.ndarray, min_keypoints: int) -> np.ndarray:
    """(N,) bool: both hips labelled and at least ``min_keypoints`` labelled key points.

    The cGAN's domain, shared by training (the poses it learns from) and prediction (the samples
    whose depths are valid): without both hips the generator centres its depths on its own
    guess of the root, while the registration subtracts the body's real mid-hip, so such depths
    would pull the fit by an unknown offset.

    Args:
        keypoints: (N, 17, 3) x, y and visibility v (labelled: v > 0).
    """
    labelled = keypoints[..., 2] > 0
    return labelled[:, list(ROOT_KEYPOINTS)].all(1) & (labelled.sum(1) >= min_keypoints)


def augment(xy: Tensor, mask: Tensor, options: CganOptions, gen: torch.Generator) -> tuple[Tensor, Tensor]:
    """Random horizontal flip and in-plane rotation of 2D poses (random numbers from ``gen``, on CPU).

    Args:
        xy: (B, 17, 2) key points; mask: (B, 17) bool.

    Returns:
        The augmented (B, 17, 2) key points and (B, 17) mask.
    """
    batch = xy.shape[0]
    if options.flip:
        flip = (torch.rand(batch, generator=gen) < 0.5).to(xy.device)
        flipped = xy[:, COCO_FLIP] * torch.tensor([-1.0, 1.0], device=xy.device)
        xy = torch.where(flip[:, None, None], flipped, xy)
        mask = torch.where(flip[:, None], mask[:, COCO_FLIP], mask)
    if options.jitter_deg > 0:
        angle = (torch.rand(batch, generator=gen) * 2 - 1) * math.radians(options.jitter_deg)
        c, s = torch.cos(angle).to(xy), torch.sin(angle).to(xy)
        rot = torch.stack([torch.stack([c, -s], -1), torch.stack([s, c], -1)], -2)  # (B, 2, 2)
        xy = xy @ rot.transpose(1, 2)  # the normalisation re-centres, so rotating about 0 is enough
    return xy, mask


# ---------------------------------------------------------------------------------------------
# Training


@dataclass
class CganState:
    """Everything a checkpoint holds besides the options."""

    generator: Generator
    discriminator: Discriminator
    ema: Generator
    opt_g: torch.optim.Adam
    opt_d: torch.optim.Adam
    rng: torch.Generator
    epoch: int = 0
    step: int = 0
    history: list[dict[str, float]] = dataclasses.field(default_factory=list)


def build_state(options: CganOptions, device: torch.device) -> CganState:
    """Fresh networks (seeded, initialised on CPU so CPU and GPU runs start alike) and optimisers."""
    torch.manual_seed(options.seed)
    generator = Generator(options.hidden_size, options.num_blocks, options.symmetric).to(device)
    discriminator = Discriminator(options.hidden_size, options.num_blocks).to(device)
    betas = (options.beta1, options.beta2)
    rng = torch.Generator().manual_seed(options.seed)
    ema = copy.deepcopy(generator).requires_grad_(False)
    return CganState(
        generator=generator,
        discriminator=discriminator,
        ema=ema,
        # foreach: one kernel per operation over all tensors (a small MLP's step is call-bound).
        opt_g=torch.optim.Adam(generator.parameters(), lr=options.lr, betas=betas, foreach=True),
        opt_d=torch.optim.Adam(discriminator.parameters(), lr=options.lr, betas=betas, foreach=True),
        rng=rng,
    )


def generator_loss(
    state: CganState,
    pose: Tensor,
    mask: Tensor,
    angle: Tensor,
    chirality_weight: float,
    noise: float = 0.0,
    depth: Tensor | None = None,
) -> tuple[Tensor, Tensor, Tensor]:
    """Non-saturating generator loss softplus(-D(fake)) plus the chirality hinge.

    Args:
        pose: (B, 17, 2) normalised 2D poses; mask: (B, 17); angle: (B,) rotations.
        depth: (B, 17) the generator's depths of ``pose`` (with their graph) when already
            computed; None: computed here.

    Returns:
        total loss, adversarial part, and the (B, 17, 2) fakes the discriminator saw (noise-free).
    """
    if depth is None:
        depth = state.generator(pose, mask)
    fakes = fake_views(pose, depth, mask, angle)
    adversarial = F.softplus(-state.discriminator(_noisy(fakes, noise, state.rng), mask)).mean()
    total = adversarial
    if chirality_weight > 0:
        has_head = mask[:, list(CHIRALITY_KEYPOINTS)].all(1).to(pose.dtype)
        hinge = F.relu(-chirality(lift(pose, depth))) * has_head
        total = total + chirality_weight * hinge.sum() / has_head.sum().clamp_min(1.0)
    return total, adversarial, fakes


def discriminator_loss(
    state: CganState, real: Tensor, real_mask: Tensor, fakes: Tensor, fake_mask: Tensor, noise: float = 0.0
) -> Tensor:
    """softplus(-D(real)) + softplus(D(fake)), the fakes detached from the generator."""
    real, fakes = _noisy(real, noise, state.rng), _noisy(fakes.detach(), noise, state.rng)
    # One discriminator pass over both halves (no batch statistics couple them).
    logits = state.discriminator(torch.cat([real, fakes]), torch.cat([real_mask, fake_mask]))
    logit_real, logit_fake = logits.split(len(real))
    return F.softplus(-logit_real).mean() + F.softplus(logit_fake).mean()


def _noisy(pose: Tensor, std: float, gen: torch.Generator) -> Tensor:
    """``pose`` plus Gaussian noise of ``std`` (drawn from ``gen`` on CPU); unchanged for std 0."""
    if std <= 0:
        return pose
    return pose + std * torch.randn(pose.shape, generator=gen).to(pose)


@torch.no_grad()
def update_ema(ema: Generator, generator: Generator, decay: float) -> None:
    """ema <- decay * ema + (1 - decay) * generator, parameter by parameter (decay 0: a copy)."""
    torch._foreach_lerp_(list(ema.parameters()), list(generator.parameters()), 1.0 - decay)


def _sample_batch(
    xy: Tensor, mask: Tensor, options: CganOptions, gen: torch.Generator
) -> tuple[Tensor, Tensor]:
    """A random augmented, normalised batch: (B, 17, 2) pose, (B, 17) mask."""
    index = torch.randint(len(xy), (options.batch_size,), generator=gen).to(xy.device)
    bxy, bmask = augment(xy[index], mask[index], options, gen)
    return normalise_2d(bxy, bmask)[0], bmask


def train_step(state: CganState, xy: Tensor, mask: Tensor, options: CganOptions) -> dict[str, float]:
    """One discriminator and one generator update on random batches of the 2D poses ``xy``/``mask``."""
    device = xy.device
    pose, pmask = _sample_batch(xy, mask, options, state.rng)
    real, rmask = _sample_batch(xy, mask, options, state.rng)
    angle = (
        (torch.rand(options.batch_size, generator=state.rng) * 2 - 1) * math.radians(options.rotation_deg)
    ).to(device)

    # One generator forward serves both updates: the discriminator's step leaves the generator's
    # weights (and so its depths) unchanged; only the discriminator's verdict is recomputed.
    # Bit-identical to a second forward (same losses and weights after 300 steps).
    depth = state.generator(pose, pmask)
    fakes = fake_views(pose, depth.detach(), pmask, angle)
    state.opt_d.zero_grad(set_to_none=True)
    loss_d = discriminator_loss(state, real, rmask, fakes, pmask, options.input_noise)
    loss_d.backward()
    state.opt_d.step()

    state.opt_g.zero_grad(set_to_none=True)
    # The discriminator just changed: recompute the generator's loss against the new one. Its
    # weights are frozen meanwhile: their gradients would be thrown away by its next zero_grad.
    state.discriminator.requires_grad_(False)
    total, adversarial, _ = generator_loss(
        state, pose, pmask, angle, options.chirality_weight, options.input_noise, depth
    )
    total.backward()
    state.discriminator.requires_grad_(True)
    state.opt_g.step()
    # Warm-up as in TensorFlow's ExponentialMovingAverage: short runs are not dominated by
    # the initial weights.
    state.step += 1
    update_ema(state.ema, state.generator, min(options.ema_decay, (1 + state.step) / (10 + state.step)))
    return {"loss_d": loss_d.item(), "loss_g": adversarial.item(), "loss_prior": (total - adversarial).item()}


def _check_finite(
    losses: dict[str, float], epoch: int, step: int, crops_path: Path, options: CganOptions
) -> None:
    """Stop before a NaN network is checkpointed or saved (the last checkpoint stays as it was).

    Raises:
        TrainingDivergedError: naming the epoch, the step, the losses and what to check.
    """
    if all(math.isfinite(v) for v in losses.values()):
        return
    raise TrainingDivergedError(
        f"cGAN training diverged at epoch {epoch}, step {step}: losses {losses}; no model written. "
        f"Check {crops_path}'s key points for outliers (huge coordinates) or lower cgan.lr ({options.lr})"
    )


def _fingerprint(options: CganOptions, keypoints: np.ndarray) -> str:
    """Hash of the options that shape training and of the training data: a checkpoint of another
    configuration or data set is not resumed. ``epochs`` is left out, so that more epochs extend a run."""
    opts = {k: v for k, v in asdict(options).items() if k not in ("epochs", "device")}
    h = hashlib.sha256(repr(sorted(opts.items())).encode())
    h.update(np.ascontiguousarray(keypoints).tobytes())
    return h.hexdigest()[:16]


def _load(path: Path, what: str) -> dict[str, Any]:
    return load_tagged(path, CGAN_FORMAT, what)


def save_checkpoint(path: Path, state: CganState, options: CganOptions, fingerprint: str) -> None:
    """Write the training state atomically (temporary sibling, then rename)."""
    atomic_save(
        {
            "format": CGAN_FORMAT,
            "version": MODEL_VERSION,
            "fingerprint": fingerprint,
            "options": asdict(options),
            "epoch": state.epoch,
            "step": state.step,
            "history": state.history,
            "generator": state.generator.state_dict(),
            "discriminator": state.discriminator.state_dict(),
            "ema": state.ema.state_dict(),
            "opt_g": state.opt_g.state_dict(),
            "opt_d": state.opt_d.state_dict(),
            "rng": state.rng.get_state(),
        },
        path,
    )


def load_checkpoint(path: Path, state: CganState, fingerprint: str) -> bool:
    """Restore ``state`` from ``path``; False (state untouched) when it belongs to another run.

    Raises:
        CheckpointError: the file is unreadable or not a cGAN checkpoint (naming it).
    """
    ckpt = resume_tagged(path, CGAN_FORMAT, fingerprint)
    if ckpt is None:
        return False
    try:
        state.generator.load_state_dict(ckpt["generator"])
        state.discriminator.load_state_dict(ckpt["discriminator"])
        state.ema.load_state_dict(ckpt["ema"])
        state.opt_g.load_state_dict(ckpt["opt_g"])
        state.opt_d.load_state_dict(ckpt["opt_d"])
        state.rng.set_state(ckpt["rng"])
        state.epoch = int(ckpt["epoch"])
        state.step = int(ckpt["step"])
        state.history = list(ckpt["history"])
    except (KeyError, RuntimeError, ValueError, TypeError) as exc:
        raise CheckpointError(f"{path}: corrupted checkpoint ({exc}); delete it to start over") from exc
    return True


def train_cgan(crops_path: Path, out_model: Path, checkpoint_dir: Path, options: CganOptions) -> dict:
    """Train the cGAN on the 2D key points of ``crops_path``; write the generator to ``out_model``.

    Resumes from ``checkpoint_dir/cgan_last.pt`` when it holds a run of the same options and
    data (an unreadable one is an error). The model file holds the generator's weights, the
    options and the training curve.

    Returns:
        A summary: training poses, steps, seconds, device and the curve (per epoch mean losses).

    Raises:
        CheckpointError: the checkpoint is unreadable.
        ValueError: no pose of the store is usable for training.
    """
    start = time.perf_counter()
    crops_path, out_model, checkpoint_dir = Path(crops_path), Path(out_model), Path(checkpoint_dir)
    device = resolve_device(options.device)
    _, keypoints = read_keypoints(crops_path)
    keep = trainable(keypoints, options.min_keypoints)
    if not keep.any():
        raise ValueError(
            f"{crops_path}: no pose has both hips and {options.min_keypoints} labelled key points"
        )
    keypoints = keypoints[keep]
    xy = torch.as_tensor(keypoints[..., :2], device=device)
    mask = torch.as_tensor(keypoints[..., 2] > 0, device=device)
    steps = max(math.ceil(len(xy) / options.batch_size), options.min_steps_per_epoch)

    state = build_state(options, device)
    fingerprint = _fingerprint(options, keypoints)
    ckpt_path = checkpoint_dir / CHECKPOINT_NAME
    if ckpt_path.exists() and load_checkpoint(ckpt_path, state, fingerprint):
        log.info("%s: resuming after epoch %d", ckpt_path, state.epoch)
    log.info(
        "cGAN: %d training poses (of %d), %d epochs x %d steps, batch %d, device %s",
        len(xy), len(keep), options.epochs, steps, options.batch_size, device,
    )  # fmt: skip

    quiet = not sys.stderr.isatty()
    while state.epoch < options.epochs:
        sums: dict[str, float] = {}
        for step in tqdm(range(steps), desc=f"cgan epoch {state.epoch + 1}", disable=quiet, leave=False):
            losses = train_step(state, xy, mask, options)
            _check_finite(losses, state.epoch + 1, step + 1, crops_path, options)
            for key, value in losses.items():
                sums[key] = sums.get(key, 0.0) + value
        state.epoch += 1
        state.history.append({"epoch": state.epoch, **{k: round(v / steps, 5) for k, v in sums.items()}})
        save_checkpoint(ckpt_path, state, options, fingerprint)
        log.info("epoch %d: %s", state.epoch, state.history[-1])

    atomic_save(
        {
            "format": CGAN_FORMAT,
            "version": MODEL_VERSION,
            "options": asdict(options),
            "generator": {k: v.cpu() for k, v in state.ema.state_dict().items()},
            "history": state.history,
            "train_poses": len(xy),
        },
        out_model,
    )
    seconds = time.perf_counter() - start
    log.info("wrote %s (%.1f s)", out_model, seconds)
    return {
        "train_poses": int(len(xy)),
        "skipped_poses": int((~keep).sum()),
        "epochs": options.epochs,
        "steps": steps * options.epochs,
        "device": str(device),
        "seconds": round(seconds, 2),
        "curve": state.history,
    }


# ---------------------------------------------------------------------------------------------
# Prediction


def load_generator(model_path: Path, device: torch.device) -> tuple[Generator, dict[str, Any]]:
    """The trained generator (eval mode) and the options dict it was trained with.

    Raises:
        CheckpointError: the file is unreadable or not a cGAN model (naming it).
    """
    model = _load(Path(model_path), "model")
    opts = model.get("options", {})
    generator = Generator(
        opts.get("hidden_size", 1024), opts.get("num_blocks", 2), opts.get("symmetric", True)
    )
    try:
        generator.load_state_dict(model["generator"])
    except (KeyError, RuntimeError) as exc:
        raise CheckpointError(f"{model_path}: corrupted model ({exc})") from exc
    if not all(
        bool(torch.isfinite(p).all()) for p in generator.state_dict().values() if p.is_floating_point()
    ):
        raise CheckpointError(
            f"{model_path}: the generator's weights are not finite (a diverged training); retrain it"
        )
    return generator.to(device).eval(), opts


@torch.no_grad()
def lift_keypoints(
    generator: Generator,
    keypoints: np.ndarray,
    device: torch.device,
    batch_size: int = 4096,
    min_keypoints: int = CganOptions.min_keypoints,
) -> dict[str, np.ndarray]:
    """Depths of 2D key points in crop units.

    Args:
        keypoints: (N, 17, 3) x, y in normalised crop coordinates and visibility v.
        min_keypoints: the ``min_keypoints`` the generator was trained with (its domain, see
            :func:`trainable`).

    Returns:
        depth (N, 17) float32 root-relative in crop units; valid (N, 17) bool; scale (N,) and
        root (N, 2) float32 of the normalisation; usable (N,) bool (inside the training
        criteria and finite depths: depth and valid are 0/False otherwise); outside (N,) bool
        (outside the training criteria).
    """
    n = len(keypoints)
    depth = np.zeros((n, NUM_KEYPOINTS), np.float32)
    scale = np.zeros(n, np.float32)
    root = np.zeros((n, 2), np.float32)
    mask_all = keypoints[..., 2] > 0
    outside = ~trainable(keypoints, min_keypoints)
    usable = mask_all.sum(1) >= 2
    for first in range(0, n, batch_size):
        xy = torch.as_tensor(keypoints[first : first + batch_size, :, :2], device=device)
        mask = torch.as_tensor(mask_all[first : first + batch_size], device=device)
        pose, r, s = normalise_2d(xy, mask)
        d = generator(pose, mask)
        depth[first : first + len(xy)] = (d * s[:, None]).cpu().numpy()
        scale[first : first + len(xy)] = s.cpu().numpy()
        root[first : first + len(xy)] = r.cpu().numpy()
    # A depth that is not finite (degenerate key points) must never reach the registration as valid.
    usable &= np.isfinite(depth).all(1) & np.isfinite(scale) & np.isfinite(root).all(1)
    depth[~usable] = 0.0
    scale[~usable] = 0.0
    root[~usable] = 0.0
    # Outside the domain the 2D normalisation (scale, root) is still that of the key points;
    # only the depths are unusable.
    usable &= ~outside
    depth[~usable] = 0.0
    return {
        "depth": depth,
        "valid": mask_all & usable[:, None],
        "scale": scale,
        "root": root,
        "usable": usable,
        "outside": outside,
    }


def predict_depths(model_path: Path, crops_path: Path, out_path: Path, device: str = "auto") -> dict:
    """Write ``depths_{split}.zarr`` (stage ``cgan_predict``) for every sample of ``crops_path``.

    Arrays: sample_id (N,), depth (N, 17) float32, valid (N, 17) bool, scale (N,) float32,
    root (N, 2) float32; the frame is in the store attribute ``frame`` (:data:`DEPTH_FRAME`).
    Samples outside the cGAN's training criteria (:func:`trainable` with the model's
    ``min_keypoints``) get valid False throughout, counted in the attribute
    ``outside_training_criteria`` (and in ``unusable``, with the non-finite ones).

    Returns:
        A summary: samples, usable samples, samples outside the training criteria, seconds.
    """
    start = time.perf_counter()
    dev = resolve_device(device)
    generator, train_options = load_generator(Path(model_path), dev)
    ids, keypoints = read_keypoints(Path(crops_path))
    min_keypoints = int(train_options.get("min_keypoints", CganOptions.min_keypoints))
    out = lift_keypoints(generator, keypoints, dev, min_keypoints=min_keypoints)
    usable = out.pop("usable")
    outside = int(out.pop("outside").sum())
    write_store(
        out_path,
        out,
        stage="cgan_predict",
        sample_id=ids,
        options=train_options,
        attrs={
            "frame": DEPTH_FRAME,
            "model": str(model_path),
            "crops": str(crops_path),
            "unusable": int((~usable).sum()),
            "outside_training_criteria": outside,
            "min_keypoints": min_keypoints,
        },
    )
    seconds = time.perf_counter() - start
    log.info(
        "%s: depths of %d samples (%d unusable: %d outside the cGAN's training criteria, both hips and "
        "%d labelled key points; their depths are marked invalid), %.2f s",
        out_path, len(ids), int((~usable).sum()), outside, min_keypoints, seconds,
    )  # fmt: skip
    return {"samples": len(ids), "usable": int(usable.sum()), "outside": outside, "seconds": round(seconds, 3)}
