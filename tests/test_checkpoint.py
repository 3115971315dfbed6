"""The one atomic-write helper and the resumable-checkpoint helpers: a failed write leaves the old
file, a checkpoint of another run is not resumed, every checkpoint error is an input error."""

from __future__ import annotations

from pathlib import Path

import pytest

from dlearn.checkpoint import (
    FINGERPRINT_FILE,
    CheckpointError,
    atomic_save,
    open_resumable_dir,
    resume_tagged,
)
from dlearn.errors import InputError
from dlearn.outputs import CHECKPOINT_MARKER, OutputError, atomic_file

DEAD_PID = 999_999_999


def test_atomic_file_replaces_whole_or_not_at_all(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "out.json"
    with atomic_file(path) as tmp:
        assert tmp.parent == path.parent and tmp != path
        tmp.write_text("first")
    assert path.read_text() == "first"
    (path.parent / f".out.json.tmp-{DEAD_PID}").write_text("half")  # a killed job's
    with pytest.raises(RuntimeError), atomic_file(path) as tmp:
        tmp.write_text("half of the second")
        raise RuntimeError("killed while writing")
    assert path.read_text() == "first"
    assert sorted(p.name for p in path.parent.iterdir()) == ["out.json"]


def test_atomic_file_refuses_folders_and_unsigned_files(tmp_path: Path) -> None:
    (tmp_path / "folder").mkdir()
    with pytest.raises(OutputError, match="is a folder"), atomic_file(tmp_path / "folder"):
        pass
    (tmp_path / "model.pkl").write_bytes(b"the user's own model")
    signed = atomic_file(tmp_path / "model.pkl", signature=b"dlearn-writer")
    with pytest.raises(OutputError, match="not written by dlearn"), signed:
        pass
    assert (tmp_path / "model.pkl").read_bytes() == b"the user's own model"


def test_resume_tagged_only_resumes_its_own_run(tmp_path: Path) -> None:
    path = tmp_path / "ckpt.pt"
    assert resume_tagged(path, "dlearn-test", "abc") is None
    atomic_save({"format": "dlearn-test", "fingerprint": "abc", "epoch": 3}, path)
    assert resume_tagged(path, "dlearn-test", "abc")["epoch"] == 3
    assert resume_tagged(path, "dlearn-test", "other options") is None
    path.write_bytes(b"not a torch file")
    with pytest.raises(CheckpointError, match=str(path)):
        resume_tagged(path, "dlearn-test", "abc")
    assert issubclass(CheckpointError, InputError)  # the CLI prints it without a traceback


def test_open_resumable_dir_keeps_its_pieces_and_empties_another_runs(tmp_path: Path) -> None:
    folder = open_resumable_dir(tmp_path / "ckpt", "run 1")
    assert (folder / CHECKPOINT_MARKER).is_file() and (folder / FINGERPRINT_FILE).read_text() == "run 1"
    (folder / "chunk_00000.npz").write_bytes(b"done")
    open_resumable_dir(folder, "run 1")
    assert (folder / "chunk_00000.npz").exists()
    open_resumable_dir(folder, "run 2")
    assert not (folder / "chunk_00000.npz").exists() and (folder / CHECKPOINT_MARKER).is_file()
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("x")
    with pytest.raises(OutputError):
        open_resumable_dir(mine, "run 1")
    assert (mine / "notes.txt").read_text() == "x"
