"""Zarr store conventions: atomic writes, attributes, sample ids, clear errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from dlearn.data.store import StoreError, StoreWriter, csr_offsets, open_store, read_sample_ids, write_store


def test_round_trip_keeps_arrays_ids_and_attributes(tmp_path: Path) -> None:
    pose = np.random.default_rng(0).normal(size=(5, 23, 3)).astype(np.float32)
    path = write_store(
        tmp_path / "s.zarr",
        {"pose": pose},
        stage="register",
        sample_id=[f"{i}_1" for i in range(5)],
        options={"lr": 0.1},
        chunk_rows=2,
    )
    group = open_store(path, stage="register", required=["pose"])
    np.testing.assert_array_equal(group["pose"][...], pose)
    assert group["pose"].dtype == np.float32
    assert group["pose"].chunks == (2, 23, 3)
    assert read_sample_ids(group) == ["0_1", "1_1", "2_1", "3_1", "4_1"]
    assert group.attrs["options"] == {"lr": 0.1}
    assert group.attrs["num_samples"] == 5


def test_rewrite_replaces_the_store_and_leaves_no_temporaries(tmp_path: Path) -> None:
    path = tmp_path / "s.zarr"
    write_store(path, {"a": np.zeros(3)}, stage="x", sample_id=["a", "b", "c"])
    write_store(path, {"b": np.ones(2)}, stage="x", sample_id=["a", "b"])
    group = open_store(path)
    assert "a" not in group and list(group["b"][...]) == [1.0, 1.0]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s.zarr"]


def test_errors_name_the_store_and_the_problem(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match="does not exist"):
        open_store(tmp_path / "missing.zarr")
    path = write_store(tmp_path / "s.zarr", {}, stage="match", sample_id=["a"])
    with pytest.raises(StoreError, match=r"s\.zarr.*expected 'register'"):
        open_store(path, stage="register")
    with pytest.raises(StoreError, match=r"s\.zarr.*offsets"):
        open_store(path, required=["offsets"])


def test_csr_offsets() -> None:
    np.testing.assert_array_equal(csr_offsets([2, 0, 3]), [0, 2, 2, 5])


def test_a_failed_write_publishes_nothing_and_keeps_the_old_store(tmp_path: Path) -> None:
    path = write_store(tmp_path / "s.zarr", {"a": np.zeros(2)}, stage="x", sample_id=["a", "b"])
    with pytest.raises(RuntimeError):
        with StoreWriter(path, stage="x", sample_id=["a", "b"]) as writer:
            writer.create("image", (2, 4, 4, 3), np.uint8, chunk_rows=1)[0] = 1
            raise RuntimeError("killed half way")
    assert list(open_store(path)["a"][...]) == [0.0, 0.0]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s.zarr"]
