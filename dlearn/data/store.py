"""Zarr (v3) stores: the one way dlearn writes and reads per-sample arrays.

Every store is a zarr group whose arrays are chunked along the sample axis and whose attributes
carry the format version, the producing stage, the stage's options and the sample count. A
store always has a ``sample_id`` array (stable string ids, ``"{image_id}_{annotation_id}"``) that
every per-sample array is aligned with. Ragged data is CSR: flat arrays plus ``offsets`` (N + 1).

Stores are written to a temporary sibling and renamed into place, so a killed job never leaves
a half-written store under the output name.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import zarr

FORMAT_VERSION = 1
SAMPLE_ID = "sample_id"


class StoreError(ValueError):
    """A store is missing, of another format version or stage, or lacks an array."""


def _chunks(shape: tuple[int, ...], chunk_rows: int) -> tuple[int, ...]:
    return (max(1, min(chunk_rows, shape[0])), *shape[1:]) if shape else ()


def write_store(
    path: str | Path,
    arrays: Mapping[str, np.ndarray],
    *,
    stage: str,
    sample_id: Sequence[str],
    options: Mapping[str, Any] | None = None,
    attrs: Mapping[str, Any] | None = None,
    chunk_rows: int = 1024,
    chunk_overrides: Mapping[str, int] | None = None,
) -> Path:
    """Write ``arrays`` and ``sample_id`` atomically as a zarr group at ``path``.

    Args:
        path: the store folder (conventionally ``*.zarr``); an existing one is replaced.
        arrays: name -> array; per-sample arrays have the samples on axis 0.
        stage: name of the producing stage, stored in the attributes.
        sample_id: (N,) the ids of the samples, in array order.
        options: the stage's options (JSON-serialisable), stored in the attributes.
        attrs: further JSON-serialisable attributes (units, frames, counts).
        chunk_rows: rows per chunk along axis 0.
        chunk_overrides: name -> rows per chunk for arrays that need other chunking
            (large images: fewer rows per chunk).

    Returns:
        ``path``.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    group = zarr.open_group(tmp, mode="w")
    ids = np.asarray(list(sample_id), dtype=str)
    all_arrays = {SAMPLE_ID: ids, **arrays}
    overrides = dict(chunk_overrides or {})
    for name, value in all_arrays.items():
        value = np.asarray(value)
        dtype = str if value.dtype.kind in "UOT" else value.dtype
        rows = overrides.get(name, chunk_rows)
        array = group.create_array(name, shape=value.shape, dtype=dtype, chunks=_chunks(value.shape, rows))
        if value.size:
            array[...] = value
    group.attrs.update(
        {
            "format_version": FORMAT_VERSION,
            "stage": stage,
            "num_samples": len(ids),
            "options": dict(options or {}),
            **dict(attrs or {}),
        }
    )
    # Rename into place; an older store is moved aside first because a folder cannot be
    # renamed over a non-empty one.
    old = path.with_name(f".{path.name}.old-{os.getpid()}")
    if path.exists():
        path.rename(old)
    tmp.rename(path)
    shutil.rmtree(old, ignore_errors=True)
    return path


def open_store(path: str | Path, *, stage: str | None = None, required: Sequence[str] = ()) -> zarr.Group:
    """Open a store read-only, checking its format version, stage and arrays.

    Raises:
        StoreError: naming the path and what is wrong.
    """
    path = Path(path)
    if not path.exists():
        raise StoreError(f"{path}: store does not exist")
    try:
        group = zarr.open_group(path, mode="r")
    except Exception as exc:  # zarr raises several types for unreadable metadata
        raise StoreError(f"{path}: not a readable zarr store ({exc})") from exc
    version = group.attrs.get("format_version")
    if version != FORMAT_VERSION:
        raise StoreError(f"{path}: format_version {version!r}, this dlearn reads {FORMAT_VERSION}")
    if stage is not None and group.attrs.get("stage") != stage:
        raise StoreError(f"{path}: written by stage {group.attrs.get('stage')!r}, expected {stage!r}")
    missing = [name for name in (SAMPLE_ID, *required) if name not in group]
    if missing:
        raise StoreError(f"{path}: missing array(s) {', '.join(missing)}")
    return group


def read_sample_ids(group: zarr.Group) -> list[str]:
    """The store's sample ids as Python strings."""
    return [str(s) for s in group[SAMPLE_ID][...]]


def csr_offsets(counts: Sequence[int] | np.ndarray) -> np.ndarray:
    """(N + 1,) int64 offsets of a CSR layout from per-sample counts."""
    offsets = np.zeros(len(counts) + 1, dtype=np.int64)
    np.cumsum(np.asarray(counts, dtype=np.int64), out=offsets[1:])
    return offsets
