"""Reading and writing DensePose's per-part UV charts (``UV_Processed.mat``).

DensePose cuts the SMPL surface into 24 parts and flattens each into a chart with coordinates
in [0, 1]^2. The file (MATLAB v5, as in the DensePose repository) holds:

================  ========  =====================================================================
key               shape     meaning
================  ========  =====================================================================
All_FaceIndices   (F, 1)    part (1..24) of each chart face
All_Faces         (F, 3)    1-based indices into the chart vertex list
All_vertices      (1, M)    1-based body model vertex of each chart vertex (a vertex on a seam
                            between parts appears once per part)
All_U_norm        (M, 1)    U of each chart vertex, in [0, 1]
All_V_norm        (M, 1)    V of each chart vertex, in [0, 1]
================  ========  =====================================================================

:class:`UVCharts` holds the same data 0-based.
"""

from __future__ import annotations

import functools
import io
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import scipy.io

from dlearn.errors import InputError
from dlearn.outputs import check_file_output, clean_stale_siblings, tmp_sibling

log = logging.getLogger(__name__)

NUM_PARTS = 24

#: Fixed text for the 116-byte MAT-file header; scipy would write the creation time there,
#: which would make the bytes differ between runs.
_MAT_HEADER = b"MATLAB 5.0 MAT-file, Platform: posix, Created by: dlearn"
_MAT_HEADER_TEXT_BYTES = 116


class UVChartError(InputError):
    """A UV chart file is unreadable, lacks a key, or a key has the wrong shape or values."""


@dataclass(frozen=True)
class UVCharts:
    """DensePose part charts, 0-based.

    Attributes:
        face_part: (F,) int64 part 1..24 of each chart face (``All_FaceIndices``).
        faces: (F, 3) int64 indices into the chart vertex list (``All_Faces - 1``).
        vertex: (M,) int64 body model vertex of each chart vertex (``All_vertices - 1``).
        u: (M,) float64 U coordinate in [0, 1] (``All_U_norm``).
        v: (M,) float64 V coordinate in [0, 1] (``All_V_norm``).
        source: the file it was read from, for error messages.
    """

    face_part: np.ndarray
    faces: np.ndarray
    vertex: np.ndarray
    u: np.ndarray
    v: np.ndarray
    source: str = "<memory>"

    @property
    def num_faces(self) -> int:
        return int(self.faces.shape[0])

    @property
    def num_chart_vertices(self) -> int:
        return int(self.vertex.shape[0])

    def part_faces(self, part: int) -> np.ndarray:
        """(F_p, 3) chart vertex indices of the faces of ``part`` (1..24)."""
        return self.faces[self.face_part == part]

    def body_faces(self) -> np.ndarray:
        """(F, 3) body model vertex indices of the chart faces."""
        return self.vertex[self.faces]


def _integer_array(value: np.ndarray, fail_key: str, source: str) -> np.ndarray:
    """``value`` as int64, refusing non-integral numbers (MATLAB files often store doubles)."""
    arr = np.asarray(value)
    if not np.issubdtype(arr.dtype, np.number):
        raise UVChartError(f"{source}: key '{fail_key}' is not numeric (dtype {arr.dtype})")
    as_int = arr.astype(np.int64)
    if not np.array_equal(as_int, arr):
        raise UVChartError(f"{source}: key '{fail_key}' has non-integer values")
    return as_int


def load_uv_charts(path: str | Path, num_vertices: int | None = None) -> UVCharts:
    """Read and validate a DensePose ``UV_Processed.mat``.

    Args:
        path: the ``.mat`` file.
        num_vertices: when given, every body vertex id must be below it.

    Returns:
        The charts, 0-based (see :class:`UVCharts`).

    Raises:
        UVChartError: unreadable file, missing key, wrong shape, out-of-range values or a part
            without chart faces; the message names the file and the key.
    """
    path = Path(path)
    source = str(path)
    if not path.is_file():
        raise UVChartError(f"{source}: UV chart file does not exist")
    try:
        raw = scipy.io.loadmat(str(path))
    except Exception as exc:  # scipy raises several types for malformed files
        raise UVChartError(f"{source}: cannot read UV chart file ({exc})") from exc

    def get(key: str) -> np.ndarray:
        if key not in raw:
            raise UVChartError(f"{source}: key '{key}' is missing")
        return np.asarray(raw[key])

    def fail(key: str, msg: str) -> UVChartError:
        return UVChartError(f"{source}: key '{key}' {msg}")

    face_part = _integer_array(get("All_FaceIndices"), "All_FaceIndices", source).reshape(-1)
    faces = _integer_array(get("All_Faces"), "All_Faces", source)
    vertex = _integer_array(get("All_vertices"), "All_vertices", source).reshape(-1) - 1
    u = get("All_U_norm").astype(np.float64).reshape(-1)
    v = get("All_V_norm").astype(np.float64).reshape(-1)

    if faces.ndim != 2 or faces.shape[1] != 3:
        raise fail("All_Faces", f"has shape {faces.shape}, expected (F, 3)")
    faces = faces - 1
    if face_part.shape[0] != faces.shape[0]:
        raise fail("All_FaceIndices", f"has {face_part.shape[0]} entries for {faces.shape[0]} faces")
    if face_part.size and (face_part.min() < 1 or face_part.max() > NUM_PARTS):
        raise fail("All_FaceIndices", f"has parts outside 1..{NUM_PARTS}")
    m = vertex.shape[0]
    if faces.size and (faces.min() < 0 or faces.max() >= m):
        raise fail("All_Faces", f"has indices outside 1..{m} (the length of All_vertices)")
    if vertex.size and vertex.min() < 0:
        raise fail("All_vertices", "has vertex ids below 1")
    if num_vertices is not None and vertex.size and vertex.max() >= num_vertices:
        raise fail("All_vertices", f"has vertex id {vertex.max() + 1} > {num_vertices} body model vertices")
    for key, coord in (("All_U_norm", u), ("All_V_norm", v)):
        if coord.shape[0] != m:
            raise fail(key, f"has {coord.shape[0]} entries for {m} chart vertices")
        if not np.all(np.isfinite(coord)) or (coord.size and (coord.min() < 0.0 or coord.max() > 1.0)):
            raise fail(key, "has values outside [0, 1]")
    # Every part needs its chart: an annotation's dense points on a part without one match no
    # vertex, and the body faces of that part get no part (no dense points when rendering).
    missing = np.setdiff1d(np.arange(1, NUM_PARTS + 1), face_part)
    if missing.size:
        parts = ", ".join(map(str, missing))
        raise fail("All_FaceIndices", f"has no faces for part(s) {parts} (all {NUM_PARTS} need faces)")
    return UVCharts(face_part=face_part, faces=faces, vertex=vertex, u=u, v=v, source=source)


def _triangle_keys(triangles: np.ndarray, num_vertices: int) -> np.ndarray:
    """(F,) one integer per triangle (F, 3), the same for any order of its corners."""
    t = np.sort(triangles, axis=1).astype(np.int64)
    return (t[:, 0] * num_vertices + t[:, 1]) * num_vertices + t[:, 2]


def face_chart_corners(
    charts: UVCharts, faces: np.ndarray, max_uncharted: float = 0.001
) -> tuple[np.ndarray, np.ndarray]:
    """Map each body face onto its chart face, corner by corner.

    DensePose's real ``UV_Processed.mat`` leaves 2 of SMPL's 13776 faces out of every chart;
    such faces get part 0 and chart corners -1 (a ray hitting one gives no dense point).

    Args:
        charts: the UV charts.
        faces: (F, 3) the body model's faces.
        max_uncharted: largest fraction of faces allowed to be in no chart.

    Returns:
        (F, 3) chart vertex of each body face corner (``charts.vertex[out] == faces``; -1 for
        an uncharted face) and (F,) the part 1..24 of each body face (0 = uncharted).

    Raises:
        UVChartError: more than ``max_uncharted`` of the faces are in no chart.
    """
    n = int(max(faces.max(), charts.vertex.max())) + 1
    chart_body = charts.body_faces()
    chart_keys = _triangle_keys(chart_body, n)
    order = np.argsort(chart_keys, kind="stable")
    sorted_keys = chart_keys[order]
    body_keys = _triangle_keys(faces, n)
    pos = np.minimum(np.searchsorted(sorted_keys, body_keys), len(sorted_keys) - 1)
    missing = sorted_keys[pos] != body_keys
    if missing.sum() > max_uncharted * len(faces):
        first = int(np.flatnonzero(missing)[0])
        raise UVChartError(
            f"{charts.source}: {int(missing.sum())} of {len(faces)} body model faces are in no chart face "
            f"(first: face {first}); the charts are for another mesh"
        )
    if missing.any():
        log.warning("%s: %d body faces are in no chart (no dense points there)", charts.source, missing.sum())
    chart_face = order[pos]
    match = chart_body[chart_face][:, None, :] == faces[:, :, None]  # (F, body corner, chart corner)
    corner = match.argmax(axis=2)
    corners = np.take_along_axis(charts.faces[chart_face], corner, axis=1)
    part = charts.face_part[chart_face].copy()
    corners[missing] = -1
    part[missing] = 0
    return corners, part


def body_face_parts(charts: UVCharts, faces: np.ndarray) -> np.ndarray:
    """(F,) part 1..24 of each body model face (0: in no chart); see :func:`face_chart_corners`."""
    return face_chart_corners(charts, faces)[1]


@functools.lru_cache(maxsize=1)
def part_colours() -> np.ndarray:
    """(25, 3) RGB per DensePose part for figures (index 0, no part, is black).

    tab20 per part; torso back/front in two greys and the head halves in yellow/orange, so that
    the large parts stay readable next to the limbs.
    """
    import matplotlib

    cmap = matplotlib.colormaps["tab20"]
    colours = np.zeros((NUM_PARTS + 1, 3))
    for p in range(1, NUM_PARTS + 1):
        colours[p] = cmap((p - 1) % 20)[:3]
    colours[1], colours[2] = (0.45, 0.45, 0.5), (0.85, 0.85, 0.9)
    colours[23], colours[24] = (0.95, 0.85, 0.2), (0.95, 0.5, 0.1)
    colours.flags.writeable = False
    return colours


def write_uv_charts(charts: UVCharts, path: str | Path) -> Path:
    """Write ``charts`` as a DensePose-format ``UV_Processed.mat``.

    Same charts, same bytes: the header's creation-time text is replaced by fixed text.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    mdict = {
        "All_FaceIndices": charts.face_part.astype(np.float64).reshape(-1, 1),
        "All_Faces": (charts.faces + 1).astype(np.float64),
        "All_vertices": (charts.vertex + 1).astype(np.float64).reshape(1, -1),
        "All_U_norm": charts.u.astype(np.float64).reshape(-1, 1),
        "All_V_norm": charts.v.astype(np.float64).reshape(-1, 1),
    }
    buffer = io.BytesIO()
    scipy.io.savemat(buffer, mdict, format="5", do_compression=False, oned_as="column")
    data = bytearray(buffer.getvalue())
    data[:_MAT_HEADER_TEXT_BYTES] = _MAT_HEADER.ljust(_MAT_HEADER_TEXT_BYTES, b" ")
    check_file_output(path, signature=_MAT_HEADER)
    clean_stale_siblings(path)
    tmp = tmp_sibling(path)
    tmp.write_bytes(bytes(data))
    tmp.replace(path)
    return path
