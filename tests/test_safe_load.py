"""Model and UV files are data, never code: allowlisted unpickling, no object arrays from npz,
and every problem of a user's body model and UV charts reported, naming the file and key."""

from __future__ import annotations

import io
import os
import pickle
import struct
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pytest
import scipy.sparse

from dlearn.body.io import WRITER_KEY, BodyModelData, BodyModelFileError, load_body_model, to_smpl_dict
from dlearn.densepose.uv import UVChartError, load_uv_charts, write_uv_charts
from dlearn.errors import InputError
from helpers import fake_chumpy

# --- files laid out like the official chumpy SMPL pickles, as Python 2 wrote them ------------


class _Py2Pickler(pickle._Pickler):  # the pure-Python pickler: its opcodes can be chosen
    """Writes every ``bytes``/``str`` as a Python 2 ``str`` (BINSTRING), as cPickle did for the
    official files' keys, dtype codes and array buffers (read back with ``encoding='latin1'``)."""

    dispatch: ClassVar[dict] = dict(pickle._Pickler.dispatch)

    def save_py2_str(self, obj: bytes | str) -> None:
        data = obj if isinstance(obj, bytes) else obj.encode("latin1")
        if len(data) < 256:
            self.write(pickle.SHORT_BINSTRING + bytes([len(data)]) + data)
        else:
            self.write(pickle.BINSTRING + struct.pack("<i", len(data)) + data)
        self.memoize(obj)

    dispatch[bytes] = save_py2_str
    dispatch[str] = save_py2_str


#: Module paths as numpy 1.x / scipy < 1.8 under Python 2 named them in the official files.
_PY2_GLOBALS = {
    b"cnumpy._core.multiarray\n": b"cnumpy.core.multiarray\n",
    b"cscipy.sparse._csc\n": b"cscipy.sparse.csc\n",
}


@pytest.fixture(name="fake_chumpy")
def fake_chumpy_fixture() -> Iterator[type]:
    """chumpy's ``Ch`` (module ``chumpy.ch``), importable only while the test pickles with it."""
    with fake_chumpy() as Ch:
        yield Ch


def _official_layout(data: BodyModelData, ch: type) -> dict[str, Any]:
    """The keys and types of basicModel_*_lbs_10_207_0_v1.0.0.pkl: chumpy geometry, sparse
    regressors, numpy index arrays and Python 2 strings."""
    smpl = to_smpl_dict(data)
    raw: dict[str, Any] = {k: ch(smpl[k]) for k in ("v_template", "weights", "posedirs", "shapedirs", "J")}
    raw.update(
        f=smpl["f"], kintree_table=smpl["kintree_table"].astype(np.int64), bs_style="lbs", bs_type="lrotmin",
        J_regressor=scipy.sparse.csc_matrix(smpl["J_regressor"]),
        J_regressor_prior=scipy.sparse.csc_matrix(smpl["J_regressor"]),
        weights_prior=smpl["weights"].copy(), vert_sym_idxs=np.arange(data.num_vertices),
        vertex_ids=smpl["vertex_ids"],
    )  # fmt: skip
    return raw


def _py2_pickle(obj: Any, path: Path, protocol: int = 2) -> Path:
    buffer = io.BytesIO()
    _Py2Pickler(buffer, protocol=protocol).dump(obj)
    data = buffer.getvalue()
    for new, old in _PY2_GLOBALS.items():
        data = data.replace(new, old)  # GLOBAL names are newline-terminated, not length-prefixed
    path.write_bytes(data)
    return path


def _assert_same(loaded: BodyModelData, expected: BodyModelData) -> None:
    for key in ("v_template", "faces", "weights", "parents", "j_regressor", "posedirs", "shapedirs"):
        a, b = getattr(loaded, key), getattr(expected, key)
        assert (a is None) == (b is None), key
        if a is not None:
            np.testing.assert_array_equal(a, b, err_msg=key)
    assert loaded.vertex_ids == expected.vertex_ids


@pytest.mark.parametrize("protocol", [1, 2])  # 1: copy_reg._reconstructor; 2: NEWOBJ
def test_official_chumpy_layout_loads(
    tmp_path: Path, random_model_data: BodyModelData, fake_chumpy: type, protocol: int
) -> None:
    raw = _official_layout(random_model_data, fake_chumpy)
    path = _py2_pickle(raw, tmp_path / "basicModel.pkl", protocol)
    assert b"cchumpy.ch\nCh\n" in path.read_bytes() and b"cnumpy.core.multiarray\n" in path.read_bytes()
    expected = replace(random_model_data, shapedirs=np.zeros((random_model_data.num_vertices, 3, 10)))
    _assert_same(load_body_model(path), expected)


def test_standin_loads_the_same_arrays(standin_files: tuple[Path, Path]) -> None:
    """dlearn's own pickle (protocol 4, numpy 2 module paths) through the allowlist: every array
    equal to what an unrestricted unpickler reads from the same file."""
    model = standin_files[0]
    plain = pickle.loads(model.read_bytes())  # trusted: the test wrote it
    assert plain.pop(WRITER_KEY) == "dlearn"  # the writer's mark, not model data
    loaded = to_smpl_dict(load_body_model(model))
    assert loaded.keys() == plain.keys()
    for key, value in plain.items():
        if isinstance(value, np.ndarray):
            np.testing.assert_array_equal(loaded[key], value, err_msg=key)
            assert loaded[key].dtype == value.dtype, key
        elif scipy.sparse.issparse(value):  # the keypoint regressor is stored sparse
            assert scipy.sparse.issparse(loaded[key]), key
            np.testing.assert_array_equal(loaded[key].toarray(), value.toarray(), err_msg=key)
        else:
            assert loaded[key] == value, key


# --- malicious files: refused, naming the file and the class; nothing runs --------------------


class MarkerWriter:
    """Writes a marker file when unpickled (its __setstate__ runs on load)."""

    def __init__(self, marker: Path) -> None:
        self.marker = str(marker)

    def __setstate__(self, state: dict[str, str]) -> None:
        Path(state["marker"]).write_text("code ran")


class SystemCall:
    """Unpickles to os.system(command): the classic payload."""

    def __init__(self, command: str) -> None:
        self.command = command

    def __reduce__(self) -> tuple[Any, tuple[str]]:
        return os.system, (self.command,)


SYSTEM = f"{os.system.__module__}.system"


def _payloads(marker: Path) -> dict[str, tuple[Any, str]]:
    """name -> (object that writes ``marker`` when unpickled, the class the error must name)."""
    return {
        "system": (SystemCall(f"touch {marker}"), SYSTEM),
        "class": (MarkerWriter(marker), f"{__name__}.MarkerWriter"),
    }


@pytest.mark.parametrize("payload", ["system", "class"])
@pytest.mark.parametrize("where", ["top", "dict", "list", "chumpy"])
def test_malicious_pickle_is_refused_without_running(
    tmp_path: Path, random_model_data: BodyModelData, fake_chumpy: type, payload: str, where: str
) -> None:
    marker = tmp_path / "marker"
    evil, name = _payloads(marker)[payload]
    smpl = to_smpl_dict(random_model_data)
    obj = {
        "top": lambda: evil,
        "dict": lambda: {**smpl, "bs_style": evil},
        "list": lambda: {**smpl, "extra": [1, (2, {"deep": evil})]},
        "chumpy": lambda: {**smpl, "v_template": fake_chumpy(evil)},
    }[where]()
    path = tmp_path / "evil.pkl"
    path.write_bytes(pickle.dumps(obj, protocol=2))
    with pytest.raises(BodyModelFileError) as info:
        load_body_model(path)
    assert not marker.exists(), "unpickling ran the file's code"
    assert str(path) in str(info.value) and name in str(info.value)


def test_malicious_py2_pickle_is_refused(tmp_path: Path) -> None:
    """A GLOBAL of Python 2's spelling (``__builtin__``) is checked too, not only ``builtins``."""
    path = tmp_path / "evil.pkl"
    code = b"open('" + str(tmp_path / "marker").encode() + b"', 'w')"
    path.write_bytes(b'c__builtin__\neval\n(S"' + code + b'"\ntR.')
    with pytest.raises(BodyModelFileError, match=r"evil\.pkl.*__builtin__\.eval"):
        load_body_model(path)
    assert not (tmp_path / "marker").exists()


def test_latin1_only_for_python2_byte_strings(tmp_path: Path) -> None:
    """``_codecs.encode`` (how Python 3 writes bytes at protocol 2) is allowed for latin1 only."""
    path = tmp_path / "codec.pkl"
    path.write_bytes(b"\x80\x02c_codecs\nencode\nC\x01xX\x04\x00\x00\x00zlibq\x00\x86R.")
    with pytest.raises(BodyModelFileError, match=r"codec\.pkl.*'zlib'"):
        load_body_model(path)


def test_malicious_npz_is_refused_naming_file_and_key(
    tmp_path: Path, random_model_data: BodyModelData
) -> None:
    marker = tmp_path / "marker"
    smpl = to_smpl_dict(random_model_data)
    path = tmp_path / "evil.npz"
    np.savez(path, **{**smpl, "vertex_ids": np.array(SystemCall(f"touch {marker}"), dtype=object)})
    with pytest.raises(BodyModelFileError) as info:
        load_body_model(path)
    assert not marker.exists()
    assert all(s in str(info.value) for s in (str(path), "'vertex_ids'", SYSTEM)), info.value


def test_npz_object_array_of_plain_data_loads(tmp_path: Path, random_model_data: BodyModelData) -> None:
    """SMPL-X's .npz keeps dicts (vertex_ids, joint2num) as object arrays: read, through the allowlist."""
    path = tmp_path / "model.npz"
    np.savez(path, **to_smpl_dict(random_model_data), joint2num=np.array({"pelvis": 0}, dtype=object))
    assert load_body_model(path).vertex_ids == random_model_data.vertex_ids


def test_cli_refuses_malicious_model_in_one_line(
    tmp_path: Path,
    standin_files: tuple[Path, Path],
    capsys: pytest.CaptureFixture,
    caplog: pytest.LogCaptureFixture,
) -> None:
    from dlearn.cli import main

    marker = tmp_path / "marker"
    path = tmp_path / "SMPL_NEUTRAL.pkl"
    path.write_bytes(pickle.dumps(MarkerWriter(marker), protocol=2))
    out = tmp_path / "body"
    outputs = ["--out-model", str(out / "m.pkl"), "--out-uv", str(out / "uv.mat")]
    outputs += ["--out-preview", str(out / "p.png")]
    code = main(["body-model", "--model", str(path), "--uv", str(standin_files[1]), *outputs])
    assert code == 1 and not marker.exists()
    assert "MarkerWriter" in caplog.text and "Traceback" not in capsys.readouterr().err


def test_other_loaders_do_not_unpickle(tmp_path: Path) -> None:
    """The joint regressor .npy and torch checkpoints: refused with the file named, nothing runs."""
    import torch

    from dlearn.checkpoint import load_tagged
    from dlearn.errors import InputError as Err
    from dlearn.evaluation.evaluate import load_joint_regressor

    marker = tmp_path / "marker"
    npy = tmp_path / "J_regressor_h36m.npy"
    np.save(npy, np.array([SystemCall(f"touch {marker}")], dtype=object))
    with pytest.raises(ValueError, match="J_regressor_h36m.npy"):
        load_joint_regressor(npy, 10)
    pt = tmp_path / "model.pt"
    torch.save({"format": "x", "payload": SystemCall(f"touch {marker}")}, pt)
    with pytest.raises(Err, match="model.pt"):
        load_tagged(pt, "x", "checkpoint", Err)
    assert not marker.exists()


# --- values: every problem of the model and the UV file, each naming file and key -----------


def _write(data: BodyModelData, path: Path, **overrides: np.ndarray) -> Path:
    smpl = {**to_smpl_dict(data), **overrides}
    with path.open("wb") as fh:
        pickle.dump(smpl, fh, protocol=4)
    return path


def test_weights_rows_must_sum_to_one(tmp_path: Path, random_model_data: BodyModelData) -> None:
    weights = random_model_data.weights.copy()
    weights[[3, 7]] *= [[1.5], [0.9]]
    weights[11, 0] += 5e-4  # within tolerance
    path = _write(random_model_data, tmp_path / "model.pkl", weights=weights)
    expected = r"model\.pkl: key 'weights' has 2 rows .* row 3 sums to 1\.5\)"
    with pytest.raises(BodyModelFileError, match=expected):
        load_body_model(path)


@pytest.mark.parametrize("key", ["v_template", "weights", "J_regressor", "posedirs", "shapedirs"])
@pytest.mark.parametrize("value", [np.nan, np.inf])
def test_non_finite_geometry_names_the_key(
    tmp_path: Path, random_model_data: BodyModelData, key: str, value: float
) -> None:
    smpl = to_smpl_dict(random_model_data)
    bad = smpl[key].copy()
    bad.reshape(-1)[5] = value
    path = _write(random_model_data, tmp_path / "model.pkl", **{key: bad})
    with pytest.raises(BodyModelFileError, match=rf"model\.pkl: key '{key}' has 1 NaN or infinite value"):
        load_body_model(path)


def test_every_model_problem_in_one_error(tmp_path: Path, random_model_data: BodyModelData) -> None:
    smpl = to_smpl_dict(random_model_data)
    v_template, weights = smpl["v_template"].copy(), smpl["weights"] * 2
    v_template[0, 0] = np.nan
    path = _write(random_model_data, tmp_path / "model.pkl", v_template=v_template, weights=weights)
    with pytest.raises(BodyModelFileError) as info:
        load_body_model(path)
    assert len(info.value.problems) == 2 and all(str(path) in p for p in info.value.problems)
    assert "'v_template'" in str(info.value) and "'weights'" in str(info.value)


@pytest.fixture(scope="module")
def standin_charts(standin_files: tuple[Path, Path]) -> Any:
    return load_uv_charts(standin_files[1])


def _drop_parts(charts: Any, parts: list[int], path: Path) -> Path:
    keep = ~np.isin(charts.face_part, parts)
    return write_uv_charts(replace(charts, face_part=charts.face_part[keep], faces=charts.faces[keep]), path)


def test_uv_file_missing_a_part_chart(tmp_path: Path, standin_charts: Any) -> None:
    path = _drop_parts(standin_charts, [3, 17], tmp_path / "UV_Processed.mat")
    expected = r"UV_Processed\.mat: key 'All_FaceIndices' has no faces for part\(s\) 3, 17 "
    with pytest.raises(UVChartError, match=expected):
        load_uv_charts(path)


def test_check_data_lists_every_problem_of_both_files(
    tmp_path: Path, standin_files: tuple[Path, Path], standin_charts: Any
) -> None:
    from dlearn.body.prepare import load_user_body
    from dlearn.check import check_config

    data = load_body_model(standin_files[0])
    weights = data.weights.copy()
    weights[0] *= 2
    shapedirs = np.zeros((data.num_vertices, 3, 10))
    shapedirs[1, 1, 1] = np.inf
    model = _write(data, tmp_path / "model.pkl", weights=weights, shapedirs=shapedirs)
    uv = _drop_parts(standin_charts, [24], tmp_path / "UV_Processed.mat")
    report = check_config({"body": {"model": str(model), "uv": str(uv)}})
    assert len(report.problems) == 3, report.problems
    text = "\n".join(report.problems)
    assert "model.pkl: key 'weights' has 1 rows" in text and "model.pkl: key 'shapedirs'" in text
    assert "UV_Processed.mat: key 'All_FaceIndices' has no faces for part(s) 24" in text
    with pytest.raises(InputError) as info:  # body-model (and check-data) refuse the same files
        load_user_body(str(model), str(uv))
    assert len(info.value.problems) == 3
