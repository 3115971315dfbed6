"""Zarr (v3) stores: the one way dlearn writes and reads per-sample arrays.

Every store is a zarr group whose arrays are chunked along the sample axis and whose attributes
carry the format version, the producing stage, the stage's options and the sample count. A
store always has a ``sample_id`` array (stable string ids, ``"{image_id}_{annotation_id}"``) that
every per-sample array is aligned with. Ragged data is CSR: flat arrays plus ``offsets`` (N + 1).

Stores are written to a temporary sibling and renamed into place, so a killed job never leaves
a half-written store under the output name. Every chunk is written, even one of zeros (zarr skips
those by default), and the attribute ``complete_chunks`` says so: a chunk file lost later would
otherwise read back as zeros, so :func:`open_store` refuses such a store.
"""

from __future__ import annotations

import json
import shutil
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import zarr

from dlearn.errors import InputError
from dlearn.outputs import OutputError, clean_stale_siblings, tmp_sibling

FORMAT_VERSION = 1
SAMPLE_ID = "sample_id"

# Snakemake marks a finished directory output with a `.snakemake_timestamp` file inside it;
# zarr warns about the unknown member on every listing of a store that is a rule's output.
warnings.filterwarnings("ignore", message=r"Object at \.snakemake_timestamp is not recognized")


class StoreError(InputError):
    """A store is missing, of another format version or stage, or lacks an array or a chunk."""


#: Store attribute: every chunk of every array was written (:func:`open_store` checks they exist).
COMPLETE_CHUNKS = "complete_chunks"


def is_dlearn_store(path: str | Path) -> bool:
    """Whether ``path`` is a zarr group whose attributes carry dlearn's format version and stage."""
    meta = Path(path) / "zarr.json"
    try:
        attrs = json.loads(meta.read_text()).get("attributes", {})
    except (OSError, ValueError, AttributeError):
        return False
    return (
        isinstance(attrs, dict)
        and isinstance(attrs.get("format_version"), int)
        and isinstance(attrs.get("stage"), str)
    )


def check_store_output(path: str | Path) -> None:
    """A store output may replace only a dlearn store, never a user's file or folder.

    Raises:
        OutputError: ``path`` exists and is not a dlearn store.
    """
    path = Path(path)
    if (path.exists() or path.is_symlink()) and not is_dlearn_store(path):
        what = "folder" if path.is_dir() else "file"
        raise OutputError(
            f"{path}: a {what} that is not a dlearn store (no zarr.json with dlearn's format_version and "
            "stage); dlearn replaces only its own stores, so give another output path"
        )


def _chunks(shape: tuple[int, ...], chunk_rows: int) -> tuple[int, ...]:
    return (max(1, min(chunk_rows, shape[0])), *shape[1:]) if shape else ()


class StoreWriter:
    """Write a store array by array (or slice by slice), then publish it atomically.

    Use as a context manager; the store appears under ``path`` only when the block ends without
    an exception, replacing an older dlearn store of that name (anything else under the name is
    an :class:`~dlearn.outputs.OutputError`, raised on entering)::

        with StoreWriter(path, stage="crops", sample_id=ids, options=opts) as w:
            images = w.create("image", (n, 64, 64, 3), np.uint8, chunk_rows=64)
            images[0:64] = batch
    """

    def __init__(
        self,
        path: str | Path,
        *,
        stage: str,
        sample_id: Sequence[str],
        options: Mapping[str, Any] | None = None,
        attrs: Mapping[str, Any] | None = None,
    ):
        self.path = Path(path)
        self._tmp = tmp_sibling(self.path)
        self._ids = np.asarray(list(sample_id), dtype=str)
        self._attrs = {
            "format_version": FORMAT_VERSION,
            "stage": stage,
            "num_samples": len(self._ids),
            "options": dict(options or {}),
            COMPLETE_CHUNKS: True,
            **dict(attrs or {}),
        }
        self.group: zarr.Group | None = None

    def __enter__(self) -> StoreWriter:
        check_store_output(self.path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        clean_stale_siblings(self.path)
        shutil.rmtree(self._tmp, ignore_errors=True)
        self.group = zarr.open_group(self._tmp, mode="w")
        self.write(SAMPLE_ID, self._ids)
        return self

    def create(self, name: str, shape: tuple[int, ...], dtype: Any, chunk_rows: int = 1024) -> zarr.Array:
        """An empty array chunked along axis 0, to be filled slice by slice."""
        assert self.group is not None, "use StoreWriter as a context manager"
        # Chunks of zeros are written too, so that a missing chunk file always means a lost one.
        chunks = _chunks(shape, chunk_rows)
        return self.group.create_array(
            name, shape=shape, dtype=dtype, chunks=chunks, config={"write_empty_chunks": True}
        )

    def write(self, name: str, value: np.ndarray, chunk_rows: int = 1024) -> zarr.Array:
        """Write a whole array (strings become variable-length UTF-8)."""
        value = np.asarray(value)
        dtype = str if value.dtype.kind in "UOT" else value.dtype
        array = self.create(name, value.shape, dtype, chunk_rows)
        if value.size:
            array[...] = value
        return array

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        if exc_type is not None:
            shutil.rmtree(self._tmp, ignore_errors=True)
            return
        assert self.group is not None
        self.group.attrs.update(self._attrs)
        try:  # checked again: something may have appeared under the name since __enter__
            check_store_output(self.path)
        except OutputError:
            shutil.rmtree(self._tmp, ignore_errors=True)
            raise
        # A folder cannot be renamed over a non-empty one: move the older store aside first.
        old = tmp_sibling(self.path, "old")
        if self.path.exists():
            self.path.rename(old)
        self._tmp.rename(self.path)
        shutil.rmtree(old, ignore_errors=True)


def write_store(
    path: str | Path,
    arrays: Mapping[str, np.ndarray],
    *,
    stage: str,
    sample_id: Sequence[str],
    options: Mapping[str, Any] | None = None,
    attrs: Mapping[str, Any] | None = None,
    chunk_rows: int = 1024,
) -> Path:
    """Write in-memory ``arrays`` and ``sample_id`` atomically as a zarr group at ``path``.

    Args:
        path: the store folder (conventionally ``*.zarr``); an existing dlearn store is replaced,
            anything else is an :class:`~dlearn.outputs.OutputError`.
        arrays: name -> array; per-sample arrays have the samples on axis 0.
        stage: name of the producing stage, stored in the attributes.
        sample_id: (N,) the ids of the samples, in array order.
        options: the stage's options (JSON-serialisable), stored in the attributes.
        attrs: further JSON-serialisable attributes (units, frames, counts).
        chunk_rows: rows per chunk along axis 0.

    Returns:
        ``path``.
    """
    with StoreWriter(path, stage=stage, sample_id=sample_id, options=options, attrs=attrs) as writer:
        for name, value in arrays.items():
            writer.write(name, value, chunk_rows)
    return Path(path)


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
    if group.attrs.get(COMPLETE_CHUNKS):  # stores of older dlearn versions skip chunks of zeros
        _check_chunks(group, path)
    return group


def _check_chunks(group: zarr.Group, path: Path) -> None:
    """Every chunk of every array of ``group`` exists (zarr reads a missing one as zeros).

    Raises:
        StoreError: naming the store, the array and how many chunks are missing.
    """
    for name, array in group.arrays():
        found, expected = array.nchunks_initialized, array.nchunks
        if found < expected:
            raise StoreError(
                f"{path}: array {name!r} lacks {expected - found} of its {expected} chunk files "
                "(deleted or lost); delete the store and rerun the stage that wrote it"
            )


def read_sample_ids(group: zarr.Group) -> list[str]:
    """The store's sample ids as Python strings."""
    return [str(s) for s in group[SAMPLE_ID][...]]


def read_aligned(group: zarr.Group, ids: Sequence[str], keys: Sequence[str], source: str | Path) -> dict[str, np.ndarray]:
    """Per-sample arrays ``keys`` of a store, reordered to ``ids`` (stores are joined by sample id,
    never by row).

    Raises:
        StoreError: an id is missing from the store; names ``source`` and the first ids.
    """
    row = {sid: i for i, sid in enumerate(read_sample_ids(group))}
    missing = [sid for sid in ids if sid not in row]
    if missing:
        more = " ..." if len(missing) > 5 else ""
        raise StoreError(f"{source}: no entry for {len(missing)} sample(s): {', '.join(missing[:5])}{more}")
    index = np.array([row[sid] for sid in ids], dtype=np.int64)
    return {key: np.asarray(group[key][...])[index] for key in keys}


def csr_offsets(counts: Sequence[int] | np.ndarray) -> np.ndarray:
    """(N + 1,) int64 offsets of a CSR layout from per-sample counts."""
    offsets = np.zeros(len(counts) + 1, dtype=np.int64)
    np.cumsum(np.asarray(counts, dtype=np.int64), out=offsets[1:])
    return offsets
