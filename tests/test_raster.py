"""The numpy rasteriser that renders the synthetic data: exact first hits on hand-made scenes,
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
