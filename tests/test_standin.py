"""The procedural stand-in body: a closed surface, SMPL-compatible arrays, injective part charts."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import scipy.io
import torch
import trimesh
from scipy.spatial import cKDTree

from dlearn.body.io import KEYPOINT_VERTEX_NAMES, NUM_JOINTS, load_body_model
from dlearn.body.standin import StandinBody, rest_joints, write_standin, write_standin_preview
from dlearn.densepose.uv import (
    NUM_PARTS,
    UVChartError,
    UVCharts,
    body_face_parts,
    load_uv_charts,
    write_uv_charts,
)


@pytest.fixture(scope="module")
def body(standin_body: StandinBody) -> StandinBody:
    return standin_body


def test_surface_is_closed_manifold(body: StandinBody) -> None:
    mesh = trimesh.Trimesh(body.model.v_template, body.model.faces, process=False)
    assert 3000 <= body.model.num_vertices <= 8000
    assert mesh.is_watertight and mesh.is_winding_consistent
    assert mesh.volume > 0.03  # outward faces; a ~55 litre body
    assert mesh.euler_number == 2 and len(mesh.split(only_watertight=False)) == 1
    height = np.ptp(body.model.v_template[:, 1])
    assert 1.6 < height < 1.8


def test_legs_are_apart_below_the_crotch(body: StandinBody) -> None:
    v = body.model.v_template
    thighs = v[(v[:, 1] < -0.42) & (v[:, 1] > -0.6)]
    assert np.abs(thighs[:, 0]).min() > 0.01


def test_regressor_reproduces_designed_joints(body: StandinBody) -> None:
    reg = body.model.j_regressor
    assert reg.min() >= 0.0
    np.testing.assert_allclose(reg.sum(axis=1), 1.0, atol=1e-12)
    np.testing.assert_allclose(reg @ body.model.v_template, rest_joints(), atol=1e-6)
    assert np.all((reg > 0).sum(axis=1) >= 4)


def test_skinning_weights_are_a_partition_of_unity(body: StandinBody) -> None:
    w = body.model.weights
    assert w.shape == (body.model.num_vertices, NUM_JOINTS)
    assert w.min() >= 0.0
    np.testing.assert_allclose(w.sum(axis=1), 1.0, atol=1e-12)
    assert np.all(w.max(axis=0) > 0.8)  # every joint drives some vertices (nearly) alone


def test_symmetry_map(body: StandinBody) -> None:
    sym = body.model.vertex_symmetry
    assert sym is not None
    np.testing.assert_array_equal(sym[sym], np.arange(body.model.num_vertices))
    v = body.model.v_template
    assert np.abs(v[sym] * [-1.0, 1.0, 1.0] - v).max() < 1e-3


def test_mirrored_parameters_pose_the_mirrored_surface(body: StandinBody) -> None:
    # Flip augmentation trains on mirrored targets: they must describe the mirrored body exactly.
    from dlearn.body.model import BodyModel
    from dlearn.body.symmetry import JOINT_FLIP, mirror_pose, mirror_scales

    model = BodyModel(body.model, dtype=torch.float64)
    generator = torch.Generator().manual_seed(0)
    pose = 0.5 * torch.randn(3, 23, 3, generator=generator, dtype=torch.float64)
    scales = torch.exp(0.1 * torch.randn(3, 24, generator=generator, dtype=torch.float64))
    out = model(pose, scales)
    mirrored = model(mirror_pose(pose), mirror_scales(scales))
    negate_x = torch.tensor([-1.0, 1.0, 1.0], dtype=torch.float64)
    sym = torch.as_tensor(body.model.vertex_symmetry)
    torch.testing.assert_close(mirrored.vertices, negate_x * out.vertices[:, sym])
    torch.testing.assert_close(mirrored.joints, negate_x * out.joints[:, JOINT_FLIP])


def test_keypoint_vertices_are_on_the_head(body: StandinBody) -> None:
    ids = body.model.vertex_ids
    assert set(ids) == set(KEYPOINT_VERTEX_NAMES)
    v = body.model.v_template
    assert all(v[i, 1] > 0.38 for i in ids.values())
    assert v[ids["nose"], 2] > v[ids["reye"], 2] > v[ids["rear"], 2]
    assert v[ids["leye"], 0] > 0 > v[ids["reye"], 0] and v[ids["lear"], 0] > 0 > v[ids["rear"], 0]


def test_smplx_loads_the_pickle(standin_files: tuple[Path, Path]) -> None:
    import smplx

    model_path, _ = standin_files
    data = load_body_model(model_path)
    smpl = smplx.SMPL(
        model_path=str(model_path),
        vertex_ids=dict(nose=0, reye=0, leye=0, rear=0, lear=0),
        use_hands=False,
        use_feet_keypoints=False,
        dtype=torch.float64,
    )
    with torch.no_grad():
        out = smpl()
    np.testing.assert_allclose(out.vertices[0].numpy(), data.v_template, atol=1e-9)
    np.testing.assert_allclose(
        out.joints[0, :NUM_JOINTS].numpy(), data.j_regressor @ data.v_template, atol=1e-9
    )


def test_load_body_model_round_trip(body: StandinBody, standin_files: tuple[Path, Path]) -> None:
    data = load_body_model(standin_files[0])
    np.testing.assert_array_equal(data.v_template, body.model.v_template)
    np.testing.assert_array_equal(data.faces, body.model.faces)
    np.testing.assert_array_equal(data.vertex_symmetry, body.model.vertex_symmetry)
    assert data.vertex_ids == body.model.vertex_ids
    assert not data.posedirs.any() and not data.shapedirs.any() and data.shapedirs.shape[2] >= 10


def _signed_uv_areas(charts: UVCharts, part: int) -> np.ndarray:
    tri = charts.part_faces(part)
    u, v = charts.u[tri], charts.v[tri]
    return (u[:, 1] - u[:, 0]) * (v[:, 2] - v[:, 0]) - (u[:, 2] - u[:, 0]) * (v[:, 1] - v[:, 0])


def test_uv_charts_round_trip_and_cover_the_body(body: StandinBody, standin_files: tuple[Path, Path]) -> None:
    charts = load_uv_charts(standin_files[1], num_vertices=body.model.num_vertices)
    for key in ("face_part", "faces", "vertex", "u", "v"):
        np.testing.assert_array_equal(getattr(charts, key), getattr(body.uv, key), err_msg=key)
    assert set(np.unique(charts.face_part)) == set(range(1, NUM_PARTS + 1))
    assert set(np.unique(charts.vertex)) == set(range(body.model.num_vertices))
    # The charts cut the body's faces into parts: the same triangles, each once.
    body_tris = np.sort(charts.body_faces(), axis=1)
    expected = np.sort(body.model.faces, axis=1)
    np.testing.assert_array_equal(body_tris[np.lexsort(body_tris.T)], expected[np.lexsort(expected.T)])
    # A vertex on a part border is listed once per part.
    counts = np.bincount(charts.vertex)
    assert counts.max() >= 3 and (counts > 1).sum() > 100


@pytest.mark.parametrize("part", range(1, NUM_PARTS + 1))
def test_uv_chart_is_an_injective_disc(body: StandinBody, part: int) -> None:
    charts = body.uv
    tri = charts.part_faces(part)
    used = np.unique(tri)
    edges = np.unique(
        np.sort(np.concatenate([tri[:, [0, 1]], tri[:, [1, 2]], tri[:, [2, 0]]]), axis=1), axis=0
    )
    assert len(used) - len(edges) + len(tri) == 1  # Euler characteristic of a disc
    assert len(np.unique(charts.vertex[used])) == len(used)  # a body vertex appears once per part
    area = _signed_uv_areas(charts, part)
    assert np.all(area > 0) or np.all(area < 0)
    assert np.abs(area).min() > 1e-12
    uv = np.stack([charts.u[used], charts.v[used]], axis=1)
    assert not cKDTree(uv).query_pairs(1e-9)  # distinct UV per chart vertex
    assert charts.u[used].min() >= 0 and charts.u[used].max() <= 1
    assert charts.v[used].min() >= 0 and charts.v[used].max() <= 1


def test_parts_are_mirror_images(body: StandinBody) -> None:
    half = len(body.face_part) // 2
    left, right = body.face_part[:half], body.face_part[half:]
    swap = np.array(
        [0, 1, 2, 4, 3, 6, 5, 8, 7, 10, 9, 12, 11, 14, 13, 16, 15, 18, 17, 20, 19, 22, 21, 24, 23]
    )
    assert (swap[left] == right).mean() > 0.99
    v = body.model.v_template
    centroid = v[body.model.faces].mean(axis=1)
    # Odd parts of limbs are backs (-z of the bone); head 24 is the left (+x) half.
    for back, front in ((1, 2), (7, 9), (8, 10), (11, 13), (12, 14), (15, 17), (16, 18), (19, 21), (20, 22)):
        assert centroid[body.face_part == back, 2].mean() < centroid[body.face_part == front, 2].mean()
    assert centroid[body.face_part == 24, 0].min() > -1e-9 > centroid[body.face_part == 23, 0].max()
    for left_part in (4, 5, 8, 10, 12, 14, 15, 17, 19, 21):
        assert centroid[body.face_part == left_part, 0].min() > 0


def test_body_face_parts_from_charts(body: StandinBody) -> None:
    np.testing.assert_array_equal(body_face_parts(body.uv, body.model.faces[::-1]), body.face_part[::-1])
    # DensePose's own charts leave 2 of SMPL's faces out: a few uncharted faces get part 0 ...
    other_mesh = body.model.faces.copy()
    other_mesh[0] = other_mesh[0, [0, 0, 1]]
    assert body_face_parts(body.uv, other_mesh)[0] == 0
    # ... but charts of another mesh are an error naming the file.
    with pytest.raises(UVChartError, match=r"of \d+ body model faces are in no chart"):
        body_face_parts(body.uv, body.model.faces[:, [0, 0, 1]])


def test_files_are_deterministic(tmp_path: Path, standin_files: tuple[Path, Path]) -> None:
    again = write_standin(tmp_path)
    for first, second in zip(standin_files, again):
        assert first.name == second.name
        assert first.read_bytes() == second.read_bytes()


def test_uv_file_layout(standin_files: tuple[Path, Path]) -> None:
    raw = scipy.io.loadmat(str(standin_files[1]))
    f, m = raw["All_Faces"].shape[0], raw["All_vertices"].shape[1]
    assert raw["All_FaceIndices"].shape == (f, 1) and raw["All_Faces"].shape == (f, 3)
    assert raw["All_vertices"].shape == (1, m)
    assert raw["All_U_norm"].shape == (m, 1) and raw["All_V_norm"].shape == (m, 1)
    assert raw["All_Faces"].min() == 1 and raw["All_vertices"].min() == 1


def test_preview_png(body: StandinBody, tmp_path: Path) -> None:
    import matplotlib.image

    path = write_standin_preview(body, tmp_path / "preview.png")
    image = matplotlib.image.imread(path)
    assert image.shape[0] > 200 and image.shape[1] > 600
    assert image[..., :3].std() > 0.05  # not a blank canvas


def _charts(vertex_max: int = 3) -> UVCharts:
    return UVCharts(
        face_part=np.arange(1, 25),  # a chart for each of the 24 parts, as load_uv_charts requires
        faces=np.array([[0, 1, 2], [1, 3, 2]] * 12),
        vertex=np.array([0, 1, 2, vertex_max]),
        u=np.array([0.0, 1.0, 0.0, 1.0]),
        v=np.array([0.0, 0.0, 1.0, 1.0]),
    )


def test_load_uv_charts_reports_missing_key(tmp_path: Path) -> None:
    path = write_uv_charts(_charts(), tmp_path / "uv.mat")
    raw = scipy.io.loadmat(str(path))
    scipy.io.savemat(
        str(path), {k: v for k, v in raw.items() if k not in ("All_U_norm",) and not k.startswith("__")}
    )
    with pytest.raises(UVChartError, match=r"uv\.mat.*'All_U_norm' is missing"):
        load_uv_charts(path)


def test_load_uv_charts_reports_vertex_out_of_range(tmp_path: Path) -> None:
    path = write_uv_charts(_charts(vertex_max=9), tmp_path / "uv.mat")
    assert load_uv_charts(path, num_vertices=10).vertex.max() == 9
    with pytest.raises(UVChartError, match=r"uv\.mat.*'All_vertices'.*10 > 5"):
        load_uv_charts(path, num_vertices=5)


def test_load_uv_charts_reports_bad_faces(tmp_path: Path) -> None:
    charts = _charts()
    bad = UVCharts(charts.face_part, charts.faces + 3, charts.vertex, charts.u, charts.v)
    path = write_uv_charts(bad, tmp_path / "uv.mat")
    with pytest.raises(UVChartError, match=r"uv\.mat.*'All_Faces'"):
        load_uv_charts(path)
    with pytest.raises(UVChartError, match=r"missing\.mat.*does not exist"):
        load_uv_charts(tmp_path / "missing.mat")
