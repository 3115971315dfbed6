"""SPIN-style Human3.6M evaluation files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from dlearn.data.h36m import EvaluationFileError, read_spin_npz


def _spin_s(n: int) -> np.ndarray:
    """S as SPIN's datasets/preprocess/h36m.py writes it: the 17 Human3.6M joints (root-centred,
    metres) at global_idx of 24 slots, confidence 1; slot 13 and the other slots 0."""
    global_idx = [14, 3, 4, 5, 2, 1, 0, 16, 12, 17, 18, 9, 10, 11, 8, 7, 6]
    h36m17 = np.random.default_rng(0).normal(scale=0.3, size=(n, 17, 3))
    s = np.zeros((n, 24, 4))
    s[:, global_idx, :3], s[:, global_idx, 3] = h36m17 - h36m17[:, :1], 1.0
    return s


def _write(path: Path, **overrides: np.ndarray) -> Path:
    arrays = {
        "imgname": np.array(["images/S9_Directions_1.54138969_000001.jpg", "images/S11_Eating.55011271_000006.jpg"]),
        "center": np.array([[500.0, 520.0], [480.0, 500.0]]),
        "scale": np.array([2.0, 1.5]),
        "S": _spin_s(2),
    }
    arrays.update(overrides)
    np.savez(path, **arrays)
    return path


def test_reads_frames_and_boxes(tmp_path: Path) -> None:
    frames = read_spin_npz(_write(tmp_path / "h36m_p1.npz"))
    assert frames.joints3d.shape == (2, 24, 3)
    joints, confidence = frames.lsp14()  # SPIN's J24_TO_J14: slots 0-12 and 18 (the head)
    assert joints.shape == (2, 14, 3) and np.all(confidence == 1)
    np.testing.assert_array_equal(joints[:, 13], frames.joints3d[:, 18])
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
