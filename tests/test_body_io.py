"""Reading SMPL-format model files: chumpy pickles (without chumpy), plain pickles, npz, errors."""

from __future__ import annotations

import pickle
import sys
from pathlib import Path

import numpy as np
import pytest
import scipy.sparse

from dlearn.body.io import BodyModelData, BodyModelFileError, load_body_model, to_smpl_dict, write_smpl_pickle
from helpers import fake_chumpy


def _assert_same(loaded: BodyModelData, expected: BodyModelData) -> None:
    for key in ("v_template", "faces", "weights", "parents", "j_regressor", "posedirs"):
        np.testing.assert_array_equal(getattr(loaded, key), getattr(expected, key), err_msg=key)
    assert loaded.vertex_ids == expected.vertex_ids


def _write_chumpy_pickle(smpl: dict, path: Path, chumpy_keys: tuple[str, ...]) -> None:
    """Pickle ``smpl`` as the official files do: chumpy arrays plus a sparse regressor.

    A fake ``chumpy.ch.Ch`` exists only while pickling, so the loader must cope without it.
    """
    with fake_chumpy() as Ch:
        raw = {k: Ch(v) if k in chumpy_keys else v for k, v in smpl.items()}
        raw["J_regressor"] = scipy.sparse.csc_matrix(smpl["J_regressor"])
        with path.open("wb") as fh:
            pickle.dump(raw, fh, protocol=2)


def test_chumpy_pickle_loads_without_chumpy(tmp_path: Path, random_model_data: BodyModelData) -> None:
    path = tmp_path / "basicModel.pkl"
    _write_chumpy_pickle(
        to_smpl_dict(random_model_data), path, ("v_template", "weights", "posedirs", "shapedirs", "J")
    )
    assert "chumpy" not in sys.modules
    with pytest.raises(ModuleNotFoundError):
        pickle.loads(path.read_bytes())  # a plain unpickler really needs chumpy for this file
    loaded = load_body_model(path)
    _assert_same(loaded, random_model_data)
    assert loaded.parents[0] == -1 and loaded.source == str(path)


def test_plain_pickle_round_trip_is_byte_stable(tmp_path: Path, random_model_data: BodyModelData) -> None:
    first = write_smpl_pickle(random_model_data, tmp_path / "a.pkl")
    _assert_same(load_body_model(first), random_model_data)
    second = write_smpl_pickle(load_body_model(first), tmp_path / "b.pkl")
    assert first.read_bytes() == second.read_bytes()


def test_npz_loads(tmp_path: Path, random_model_data: BodyModelData) -> None:
    path = tmp_path / "model.npz"
    np.savez(path, **to_smpl_dict(random_model_data))
    _assert_same(load_body_model(path), random_model_data)


def _write_pickle(smpl: dict, path: Path) -> Path:
    with path.open("wb") as fh:
        pickle.dump(smpl, fh)
    return path


def test_missing_key_names_file_and_key(tmp_path: Path, random_model_data: BodyModelData) -> None:
    smpl = to_smpl_dict(random_model_data)
    del smpl["weights"]
    path = _write_pickle(smpl, tmp_path / "no_weights.pkl")
    with pytest.raises(BodyModelFileError, match=r"no_weights\.pkl.*'weights'.*missing"):
        load_body_model(path)


@pytest.mark.parametrize(
    "key,bad",
    [
        ("weights", np.ones((5, 24))),
        ("J_regressor", np.ones((24, 7))),
        ("posedirs", np.ones((60, 3, 10))),
        ("v_template", np.ones((60, 2))),
        ("kintree_table", np.zeros((3, 24))),
    ],
)
def test_wrong_shape_names_file_and_key(
    tmp_path: Path, random_model_data: BodyModelData, key: str, bad
) -> None:
    smpl = to_smpl_dict(random_model_data)
    smpl[key] = bad
    path = _write_pickle(smpl, tmp_path / "bad.pkl")
    with pytest.raises(BodyModelFileError, match=rf"bad\.pkl.*'{key}'"):
        load_body_model(path)


def test_unreadable_and_absent_files(tmp_path: Path) -> None:
    garbage = tmp_path / "garbage.pkl"
    garbage.write_bytes(b"not a pickle")
    with pytest.raises(BodyModelFileError, match="garbage.pkl"):
        load_body_model(garbage)
    with pytest.raises(BodyModelFileError, match="absent.pkl"):
        load_body_model(tmp_path / "absent.pkl")
