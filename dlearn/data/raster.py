r"""First-hit visibility of triangle meshes in pixel space: a z-buffer rasteriser (numba).

The synthetic data (:mod:`dlearn.data.synth`) needs, for many image positions, the first
surface hit by a ray along +z (the weak-perspective camera looks along +z in pixel space;
smaller depth = closer): which person and face, the barycentric coordinates of the hit and its
depth. :class:`RasterScene` answers this exactly (float64) without ray casting:

* :meth:`RasterScene.grid` (:meth:`~RasterScene.grid_faces`: the faces only) for a regular
  lattice of positions (pixel centres, sub-pixel samples, DensePose's 256 x 256 grid over a
  box): every face is scan-converted row by row over the lattice (its barycentric coordinates
  are affine in the image plane, so each lattice row crosses it in one interval of columns),
  and a z-buffer keeps the nearest face per position.
* :meth:`RasterScene.cast` for scattered positions (dense points, keypoints): the faces are
  binned into the 1-pixel cells their bounding boxes cover (once per scene), each position is
  tested against the faces of its cell, and the nearest containing face wins.

Both apply one rule, the ray caster's: a position is on a face when its barycentric
coordinates in the image plane are all >= -``BARY_EPS`` (front and back faces alike, no
culling), the hit is the face of smallest interpolated depth, and ties (a position on the
edge shared by two faces) go to the lower face index. Faces whose projection is degenerate
(twice the signed area <= 1e-12 px^2, seen exactly edge-on) are never hit. The barycentric
coordinates of a hit are then clipped into the face and renormalised, and its depth and
image position recomputed from them, so a hit and its surface point agree to rounding.

The per-face set-up, the scan conversion, the cell index, the point queries and the hits'
barycentrics are numba kernels (compiled on first use, cached next to this file). They perform
the float64 operations of the former numpy implementation (git history: 16c9e52) in the same
order, without fast-math, so they give the same bits: the same synthetic data, ~3-10x faster
per query.

:class:`RayCastScene` is the former renderer (embree ray casting through trimesh), kept only as
the reference that the tests and ``benchmarks/bench_render.py`` compare against; embree works
in float32, so at edge pixels the two can pick different (adjacent) faces.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields

import numba
import numpy as np

__all__ = ["BARY_EPS", "Hits", "RasterScene", "RayCastScene"]

#: Tolerance of the inside test (barycentric units): a position on an edge shared by two faces
#: is inside both (the depth test then picks one), so rounding never opens a hole.
BARY_EPS = 1e-9
#: |twice the signed area| (px^2) below which a projected face is degenerate (never hit).
DEGENERATE_AREA = 1e-12


@dataclass
class Hits:
    """First hits of M rays along +z.

    Attributes:
        person: (M,) person index, -1 for a miss.
        face: (M,) face of that person's mesh, -1 for a miss.
        bary: (M, 3) barycentric coordinates in the image plane, clipped into the face (zero for
            a miss, and when not asked for).
        depth: (M,) depth of the hit (pixels, scene z; inf for a miss).
        xy: (M, 2) image position recomputed from ``bary`` (the exact point of the hit).
        exact: (M,) the hit's unclipped barycentric coordinates are all > -1e-4 (the face found
            really contains the position).
    """

    person: np.ndarray
    face: np.ndarray
    bary: np.ndarray
    depth: np.ndarray
    xy: np.ndarray
    exact: np.ndarray

    def take(self, index: np.ndarray) -> Hits:
        """The hits of the rays ``index``."""
        return Hits(*(getattr(self, f.name)[index] for f in fields(self)))


def _union(vertices_px: list[np.ndarray], faces: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Concatenate the persons' meshes: (K * N, 3) vertices, (K * F, 3) faces (person-major); one
    person's as they are (C-contiguous float64 and int64, not copied)."""
    if len(vertices_px) == 1:
        return np.ascontiguousarray(vertices_px[0], dtype=np.float64), np.ascontiguousarray(faces, dtype=np.int64)
    vertices = np.concatenate(vertices_px).astype(np.float64, copy=False)
    offsets = np.arange(len(vertices_px)) * len(vertices_px[0])
    return vertices, np.concatenate([faces + o for o in offsets])


@numba.njit(inline="always")
def _np_min(a: float, b: float) -> float:
    """``np.minimum(a, b)`` of two floats (NaN and signed zeros as numpy treats them)."""
    return a if (a <= b or math.isnan(a)) else b


@numba.njit(inline="always")
def _np_max(a: float, b: float) -> float:
    """``np.maximum(a, b)`` of two floats (NaN and signed zeros as numpy treats them)."""
    return a if (a >= b or math.isnan(a)) else b


@numba.njit(inline="always")
def _split_face(g: int, num_faces: int) -> tuple[int, int]:
    """(person, face) of the global face ``g`` >= 0 (person-major, see :func:`_union`), by
    subtraction: a scene holds a few persons, and a 64-bit integer division costs more than the
    rest of a kernel's work on a position."""
    person = 0
    while g >= num_faces:
        g -= num_faces
        person += 1
    return person, g


@numba.njit(inline="always")
def _face_barycentric(
    vertices: np.ndarray, faces: np.ndarray, t: int, x: float, y: float
) -> tuple[float, float, float, bool]:
    """Barycentric coordinates of the image position (x, y) in global face ``t``, solved in
    float64 in the image plane, clipped into the face and renormalised (1/3 each for a
    degenerate face), and whether the unclipped ones were all > -1e-4 (the face really contains
    the position; never for a degenerate face). Inlined into the kernels that need a hit's
    barycentrics (:func:`_hits_kernel`, the synthetic data's shading and IUV), so all of them
    get the same bits."""
    a, b, c = faces[t, 0], faces[t, 1], faces[t, 2]
    ax, bx, cx = vertices[a, 0], vertices[b, 0], vertices[c, 0]
    ay, by, cy = vertices[a, 1], vertices[b, 1], vertices[c, 1]
    px, py = x - ax, y - ay
    v0x, v0y, v1x, v1y = bx - ax, by - ay, cx - ax, cy - ay
    den = v0x * v1y - v1x * v0y
    exact = False
    if abs(den) > DEGENERATE_AREA:
        l1 = (px * v1y - v1x * py) / den
        l2 = (v0x * py - px * v0y) / den
        l0 = 1.0 - l1 - l2
        exact = _np_min(_np_min(l0, l1), l2) > -1e-4
    else:
        l0 = l1 = l2 = 1.0 / 3.0
    l0, l1, l2 = _np_max(l0, 0.0), _np_max(l1, 0.0), _np_max(l2, 0.0)
    total = l0 + l1 + l2
    return l0 / total, l1 / total, l2 / total, exact


@numba.njit(cache=True, nogil=True)
def _hits_kernel(
    vertices: np.ndarray, faces: np.ndarray, num_faces: int, tri: np.ndarray, xy: np.ndarray, need_bary: bool
) -> tuple[np.ndarray, ...]:
    """The fields of :class:`Hits` (see :func:`_hits_from_faces`): person and face of every
    position with a hit (``tri`` >= 0; -1 for a miss) and, ``need_bary``, its clipped
    barycentric coordinates, depth, recomputed image position and exactness (misses, and all
    positions without ``need_bary``: zeros, inf, the position, False)."""
    m = tri.shape[0]
    person, face = np.full(m, -1, np.int64), np.full(m, -1, np.int64)
    bary, depth = np.zeros((m, 3)), np.full(m, np.inf)
    out_xy, exact = xy.copy(), np.zeros(m, np.bool_)
    for q in range(m):
        t = tri[q]
        if t < 0:
            continue
        person[q], face[q] = _split_face(t, num_faces)
        if not need_bary:
            continue
        l0, l1, l2, exact[q] = _face_barycentric(vertices, faces, t, xy[q, 0], xy[q, 1])
        a, b, c = faces[t, 0], faces[t, 1], faces[t, 2]
        bary[q, 0], bary[q, 1], bary[q, 2] = l0, l1, l2
        depth[q] = l0 * vertices[a, 2] + l1 * vertices[b, 2] + l2 * vertices[c, 2]
        out_xy[q, 0] = l0 * vertices[a, 0] + l1 * vertices[b, 0] + l2 * vertices[c, 0]
        out_xy[q, 1] = l0 * vertices[a, 1] + l1 * vertices[b, 1] + l2 * vertices[c, 1]
    return person, face, bary, depth, out_xy, exact


def _hits_from_faces(
    vertices: np.ndarray, faces: np.ndarray, num_faces: int, tri: np.ndarray, xy: np.ndarray, need_bary: bool
) -> Hits:
    """:class:`Hits` of positions ``xy`` (M, 2) whose first-hit global face is ``tri`` (M,), -1 =
    miss: the barycentric coordinates solved in float64 in the image plane (a degenerate face:
    1/3 each, not exact), clipped into the face and renormalised, and the depth and image
    position recomputed from them (:func:`_hits_kernel`)."""
    tri = np.ascontiguousarray(tri, dtype=np.int64)
    xy = np.ascontiguousarray(xy, dtype=np.float64)
    person, face, bary, depth, out_xy, exact = _hits_kernel(vertices, faces, num_faces, tri, xy, need_bary)
    return Hits(person=person, face=face, bary=bary, depth=depth, xy=out_xy, exact=exact)


def _lattice(x0: float, y0: float, step_x: float, step_y: float, nx: int, ny: int) -> np.ndarray:
    """(ny * nx, 2) positions ``(x0 + j * step_x, y0 + i * step_y)``, row-major (i, j)."""
    xs = x0 + np.arange(nx) * step_x
    ys = y0 + np.arange(ny) * step_y
    return np.column_stack([np.tile(xs, ny), np.repeat(ys, nx)])


_NONE = np.iinfo(np.int64).max  # no face yet, in a z-buffer's face array


@numba.njit(cache=True, nogil=True)
def _grid_kernel(
    x0: float, y0: float, dx: float, dy: float, nx: int, ny: int,
    lo: np.ndarray, hi: np.ndarray, sA: np.ndarray, sB: np.ndarray, sC: np.ndarray,
    inv_sA: np.ndarray, third_left: np.ndarray, zA: np.ndarray, zB: np.ndarray, zC: np.ndarray,
    value: np.ndarray, miss: int,
) -> np.ndarray:  # fmt: skip
    """(ny * nx,) ``value[f]`` of the first-hit live face f at each lattice position (the global
    face ``live``, or what a caller reads of it), ``miss`` where nothing is hit, in ``value``'s
    dtype: every live face scan-converted row by row over its bounding box, into one z-buffer.

    The arithmetic is the former numpy scan conversion's, operation for operation (IEEE float64,
    no fast-math, so the same bits): along lattice row i, in column units, the barycentric
    coordinate of slot s, l_s(i, j) = A_s (x0 + j dx) + B_s (y0 + i dy) + C_s >= -eps, bounds j
    by b_s = u_s + v_s i, from the left where A_s > 0, else from the right; the depth at (i, j)
    is d0 + di i + dj j. Faces are visited in increasing index and a position only changes hands
    to a strictly nearer face, so ties (a position on an edge shared by two faces) keep the
    lower face index."""
    size = nx * ny
    zbuf = np.full(size, np.inf)
    best = np.full(size, miss, dtype=value.dtype)
    pad = 1e-9
    for f in range(len(value)):
        # Lattice rows and columns of the face's bounding box (a hair wider: the exact test is
        # the span below).
        i_lo = max(np.ceil((lo[1, f] - pad - y0) / dy), 0.0)
        i_hi = min(np.floor((hi[1, f] + pad - y0) / dy), ny - 1.0)
        j_lo = max(np.ceil((lo[0, f] - pad - x0) / dx), 0.0)
        j_hi = min(np.floor((hi[0, f] + pad - x0) / dx), nx - 1.0)
        if not (i_hi >= i_lo and j_hi >= j_lo):
            continue
        s0, s1, s2 = -inv_sA[0, f] / dx, -inv_sA[1, f] / dx, -inv_sA[2, f] / dx
        u0 = (sA[0, f] * x0 + sB[0, f] * y0 + sC[0, f] + BARY_EPS) * s0
        u1 = (sA[1, f] * x0 + sB[1, f] * y0 + sC[1, f] + BARY_EPS) * s1
        u2 = (sA[2, f] * x0 + sB[2, f] * y0 + sC[2, f] + BARY_EPS) * s2
        v0, v1, v2 = sB[0, f] * dy * s0, sB[1, f] * dy * s1, sB[2, f] * dy * s2
        # A slot-2 edge parallel to the rows (A_2 = 0) bounds no columns: it lies on the box's
        # top or bottom, so the box's rows already keep the face to its side.
        if sA[2, f] == 0:
            u2 = -np.inf
        d0 = zA[f] * x0 + zB[f] * y0 + zC[f]
        di, dj = zB[f] * dy, zA[f] * dx
        left = third_left[f]
        face = value[f]
        for row in range(int(i_hi - i_lo) + 1):
            i = i_lo + row
            b0, b1, b2 = u0 + v0 * i, u1 + v1 * i, u2 + v2 * i
            if left:
                j_first, j_last = np.ceil(max(b0, b2)), np.floor(b1)
            else:
                j_first, j_last = np.ceil(b0), np.floor(min(b1, b2))
            j_first, j_last = max(j_first, j_lo), min(j_last, j_hi)
            if not j_last >= j_first:
                continue
            depth0 = d0 + di * i + dj * j_first
            pos0 = int(i * nx + j_first)
            for offset in range(int(j_last - j_first) + 1):
                depth = depth0 + offset * dj
                pos = pos0 + offset
                if depth < zbuf[pos]:
                    zbuf[pos] = depth
                    best[pos] = face
    return best


@numba.njit(cache=True, nogil=True)
def _face_cells_kernel(
    lo: np.ndarray, hi: np.ndarray, x0: float, y0: float
) -> tuple[int, int, np.ndarray, np.ndarray]:
    """1-pixel cells from (x0, y0) over the boxes (2, L) and, per cell, the faces whose box covers
    it in increasing order (CSR): (cells along x, cells along y, start (C + 1,), face).

    Most faces are smaller than a pixel, so their boxes cover 1 x 1 to 2 x 2 cells: those update
    the 4 cells from their first without branching on their extent (adding 0, or writing to a
    spare slot, for the cells they lack), which the former nested loops mispredicted."""
    n = lo.shape[1]
    cx_lo, cy_lo = np.empty(n, np.int64), np.empty(n, np.int64)
    wx, wy = np.empty(n, np.int64), np.empty(n, np.int64)  # extra cells along x and y
    ncx = ncy = 0
    for f in range(n):
        cx_lo[f], cy_lo[f] = int(np.floor(lo[0, f] - x0)), int(np.floor(lo[1, f] - y0))
        cx_hi, cy_hi = int(np.floor(hi[0, f] - x0)), int(np.floor(hi[1, f] - y0))
        wx[f], wy[f] = cx_hi - cx_lo[f], cy_hi - cy_lo[f]
        ncx, ncy = max(ncx, cx_hi + 1), max(ncy, cy_hi + 1)
    cells = ncx * ncy
    start = np.zeros(cells + ncx + 3, np.int64)  # a row and a column of padding
    for f in range(n):
        c = cy_lo[f] * ncx + cx_lo[f] + 1
        if wx[f] <= 1 and wy[f] <= 1:
            start[c] += 1
            start[c + 1] += wx[f]
            start[c + ncx] += wy[f]
            start[c + ncx + 1] += wx[f] * wy[f]
        else:
            for cy in range(wy[f] + 1):
                for cx in range(wx[f] + 1):
                    start[c + cy * ncx + cx] += 1
    for c in range(cells):
        start[c + 1] += start[c]
    total = start[cells]
    fill = start[: cells + ncx + 2].copy()
    face = np.empty(total + 1, np.int64)  # slot ``total``: the spare
    for f in range(n):
        c = cy_lo[f] * ncx + cx_lo[f]
        if wx[f] <= 1 and wy[f] <= 1:
            x, y = wx[f], wy[f]
            both = x * y
            face[fill[c]] = f
            fill[c] += 1
            face[fill[c + 1] if x else total] = f
            fill[c + 1] += x
            face[fill[c + ncx] if y else total] = f
            fill[c + ncx] += y
            face[fill[c + ncx + 1] if both else total] = f
            fill[c + ncx + 1] += both
        else:
            for cy in range(wy[f] + 1):
                for cx in range(wx[f] + 1):
                    cc = c + cy * ncx + cx
                    face[fill[cc]] = f
                    fill[cc] += 1
    return ncx, ncy, start[: cells + 1], face[:total]


@numba.njit(cache=True, nogil=True)
def _cast_kernel(
    xy: np.ndarray, x0: float, y0: float, ncx: int, ncy: int, start: np.ndarray, cell_face: np.ndarray,
    coefficients: np.ndarray, live: np.ndarray,
) -> np.ndarray:  # fmt: skip
    """(M,) global face of the first hit at each position ``xy`` (M, 2), -1 for a miss: the live
    faces of the position's cell tested one by one; ties go to the lower face."""
    m = xy.shape[0]
    out = np.full(m, -1, dtype=np.int64)
    for q in range(m):
        x, y = xy[q, 0], xy[q, 1]
        cx, cy = np.floor(x - x0), np.floor(y - y0)
        if not (cx >= 0 and cx < ncx and cy >= 0 and cy < ncy):
            continue
        cell = int(cy * ncx + cx)
        zbest = np.inf
        fbest = -1
        for k in range(start[cell], start[cell + 1]):
            f = cell_face[k]
            c = coefficients[f]
            l0 = c[0] * x + c[3] * y + c[6]
            l1 = c[1] * x + c[4] * y + c[7]
            l2 = c[2] * x + c[5] * y + c[8]
            if not min(min(l0, l1), l2) >= -BARY_EPS:
                continue
            depth = c[9] * x + c[10] * y + c[11]
            g = live[f]
            if depth < zbest or (depth == zbest and g < fbest):
                zbest, fbest = depth, g
        out[q] = fbest
    return out


@numba.njit(inline="always")
def _pick(slot: int, x0: float, x1: float, x2: float) -> float:
    """``(x0, x1, x2)[slot]`` as selects."""
    return x0 if slot == 0 else (x1 if slot == 1 else x2)


@numba.njit(cache=True, nogil=True)
def _setup_kernel(vertices: np.ndarray, faces: np.ndarray) -> tuple[np.ndarray, ...]:
    """Per face that can be hit (twice its projected signed area > :data:`DEGENERATE_AREA`):
    its global index ``live`` (L,), bounding box ``lo``, ``hi`` (2, L), ``1 / A`` by slot (3, L; 0
    where A = 0), whether slot 2 bounds from the left (or is parallel to the rows) (L,), and one
    (L, 12) table, per face ``A_s, B_s, C_s`` (3 each) and ``zA, zB, zC``: the barycentric
    coordinates as affine functions of the position, ``l_k = A_k x + B_k y + C_k``, by slot
    (slot 0 the corner of largest A (> 0; its edge bounds a lattice row's span from the left), 1
    that of smallest A (< 0; from the right; both exist since the A_k sum to 0 and are not all
    0), 2 the third), and the depth ``zA x + zB y + zC`` (weak perspective = orthographic in pixel
    space). One table serves both the lattices (its columns, as views) and the point queries
    (a face's row). The float64 operations are the former numpy expressions', in their order (the
    same bits)."""
    # One pass, filled for the live faces in order (then cut to their count); the slot of a
    # corner is picked by selects, not branches on which corner holds the largest A.
    n = faces.shape[0]
    live = np.empty(n, np.int64)
    lo, hi = np.empty((2, n)), np.empty((2, n))
    inv_sA = np.empty((3, n))
    third_left = np.empty(n, np.bool_)
    coefficients = np.empty((n, 12))
    g = 0
    for f in range(n):
        a, b, c = faces[f, 0], faces[f, 1], faces[f, 2]
        ax, bx, cx = vertices[a, 0], vertices[b, 0], vertices[c, 0]
        ay, by, cy = vertices[a, 1], vertices[b, 1], vertices[c, 1]
        v0x, v0y, v1x, v1y = bx - ax, by - ay, cx - ax, cy - ay
        den = v0x * v1y - v1x * v0y
        if not abs(den) > DEGENERATE_AREA:
            continue
        live[g] = f
        az, bz, cz = vertices[a, 2], vertices[b, 2], vertices[c, 2]
        lo[0, g], lo[1, g] = _np_min(_np_min(ax, bx), cx), _np_min(_np_min(ay, by), cy)
        hi[0, g], hi[1, g] = _np_max(_np_max(ax, bx), cx), _np_max(_np_max(ay, by), cy)
        A1, A2, B1, B2 = v1y / den, -v0y / den, -v1x / den, v0x / den
        A0, B0 = -A1 - A2, -B1 - B2
        C0, C1, C2 = 1.0 - A0 * ax - B0 * ay, -A1 * ax - B1 * ay, -A2 * ax - B2 * ay
        coefficients[g, 9] = A0 * az + A1 * bz + A2 * cz
        coefficients[g, 10] = B0 * az + B1 * bz + B2 * cz
        coefficients[g, 11] = C0 * az + C1 * bz + C2 * cz
        first = (0 if A0 >= A2 else 2) if A0 >= A1 else (1 if A1 >= A2 else 2)
        second = (0 if A0 < A2 else 2) if A0 < A1 else (1 if A1 < A2 else 2)
        if second == first:  # all equal cannot happen
            second = (first + 1) % 3
        for k in range(3):
            slot = first if k == 0 else (second if k == 1 else 3 - first - second)
            ak, bk, ck = _pick(slot, A0, A1, A2), _pick(slot, B0, B1, B2), _pick(slot, C0, C1, C2)
            inv_sA[k, g] = 0.0 if ak == 0 else 1.0 / ak
            coefficients[g, k], coefficients[g, 3 + k], coefficients[g, 6 + k] = ak, bk, ck
        third_left[g] = coefficients[g, 2] >= 0
        g += 1
    return live[:g], lo[:, :g], hi[:, :g], inv_sA[:, :g], third_left[:g], coefficients[:g]


class RasterScene:
    """The union of the persons' meshes in pixel space ((x, y) image position, z depth), with
    exact first-hit queries by rasterisation (see the module docstring).

    Args:
        vertices_px: per person, (N, 3) vertices in pixel space (all persons share ``faces``).
        faces: (F, 3) vertex indices of one person's mesh.
    """

    def __init__(self, vertices_px: list[np.ndarray], faces: np.ndarray):
        self.num_faces = len(faces)
        self.vertices, self.faces = _union(vertices_px, faces)
        self.live, self._lo, self._hi, self._inv_sA, self._third_left, self._coefficients = _setup_kernel(
            self.vertices, self.faces
        )
        table = self._coefficients  # its columns by slot, as the lattice kernel reads them
        self._sA, self._sB, self._sC = table[:, 0:3].T, table[:, 3:6].T, table[:, 6:9].T
        self._zA, self._zB, self._zC = table[:, 9], table[:, 10], table[:, 11]
        self._cells: tuple[float, float, int, int, np.ndarray, np.ndarray] | None = None

    # ---------------------------------------------------------------------------------------
    # Regular lattices

    def grid(
        self, x0: float, y0: float, step_x: float, step_y: float, nx: int, ny: int, need_bary: bool = True
    ) -> tuple[np.ndarray, Hits]:
        """First hits at the lattice ``(x0 + j * step_x, y0 + i * step_y)``, ``j < nx``,
        ``i < ny``: (H,) row-major indices ``i * nx + j`` of the positions that hit something,
        and their :class:`Hits` (only the hits: a lattice is mostly misses). Without
        ``need_bary`` only ``person`` and ``face`` are filled in."""
        tri = self.grid_faces(x0, y0, step_x, step_y, nx, ny)
        index = np.flatnonzero(tri >= 0)
        i, j = np.divmod(index, nx)
        xy = np.column_stack([x0 + j * step_x, y0 + i * step_y])  # as _lattice computes them
        return index, _hits_from_faces(self.vertices, self.faces, self.num_faces, tri[index], xy, need_bary)

    def grid_faces(self, x0: float, y0: float, step_x: float, step_y: float, nx: int, ny: int) -> np.ndarray:
        """(ny * nx,) global face (``person * num_faces + face``) of the first hit at each position
        of the lattice of :meth:`grid`, row-major, -1 for a miss: what a caller that needs only the
        faces reads without building :class:`Hits` (the DensePose grid's part masks)."""
        size = max(int(nx), 0) * max(int(ny), 0)
        if size == 0 or len(self.live) == 0:
            return np.full(size, -1, dtype=np.int64)
        return _grid_kernel(
            float(x0), float(y0), float(step_x), float(step_y), int(nx), int(ny), self._lo, self._hi,
            self._sA, self._sB, self._sC, self._inv_sA, self._third_left, self._zA, self._zB, self._zC, self.live, -1,
        )  # fmt: skip

    def grid_values(
        self, x0: float, y0: float, step_x: float, step_y: float, nx: int, ny: int, values: np.ndarray, miss: int
    ) -> np.ndarray:
        """(ny * nx,) ``values[g]`` of the first-hit global face g at each position of the lattice
        of :meth:`grid`, row-major, ``miss`` for a miss, in ``values``' dtype: a map of what a
        caller reads of the faces (persons, DensePose's coarse parts) written by the z-buffer
        itself, without the face map in between. ``values``: (persons * faces,)."""
        size = max(int(nx), 0) * max(int(ny), 0)
        if size == 0 or len(self.live) == 0:
            return np.full(size, miss, dtype=values.dtype)
        return _grid_kernel(
            float(x0), float(y0), float(step_x), float(step_y), int(nx), int(ny), self._lo, self._hi,
            self._sA, self._sB, self._sC, self._inv_sA, self._third_left, self._zA, self._zB, self._zC,
            values[self.live], miss,
        )  # fmt: skip

    # ---------------------------------------------------------------------------------------
    # Scattered positions

    def cast(self, xy: np.ndarray, need_bary: bool = True) -> Hits:
        """First hits of rays along +z through image positions ``xy`` (M, 2); without
        ``need_bary`` only ``person`` and ``face`` are filled in."""
        xy = np.ascontiguousarray(np.asarray(xy, dtype=np.float64).reshape(-1, 2))
        m = len(xy)
        tri = np.full(m, -1, dtype=np.int64)
        if m and len(self.live):
            x0, y0, ncx, ncy, cell_start, cell_face = self._face_cells()
            tri = _cast_kernel(xy, x0, y0, ncx, ncy, cell_start, cell_face, self._coefficients, self.live)
        return _hits_from_faces(self.vertices, self.faces, self.num_faces, tri, xy, need_bary)

    def _face_cells(self) -> tuple[float, float, int, int, np.ndarray, np.ndarray]:
        """1-pixel cells over the scene and, per cell, the live faces whose bounding box covers
        it (CSR): (x0, y0, cells along x, cells along y, start (C + 1,), face). Built once."""
        if self._cells is None:
            x0, y0 = float(np.floor(self._lo[0].min())), float(np.floor(self._lo[1].min()))
            ncx, ncy, start, face = _face_cells_kernel(self._lo, self._hi, x0, y0)
            self._cells = (x0, y0, int(ncx), int(ncy), start, face)
        return self._cells


class RayCastScene:
    """The former renderer, embree ray casting (float32) through trimesh: the reference that
    tests and benchmarks compare :class:`RasterScene` with. Same interface."""

    def __init__(self, vertices_px: list[np.ndarray], faces: np.ndarray):
        import trimesh
        from trimesh.ray.ray_pyembree import RayMeshIntersector

        self.num_faces = len(faces)
        self.vertices, self.faces = _union(vertices_px, faces)
        mesh = trimesh.Trimesh(self.vertices, self.faces, process=False, validate=False)
        self.intersector = RayMeshIntersector(mesh)
        self.z0 = float(self.vertices[:, 2].min()) - 10.0

    def grid(
        self, x0: float, y0: float, step_x: float, step_y: float, nx: int, ny: int, need_bary: bool = True
    ) -> tuple[np.ndarray, Hits]:
        """:meth:`RasterScene.grid` by casting a ray at every lattice position."""
        hits = self.cast(_lattice(x0, y0, step_x, step_y, nx, ny), need_bary)
        index = np.flatnonzero(hits.person >= 0)
        return index, hits.take(index)

    def grid_faces(self, x0: float, y0: float, step_x: float, step_y: float, nx: int, ny: int) -> np.ndarray:
        """:meth:`RasterScene.grid_faces` by casting a ray at every lattice position."""
        hits = self.cast(_lattice(x0, y0, step_x, step_y, nx, ny), need_bary=False)
        return np.where(hits.person >= 0, hits.person * self.num_faces + hits.face, -1)

    def grid_values(
        self, x0: float, y0: float, step_x: float, step_y: float, nx: int, ny: int, values: np.ndarray, miss: int
    ) -> np.ndarray:
        """:meth:`RasterScene.grid_values` from :meth:`grid_faces`."""
        tri = self.grid_faces(x0, y0, step_x, step_y, nx, ny)
        out = np.full(len(tri), miss, dtype=values.dtype)
        out[tri >= 0] = values[tri[tri >= 0]]
        return out

    def cast(self, xy: np.ndarray, need_bary: bool = True) -> Hits:
        """First hits of rays along +z through image positions ``xy`` (M, 2)."""
        xy = np.asarray(xy, dtype=np.float64).reshape(-1, 2)
        m = len(xy)
        origins = np.column_stack([xy, np.full(m, self.z0)])
        directions = np.tile(np.array([0.0, 0.0, 1.0]), (m, 1))
        tri = self.intersector.intersects_first(origins, directions) if m else np.zeros(0, np.int64)
        return _hits_from_faces(
            self.vertices, self.faces, self.num_faces, np.asarray(tri, np.int64), xy, need_bary
        )
