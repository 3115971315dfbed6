"""SPIN-style Human3.6M evaluation files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from dlearn.data.h36m import EvaluationFileError, read_spin_npz


def _write(path: Path, **overrides: np.ndarray) -> Path:
    arrays = {
        "imgname": np.array(["images/S9_Directions_1.54138969_000001.jpg", "images/S11_Eating.55011271_000006.jpg"]),
        "center": np.array([[500.0, 520.0], [480.0, 500.0]]),
        "scale": np.array([2.0, 1.5]),
        "S": np.concatenate([np.random.default_rng(0).normal(size=(2, 24, 3)), np.ones((2, 24, 1))], axis=2),
    }
    arrays.update(overrides)
    np.savez(path, **arrays)
    return path


def test_reads_frames_and_boxes(tmp_path: Path) -> None:
    frames = read_spin_npz(_write(tmp_path / "h36m_p1.npz"))
    assert frames.joints3d.shape == (2, 24, 3) and np.all(frames.confidence == 1)
    np.testing.assert_allclose(frames.boxes[0], [300.0, 320.0, 400.0, 400.0])
    assert frames.imgname[1].startswith("images/S11")


@pytest.mark.parametrize(
    ("overrides", "message"),
    [({"center": np.zeros((2, 3))}, "'center'"), ({"S": np.zeros((2, 24, 3))}, "'S'")],
)
def test_malformed_keys_are_named(tmp_path: Path, overrides: dict, message: str) -> None:
    with pytest.raises(EvaluationFileError, match=rf"h36m_p1\.npz: key {message}"):
        read_spin_npz(_write(tmp_path / "h36m_p1.npz", **overrides))


def test_missing_key_and_file(tmp_path: Path) -> None:
    path = tmp_path / "x.npz"
    np.savez(path, imgname=np.array(["a"]))
    with pytest.raises(EvaluationFileError, match="key 'center' is missing"):
        read_spin_npz(path)
    with pytest.raises(EvaluationFileError, match="does not exist"):
        read_spin_npz(tmp_path / "none.npz")
