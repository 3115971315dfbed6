"""Checkpoint and model files: atomic writes, checked reads, and what identifies a run's inputs."""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import torch

from dlearn.outputs import OutputError, check_file_output, clean_stale_siblings, tmp_sibling

# Files this process has written: replacing them again (every epoch) needs no check.
_WRITTEN: set[Path] = set()


def check_tagged_output(path: Path, file_format: str) -> None:
    """An existing ``path`` may be replaced only by a file of its own kind: a dlearn file whose
    ``format`` tag is ``file_format``.

    Raises:
        OutputError: ``path`` is a folder, or a file that is not such a dlearn file.
    """
    path = Path(path)
    check_file_output(path)
    if not path.exists() or path.resolve() in _WRITTEN:
        return
    refusal = f"dlearn replaces only its own {file_format} files, so give another output path"
    try:
        # mmap: only the pickled dict is read, not the tensors' bytes.
        obj = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except Exception as exc:  # torch raises several types for foreign files
        raise OutputError(f"{path}: not a torch file dlearn wrote ({type(exc).__name__}); {refusal}") from exc
    tag = obj.get("format") if isinstance(obj, dict) else None
    if tag != file_format:
        raise OutputError(f"{path}: format tag {tag!r}, not {file_format!r}; {refusal}")


def atomic_save(obj: Any, path: Path) -> None:
    """``torch.save`` to a temporary sibling, then rename: a killed job never leaves half a file.

    ``obj`` is a dict with a ``format`` tag; an existing ``path`` is replaced only if it carries
    the same tag (:func:`check_tagged_output`). Siblings left by killed jobs are removed.
    """
    path = Path(path)
    check_tagged_output(path, obj["format"])
    path.parent.mkdir(parents=True, exist_ok=True)
    clean_stale_siblings(path)
    tmp = tmp_sibling(path)
    torch.save(obj, tmp)
    os.replace(tmp, path)
    _WRITTEN.add(path.resolve())


def load_tagged(path: Path, file_format: str, what: str, error: type[Exception]) -> dict[str, Any]:
    """A dict saved with ``{"format": file_format, ...}``; ``error`` names the file otherwise."""
    if not Path(path).is_file():  # not "unreadable, delete it": there is nothing to delete
        raise error(f"{path}: {what} file does not exist")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises several types for truncated or foreign files
        raise error(f"{path}: unreadable {what} ({type(exc).__name__}: {exc}); delete it to start over") from exc
    if not isinstance(obj, dict) or obj.get("format") != file_format:
        raise error(f"{path}: not a {file_format} {what}")
    return obj


def inputs_fingerprint(options: dict[str, Any], inputs: Iterable[Path | None], *extra: str) -> str:
    """Hash of a stage's options and its input files' modification times (a store's ``zarr.json``):
    a checkpoint of other options or inputs is not resumed."""
    parts = [json.dumps(options, sort_keys=True), *extra]
    for path in inputs:
        if path is not None:
            path = Path(path)
            meta = path / "zarr.json" if path.is_dir() else path
            parts.append(f"{path}:{meta.stat().st_mtime_ns if meta.exists() else 0}")
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()
