"""Checkpoint and model files: atomic writes, checked reads, what identifies a run's inputs, and
resuming a killed run.

Resumable checkpoints come in two forms, each with one helper: a run's whole state in one tagged
torch file (:func:`resume_tagged`: the state to resume from, or None), and a folder of finished
pieces (:func:`open_resumable_dir`: claimed, and emptied when it belongs to other options or
inputs). Every checkpoint error is a :class:`CheckpointError`, an
:class:`~dlearn.errors.InputError`: the CLI prints its message (which names the file) alone.

The model files' ``format`` tags are defined here, so that a reader of a model file (the report)
and a stage's output kinds need not import the training code. Standard library only at import:
the functions that read or write torch files import torch.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from dlearn.errors import InputError
from dlearn.outputs import (
    OutputError,
    atomic_file,
    check_file_output,
    claim_checkpoint_dir,
    reset_checkpoint_dir,
)

log = logging.getLogger(__name__)

#: The file in a folder of resumable pieces that names the options and inputs they belong to.
FINGERPRINT_FILE = "fingerprint.txt"
#: The ``format`` tag of the regressor's model file and checkpoint (:mod:`dlearn.regressor.train`).
REGRESSOR_FORMAT = "dlearn-regressor"
#: The ``format`` tag of the cGAN's model file and checkpoint (:mod:`dlearn.cgan.train`).
CGAN_FORMAT = "dlearn-cgan"


class CheckpointError(InputError):
    """A checkpoint or model file is unreadable, corrupted or not a dlearn file of the expected
    kind; the message names it (and, where it helps, says to delete it to start over)."""


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
    import torch

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
    import torch

    path = Path(path)
    check_tagged_output(path, obj["format"])
    with atomic_file(path) as tmp:
        torch.save(obj, tmp)
    _WRITTEN.add(path.resolve())


def load_tagged(
    path: Path, file_format: str, what: str, error: type[Exception] = CheckpointError
) -> dict[str, Any]:
    """A dict saved with ``{"format": file_format, ...}``; ``error`` names the file otherwise."""
    if not Path(path).is_file():  # not "unreadable, delete it": there is nothing to delete
        raise error(f"{path}: {what} file does not exist")
    import torch

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


def resume_tagged(
    path: Path, file_format: str, fingerprint: str, what: str = "checkpoint"
) -> dict[str, Any] | None:
    """The state a run saved at ``path`` (:func:`atomic_save`, with a ``fingerprint`` key) to resume
    from: its dict when it exists and carries ``fingerprint``, None when there is none or it belongs
    to other options or inputs (logged; the run starts over and replaces it).

    Raises:
        CheckpointError: ``path`` is unreadable or not a ``file_format`` file (naming it).
    """
    path = Path(path)
    if not path.exists():
        return None
    state = load_tagged(path, file_format, what)
    if state.get("fingerprint") != fingerprint:
        log.warning("%s: %s of other options or inputs, starting over", path, what)
        return None
    return state


def open_resumable_dir(path: Path, fingerprint: str) -> Path:
    """Claim ``path`` as the checkpoint folder of a run's finished pieces (e.g. chunk files) that a
    rerun of the same options and inputs reuses: a folder of another ``fingerprint`` (see
    :func:`inputs_fingerprint`) is emptied first. Returns ``path``.

    Raises:
        OutputError: ``path`` is a file or a user's non-empty folder (never emptied; see
            :func:`dlearn.outputs.claim_checkpoint_dir`).
    """
    path = claim_checkpoint_dir(Path(path))
    meta = path / FINGERPRINT_FILE
    if not meta.exists() or meta.read_text() != fingerprint:
        if meta.exists():
            log.info("%s: options or inputs changed, discarding the old checkpoint", path)
        reset_checkpoint_dir(path)
    meta.write_text(fingerprint)
    return path
