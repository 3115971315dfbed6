"""The rasteriser (numba z-buffer) that renders the synthetic data: exact first hits on hand-made scenes,
and the same annotations as the former embree ray caster on stand-in images."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from dlearn.data.raster import Hits, RasterScene, RayCastScene
from dlearn.data.synth import NoiseOptions, SynthOptions
from dlearn.data.synth.body import _Body
from dlearn.data.synth.image import _render_image
from dlearn.data.synth.scene import _sample_persons, _to_pixels


def _scene(triangles: list[list[tuple[float, float, float]]]) -> RasterScene:
    """One 'person' whose faces are the given triangles (3 (x, y, depth) corners each)."""
    vertices = np.asarray(triangles, dtype=np.float64).reshape(-1, 3)
    faces = np.arange(len(vertices)).reshape(-1, 3)
    return RasterScene([vertices], faces)


def _grid(scene: RasterScene | RayCastScene, *lattice: float) -> Hits:
    """``scene.grid`` spread over the whole lattice (misses: -1, zero barycentrics, inf depth,
    the lattice position), after checking that it returned the hits only, in lattice order."""
    x0, y0, step_x, step_y, nx, ny = lattice
    index, hits = scene.grid(*lattice)
    assert (np.diff(index) > 0).all() and (hits.person >= 0).all() and (hits.face >= 0).all()
    i, j = np.divmod(np.arange(nx * ny), nx)
    full = Hits(
        person=np.full(nx * ny, -1),
        face=np.full(nx * ny, -1),
        bary=np.zeros((nx * ny, 3)),
        depth=np.full(nx * ny, np.inf),
        xy=np.column_stack([x0 + j * step_x, y0 + i * step_y]),
        exact=np.zeros(nx * ny, dtype=bool),
    )
    for name in ("person", "face", "bary", "depth", "xy", "exact"):
        getattr(full, name)[index] = getattr(hits, name)
    return full


def _brute_force(triangles: np.ndarray, xy: np.ndarray) -> np.ndarray:
    """(M,) index of the triangle of smallest interpolated depth containing each position (the
    first on ties), -1 if none: every triangle tested against every position."""
    a, b, c = (triangles[:, k] for k in range(3))
    den = (b[:, 0] - a[:, 0]) * (c[:, 1] - a[:, 1]) - (c[:, 0] - a[:, 0]) * (b[:, 1] - a[:, 1])
    dx, dy = xy[:, None, 0] - a[None, :, 0], xy[:, None, 1] - a[None, :, 1]
    l1 = (dx * (c[:, 1] - a[:, 1]) - (c[:, 0] - a[:, 0]) * dy) / den
    l2 = ((b[:, 0] - a[:, 0]) * dy - dx * (b[:, 1] - a[:, 1])) / den
    inside = (l1 >= 0) & (l2 >= 0) & (l1 + l2 <= 1)
    depth = np.where(inside, a[:, 2] + l1 * (b[:, 2] - a[:, 2]) + l2 * (c[:, 2] - a[:, 2]), np.inf)
    return np.where(inside.any(1), depth.argmin(1), -1)


def test_pixel_centres_inside_a_triangle_and_barycentrics() -> None:
    # Corners on pixel corners: centre (j + .5, i + .5) is inside iff i + j <= 3 (on the
    # hypotenuse x + y = 4 for i + j = 3).
    scene = _scene([[(0, 0, 1.0), (4, 0, 2.0), (0, 4, 3.0)]])
    hits = _grid(scene, 0.5, 0.5, 1.0, 1.0, 6, 6)
    i, j = np.divmod(np.arange(36), 6)
    np.testing.assert_array_equal(hits.face >= 0, i + j <= 3)
    hit = hits.face >= 0
    np.testing.assert_allclose(hits.bary[hit].sum(1), 1.0, atol=1e-12)
    assert hits.bary[hit].min() >= 0
    np.testing.assert_allclose(hits.xy[hit], np.column_stack([j + 0.5, i + 0.5])[hit], atol=1e-12)
    np.testing.assert_allclose(hits.depth[hit], 1.0 + 0.25 * (j[hit] + 0.5) + 0.5 * (i[hit] + 0.5))
    assert hits.exact[hit].all() and not hits.exact[~hit].any()
    np.testing.assert_array_equal(hits.person, np.where(hit, 0, -1))


def test_nearest_face_wins_in_any_order_and_back_faces_count() -> None:
    near = [(0, 0, 1.0), (0, 8, 1.0), (8, 0, 1.0)]  # clockwise in the image (a back face)
    far = [(0, 0, 5.0), (8, 0, 5.0), (0, 8, 5.0)]
    for triangles, near_face in (([near, far], 0), ([far, near], 1)):
        scene = _scene(triangles)
        for hits in (_grid(scene, 0.5, 0.5, 1.0, 1.0, 8, 8), scene.cast(np.array([[1.5, 2.25], [3.0, 3.0]]))):
            hit = hits.face >= 0
            assert hit.any()
            assert (hits.face[hit] == near_face).all()
            np.testing.assert_allclose(hits.depth[hit], 1.0)


def test_shared_edges_through_samples_leave_no_holes_and_ties_go_to_the_lower_face() -> None:
    # A square split along its diagonal, and along a horizontal line through lattice rows:
    # samples on the shared edges belong to both faces; every sample in the square is hit.
    square = [[(0, 0, 1.0), (4, 0, 1.0), (4, 4, 1.0)], [(0, 0, 1.0), (4, 4, 1.0), (0, 4, 1.0)]]
    halves = [[(0, 0, 1.0), (4, 0, 1.0), (0, 2, 1.0)], [(4, 0, 1.0), (4, 2, 1.0), (0, 2, 1.0)],
              [(0, 2, 1.0), (4, 2, 1.0), (0, 4, 1.0)], [(4, 2, 1.0), (4, 4, 1.0), (0, 4, 1.0)]]  # fmt: skip
    for triangles in (square, halves):
        scene = _scene(triangles)
        hits = _grid(scene, 0.0, 0.0, 0.5, 0.5, 9, 9)  # samples on every edge and corner
        assert (hits.face >= 0).all()
        np.testing.assert_array_equal(hits.face, _brute_force(np.asarray(triangles, float), hits.xy))
        np.testing.assert_array_equal(scene.cast(hits.xy).face, hits.face)
        np.testing.assert_array_equal(_grid(scene, 4.25, 0.0, 0.5, 0.5, 4, 9).face, -1)  # right of it
    i, j = np.divmod(np.arange(81), 9)
    face = _grid(_scene(square), 0.0, 0.0, 0.5, 0.5, 9, 9).face
    np.testing.assert_array_equal(face, np.where(j >= i, 0, 1))  # the diagonal goes to face 0


def test_degenerate_faces_are_never_hit_and_empty_scenes_miss() -> None:
    edge_on = _scene([[(0, 0, 1.0), (4, 4, 1.0), (2, 2, 5.0)]])
    assert (_grid(edge_on, 0.0, 0.0, 1.0, 1.0, 5, 5).face == -1).all()
    assert (edge_on.cast(np.array([[1.0, 1.0], [2.0, 2.0]])).face == -1).all()
    scene = _scene([[(0, 0, 1.0), (4, 0, 1.0), (0, 4, 1.0)]])
    assert _grid(scene, 0.5, 0.5, 1.0, 1.0, 0, 3).face.shape == (0,)
    assert scene.cast(np.zeros((0, 2))).face.shape == (0,)
    far = scene.cast(np.array([[-50.0, 2.0], [1e6, 1e6]]))
    np.testing.assert_array_equal(far.face, -1)
    assert np.isinf(far.depth).all()


@pytest.mark.parametrize("scale", [1.0, 16.0])  # 16: over 65536 one-pixel cells, partly outside
def test_grid_and_cast_agree_with_brute_force_on_a_random_soup(scale: float) -> None:
    rng = np.random.default_rng(0)
    centres = rng.uniform(0, 20, size=(300, 1, 3))
    triangles = (centres + rng.normal(scale=2.0, size=(300, 3, 3))) * scale - [4 * scale, 0, 0]
    scene = _scene(triangles.tolist())
    grid = _grid(scene, 0.3 * scale, 0.7 * scale, 0.37 * scale, 0.41 * scale, 50, 45)
    cast = scene.cast(grid.xy)
    np.testing.assert_array_equal(grid.face, cast.face)
    np.testing.assert_array_equal(grid.face, _brute_force(triangles, grid.xy))


# --------------------------------------------------------------------------------------------
# Against the former renderer (embree ray casting) on stand-in images


@pytest.fixture(scope="module")
def body(standin_files: tuple[Path, Path]) -> _Body:
    return _Body(*standin_files)


OPTIONS = SynthOptions(
    image_size=96,
    dense_points_per_person=60,
    noise=NoiseOptions(
        dense_jitter_px=0.5, keypoint_jitter_px=1.0, part_confusion=0.3, missing_keypoints=0.0
    ),
)


@pytest.mark.parametrize("persons", [1, 3])
def test_same_pixels_as_the_ray_caster(body: _Body, persons: int) -> None:
    options = SynthOptions(image_size=96, persons_per_image=persons)
    same = foreground = 0
    for index in range(3):
        rng = np.random.default_rng([5, 0, index])
        people = _sample_persons(rng, body, options)
        vertices = [_to_pixels(p.vertices, p) for p in people]
        raster, rays = RasterScene(vertices, body.faces), RayCastScene(vertices, body.faces)
        for args in ((0.5, 0.5, 1.0, 1.0, 96, 96), (0.25, 0.25, 0.5, 0.5, 192, 192)):
            a, b = _grid(raster, *args), _grid(rays, *args)
            for scene, hits in ((raster, a), (rays, b)):  # grid_faces: the same faces, no Hits
                global_face = np.where(hits.person >= 0, hits.person * scene.num_faces + hits.face, -1)
                np.testing.assert_array_equal(scene.grid_faces(*args), global_face)
                # grid_values: what a caller reads of each face, written by the z-buffer itself
                values = np.random.default_rng(index).integers(1, 200, len(scene.faces)).astype(np.uint8)
                want = np.where(global_face >= 0, values[np.maximum(global_face, 0)], 0)
                got = scene.grid_values(*args, values, 0)
                assert got.dtype == np.uint8
                np.testing.assert_array_equal(got, want)
            fg = (a.person >= 0) | (b.person >= 0)
            foreground += int(fg.sum())
            same += int((fg & (a.person == b.person) & (a.face == b.face)).sum())
            # Masks: any disagreement sits on the silhouette (a neighbour differs).
            side = args[4]
            ma, mb = a.person.reshape(side, side), b.person.reshape(side, side)
            for i, j in zip(*np.nonzero(ma != mb)):
                around = mb[max(i - 1, 0) : i + 2, max(j - 1, 0) : j + 2]
                assert (around != mb[i, j]).any(), (index, i, j)
            hit = a.person >= 0
            np.testing.assert_allclose(a.bary[hit].sum(1), 1.0, atol=1e-12)
            np.testing.assert_allclose(a.xy[hit], raster_positions(args)[hit], atol=1e-9)
            assert a.exact[hit].all()
    assert same / foreground >= 0.995, same / foreground


def raster_positions(args: tuple) -> np.ndarray:
    x0, y0, sx, sy, nx, ny = args
    i, j = np.divmod(np.arange(nx * ny), nx)
    return np.column_stack([x0 + j * sx, y0 + i * sy])


def test_same_annotations_as_the_ray_caster(body: _Body, tmp_path: Path) -> None:
    """Whole images: identical pictures, IUV, masks, dense points (faces, barycentrics,
    positions) and keypoint visibility; a face keypoint may differ only where it sits exactly
    on a silhouette vertex, which the float32 ray caster can miss."""
    keypoints = differ = 0
    for index in range(4):
        new = _render_image(body, OPTIONS, 0, index, tmp_path / "raster", True, RasterScene)
        old = _render_image(body, OPTIONS, 0, index, tmp_path / "rays", True, RayCastScene)
        np.testing.assert_array_equal(new["preview"]["iuv"], old["preview"]["iuv"])
        np.testing.assert_array_equal(new["preview"]["image"], old["preview"]["image"])
        assert len(new["annotations"]) == len(old["annotations"])
        for a, b, ga, gb in zip(new["annotations"], old["annotations"], new["gt"], old["gt"]):
            for key in ("bbox", "area", "segmentation", "dp_x", "dp_y", "dp_I", "dp_U", "dp_V", "dp_masks"):
                assert a[key] == b[key], key
            np.testing.assert_array_equal(ga["dense_face"], gb["dense_face"])
            np.testing.assert_array_equal(ga["dense_bary"], gb["dense_bary"])
            va = np.asarray(a["keypoints"]).reshape(17, 3)[:, 2]
            vb = np.asarray(b["keypoints"]).reshape(17, 3)[:, 2]
            keypoints += 17
            differ += int((va != vb).sum())
            assert (np.flatnonzero(va != vb) < 5).all()  # face-vertex keypoints only
    assert differ <= 0.02 * keypoints


def test_rendering_is_deterministic(body: _Body, tmp_path: Path) -> None:
    first = _render_image(body, OPTIONS, 1, 2, tmp_path / "a", True)
    second = _render_image(body, OPTIONS, 1, 2, tmp_path / "b", True)
    assert first["annotations"] == second["annotations"]
    assert (tmp_path / "a" / first["image"]["file_name"]).read_bytes() == (
        tmp_path / "b" / second["image"]["file_name"]
    ).read_bytes()


# --------------------------------------------------------------------------------------------
# Against the former numpy implementation (16c9e52), kept here as the bit-exact reference of
# the numba kernels: same float64 operations in the same order, so the same bits.


def _offsets(counts: np.ndarray) -> np.ndarray:
    starts = np.cumsum(counts) - counts
    return np.arange(int(starts[-1] + counts[-1]) if len(counts) else 0) - np.repeat(starts, counts)


def _numpy_grid_faces(scene: RasterScene, x0: float, y0: float, dx: float, dy: float, nx: int, ny: int):
    pad = 1e-9
    i_lo = np.maximum(np.ceil((scene._lo[1] - pad - y0) / dy), 0)
    i_hi = np.minimum(np.floor((scene._hi[1] + pad - y0) / dy), ny - 1)
    j_lo = np.maximum(np.ceil((scene._lo[0] - pad - x0) / dx), 0)
    j_hi = np.minimum(np.floor((scene._hi[0] + pad - x0) / dx), nx - 1)
    face = np.flatnonzero((i_hi >= i_lo) & (j_hi >= j_lo))
    rows = (i_hi[face] - i_lo[face] + 1).astype(np.int64)
    sA, sB, sC = scene._sA[:, face], scene._sB[:, face], scene._sC[:, face]
    scale = -scene._inv_sA[:, face] / dx
    u = (sA * x0 + sB * y0 + sC + 1e-9) * scale
    v = sB * dy * scale
    u[2][sA[2] == 0] = -np.inf
    zA, zB = scene._zA[face], scene._zB[face]
    d0, di, dj = zA * x0 + zB * y0 + scene._zC[face], zB * dy, zA * dx
    i = np.repeat(i_lo[face], rows) + _offsets(rows)
    b0, b1, b2 = (np.repeat(u[k], rows) + np.repeat(v[k], rows) * i for k in range(3))
    left = np.repeat(scene._third_left[face], rows)
    j_first = np.maximum(np.ceil(np.where(left, np.maximum(b0, b2), b0)), np.repeat(j_lo[face], rows))
    j_last = np.minimum(np.floor(np.where(left, b1, np.minimum(b1, b2))), np.repeat(j_hi[face], rows))
    span = np.maximum(j_last - j_first + 1, 0).astype(np.int64)
    dj_row = np.repeat(dj, rows)
    depth = np.repeat(d0, rows) + np.repeat(di, rows) * i + dj_row * j_first
    offset = _offsets(span)
    pos = np.repeat((i * nx + j_first).astype(np.int64), span) + offset
    depth = np.repeat(depth, span) + offset * np.repeat(dj_row, span)
    tri = scene.live[np.repeat(np.repeat(face, rows), span)]
    return _numpy_zbuffer(pos, depth, tri, nx * ny)


def _numpy_zbuffer(pos: np.ndarray, depth: np.ndarray, tri: np.ndarray, size: int) -> np.ndarray:
    none = np.iinfo(np.int64).max
    zbuf = np.full(size, np.inf)
    np.minimum.at(zbuf, pos, depth)
    win = depth == zbuf[pos]
    best = np.full(size, none)
    np.minimum.at(best, pos[win], tri[win])
    return np.where(best == none, -1, best)


def _numpy_cast_faces(scene: RasterScene, xy: np.ndarray) -> np.ndarray:
    x0, y0, ncx, ncy, cell_start, cell_face = scene._face_cells()
    cx, cy = np.floor(xy[:, 0] - x0), np.floor(xy[:, 1] - y0)
    query = np.flatnonzero((cx >= 0) & (cx < ncx) & (cy >= 0) & (cy < ncy))
    cell = (cy[query] * ncx + cx[query]).astype(np.int64)
    count = cell_start[cell + 1] - cell_start[cell]
    q = np.repeat(query, count)
    f = cell_face[np.repeat(cell_start[cell], count) + _offsets(count)]
    x, y = xy[q, 0], xy[q, 1]
    c = scene._coefficients[f]
    lam = [c[:, k] * x + c[:, 3 + k] * y + c[:, 6 + k] for k in range(3)]
    on = np.flatnonzero(np.minimum(np.minimum(lam[0], lam[1]), lam[2]) >= -1e-9)
    f, q, c = f[on], q[on], c[on]
    depth = c[:, 9] * x[on] + c[:, 10] * y[on] + c[:, 11]
    return _numpy_zbuffer(q, depth, scene.live[f], len(xy))


def _numpy_hits(scene: RasterScene, tri: np.ndarray, xy: np.ndarray) -> tuple[np.ndarray, ...]:
    hit = np.flatnonzero(tri >= 0)
    corner = scene.faces[tri[hit]].T
    (ax, bx, cx), (ay, by, cy), (az, bz, cz) = (scene.vertices[:, d][corner] for d in range(3))
    px, py = xy[hit, 0] - ax, xy[hit, 1] - ay
    v0x, v0y, v1x, v1y = bx - ax, by - ay, cx - ax, cy - ay
    den = v0x * v1y - v1x * v0y
    ok = np.abs(den) > 1e-12
    den = np.where(ok, den, 1.0)
    l1 = np.where(ok, (px * v1y - v1x * py) / den, 1.0 / 3.0)
    l2 = np.where(ok, (v0x * py - px * v0y) / den, 1.0 / 3.0)
    l0 = np.where(ok, 1.0 - l1 - l2, 1.0 / 3.0)
    exact = ok & (np.minimum(np.minimum(l0, l1), l2) > -1e-4)
    l0, l1, l2 = np.maximum(l0, 0.0), np.maximum(l1, 0.0), np.maximum(l2, 0.0)
    total = l0 + l1 + l2
    l0, l1, l2 = l0 / total, l1 / total, l2 / total
    depth = l0 * az + l1 * bz + l2 * cz
    out_xy = np.column_stack([l0 * ax + l1 * bx + l2 * cx, l0 * ay + l1 * by + l2 * cy])
    return np.column_stack([l0, l1, l2]), depth, out_xy, exact


@pytest.mark.parametrize("persons", [1, 3])
def test_kernels_give_the_numpy_implementations_bits(body: _Body, persons: int) -> None:
    """Face maps of pixel centres, sub-pixel samples and a DensePose grid, point queries and the
    hits' barycentrics, depths, positions: bit for bit those of the former numpy code."""
    options = SynthOptions(image_size=128, persons_per_image=persons)
    for index in range(3):
        rng = np.random.default_rng([7, persons, index])
        scene = RasterScene(
            [_to_pixels(p.vertices, p) for p in _sample_persons(rng, body, options)], body.faces
        )
        (x0, y0), (x1, y1) = scene._lo.min(axis=1), scene._hi.max(axis=1)
        box = (x0 + (x1 - x0) / 512, y0 + (y1 - y0) / 512, (x1 - x0) / 256, (y1 - y0) / 256, 256, 256)
        for lattice in ((0.5, 0.5, 1.0, 1.0, 128, 128), (0.25, 0.25, 0.5, 0.5, 256, 256), box):
            expected = _numpy_grid_faces(scene, *lattice)
            np.testing.assert_array_equal(scene.grid_faces(*lattice), expected)
            index_hit, hits = scene.grid(*lattice)
            np.testing.assert_array_equal(index_hit, np.flatnonzero(expected >= 0))
            for got, want in zip((hits.bary, hits.depth, hits.xy, hits.exact),
                                 _numpy_hits(scene, expected[index_hit], hits_positions(lattice, index_hit))):  # fmt: skip
                np.testing.assert_array_equal(got, want)
        xy = np.column_stack([rng.uniform(x0 - 2, x1 + 2, 4000), rng.uniform(y0 - 2, y1 + 2, 4000)])
        expected = _numpy_cast_faces(scene, xy)
        hits = scene.cast(xy)
        np.testing.assert_array_equal(
            np.where(hits.person >= 0, hits.person * scene.num_faces + hits.face, -1), expected
        )
        hit = expected >= 0
        for got, want in zip((hits.bary[hit], hits.depth[hit], hits.xy[hit], hits.exact[hit]),
                             _numpy_hits(scene, expected, xy)):  # fmt: skip
            np.testing.assert_array_equal(got, want)


def hits_positions(lattice: tuple, index: np.ndarray) -> np.ndarray:
    x0, y0, sx, sy, nx, _ = lattice
    i, j = np.divmod(index, nx)
    return np.column_stack([x0 + j * sx, y0 + i * sy])


def test_face_setup_gives_the_numpy_implementations_bits(body: _Body) -> None:
    rng = np.random.default_rng([7, 9])
    people = _sample_persons(rng, body, SynthOptions(image_size=128, persons_per_image=2))
    scene = RasterScene([_to_pixels(p.vertices, p) for p in people], body.faces)
    (ax, bx, cx), (ay, by, cy), (az, bz, cz) = (scene.vertices[:, d][scene.faces.T] for d in range(3))
    v0x, v0y, v1x, v1y = bx - ax, by - ay, cx - ax, cy - ay
    den = v0x * v1y - v1x * v0y
    live = np.abs(den) > 1e-12
    np.testing.assert_array_equal(scene.live, np.flatnonzero(live))
    lo = np.stack([np.minimum(np.minimum(ax, bx), cx), np.minimum(np.minimum(ay, by), cy)])[:, live]
    hi = np.stack([np.maximum(np.maximum(ax, bx), cx), np.maximum(np.maximum(ay, by), cy)])[:, live]
    ax, ay, az, bz, cz, v0x, v0y, v1x, v1y, den = (
        v[live] for v in (ax, ay, az, bz, cz, v0x, v0y, v1x, v1y, den)
    )
    A1, A2, B1, B2 = v1y / den, -v0y / den, -v1x / den, v0x / den
    A0, B0 = -A1 - A2, -B1 - B2
    C0, C1, C2 = 1.0 - A0 * ax - B0 * ay, -A1 * ax - B1 * ay, -A2 * ax - B2 * ay
    zA, zB, zC = A0 * az + A1 * bz + A2 * cz, B0 * az + B1 * bz + B2 * cz, C0 * az + C1 * bz + C2 * cz
    first = np.where(A0 >= A1, np.where(A0 >= A2, 0, 2), np.where(A1 >= A2, 1, 2))
    second = np.where(A0 < A1, np.where(A0 < A2, 0, 2), np.where(A1 < A2, 1, 2))
    second = np.where(second == first, (first + 1) % 3, second)
    slots = np.stack([first, second, 3 - first - second]) * len(den) + np.arange(len(den))
    sA, sB, sC = (np.concatenate(m)[slots] for m in ((A0, A1, A2), (B0, B1, B2), (C0, C1, C2)))
    with np.errstate(divide="ignore"):
        inv_sA = np.where(sA == 0, 0.0, 1.0 / sA)
    coefficients = np.column_stack([sA.T, sB.T, sC.T, zA, zB, zC])
    for got, want in (
        (scene._lo, lo), (scene._hi, hi), (scene._sA, sA), (scene._sB, sB), (scene._sC, sC),
        (scene._inv_sA, inv_sA), (scene._third_left, sA[2] >= 0), (scene._zA, zA), (scene._zB, zB),
        (scene._zC, zC), (scene._coefficients, coefficients),
    ):  # fmt: skip
        np.testing.assert_array_equal(got, want)


def test_face_cells_are_the_faces_whose_boxes_cover_them(body: _Body) -> None:
    """The cell index of the point queries against a plain numpy construction (multi-pixel faces
    of a large scene included)."""
    for persons, size in ((1, 128), (3, 96), (1, 512)):
        rng = np.random.default_rng([7, persons, size])
        people = _sample_persons(rng, body, SynthOptions(image_size=size, persons_per_image=persons))
        scene = RasterScene([_to_pixels(p.vertices, p) for p in people], body.faces)
        x0, y0, ncx, ncy, start, face = scene._face_cells()
        c_lo = np.floor(scene._lo - np.array([[x0], [y0]])).astype(np.int64)
        c_hi = np.floor(scene._hi - np.array([[x0], [y0]])).astype(np.int64)
        assert (ncx, ncy) == (c_hi[0].max() + 1, c_hi[1].max() + 1)
        cell = [cy * ncx + cx for f in range(c_lo.shape[1])
                for cy in range(c_lo[1, f], c_hi[1, f] + 1) for cx in range(c_lo[0, f], c_hi[0, f] + 1)]  # fmt: skip
        owner = np.repeat(np.arange(c_lo.shape[1]), (c_hi[0] - c_lo[0] + 1) * (c_hi[1] - c_lo[1] + 1))
        order = np.argsort(cell, kind="stable")
        np.testing.assert_array_equal(face, owner[order])
        np.testing.assert_array_equal(start, np.concatenate([[0], np.cumsum(np.bincount(cell, minlength=ncx * ncy))]))
