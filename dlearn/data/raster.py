r"""First-hit visibility of triangle meshes in pixel space: a numpy z-buffer rasteriser.

The synthetic data (:mod:`dlearn.data.synth`) needs, for many image positions, the first
surface hit by a ray along +z (the weak-perspective camera looks along +z in pixel space;
smaller depth = closer): which person and face, the barycentric coordinates of the hit and its
depth. :class:`RasterScene` answers this exactly (float64) without ray casting:

* :meth:`RasterScene.grid` for a regular lattice of positions (pixel centres, sub-pixel
  samples, DensePose's 256 x 256 grid over a box): every face is scan-converted row by row over
  the lattice (its barycentric coordinates are affine in the image plane, so each lattice row
  crosses it in one interval of columns), and a z-buffer keeps the nearest face per position.
* :meth:`RasterScene.cast` for scattered positions (dense points, keypoints): the positions are
  binned into 1-pixel cells, each face is tested against the positions in the cells its
  bounding box covers, and the nearest containing face wins.

Both apply one rule, the ray caster's: a position is on a face when its barycentric
coordinates in the image plane are all >= -``BARY_EPS`` (front and back faces alike, no
culling), the hit is the face of smallest interpolated depth, and ties (a position on the
edge shared by two faces) go to the lower face index. Faces whose projection is degenerate
(twice the signed area <= 1e-12 px^2, seen exactly edge-on) are never hit. The barycentric
coordinates of a hit are then clipped into the face and renormalised, and its depth and
image position recomputed from them, so a hit and its surface point agree to rounding.

:class:`RayCastScene` is the former renderer (embree ray casting through trimesh), kept only as
the reference that the tests and ``benchmarks/bench_render.py`` compare against; embree works
in float32, so at edge pixels the two can pick different (adjacent) faces.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, fields

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
    """Concatenate the persons' meshes: (K * N, 3) vertices, (K * F, 3) faces (person-major)."""
    vertices = np.concatenate(vertices_px).astype(np.float64, copy=False)
    offsets = np.arange(len(vertices_px)) * len(vertices_px[0])
    return vertices, np.concatenate([faces + o for o in offsets])


def _hits_from_faces(
    vertices: np.ndarray, faces: np.ndarray, num_faces: int, tri: np.ndarray, xy: np.ndarray, need_bary: bool
) -> Hits:
    """:class:`Hits` of positions ``xy`` (M, 2) whose first-hit global face is ``tri`` (M,), -1 =
    miss: the barycentric coordinates solved in float64, clipped into the face."""
    m = len(xy)
    hit = np.flatnonzero(tri >= 0)
    person = np.full(m, -1, dtype=np.int64)
    face = np.full(m, -1, dtype=np.int64)
    person[hit], face[hit] = np.divmod(tri[hit], num_faces)
    bary = np.zeros((m, 3))
    depth = np.full(m, np.inf)
    out_xy = xy.copy()
    exact = np.zeros(m, dtype=bool)
    if len(hit) and need_bary:
        # Per hit, one 1-D array per corner and coordinate (contiguous, fast to combine).
        corner = faces[tri[hit]].T  # (3, H)
        (ax, bx, cx), (ay, by, cy), (az, bz, cz) = (vertices[:, d][corner] for d in range(3))
        px, py = xy[hit, 0] - ax, xy[hit, 1] - ay
        v0x, v0y, v1x, v1y = bx - ax, by - ay, cx - ax, cy - ay
        den = v0x * v1y - v1x * v0y
        ok = np.abs(den) > DEGENERATE_AREA
        den = np.where(ok, den, 1.0)
        l1 = np.where(ok, (px * v1y - v1x * py) / den, 1.0 / 3.0)
        l2 = np.where(ok, (v0x * py - px * v0y) / den, 1.0 / 3.0)
        l0 = np.where(ok, 1.0 - l1 - l2, 1.0 / 3.0)
        exact[hit] = ok & (np.minimum(np.minimum(l0, l1), l2) > -1e-4)
        l0, l1, l2 = np.maximum(l0, 0.0), np.maximum(l1, 0.0), np.maximum(l2, 0.0)
        total = l0 + l1 + l2
        l0, l1, l2 = l0 / total, l1 / total, l2 / total
        bary[hit] = np.column_stack([l0, l1, l2])
        depth[hit] = l0 * az + l1 * bz + l2 * cz
        out_xy[hit] = np.column_stack([l0 * ax + l1 * bx + l2 * cx, l0 * ay + l1 * by + l2 * cy])
    return Hits(person=person, face=face, bary=bary, depth=depth, xy=out_xy, exact=exact)


def _lattice(x0: float, y0: float, step_x: float, step_y: float, nx: int, ny: int) -> np.ndarray:
    """(ny * nx, 2) positions ``(x0 + j * step_x, y0 + i * step_y)``, row-major (i, j)."""
    xs = x0 + np.arange(nx) * step_x
    ys = y0 + np.arange(ny) * step_y
    return np.column_stack([np.tile(xs, ny), np.repeat(ys, nx)])


def _offsets(counts: np.ndarray) -> np.ndarray:
    """For consecutive groups of ``counts`` (G,) items: (sum(counts),) index of each item in its
    group (the group of each item is ``np.repeat(np.arange(G), counts)``)."""
    starts = np.cumsum(counts) - counts
    return np.arange(int(starts[-1] + counts[-1]) if len(counts) else 0) - np.repeat(starts, counts)


_NONE = np.iinfo(np.int64).max  # no face yet, in a z-buffer's face array
#: (face, lattice row) pairs per chunk of :meth:`RasterScene.grid`'s scan conversion.
_CHUNK_PAIRS = 4096


@dataclass
class _FaceLattice:
    """Per face (those whose box holds lattice positions), its scan conversion on one lattice:
    rows of the box ``i_lo + (0 .. rows - 1)``, columns ``j_lo .. j_hi``; along row ``i`` the face
    spans the columns ``j`` with ``j >= u_s + v_s i`` for the slots bounding from the left (slot 0,
    and slot 2 where ``third_left``) and ``j <= u_s + v_s i`` for the others (slot 1, else slot
    2); depth ``d0 + di i + dj j``. ``u``, ``v``: (3, G)."""

    face: np.ndarray
    rows: np.ndarray
    i_lo: np.ndarray
    j_lo: np.ndarray
    j_hi: np.ndarray
    u: np.ndarray
    v: np.ndarray
    third_left: np.ndarray
    d0: np.ndarray
    di: np.ndarray
    dj: np.ndarray

    def samples(self, chunk: slice, nx: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The lattice positions inside the faces of ``chunk``: (position ``i * nx + j`` (S,),
        depth (S,), live face index (S,))."""
        rows = self.rows[chunk]
        i = np.repeat(self.i_lo[chunk], rows) + _offsets(rows)

        def per_row(values: np.ndarray) -> np.ndarray:
            return np.repeat(values[chunk], rows)

        b0 = per_row(self.u[0]) + per_row(self.v[0]) * i
        b1 = per_row(self.u[1]) + per_row(self.v[1]) * i
        b2 = per_row(self.u[2]) + per_row(self.v[2]) * i
        third_left = per_row(self.third_left)
        j_first = np.maximum(np.ceil(np.where(third_left, np.maximum(b0, b2), b0)), per_row(self.j_lo))
        j_last = np.minimum(np.floor(np.where(third_left, b1, np.minimum(b1, b2))), per_row(self.j_hi))
        span = np.maximum(j_last - j_first + 1, 0).astype(np.int64)
        dj = per_row(self.dj)
        depth = per_row(self.d0) + per_row(self.di) * i + dj * j_first
        offset = _offsets(span)
        pos = np.repeat((i * nx + j_first).astype(np.int64), span) + offset
        depth = np.repeat(depth, span) + offset * np.repeat(dj, span)
        return pos, depth, np.repeat(per_row(self.face), span)


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
        # Per face, one 1-D array per corner and coordinate (contiguous, fast to combine).
        (ax, bx, cx), (ay, by, cy), (az, bz, cz) = (self.vertices[:, d][self.faces.T] for d in range(3))
        v0x, v0y, v1x, v1y = bx - ax, by - ay, cx - ax, cy - ay
        den = v0x * v1y - v1x * v0y
        live = np.abs(den) > DEGENERATE_AREA
        #: (L,) global indices of the faces that can be hit (non-degenerate projections).
        self.live = np.flatnonzero(live)
        lo = np.stack([np.minimum(np.minimum(ax, bx), cx), np.minimum(np.minimum(ay, by), cy)])
        hi = np.stack([np.maximum(np.maximum(ax, bx), cx), np.maximum(np.maximum(ay, by), cy)])
        if not live.all():
            lo, hi = lo[:, live], hi[:, live]
            ax, ay, az, bz, cz, v0x, v0y, v1x, v1y, den = (
                v[live] for v in (ax, ay, az, bz, cz, v0x, v0y, v1x, v1y, den)
            )
        self._lo, self._hi = lo, hi  # (2, L) bounding boxes
        # Barycentric coordinates as affine functions of the position, l_k = A_k x + B_k y + C_k
        # (k: corner), and the depth likewise (weak perspective = orthographic in pixel space).
        A1, A2, B1, B2 = v1y / den, -v0y / den, -v1x / den, v0x / den
        A0, B0 = -A1 - A2, -B1 - B2
        C0, C1, C2 = 1.0 - A0 * ax - B0 * ay, -A1 * ax - B1 * ay, -A2 * ax - B2 * ay
        self._zA = A0 * az + A1 * bz + A2 * cz
        self._zB = B0 * az + B1 * bz + B2 * cz
        self._zC = C0 * az + C1 * bz + C2 * cz
        # Along a lattice row only the x slope A_k decides whether edge k bounds the face's span
        # from the left (A_k > 0) or the right (A_k < 0). Stored by slot: 0 the corner of largest
        # A (> 0), 1 that of smallest A (< 0; both exist since the A_k sum to 0 and are not all
        # 0), 2 the third; as (3, L) arrays.
        first = np.where(A0 >= A1, np.where(A0 >= A2, 0, 2), np.where(A1 >= A2, 1, 2))
        second = np.where(A0 < A1, np.where(A0 < A2, 0, 2), np.where(A1 < A2, 1, 2))
        second = np.where(second == first, (first + 1) % 3, second)  # all equal cannot happen
        slots = np.stack([first, second, 3 - first - second]) * len(den) + np.arange(len(den))
        self._sA, self._sB, self._sC = (
            np.concatenate(m)[slots] for m in ((A0, A1, A2), (B0, B1, B2), (C0, C1, C2))
        )
        with np.errstate(divide="ignore"):
            self._inv_sA = np.where(self._sA == 0, 0.0, 1.0 / self._sA)
        #: The third edge bounds the span from the left (or is parallel to the rows).
        self._third_left = self._sA[2] >= 0
        # The same per face as rows of one table, for gathering many faces at once (cast).
        self._coefficients = np.column_stack(
            [self._sA.T, self._sB.T, self._sC.T, self._zA, self._zB, self._zC]
        )
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
        tri = self._grid_faces(float(x0), float(y0), float(step_x), float(step_y), int(nx), int(ny))
        index = np.flatnonzero(tri >= 0)
        i, j = np.divmod(index, nx)
        xy = np.column_stack([x0 + j * step_x, y0 + i * step_y])  # as _lattice computes them
        return index, _hits_from_faces(self.vertices, self.faces, self.num_faces, tri[index], xy, need_bary)

    def _grid_faces(self, x0: float, y0: float, dx: float, dy: float, nx: int, ny: int) -> np.ndarray:
        """(ny * nx,) global face of the first hit at each lattice position, -1 for a miss."""
        size = max(nx, 0) * max(ny, 0)
        if size == 0 or len(self.live) == 0:
            return np.full(size, -1, dtype=np.int64)
        # Lattice rows and columns of each face's bounding box (a hair wider: the exact test
        # is below); faces whose box holds no lattice position are dropped.
        pad = 1e-9
        i_lo = np.maximum(np.ceil((self._lo[1] - pad - y0) / dy), 0)
        i_hi = np.minimum(np.floor((self._hi[1] + pad - y0) / dy), ny - 1)
        j_lo = np.maximum(np.ceil((self._lo[0] - pad - x0) / dx), 0)
        j_hi = np.minimum(np.floor((self._hi[0] + pad - x0) / dx), nx - 1)
        face = np.flatnonzero((i_hi >= i_lo) & (j_hi >= j_lo))  # index into the live faces
        if len(face) == 0:
            return np.full(size, -1, dtype=np.int64)
        rows = (i_hi[face] - i_lo[face] + 1).astype(np.int64)
        # Along lattice row i, in column units, l_s(i, j) = A_s (x0 + j dx) + B_s (y0 + i dy) + C_s
        # >= -eps bounds j by u_s + v_s i: from the left where A_s > 0, else from the right.
        sA, sB, sC = self._sA[:, face], self._sB[:, face], self._sC[:, face]
        scale = -self._inv_sA[:, face] / dx
        u = (sA * x0 + sB * y0 + sC + BARY_EPS) * scale
        v = sB * dy * scale
        # A slot-2 edge parallel to the rows (A_2 = 0) bounds no columns: it lies on the box's
        # top or bottom, so the box's rows already keep the face to its side.
        u[2][sA[2] == 0] = -np.inf
        # Depth at lattice (i, j): d0 + di i + dj j.
        zA, zB = self._zA[face], self._zB[face]
        per_face = _FaceLattice(
            face=face, rows=rows, i_lo=i_lo[face], j_lo=j_lo[face], j_hi=j_hi[face], u=u, v=v,
            third_left=self._third_left[face],
            d0=zA * x0 + zB * y0 + self._zC[face], di=zB * dy, dj=zA * dx,
        )  # fmt: skip
        # Faces in chunks of about _CHUNK_PAIRS (face, row) pairs: small temporaries stay in the
        # allocator's and the CPU's caches (one pass over all faces is 2x slower, page faults).
        cum = np.cumsum(rows)
        ends = np.searchsorted(cum, np.arange(1, cum[-1] // _CHUNK_PAIRS + 1) * _CHUNK_PAIRS, side="right")
        edges = np.unique(np.concatenate([[0], ends, [len(rows)]]))
        zbuf = np.full(size, np.inf)
        samples = []
        for start, stop in itertools.pairwise(edges):
            pos, depth, tri = per_face.samples(slice(start, stop), nx)
            np.minimum.at(zbuf, pos, depth)
            samples.append((pos, depth, self.live[tri]))
        # Ties (a position on an edge shared by two faces) go to the lower face index.
        best = np.full(size, _NONE)
        for pos, depth, tri in samples:
            win = depth == zbuf[pos]
            np.minimum.at(best, pos[win], tri[win])
        return np.where(best == _NONE, -1, best)

    # ---------------------------------------------------------------------------------------
    # Scattered positions

    def cast(self, xy: np.ndarray, need_bary: bool = True) -> Hits:
        """First hits of rays along +z through image positions ``xy`` (M, 2); without
        ``need_bary`` only ``person`` and ``face`` are filled in."""
        xy = np.asarray(xy, dtype=np.float64).reshape(-1, 2)
        m = len(xy)
        tri = np.full(m, -1, dtype=np.int64)
        if m and len(self.live):
            x0, y0, ncx, ncy, cell_start, cell_face = self._face_cells()
            cx, cy = np.floor(xy[:, 0] - x0), np.floor(xy[:, 1] - y0)
            query = np.flatnonzero((cx >= 0) & (cx < ncx) & (cy >= 0) & (cy < ncy))
            cell = (cy[query] * ncx + cx[query]).astype(np.int64)
            count = cell_start[cell + 1] - cell_start[cell]  # faces whose box covers the cell
            q = np.repeat(query, count)
            f = cell_face[np.repeat(cell_start[cell], count) + _offsets(count)]
            x, y = xy[q, 0], xy[q, 1]
            c = np.take(self._coefficients, f, axis=0)  # (Q, 12): A_k, B_k, C_k, depth's A, B, C
            lam = [c[:, k] * x + c[:, 3 + k] * y + c[:, 6 + k] for k in range(3)]
            on = np.flatnonzero(np.minimum(np.minimum(lam[0], lam[1]), lam[2]) >= -BARY_EPS)
            f, q, c = f[on], q[on], c[on]
            depth = c[:, 9] * x[on] + c[:, 10] * y[on] + c[:, 11]
            tri = _zbuffer(q, depth, self.live[f], m)
        return _hits_from_faces(self.vertices, self.faces, self.num_faces, tri, xy, need_bary)

    def _face_cells(self) -> tuple[float, float, int, int, np.ndarray, np.ndarray]:
        """1-pixel cells over the scene and, per cell, the live faces whose bounding box covers
        it (CSR): (x0, y0, cells along x, cells along y, start (C + 1,), face). Built once."""
        if self._cells is None:
            x0, y0 = np.floor(self._lo[0].min()), np.floor(self._lo[1].min())
            cx_lo, cy_lo = (
                np.floor(self._lo[0] - x0).astype(np.int64),
                np.floor(self._lo[1] - y0).astype(np.int64),
            )
            cx_hi, cy_hi = (
                np.floor(self._hi[0] - x0).astype(np.int64),
                np.floor(self._hi[1] - y0).astype(np.int64),
            )
            ncx, ncy = int(cx_hi.max()) + 1, int(cy_hi.max()) + 1
            width = cx_hi - cx_lo + 1
            count = width * (cy_hi - cy_lo + 1)
            face = np.repeat(np.arange(len(count)), count)
            cy, cx = np.divmod(_offsets(count), np.repeat(width, count))
            cell = (np.repeat(cy_lo, count) + cy) * ncx + np.repeat(cx_lo, count) + cx
            # Stable sort by cell (radix for 16-bit keys, the usual case: under 65536 cells).
            order = np.argsort(cell.astype(np.uint16) if ncx * ncy <= 1 << 16 else cell, kind="stable")
            start = np.concatenate([[0], np.cumsum(np.bincount(cell, minlength=ncx * ncy))])
            self._cells = (float(x0), float(y0), ncx, ncy, start, face[order])
        return self._cells


def _zbuffer(pos: np.ndarray, depth: np.ndarray, tri: np.ndarray, size: int) -> np.ndarray:
    """(size,) face ``tri`` of the smallest ``depth`` at each position ``pos`` (ties: the lowest
    face), -1 where no sample falls."""
    zbuf = np.full(size, np.inf)
    np.minimum.at(zbuf, pos, depth)
    win = depth == zbuf[pos]
    best = np.full(size, _NONE)
    np.minimum.at(best, pos[win], tri[win])
    return np.where(best == _NONE, -1, best)


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
