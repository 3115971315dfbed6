"""The `register` and `merge_registration` stages: round k's registration of the train split.

Samples are split into contiguous shards (one cluster job each) and, inside a shard, into
chunks that are fitted in batches and checkpointed one by one outside the declared output, so
a killed job resumes at the first unfinished chunk. The checkpoint remembers the options and
inputs it was made with and is discarded when they change.

Output store (``round_k/registration/shard_i.zarr``, merged into ``round_k/registration.zarr``),
aligned with the crops store's sample ids: ``pose`` (N, 23, 3), ``scales`` (N, 24),
``rotation`` (N, 3, 3) (Gram-Schmidt of the fitted 9 numbers), ``cam_scale`` (N,),
``cam_translation`` (N, 2) (normalised crop coordinates), ``joints`` (N, 24, 3) and
``keypoints`` (N, 17, 3) (the COCO keypoints of the keypoint model the fit used), body frame,
metres, of the kept fit (keep-best: the previous round's where it was kept; the evaluation reads
these points), ``losses`` (N, 5) the unweighted terms (dense, kp, scale, joint, det), ``total``
(N,), ``status`` (N,) uint8 (codes in :data:`STATUS`). Attribute ``reflections``: samples whose start
rotation was a reflection (det < 0, e.g. from an older regressor's predictions) and whose fit
still is one (L_det corrects them).
"""

from __future__ import annotations

import logging
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from dlearn.body.camera import rotation_from_9d
from dlearn.body.io import load_body_model
from dlearn.body.keypoints import CocoKeypoints, coco_keypoint_model
from dlearn.body.model import BodyModel
from dlearn.checkpoint import CheckpointError, inputs_fingerprint, open_resumable_dir
from dlearn.data.store import write_store
from dlearn.device import resolve_device
from dlearn.outputs import atomic_file, release_checkpoint_dir
from dlearn.params import STATUS, params_from_arrays, status_counts
from dlearn.registration.data import (
    PARAM_KEYS,
    FitData,
    fit_batch,
    load_fit_data,
    read_params,
    samples_without_depth,
)
from dlearn.registration.fit import (
    RegistrationOptions,
    data_loss,
    evaluated_vertices,
    fit,
    initial_params,
    loss_terms,
    weighted_total,
)
from dlearn.registration.merge import check_failed_fraction
from dlearn.registration.options import LOSS_TERMS

log = logging.getLogger(__name__)

#: Parts whose correspondences place round 0's start camera (the torso's).
TORSO_PARTS = (1, 2)
#: The arrays of a fitted chunk (and of the shard's store, with ``sample_id``).
CHUNK_KEYS = (*PARAM_KEYS, "joints", "keypoints", "losses", "total", "status")


@dataclass
class _Inputs:
    data: FitData
    init: dict[str, np.ndarray] | None  # round k >= 1: the previous round's predictions
    previous: dict[str, np.ndarray] | None  # keep-best: the previous round's registration


def _load_inputs(
    correspondences: Path, crops: Path, depths: Path | None, init: Path | None, previous: Path | None
) -> _Inputs:
    data = load_fit_data(correspondences, crops, depths)
    return _Inputs(
        data=data,
        init=read_params(init, data.ids) if init is not None else None,
        previous=read_params(previous, data.ids, "merge_registration") if previous is not None else None,
    )


#: The store arrays as Params (tests use the former private name).
_params_from = params_from_arrays


def _round0_init(model: BodyModel, data: FitData, rows: np.ndarray) -> dict[str, np.ndarray]:
    template = model.v_template.detach().cpu().numpy().astype(np.float64)
    spans = [slice(data.offsets[r], data.offsets[r + 1]) for r in rows]
    camera = initial_params(
        [template[data.vertex[s]] for s in spans],
        [data.point[s] for s in spans],
        [data.part[s] for s in spans],
        TORSO_PARTS,
    )
    n = len(rows)
    return {
        "pose": np.zeros((n, 23, 3)),
        "scales": np.ones((n, 24)),
        "rotation": camera["rotation"],
        "cam_scale": camera["cam_scale"],
        "cam_translation": camera["translation"],
    }


def _fit_chunk(
    model: BodyModel, keypoints: CocoKeypoints, inputs: _Inputs, rows: np.ndarray, options: RegistrationOptions
) -> dict[str, np.ndarray]:
    dtype, device = model.dtype, model.v_template.device
    init = (
        {k: v[rows] for k, v in inputs.init.items()} if inputs.init is not None else _round0_init(model, inputs.data, rows)
    )
    out: dict[str, list[np.ndarray]] = {k: [] for k in CHUNK_KEYS}
    for first in range(0, len(rows), options.batch_size):
        sub = rows[first : first + options.batch_size]
        local = np.arange(first, first + len(sub))
        batch = fit_batch(inputs.data, sub, device, dtype)
        start = params_from_arrays({k: v[local] for k, v in init.items()}, device, dtype)
        result = fit(model, start, batch, keypoints, options)
        params, terms, total = result.params, result.terms, result.total
        joints, keypoints3d = result.joints, result.keypoints
        status = np.full(len(sub), STATUS["ok"], np.uint8)
        status[inputs.data.counts(sub) == 0] = STATUS["no_correspondences"]
        status[result.non_finite.cpu().numpy()] = STATUS["non_finite"]
        if options.keep_best and inputs.previous is not None:
            previous = params_from_arrays({k: v[sub] for k, v in inputs.previous.items()}, device, dtype)
            with torch.no_grad():
                vertices = evaluated_vertices(model, batch)
                old_terms, old_pred = loss_terms(model, previous, batch, vertices, keypoints, options.scale_anchor)
            worse = data_loss(terms, options.weights) > data_loss(old_terms, options.weights)
            if bool(worse.any()):
                for new, old in zip(params.tensors(), previous.tensors()):
                    new[worse] = old[worse]
                for name in LOSS_TERMS:
                    terms[name][worse] = old_terms[name][worse]
                joints[worse] = old_pred.joints[worse]
                keypoints3d[worse] = old_pred.keypoints3d[worse]
                total = torch.where(worse, weighted_total(old_terms, options.weights), total)
                status[worse.cpu().numpy() & (status == STATUS["ok"])] = STATUS["kept_previous"]
        out["pose"].append(params.pose.cpu().numpy())
        out["scales"].append(params.scales.cpu().numpy())
        out["rotation"].append(rotation_from_9d(params.rotation).cpu().numpy())
        out["cam_scale"].append(params.cam_scale.cpu().numpy())
        out["cam_translation"].append(params.translation.cpu().numpy())
        out["joints"].append(joints.cpu().numpy())
        out["keypoints"].append(keypoints3d.cpu().numpy())
        out["losses"].append(torch.stack([terms[n] for n in LOSS_TERMS], dim=1).cpu().numpy())
        out["total"].append(total.cpu().numpy())
        out["status"].append(status)
    if not len(rows):  # an empty shard (more shards than samples) still writes a valid store
        shapes = {"pose": (23, 3), "scales": (24,), "rotation": (3, 3), "cam_scale": (), "cam_translation": (2,),
                  "joints": (24, 3), "keypoints": (17, 3), "losses": (len(LOSS_TERMS),), "total": ()}  # fmt: skip
        empty = {k: np.zeros((0, *shape), np.float32) for k, shape in shapes.items()}
        return {**empty, "status": np.zeros(0, np.uint8)}
    return {k: np.concatenate(v) for k, v in out.items()}


def reflection_counts(init: dict[str, np.ndarray] | None, rows: np.ndarray, fitted: np.ndarray) -> dict[str, int]:
    """Start rotations (of ``rows`` of ``init``; None: round 0's, proper) and fitted (N, 3, 3)
    rotations with a negative determinant."""
    start = 0
    if init is not None and len(rows):
        start = int((np.linalg.det(np.asarray(init["rotation"], np.float64)[rows].reshape(-1, 3, 3)) < 0).sum())
    final = int((np.linalg.det(np.asarray(fitted, np.float64).reshape(-1, 3, 3)) < 0).sum()) if len(fitted) else 0
    return {"initial": start, "final": final}


def shard_rows(num_samples: int, shard: int, num_shards: int) -> np.ndarray:
    """Contiguous block of sample rows of one shard (shards differ in size by at most one)."""
    if not 0 <= shard < num_shards:
        raise ValueError(f"shard {shard} is outside 0..{num_shards - 1}")
    bounds = np.linspace(0, num_samples, num_shards + 1).round().astype(np.int64)
    return np.arange(bounds[shard], bounds[shard + 1])


def _save_npz_atomic(path: Path, arrays: dict[str, np.ndarray]) -> None:
    with atomic_file(path) as tmp, tmp.open("wb") as fh:  # removes a killed run's half-written chunk
        np.savez(fh, **arrays)


def register(
    correspondences: Path,
    crops: Path,
    body_model: Path,
    out_path: Path,
    options: RegistrationOptions,
    *,
    depths: Path | None = None,
    init: Path | None = None,
    previous: Path | None = None,
    shard: int = 0,
    num_shards: int = 1,
    checkpoint_dir: Path | None = None,
    keypoint_regressor: Path | None = None,
) -> dict:
    """Register one shard of the train split and write its store.

    Args:
        correspondences: ``correspondences_train.zarr`` (defines the samples and their order).
        crops: ``crops_train.zarr`` (keypoints).
        body_model: the SMPL-format model file.
        out_path: the shard's output store.
        options: :class:`RegistrationOptions` (the rule passes round 0's stiff weights for k = 0).
        depths: cGAN depths store (None, or ``use_depth`` off: no depth term).
        init: round k >= 1: the previous round's predictions store (round 0 starts in T-pose).
        previous: the previous round's registration store, for keep-best.
        shard, num_shards: which contiguous block of samples to fit.
        checkpoint_dir: where finished chunks are kept until the output is written.
        keypoint_regressor: a (17 or 19, N) COCO keypoint regressor file (see
            :mod:`dlearn.body.keypoints`); None: the model file's, else the fallback.

    Returns:
        A summary: samples, status counts, seconds, sample-steps per second.

    Raises:
        RegistrationFailedError: more than ``options.max_failed_fraction`` of the shard's
            samples went non-finite (no store is written).
    """
    device = resolve_device(options.device)
    inputs = _load_inputs(correspondences, crops, depths if options.use_depth else None, init, previous)
    data = load_body_model(body_model)
    model = BodyModel(data, dtype=torch.float32).to(device)
    keypoints = coco_keypoint_model(model, data, keypoint_regressor)
    rows = shard_rows(len(inputs.data.ids), shard, num_shards)
    # Without a depths store every sample lacks the depth term; with one, those it marks invalid.
    without_depth = samples_without_depth(inputs.data, rows)
    if options.use_depth and depths is not None and without_depth:
        log.info(
            "%d of %d samples without a depth term (%s marks them invalid: outside the cGAN's training "
            "criteria or non-finite)", without_depth, len(rows), depths,
        )  # fmt: skip

    checkpoint_dir = checkpoint_dir or out_path.with_name(f".{out_path.name}.checkpoint")
    # The failure threshold does not change the fits: raising it reuses the finished chunks.
    fit_options = {k: v for k, v in asdict(options).items() if k != "max_failed_fraction"}
    fingerprint = inputs_fingerprint(
        fit_options, [correspondences, crops, depths, init, previous, body_model, keypoint_regressor], f"{shard}/{num_shards}"
    )
    open_resumable_dir(checkpoint_dir, fingerprint)  # a user's non-empty folder is an error, never emptied

    start = time.perf_counter()
    chunks = []
    resumed = 0
    for c, first in enumerate(range(0, len(rows), options.chunk_size)):
        chunk_rows = rows[first : first + options.chunk_size]
        path = checkpoint_dir / f"chunk_{c:05d}.npz"
        if path.exists():
            try:
                with np.load(path) as npz:
                    chunk = {k: npz[k] for k in npz.files}
            except (OSError, ValueError) as exc:
                raise CheckpointError(
                    f"{path}: corrupted registration checkpoint ({exc}); delete it to refit"
                ) from exc
            if set(chunk) == set(CHUNK_KEYS):
                chunks.append(chunk)
                resumed += 1
                continue
            # Written by an older dlearn (another set of arrays, e.g. no keypoints): refitted.
            log.info("chunk %d: %s holds another set of arrays (an older dlearn's), refitted", c, path)
        result = _fit_chunk(model, keypoints, inputs, chunk_rows, options)
        _save_npz_atomic(path, result)
        chunks.append(result)
        log.info("chunk %d: %d samples fitted (%d/%d)", c, len(chunk_rows), first + len(chunk_rows), len(rows))
    seconds = time.perf_counter() - start

    # An empty shard has no chunk; _fit_chunk of no rows gives the empty arrays.
    merged = (
        {k: np.concatenate([ch[k] for ch in chunks]) for k in chunks[0]}
        if chunks
        else _fit_chunk(model, keypoints, inputs, rows, options)
    )
    # Before the store is written: a failed shard leaves no output (its chunks stay for a rerun).
    shard_name = f"{out_path} (shard {shard} of {num_shards})"
    check_failed_fraction(merged["status"], options.max_failed_fraction, shard_name)
    counts = status_counts(merged["status"])
    reflections = reflection_counts(inputs.init, rows, merged["rotation"])
    if reflections["initial"] or reflections["final"]:
        log.warning("reflections (det < 0): %d start rotations, %d after the fit", reflections["initial"], reflections["final"])
    write_store(
        out_path,
        merged,
        stage="register",
        sample_id=[inputs.data.ids[r] for r in rows],
        options=asdict(options),
        attrs={
            "status_codes": STATUS,
            "loss_terms": list(LOSS_TERMS),
            "frame": "camera in normalised crop coordinates; joints in the body frame",
            "shard": shard,
            "num_shards": num_shards,
            # Where this round's fits started: the T-pose (round 0) or a store of predictions.
            "start": "t_pose" if init is None else str(init),
            "status_counts": counts,
            "reflections": reflections,
            "samples_without_depth": without_depth,
        },
    )
    release_checkpoint_dir(checkpoint_dir)
    steps = options.steps
    summary = {
        "samples": len(rows),
        "status": counts,
        "seconds": round(seconds, 2),
        "resumed_chunks": resumed,
        "reflections": reflections,
        "samples_without_depth": without_depth,
        "max_sample_steps_per_second": round(len(rows) * steps / max(seconds, 1e-9), 1),
    }
    log.info("%s: %s", out_path, summary)
    return summary
