"""Merging a round's registration shards into ``registration.zarr``, and the check that a shard
did not go non-finite for too many samples. No torch: the merge is a concatenation of arrays
(the merge-registration stage, with its numpy-posed overlay, is one of the light stages)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from dlearn.data.store import StoreError, open_store, read_sample_ids, write_store
from dlearn.errors import InputError
from dlearn.params import STATUS, status_counts
from dlearn.registration.options import LOSS_TERMS, RegistrationOptions


class RegistrationFailedError(InputError):
    """Too many samples of a shard went non-finite; names the shard, the count and the option."""


def check_failed_fraction(status: np.ndarray, max_failed_fraction: float, what: str) -> None:
    """Raise when more than ``max_failed_fraction`` of the samples ended ``non_finite``.

    A few diverged samples are frozen at their last finite fit and marked in ``status``; many
    mean broken inputs (NaN or huge coordinates or depths) or too high an lr, and a store of
    mostly frozen fits would quietly train the next regressor on T-poses.

    Args:
        status: (N,) status codes (:data:`STATUS`).
        max_failed_fraction: the registration option of that name.
        what: the shard or store, named in the message.

    Raises:
        RegistrationFailedError: naming ``what``, the count and the option.
    """
    failed = int((status == STATUS["non_finite"]).sum())
    if failed > max_failed_fraction * len(status):
        raise RegistrationFailedError(
            f"{what}: {failed} of {len(status)} samples went non-finite during the fit, more than "
            f"registration.max_failed_fraction = {max_failed_fraction} (--max-failed-fraction): check the "
            "correspondences, key points and depths for NaN or huge values, or lower registration.lr"
        )


def merge_registration(shards: list[Path], correspondences: Path, out_path: Path) -> dict:
    """Concatenate the shard stores in sample order into ``registration.zarr``.

    Raises:
        StoreError: the shards do not cover the samples of ``correspondences`` exactly once.
        RegistrationFailedError: a shard has more non-finite samples than its
            ``max_failed_fraction`` allows.
    """
    ids = read_sample_ids(open_store(correspondences, stage="match"))
    parts = [open_store(p, stage="register") for p in shards]
    shard_ids = [sid for g in parts for sid in read_sample_ids(g)]
    if shard_ids != ids:
        raise StoreError(
            f"{out_path}: the {len(shards)} shards hold {len(shard_ids)} samples, "
            f"{correspondences} has {len(ids)} (or another order): rerun the shards"
        )
    keys = sorted(k for k in parts[0].array_keys() if k != "sample_id")
    for path, group in zip(shards[1:], parts[1:]):
        other = sorted(k for k in group.array_keys() if k != "sample_id")
        if other != keys:  # shards of two dlearn versions (e.g. one without keypoints)
            raise StoreError(
                f"{path}: arrays {', '.join(other)}, {shards[0]} has {', '.join(keys)}: rerun the shards"
            )
    merged = {k: np.concatenate([np.asarray(g[k][...]) for g in parts]) for k in keys}
    for path, group in zip(shards, parts):
        # Each shard's own option: a shard written by hand or by an older dlearn is checked too.
        options = dict(group.attrs.get("options", {}))
        limit = options.get("max_failed_fraction", RegistrationOptions.max_failed_fraction)
        check_failed_fraction(np.asarray(group["status"][...]), limit, str(path))
    attrs = dict(parts[0].attrs)
    counts = status_counts(merged["status"])
    reflections = {k: sum(int(g.attrs.get("reflections", {}).get(k, 0)) for g in parts) for k in ("initial", "final")}
    without_depth = sum(int(g.attrs.get("samples_without_depth", 0)) for g in parts)
    write_store(
        out_path,
        merged,
        stage="merge_registration",
        sample_id=ids,
        options=attrs.get("options", {}),
        attrs={
            "status_codes": STATUS,
            "loss_terms": list(LOSS_TERMS),
            "frame": attrs.get("frame", ""),
            "start": attrs.get("start", "unknown"),
            "status_counts": counts,
            "reflections": reflections,
            "samples_without_depth": without_depth,
            "shards": [str(p) for p in shards],
        },
    )
    return {"samples": len(ids), "status": counts, "reflections": reflections, "samples_without_depth": without_depth}
