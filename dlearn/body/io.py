"""Reading and writing SMPL-format body model files.

Official SMPL ``.pkl`` files pickle ``chumpy`` arrays and ``scipy.sparse`` matrices; chumpy does
not import with numpy >= 1.24, so :func:`load_body_model` unpickles chumpy objects into a stub
and takes the array from its state (``x``). Plain pickles of numpy arrays and ``.npz`` archives
with the same keys load the same way.

Unpickling runs whatever callables a file names, so a model file could run code. The unpickler
here resolves only an allowlist (numpy arrays and dtypes, scipy CSC/CSR matrices, chumpy
stubs, builtin containers and scalars) and refuses any other global, naming it; ``.npz`` object
arrays (dicts such as ``vertex_ids``) go through the same unpickler, never numpy's.
"""

from __future__ import annotations

import codecs
import functools
import pickle
import zipfile
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import numpy as np
import scipy.sparse

from dlearn.errors import InputError
from dlearn.outputs import atomic_file

NUM_JOINTS = 24
#: Key that marks a model pickle dlearn wrote (only such a file is replaced by a later write).
WRITER_KEY = "dlearn_writer"
NUM_POSE_BLEND = (NUM_JOINTS - 1) * 9  # 207 pose blend shape coefficients

#: SMPL's kinematic tree: parent of each of the 24 joints (-1 for the root).
SMPL_PARENTS = np.array(
    [-1, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 9, 9, 12, 13, 14, 16, 17, 18, 19, 20, 21], dtype=np.int64
)

SMPL_JOINT_NAMES = (
    "pelvis", "left_hip", "right_hip", "spine1", "left_knee", "right_knee", "spine2",
    "left_ankle", "right_ankle", "spine3", "left_foot", "right_foot", "neck", "left_collar",
    "right_collar", "head", "left_shoulder", "right_shoulder", "left_elbow", "right_elbow",
    "left_wrist", "right_wrist", "left_hand", "right_hand",
)  # fmt: skip

#: Keypoint vertices smplx expects in ``vertex_ids`` (smplx.vertex_ids naming).
KEYPOINT_VERTEX_NAMES = ("nose", "reye", "leye", "rear", "lear")

#: Model-file key of the COCO keypoint regressor: (17, N), COCO's keypoint order, rows summing
#: to 1 (keypoint k = sum_i R[k, i] * posed vertex i). dlearn's own key: the stand-in has one,
#: official SMPL files do not (see :mod:`dlearn.body.keypoints` for where else it comes from).
KEYPOINT_REGRESSOR_KEY = "coco_keypoint_regressor"
NUM_COCO_KEYPOINTS = 17
#: Largest |row sum - 1| of a keypoint regressor: a row must be an affine combination of
#: vertices, or its point would not move with the body (HMR's cocoplus rows sum to ~1 too).
KEYPOINT_ROW_SUM_TOLERANCE = 0.05


#: Largest |row sum - 1| of the skinning weights: the official files' rows sum to 1 to ~1e-7.
WEIGHT_SUM_TOLERANCE = 1e-3


class BodyModelFileError(InputError):
    """A body model file is unreadable, unsafe, lacks a key, or a key has the wrong shape or values.

    ``problems`` lists every problem found, one message each; the error's message joins them.
    """

    def __init__(self, *problems: str) -> None:
        super().__init__("; ".join(problems))
        self.problems = list(problems)


@dataclass(frozen=True)
class BodyModelData:
    """The arrays of an SMPL-format body model, as plain numpy.

    Attributes:
        v_template: (N, 3) rest-pose template vertices, in the file's units (metres for SMPL).
        faces: (F, 3) vertex indices of the triangles.
        weights: (N, 24) linear blend skinning weights, rows sum to 1.
        parents: (24,) parent joint of each joint, -1 for the root.
        j_regressor: (24, N) dense joint regressor, rest joints = j_regressor @ v_template.
        posedirs: (N, 3, 207) pose blend shapes, or None when the file has none.
        shapedirs: (N, 3, K) shape blend shapes (kept so files round-trip; dlearn uses scales).
        vertex_ids: named keypoint vertices (nose, reye, leye, rear, lear) when the file has them.
        vertex_symmetry: (N,) index of each vertex's left/right mirror, when the file has one.
        keypoint_regressor: (17, N) COCO keypoint regressor (key ``coco_keypoint_regressor``),
            when the file has one.
        source: the file it was read from, for error messages.
    """

    v_template: np.ndarray
    faces: np.ndarray
    weights: np.ndarray
    parents: np.ndarray
    j_regressor: np.ndarray
    posedirs: np.ndarray | None = None
    shapedirs: np.ndarray | None = None
    vertex_ids: dict[str, int] = field(default_factory=dict)
    vertex_symmetry: np.ndarray | None = None
    keypoint_regressor: np.ndarray | None = None
    source: str = "<memory>"

    @property
    def num_vertices(self) -> int:
        return int(self.v_template.shape[0])

    @property
    def rest_joints(self) -> np.ndarray:
        """(24, 3) joint locations of the template, J = J_regressor v."""
        return self.j_regressor @ self.v_template

    def problems(self) -> list[str]:
        """Every problem of the arrays (shapes, index ranges, values), one message each naming
        the file and key; empty when the model is valid."""
        found: list[str] = []

        def fail(key: str, msg: str) -> None:
            found.append(f"{self.source}: key '{key}' {msg}")

        if self.v_template.ndim != 2 or self.v_template.shape[1] != 3:
            fail("v_template", f"has shape {self.v_template.shape}, expected (N, 3)")
            return found  # every other shape is checked against N
        n = self.num_vertices
        if self.faces.ndim != 2 or self.faces.shape[1] != 3:
            fail("f", f"has shape {self.faces.shape}, expected (F, 3)")
        elif self.faces.size and (self.faces.min() < 0 or self.faces.max() >= n):
            fail("f", f"has vertex indices outside [0, {n})")
        if self.weights.shape != (n, NUM_JOINTS):
            fail("weights", f"has shape {self.weights.shape}, expected ({n}, {NUM_JOINTS})")
        if self.j_regressor.shape != (NUM_JOINTS, n):
            fail("J_regressor", f"has shape {self.j_regressor.shape}, expected ({NUM_JOINTS}, {n})")
        if self.parents.shape != (NUM_JOINTS,) or self.parents[0] != -1:
            fail("kintree_table", "does not describe a 24-joint tree rooted at joint 0")
        elif np.any(self.parents[1:] >= np.arange(1, NUM_JOINTS)) or np.any(self.parents[1:] < 0):
            fail("kintree_table", "must list each joint after its parent")
        if self.posedirs is not None and self.posedirs.shape != (n, 3, NUM_POSE_BLEND):
            fail("posedirs", f"has shape {self.posedirs.shape}, expected ({n}, 3, {NUM_POSE_BLEND})")
        if self.shapedirs is not None and (self.shapedirs.ndim != 3 or self.shapedirs.shape[:2] != (n, 3)):
            fail("shapedirs", f"has shape {self.shapedirs.shape}, expected ({n}, 3, K)")
        for name, vid in self.vertex_ids.items():
            if not 0 <= vid < n:
                fail("vertex_ids", f"entry '{name}' = {vid} is outside [0, {n})")
        if self.vertex_symmetry is not None and (
            self.vertex_symmetry.shape != (n,) or self.vertex_symmetry.min() < 0 or self.vertex_symmetry.max() >= n
        ):
            fail("vertex_symmetry", f"must be {n} vertex indices")
        if self.keypoint_regressor is not None:
            problem = keypoint_regressor_problem(self.keypoint_regressor, n)
            if problem:
                fail(KEYPOINT_REGRESSOR_KEY, problem)
        geometry = {"v_template": self.v_template, "weights": self.weights, "J_regressor": self.j_regressor,
                    "posedirs": self.posedirs, "shapedirs": self.shapedirs}  # fmt: skip
        for key, value in geometry.items():
            bad = 0 if value is None else value.size - int(np.count_nonzero(np.isfinite(value)))
            if bad:
                fail(key, f"has {bad} NaN or infinite value(s)")
        if self.weights.shape == (n, NUM_JOINTS) and np.all(np.isfinite(self.weights)):
            sums_problem = _weight_sum_problem(self.weights)
            if sums_problem:
                fail("weights", sums_problem)
        return found

    def validate(self) -> None:
        """Raise :class:`BodyModelFileError` listing every problem (see :meth:`problems`)."""
        found = self.problems()
        if found:
            raise BodyModelFileError(*found)


def keypoint_regressor_problem(regressor: np.ndarray, num_vertices: int) -> str | None:
    """What is wrong with a (17, N) COCO keypoint regressor, or None when it is valid."""
    expected = (NUM_COCO_KEYPOINTS, num_vertices)
    if regressor.shape != expected:
        return f"has shape {regressor.shape}, expected {expected}"
    bad = regressor.size - int(np.count_nonzero(np.isfinite(regressor)))
    if bad:
        return f"has {bad} NaN or infinite value(s)"
    sums = regressor.sum(axis=1)
    worst = int(np.argmax(np.abs(sums - 1.0)))
    if abs(sums[worst] - 1.0) > KEYPOINT_ROW_SUM_TOLERANCE:
        return f"row {worst} sums to {sums[worst]:.6g}, expected 1 (within {KEYPOINT_ROW_SUM_TOLERANCE:g})"
    return None


def _weight_sum_problem(weights: np.ndarray) -> str | None:
    """What is wrong with the row sums of (N, 24) skinning weights, or None when each is 1.

    Skinning blends the joint transforms by these weights; rows not summing to 1 scale and shift
    the skin (a unit-sum convex blend is what SMPL's LBS assumes).
    """
    sums = weights.sum(axis=1)
    off = np.abs(sums - 1.0)
    bad = int(np.count_nonzero(off > WEIGHT_SUM_TOLERANCE))
    if not bad:
        return None
    worst = int(np.argmax(off))
    return (
        f"has {bad} rows (of {len(sums)}) that do not sum to 1 within {WEIGHT_SUM_TOLERANCE:g} "
        f"(worst: row {worst} sums to {sums[worst]:.6g})"
    )


class _ChumpyStub:
    """Stands in for any chumpy class; the array lives in the pickled state under 'x'."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.state: Any = None

    def __setstate__(self, state: Any) -> None:
        self.state = state

    def array(self) -> np.ndarray:
        state = self.state
        if isinstance(state, dict) and "x" in state:
            return np.asarray(state["x"])
        raise BodyModelFileError("a chumpy object in the file has no 'x' array in its state")


def _latin1_encode(text: str, encoding: str = "latin1", errors: str = "strict") -> bytes:
    """``_codecs.encode`` as Python 3 pickles bytes at protocol 2: only the latin1 codec."""
    if codecs.lookup(encoding).name != "iso8859-1" or not isinstance(text, str):
        raise pickle.UnpicklingError(
            f"refusing _codecs.encode with encoding {encoding!r} (a pickle of bytes uses latin1)"
        )
    return text.encode("latin1", errors)


def _reconstructor(cls: type, base: type, state: Any) -> Any:
    """``copy_reg._reconstructor`` (protocol 0/1 pickles of classes) for the allowlisted classes."""
    if base is not object or state is not None or cls not in _reconstructible_classes():
        raise pickle.UnpicklingError(f"refusing copy_reg._reconstructor of {cls!r} from {base!r}")
    return object.__new__(cls)


@functools.lru_cache(maxsize=1)
def _allowed_globals() -> dict[tuple[str, str], Any]:
    """(module, name) -> object for every global a body model pickle may name.

    Module paths as numpy 1.x/2.x, scipy before/after 1.8 and Python 2/3 spell them; the objects
    are resolved here, so nothing the file names is ever imported.
    """
    import scipy.sparse

    array = np.zeros(1)
    allowed: dict[tuple[str, str], Any] = {("numpy", "ndarray"): np.ndarray, ("numpy", "dtype"): np.dtype}
    for core in ("numpy.core", "numpy._core"):
        # How this numpy pickles arrays and scalars (a private path, so taken from __reduce__).
        allowed[(f"{core}.multiarray", "_reconstruct")] = array.__reduce__()[0]
        allowed[(f"{core}.multiarray", "scalar")] = array[0].__reduce__()[0]
        allowed[(f"{core}.numeric", "_frombuffer")] = array.__reduce_ex__(5)[0]
    for fmt in ("csc", "csr"):
        for kind in ("matrix", "array"):
            cls = getattr(scipy.sparse, f"{fmt}_{kind}")
            for module in ("scipy.sparse", f"scipy.sparse.{fmt}", f"scipy.sparse._{fmt}"):
                allowed[(module, cls.__name__)] = cls
    plain = (dict, list, tuple, set, frozenset, slice, complex, bytes, bytearray, int, float, bool, str)
    plain += (object,)  # the base class protocol 0/1 pickles name for copy_reg._reconstructor
    for module in ("builtins", "__builtin__"):
        allowed.update({(module, t.__name__): t for t in plain})
    allowed[("collections", "OrderedDict")] = OrderedDict
    allowed[("_codecs", "encode")] = _latin1_encode
    for module in ("copyreg", "copy_reg"):
        allowed[(module, "_reconstructor")] = _reconstructor
    return allowed


def _reconstructible_classes() -> tuple[type, ...]:
    return (_ChumpyStub, *(v for k, v in _allowed_globals().items() if k[0].startswith("scipy.")))


class _SafeUnpickler(pickle.Unpickler):
    """Unpickles SMPL data only: chumpy classes become :class:`_ChumpyStub`, other globals must be
    in :func:`_allowed_globals`; anything else raises :class:`BodyModelFileError` naming it."""

    def __init__(self, file: IO[bytes], source: str) -> None:
        super().__init__(file, encoding="latin1")  # Python 2 str: keys, dtype codes, buffers
        self.source = source

    def find_class(self, module: str, name: str) -> Any:
        if module == "chumpy" or module.startswith("chumpy."):
            return _ChumpyStub
        found = _allowed_globals().get((module, name))
        if found is None:
            raise BodyModelFileError(
                f"{self.source}: refusing to unpickle {module}.{name}: a body model file holds only numpy "
                "arrays, scipy.sparse CSC/CSR matrices, chumpy arrays and plain containers, and "
                "unpickling anything else can run code"
            )
        return found


def _to_array(value: Any) -> np.ndarray:
    if isinstance(value, _ChumpyStub):
        return value.array()
    if hasattr(value, "toarray"):  # scipy.sparse
        return np.asarray(value.toarray())
    return np.asarray(value)


def _read_npy_member(archive: zipfile.ZipFile, member: str, key: str, path: Path) -> np.ndarray | None:
    """An object array of an ``.npz`` read through :class:`_SafeUnpickler`; None for plain arrays.

    numpy pickles an object array whole after the ``.npy`` header (and would unpickle it with
    no restriction, hence ``allow_pickle=False`` there).
    """
    readers: dict[tuple[int, int], Callable[[IO[bytes]], tuple[Any, bool, np.dtype]]] = {
        (1, 0): np.lib.format.read_array_header_1_0,
        (2, 0): np.lib.format.read_array_header_2_0,
    }
    with archive.open(member) as fh:
        version = np.lib.format.read_magic(fh)
        if version not in readers:
            return None  # numpy reads (and refuses object arrays of) other versions itself
        _, _, dtype = readers[version](fh)
        if not dtype.hasobject:
            return None
        value = _SafeUnpickler(fh, f"{path}: key '{key}'").load()
    if not isinstance(value, np.ndarray):
        raise BodyModelFileError(f"{path}: key '{key}' is not an array ({type(value).__name__})")
    return value


def _read_npz(path: Path) -> dict[str, Any]:
    raw: dict[str, Any] = {}
    with np.load(path, allow_pickle=False) as npz:
        for key in npz.files:
            member = f"{key}.npy" if f"{key}.npy" in npz.zip.namelist() else key
            value = _read_npy_member(npz.zip, member, key, path)
            if value is None:
                try:
                    value = npz[key]
                except ValueError as exc:  # an object array numpy would unpickle unrestricted
                    raise BodyModelFileError(f"{path}: key '{key}': {exc}") from exc
            raw[key] = value
    if "vertex_ids" in raw and raw["vertex_ids"].dtype == object:
        raw["vertex_ids"] = raw["vertex_ids"].item()
    return raw


def _read_raw(path: Path) -> dict[str, Any]:
    if path.suffix == ".npz":
        return _read_npz(path)
    with path.open("rb") as fh:
        raw = _SafeUnpickler(fh, str(path)).load()
    if not isinstance(raw, dict):
        raise BodyModelFileError(f"{path}: expected a pickled dict of SMPL arrays, got {type(raw).__name__}")
    return raw


def load_body_model(path: str | Path) -> BodyModelData:
    """Read an SMPL-format model: official chumpy pickles, plain pickles, or ``.npz``.

    Args:
        path: the model file (``.pkl`` or ``.npz``).

    Returns:
        The validated arrays as :class:`BodyModelData` (float64 geometry, int64 indices).

    Raises:
        BodyModelFileError: unreadable file, a pickled class outside the allowlist (named),
            missing key, wrong shape, NaN/inf geometry or skinning weights not summing to 1;
            the message names the file and the key, ``problems`` lists each problem.
    """
    path = Path(path)
    if not path.is_file():
        raise BodyModelFileError(f"{path}: body model file does not exist")
    try:
        raw = _read_raw(path)
    except BodyModelFileError:
        raise
    except Exception as exc:  # pickle/zip errors come in many types
        raise BodyModelFileError(f"{path}: cannot read body model file ({exc})") from exc

    def get(key: str) -> np.ndarray:
        if key not in raw:
            raise BodyModelFileError(f"{path}: key '{key}' is missing")
        try:
            value = _to_array(raw[key])
        except BodyModelFileError as exc:
            raise BodyModelFileError(f"{path}: key '{key}': {exc}") from exc
        if not np.issubdtype(value.dtype, np.number):  # e.g. a dict or string where an array belongs
            found = type(raw[key]).__name__
            raise BodyModelFileError(f"{path}: key '{key}' is not a numeric array ({found})")
        return value

    def get_optional(key: str) -> np.ndarray | None:
        return get(key) if key in raw else None

    kintree = get("kintree_table")
    if kintree.ndim != 2 or kintree.shape[0] != 2:
        raise BodyModelFileError(f"{path}: key 'kintree_table' has shape {kintree.shape}, expected (2, 24)")
    parents = kintree[0].astype(np.int64)
    parents[0] = -1  # SMPL stores 4294967295 (uint32 -1) for the root

    posedirs = get_optional("posedirs")
    shapedirs = get_optional("shapedirs")
    symmetry = get_optional("vertex_symmetry")
    kp_regressor = get_optional(KEYPOINT_REGRESSOR_KEY)
    vertex_ids = raw.get("vertex_ids", {})
    if not isinstance(vertex_ids, dict):
        raise BodyModelFileError(f"{path}: key 'vertex_ids' must be a dict of name -> vertex index")

    data = BodyModelData(
        v_template=get("v_template").astype(np.float64),
        faces=get("f").astype(np.int64),
        weights=get("weights").astype(np.float64),
        parents=parents,
        j_regressor=get("J_regressor").astype(np.float64),
        posedirs=None if posedirs is None else posedirs.astype(np.float64),
        shapedirs=None if shapedirs is None else shapedirs.astype(np.float64),
        vertex_ids={str(k): int(v) for k, v in vertex_ids.items()},
        vertex_symmetry=None if symmetry is None else symmetry.astype(np.int64),
        keypoint_regressor=None if kp_regressor is None else kp_regressor.astype(np.float64),
        source=str(path),
    )
    data.validate()
    return data


def to_smpl_dict(data: BodyModelData) -> dict[str, Any]:
    """The SMPL pickle dict for ``data`` (keys as in the official files, plain numpy arrays)."""
    n = data.num_vertices
    kintree = np.stack([data.parents, np.arange(NUM_JOINTS)]).astype(np.int64)
    kintree[0, 0] = 4294967295  # what the official files store for the root's parent
    out: dict[str, Any] = {
        "v_template": np.ascontiguousarray(data.v_template, dtype=np.float64),
        "f": np.ascontiguousarray(data.faces, dtype=np.uint32),
        "weights": np.ascontiguousarray(data.weights, dtype=np.float64),
        "kintree_table": kintree,
        "J_regressor": np.ascontiguousarray(data.j_regressor, dtype=np.float64),
        "J": np.ascontiguousarray(data.rest_joints, dtype=np.float64),
        "posedirs": np.zeros((n, 3, NUM_POSE_BLEND)) if data.posedirs is None else data.posedirs,
        "shapedirs": np.zeros((n, 3, 10)) if data.shapedirs is None else data.shapedirs,
        "bs_style": "lbs",
        "bs_type": "lrotmin",
    }
    if data.vertex_ids:
        out["vertex_ids"] = dict(data.vertex_ids)
    if data.vertex_symmetry is not None:
        out["vertex_symmetry"] = np.ascontiguousarray(data.vertex_symmetry, dtype=np.int64)
    if data.keypoint_regressor is not None:
        # Sparse, as official files store J_regressor: a few vertices per keypoint.
        out[KEYPOINT_REGRESSOR_KEY] = scipy.sparse.csc_matrix(data.keypoint_regressor)
    return out


def write_smpl_pickle(data: BodyModelData, path: str | Path) -> Path:
    """Write ``data`` as an SMPL-format pickle that stock ``smplx.SMPL`` reads.

    Same data, same bytes: the dict is pickled with a fixed protocol and key order.
    """
    data.validate()
    path = Path(path)
    with atomic_file(path, signature=WRITER_KEY.encode()) as tmp, tmp.open("wb") as fh:
        # The marker key comes first, so that its bytes sit in the file's header (smplx ignores it).
        pickle.dump({WRITER_KEY: "dlearn", **to_smpl_dict(data)}, fh, protocol=4)
    return path
