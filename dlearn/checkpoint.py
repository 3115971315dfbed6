"""Checkpoint and model files: atomic writes, checked reads, and what identifies a run's inputs."""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import torch


def atomic_save(obj: Any, path: Path) -> None:
    """``torch.save`` to a temporary sibling, then rename: a killed job never leaves half a file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    torch.save(obj, tmp)
    os.replace(tmp, path)


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
