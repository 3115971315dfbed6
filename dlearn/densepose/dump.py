"""detectron2 DensePose's ``apply_net.py dump`` files, read without detectron2 and without torch.

Format (facebookresearch/detectron2, ``projects/DensePose/apply_net.py``, ``DumpAction``): a list
with one dict per image, written by ``torch.save`` (a zip archive: ``<name>/data.pkl``, a
protocol-2 pickle whose tensors are persistent ids of the raw storages ``<name>/data/<key>``)::

    {"file_name": str,                  # the image path as apply_net was given it
     "scores": Tensor (N,) float32,
     "pred_boxes_XYXY": Tensor (N, 4) float32, x0, y0, x1, y1 in image pixels,
     "pred_densepose": [DensePoseChartResultWithConfidences, ...]}  # N, one per box

``DensePoseChartResultWithConfidences`` (``densepose/structures/chart_result.py``) holds
``labels`` (H, W) int64, the part 0..24 of each pixel of the box (0 background), and ``uv``
(2, H, W) float32, U and V in [0, 1] (the predictor's raw output, which can stray slightly
outside; dlearn clips it as DensePose's own visualiser does), plus optional confidences.
``densepose/converters/chart_output_to_chart_result.py`` resamples them to the integer box
``make_int_box``: x, y, w, h = the XYWH box truncated to integers (``Tensor.long()``), H =
max(h, 1), W = max(w, 1); pixel (r, c) of the result is image pixel (y + r, x + c).

Unpickling runs what a file names, so the reader resolves only: ``torch._utils._rebuild_tensor_v2``
(rebuilt as numpy arrays over the storages), the ``torch.<Type>Storage`` types,
``collections.OrderedDict`` and the two chart result classes (as plain stand-ins); anything else
is refused, naming the file and the class. Embedding (CSE) models' outputs are not charts and
are refused too.
"""

from __future__ import annotations

import pickle
import zipfile
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import IO, Any

import numpy as np

from dlearn.errors import InputError

#: Modules of the chart result classes (``densepose`` is the project's package name).
CHART_RESULT_MODULES = ("densepose.structures.chart_result", "densepose.structures")
CHART_RESULT_CLASSES = ("DensePoseChartResultWithConfidences", "DensePoseChartResult")

#: torch's legacy storage types (what ``torch.save`` names in a storage's persistent id) -> dtype.
STORAGE_DTYPES = {
    "DoubleStorage": np.float64, "FloatStorage": np.float32, "HalfStorage": np.float16,
    "LongStorage": np.int64, "IntStorage": np.int32, "ShortStorage": np.int16, "CharStorage": np.int8,
    "ByteStorage": np.uint8, "BoolStorage": np.bool_,
}  # fmt: skip


class DumpError(InputError):
    """An apply_net dump is unreadable, unsafe or malformed; the message names the file and entry."""


class ChartResult:
    """Stands in for DensePose's chart result dataclasses: the pickled fields land in ``__dict__``."""

    def __setstate__(self, state: Any) -> None:
        if not isinstance(state, dict):
            raise pickle.UnpicklingError(f"chart result state is a {type(state).__name__}, expected a dict")
        self.__dict__.update(state)


@dataclass(frozen=True)
class _Storage:
    dtype: type


def _rebuild_tensor_v2(
    storage: Any, offset: int, size: tuple[int, ...], stride: tuple[int, ...], requires_grad: Any = False,
    backward_hooks: Any = None, metadata: Any = None,
) -> np.ndarray:  # fmt: skip
    """``torch._utils._rebuild_tensor_v2`` as a read-only numpy view of the storage, bounds-checked."""
    if not isinstance(storage, np.ndarray):
        raise pickle.UnpicklingError(f"tensor storage is a {type(storage).__name__}, expected a storage")
    size, stride = tuple(int(s) for s in size), tuple(int(s) for s in stride)
    if len(size) != len(stride) or min(size, default=1) < 0 or min(stride, default=0) < 0 or offset < 0:
        raise pickle.UnpicklingError(f"tensor size {size} / stride {stride} / offset {offset} are malformed")
    if 0 not in size:
        last = offset + sum((n - 1) * s for n, s in zip(size, stride))
        if last >= storage.size:
            raise pickle.UnpicklingError(f"tensor of size {size} reaches element {last} of a storage of {storage.size}")
    flat = storage[offset:] if storage.size else storage
    strides = tuple(s * storage.itemsize for s in stride)
    return np.lib.stride_tricks.as_strided(flat, shape=size, strides=strides, writeable=False)


class _DumpUnpickler(pickle.Unpickler):
    """The allowlist unpickler of apply_net dumps (see the module docstring)."""

    def __init__(self, file: IO[bytes], archive: zipfile.ZipFile, prefix: str, source: str, byteorder: str) -> None:
        super().__init__(file)
        self.archive, self.prefix, self.source, self.byteorder = archive, prefix, source, byteorder
        self.storages: dict[str, np.ndarray] = {}

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) == ("torch._utils", "_rebuild_tensor_v2"):
            return _rebuild_tensor_v2
        if module == "torch" and name in STORAGE_DTYPES:
            return _Storage(STORAGE_DTYPES[name])
        if (module, name) == ("collections", "OrderedDict"):
            return OrderedDict
        if module in CHART_RESULT_MODULES and name in CHART_RESULT_CLASSES:
            return ChartResult
        hint = " (a DensePose embedding (CSE) model's output: dlearn reads chart-based IUV results)" if (
            module.startswith("densepose.") and "Embedding" in name) else ""  # fmt: skip
        raise DumpError(
            f"{self.source}: refusing to unpickle {module}.{name}{hint}: an apply_net dump holds only tensors, "
            "plain containers and DensePose chart results, and unpickling anything else can run code"
        )

    def persistent_load(self, pid: Any) -> Any:
        if not (isinstance(pid, tuple) and len(pid) == 5 and pid[0] == "storage" and isinstance(pid[1], _Storage)):
            raise pickle.UnpicklingError(f"unknown persistent id {pid!r:.80}")
        _, storage_type, key, _location, numel = pid
        key = str(key)
        if key not in self.storages:
            member = f"{self.prefix}/data/{key}"
            try:
                raw = self.archive.read(member)
            except KeyError as exc:
                raise pickle.UnpicklingError(f"storage record {member} is missing") from exc
            dtype = np.dtype(storage_type.dtype).newbyteorder("<" if self.byteorder == "little" else ">")
            if len(raw) < int(numel) * dtype.itemsize:
                raise pickle.UnpicklingError(f"storage record {member} has {len(raw)} bytes, expected {numel} elements")
            self.storages[key] = np.frombuffer(raw, dtype=dtype, count=int(numel))
        return self.storages[key]


def load_dump(path: str | Path) -> list[dict[str, Any]]:
    """The entries of an apply_net dump, tensors as numpy arrays, chart results as :class:`ChartResult`.

    Raises:
        DumpError: missing file, not a ``torch.save`` zip archive, a pickled class outside the
            allowlist (named), or not a list of dicts; the message names the file.
    """
    path = Path(path)
    if not path.is_file():
        raise DumpError(f"{path}: DensePose dump does not exist")
    if not zipfile.is_zipfile(path):
        raise DumpError(
            f"{path}: not a torch.save zip archive (apply_net.py dump writes one since PyTorch 1.6; re-save older "
            "dumps with torch.save(torch.load(f), f))"
        )
    try:
        with zipfile.ZipFile(path) as archive:
            records = [PurePosixPath(n) for n in archive.namelist() if PurePosixPath(n).name == "data.pkl"]
            if len(records) != 1 or len(records[0].parts) != 2:
                raise DumpError(f"{path}: expected one <name>/data.pkl record in the archive, found {len(records)}")
            prefix = records[0].parts[0]
            names = set(archive.namelist())
            byteorder = archive.read(f"{prefix}/byteorder").decode().strip() if f"{prefix}/byteorder" in names else "little"
            with archive.open(str(records[0])) as fh:
                entries = _DumpUnpickler(fh, archive, prefix, str(path), byteorder).load()
    except DumpError:
        raise
    except Exception as exc:  # zip, pickle and value errors come in many types
        raise DumpError(f"{path}: cannot read DensePose dump ({type(exc).__name__}: {exc})") from exc
    if not isinstance(entries, list) or not all(isinstance(e, dict) for e in entries):
        raise DumpError(f"{path}: expected a list of per-image dicts (apply_net.py dump), got {type(entries).__name__}")
    return entries


@dataclass(frozen=True)
class DumpInstance:
    """One detected person of a dump: its integer box and the chart result over it.

    Attributes:
        x, y: top-left image pixel of the result (``make_int_box``).
        labels: (H, W) int64 part 0..24.
        uv: (H, W, 2) float64 U, V clipped to [0, 1].
        score: detection score.
    """

    x: int
    y: int
    labels: np.ndarray
    uv: np.ndarray
    score: float


def int_box(xyxy: np.ndarray) -> tuple[int, int, int, int]:
    """detectron2 DensePose's ``make_int_box`` of an XYXY box: XYWH, each truncated to an integer."""
    x0, y0, x1, y1 = (float(v) for v in xyxy)
    return int(x0), int(y0), int(x1 - x0), int(y1 - y0)


def entry_instances(entry: dict[str, Any], where: str) -> list[DumpInstance]:
    """The chart results of one dump entry with their boxes, checked.

    Raises:
        DumpError: a key is missing, boxes / scores / results disagree in number, a box or
            value is not finite, a result's size is not its box's, or a label exceeds 24.
    """
    for key in ("pred_boxes_XYXY", "pred_densepose"):
        if key not in entry:
            raise DumpError(f"{where}: key '{key}' is missing (was the dump made with a DensePose chart model?)")
    boxes = np.asarray(entry["pred_boxes_XYXY"], dtype=np.float64)
    results = entry["pred_densepose"]
    scores = np.asarray(entry.get("scores", np.ones(len(boxes))), dtype=np.float64).reshape(-1)
    if boxes.ndim != 2 or boxes.shape[1] != 4 or not np.isfinite(boxes).all():
        raise DumpError(f"{where}: 'pred_boxes_XYXY' has shape {boxes.shape} or non-finite values, expected finite (N, 4)")
    if not isinstance(results, list) or len(results) != len(boxes) or len(scores) != len(boxes):
        found = len(results) if isinstance(results, list) else type(results).__name__
        raise DumpError(f"{where}: {len(boxes)} boxes, {len(scores)} scores but 'pred_densepose' is {found}")
    instances = []
    for k, (box, result, score) in enumerate(zip(boxes, results, scores)):
        here = f"{where}, instance {k}"
        if not isinstance(result, ChartResult) or not hasattr(result, "labels") or not hasattr(result, "uv"):
            raise DumpError(f"{here}: 'pred_densepose' entry is a {type(result).__name__}, expected a chart result")
        x, y, w, h = int_box(box)
        shape = (max(h, 1), max(w, 1))
        labels, uv = np.asarray(result.labels), np.asarray(result.uv)
        if labels.shape != shape or uv.shape != (2, *shape):
            raise DumpError(
                f"{here}: labels {labels.shape} / uv {uv.shape} do not match its box {box.tolist()} (expected {shape} "
                f"and (2, {shape[0]}, {shape[1]}))"
            )
        if not np.issubdtype(labels.dtype, np.integer) or labels.min(initial=0) < 0 or labels.max(initial=0) > 24:
            raise DumpError(f"{here}: labels must be integers 0..24, found {labels.dtype} {labels.min()}..{labels.max()}")
        if not np.isfinite(uv).all():
            raise DumpError(f"{here}: uv holds non-finite values")
        uv = np.clip(np.moveaxis(uv, 0, -1).astype(np.float64), 0.0, 1.0)
        instances.append(DumpInstance(x=x, y=y, labels=labels.astype(np.int64), uv=uv, score=float(score)))
    return instances
