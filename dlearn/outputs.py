"""What dlearn may delete or replace: only what it can recognise as its own.

A user who points an output flag at their own data must get an error, never an empty folder.
dlearn therefore replaces or deletes only

* a zarr store carrying dlearn's attributes (:func:`dlearn.data.store.is_dlearn_store`);
* a checkpoint folder carrying the marker file :data:`CHECKPOINT_MARKER` (written when dlearn
  creates the folder, or adopts a missing or empty one: :func:`claim_checkpoint_dir`);
* a model or checkpoint file with dlearn's ``format`` tag (:func:`dlearn.checkpoint.atomic_save`);
* a plain file where a file output goes (a figure, a JSON, a CSV); never a folder there; a body
  model or UV file only when its header carries dlearn's signature (``make-body`` into a folder
  that holds the user's real SMPL files is an error);
* its own temporary siblings ``.NAME.tmp-PID`` (and ``.NAME.old-PID``) of an output, which a
  killed job leaves behind and the next run removes (:func:`clean_stale_siblings`).

Every file output is written the one atomic way, :func:`atomic_file`: built at a temporary
sibling, then renamed onto its path, so a killed job never leaves half a file.

And no output may be, contain or (for stores and files) lie inside one of the stage's inputs
(:func:`check_disjoint`): replacing it would destroy what the stage reads.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from dlearn.errors import InputError

CHECKPOINT_MARKER = ".dlearn-checkpoint"
# The marker's text says whether dlearn made the folder (removed when the stage finishes) or
# adopted an empty one the user made (emptied, but left in place).
_CREATED, _ADOPTED = "created by dlearn\n", "adopted by dlearn (was empty)\n"
#: How far into a file :func:`check_file_output` looks for a writer's signature.
_SIGNATURE_BYTES = 256


class OutputError(InputError):
    """An output path is not dlearn's to replace (a user's folder or file), or overlaps an input."""


def tmp_sibling(path: Path, kind: str = "tmp") -> Path:
    """``.NAME.{kind}-PID`` next to ``path``: where atomic writers build an output before the rename."""
    path = Path(path)
    return path.with_name(f".{path.name}.{kind}-{os.getpid()}")


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


def clean_stale_siblings(path: Path) -> list[Path]:
    """Remove the ``.NAME.tmp-PID`` / ``.NAME.old-PID`` siblings of ``path`` that other (killed)
    processes left; this process's own are kept. Returns what was removed."""
    path = Path(path)
    pattern = re.compile(rf"^\.{re.escape(path.name)}\.(?:tmp|old)-(\d+)$")
    removed = []
    if not path.parent.is_dir():
        return removed
    for sibling in path.parent.iterdir():
        match = pattern.match(sibling.name)
        if match and int(match.group(1)) != os.getpid():
            _remove(sibling)
            removed.append(sibling)
    return removed


def check_file_output(path: Path, signature: bytes | None = None) -> None:
    """A file output may replace a file (or a link), never a folder of the user's; with
    ``signature``, an existing regular file only when its first bytes carry it (a file of that
    format that dlearn wrote: a user's real model in the output folder must survive).

    Raises:
        OutputError: ``path`` is a folder, or a file without ``signature``.
    """
    path = Path(path)
    if path.is_dir() and not path.is_symlink():
        raise OutputError(f"{path}: is a folder; dlearn writes a file here and does not replace folders")
    if signature is not None and path.is_file() and not path.is_symlink():
        with path.open("rb") as fh:
            head = fh.read(_SIGNATURE_BYTES)
        if signature not in head:
            raise OutputError(
                f"{path}: exists and was not written by dlearn (its header lacks {signature.decode()!r}); "
                "dlearn does not replace it: move it away or choose another output folder"
            )


@contextmanager
def atomic_file(path: Path, signature: bytes | None = None) -> Iterator[Path]:
    """Write a file output atomically: yield a temporary sibling to write, then rename it onto ``path``.

    Before: ``path`` is checked (:func:`check_file_output`, with ``signature``), its folder
    created and the siblings that killed jobs left removed. After the block: the rename, so a
    reader sees the old file or the whole new one, never half of it. If the block raises, the
    temporary sibling is removed and ``path`` left as it was.

    Raises:
        OutputError: see :func:`check_file_output`.
    """
    path = Path(path)
    check_file_output(path, signature)
    path.parent.mkdir(parents=True, exist_ok=True)
    clean_stale_siblings(path)
    tmp = tmp_sibling(path)
    try:
        yield tmp
    except BaseException:
        _remove(tmp)
        raise
    os.replace(tmp, path)


def write_json(path: Path, obj: Any) -> None:
    """Write ``obj`` as compact JSON to the file output ``path``, atomically (:func:`atomic_file`).

    Raises:
        OutputError: see :func:`check_file_output`.
    """
    with atomic_file(path) as tmp:
        tmp.write_text(json.dumps(obj, separators=(",", ":")))


def check_folder_output(path: Path) -> None:
    """A folder output (files are written into it) must be a folder or missing.

    Raises:
        OutputError: ``path`` is a file.
    """
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise OutputError(f"{path}: is a file; dlearn writes a folder here and does not replace files")


def check_checkpoint_dir(path: Path) -> None:
    """Raise unless ``path`` is missing, an empty folder, or a dlearn checkpoint folder.

    Raises:
        OutputError: ``path`` is a file, or a non-empty folder without dlearn's marker.
    """
    path = Path(path)
    if not path.exists():
        return
    if not path.is_dir():
        raise OutputError(f"{path}: is a file, not a checkpoint folder; dlearn does not replace it")
    if (path / CHECKPOINT_MARKER).is_file():
        return
    if any(path.iterdir()):
        raise OutputError(
            f"{path}: a non-empty folder without the {CHECKPOINT_MARKER} marker is not a dlearn checkpoint "
            "folder; dlearn would delete its contents, so give a missing or empty folder"
        )


def claim_checkpoint_dir(path: Path) -> Path:
    """Make ``path`` dlearn's checkpoint folder: create it, or adopt it if empty; keep a marked one.

    Raises:
        OutputError: see :func:`check_checkpoint_dir`.
    """
    path = Path(path)
    check_checkpoint_dir(path)
    marker = path / CHECKPOINT_MARKER
    if not marker.is_file():
        text = _ADOPTED if path.is_dir() else _CREATED
        path.mkdir(parents=True, exist_ok=True)
        marker.write_text(text)
    return path


def reset_checkpoint_dir(path: Path) -> None:
    """Empty a claimed checkpoint folder (a run of other options or inputs), keeping the marker."""
    path = Path(path)
    check_checkpoint_dir(path)
    for entry in path.iterdir():
        if entry.name != CHECKPOINT_MARKER:
            _remove(entry)


def release_checkpoint_dir(path: Path) -> None:
    """Delete a finished run's checkpoints: the folder if dlearn created it, else its contents.
    A folder without the marker is left alone."""
    path = Path(path)
    marker = path / CHECKPOINT_MARKER
    if not marker.is_file():
        return
    created = marker.read_text() == _CREATED
    if created:
        shutil.rmtree(path, ignore_errors=True)
    else:
        for entry in path.iterdir():
            _remove(entry)


def _forms(path: Path, follow: bool) -> set[Path]:
    """Absolute forms of ``path``: folders above it resolved; with ``follow`` also the link target."""
    path = Path(os.path.abspath(path))
    forms = {path.parent.resolve() / path.name}
    if follow:
        forms.add(path.resolve())
    return forms


def _relation(output: Path, input_: Path) -> str | None:
    if output == input_:
        return "is"
    if output in input_.parents:
        return "contains"
    if input_ in output.parents:
        return "is inside"
    return None


def check_disjoint(
    inputs: Iterable[tuple[str, Path]],
    outputs: Iterable[tuple[str, Path, bool]],
    roots: Iterable[str] = (),
) -> None:
    """No output may be, contain or lie inside an input, nor be or contain another output.

    Args:
        inputs: (flag, path) of every input file or folder.
        outputs: (flag, path, follow) of every output; ``follow``: the output is written through
            a link at its path (a link output that is replaced, not written through: False).
        roots: input flags naming a folder the stage reads files from by name (an image root):
            an output may lie inside it, as long as it neither is nor contains it.

    Raises:
        OutputError: naming both flags and paths and how they overlap.
    """
    roots = set(roots)
    outputs = list(outputs)
    for out_flag, out_path, follow in outputs:
        out_forms = _forms(out_path, follow)
        for in_flag, in_path in inputs:
            for out_form in out_forms:
                for in_form in _forms(in_path, True):
                    relation = _relation(out_form, in_form)
                    if relation is None or (relation == "is inside" and in_flag in roots):
                        continue
                    raise OutputError(
                        f"{out_flag} {out_path} {relation} the input {in_flag} {in_path}: writing it would "
                        "replace what the stage reads; give an output path outside the inputs"
                    )
    for i, (flag_a, path_a, follow_a) in enumerate(outputs):
        for flag_b, path_b, follow_b in outputs[i + 1 :]:
            for a in _forms(path_a, follow_a):
                for b in _forms(path_b, follow_b):
                    relation = _relation(a, b)
                    if relation:
                        raise OutputError(
                            f"{flag_a} {path_a} {relation} {flag_b} {path_b}: one would replace the other; "
                            "give separate outputs"
                        )


def check_output(path: Path, kind: str) -> None:
    """Raise unless dlearn may write output ``path`` of ``kind``.

    Args:
        kind: ``"store"`` (a zarr store), ``"file"`` (written in place: a figure, JSON, CSV),
            ``"link"`` (a file or link replaced atomically), ``"folder"`` (files are written into
            it), ``"checkpoint"`` (a checkpoint folder) or a ``format`` tag such as
            ``"dlearn-regressor"`` (a model file of :func:`dlearn.checkpoint.atomic_save`).

    Raises:
        OutputError: naming the path and why it is not dlearn's to replace.
    """
    if kind == "store":
        from dlearn.data.store import check_store_output

        check_store_output(path)
    elif kind in ("file", "link"):
        check_file_output(path)
    elif kind == "folder":
        check_folder_output(path)
    elif kind == "checkpoint":
        check_checkpoint_dir(path)
    else:
        from dlearn.checkpoint import check_tagged_output

        check_tagged_output(path, kind)


def check_stage_paths(
    inputs: Iterable[tuple[str, Path]], outputs: Iterable[tuple[str, Path, str]], roots: Iterable[str] = ()
) -> None:
    """Check a stage's outputs before it runs, then remove what killed runs left next to them.

    Args:
        inputs: (flag, path) of every input.
        outputs: (flag, path, kind) of every output (kinds: :func:`check_output`).
        roots: input flags that name a folder read by file name (see :func:`check_disjoint`).

    Raises:
        OutputError: an output overlaps an input or another output, or is not dlearn's to replace.
    """
    inputs, outputs = list(inputs), list(outputs)
    # A link output is replaced, not written through: its target may be an input (body-model).
    check_disjoint(inputs, [(flag, path, kind != "link") for flag, path, kind in outputs], roots)
    for _, path, kind in outputs:
        check_output(path, kind)
    for _, path, kind in outputs:
        if kind not in ("folder", "checkpoint"):
            clean_stale_siblings(path)
