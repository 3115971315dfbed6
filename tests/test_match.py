"""UV-to-vertex matching against a brute-force reference, on the stand-in's charts."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from dlearn.data.store import StoreError, open_store, read_sample_ids
from dlearn.densepose.match import UVMatcher, brute_force_match
from dlearn.densepose.uv import UVCharts, load_uv_charts


@pytest.fixture(scope="module")
def charts(standin_files: tuple[Path, Path]) -> UVCharts:
    return load_uv_charts(standin_files[1])


def test_a_query_at_a_chart_vertex_returns_that_vertex(charts: UVCharts) -> None:
    part_of_chart_vertex = np.zeros(charts.num_chart_vertices, dtype=np.int64)
    part_of_chart_vertex[charts.faces.ravel()] = np.repeat(charts.face_part, 3)
    uv = np.stack([charts.u, charts.v], axis=1)
    matched = UVMatcher(charts).match(part_of_chart_vertex, uv)
    np.testing.assert_array_equal(matched, charts.vertex)


def test_kd_tree_equals_brute_force(charts: UVCharts) -> None:
    rng = np.random.default_rng(0)
    part = rng.integers(1, 25, size=5000)
    uv = rng.random((5000, 2))
    np.testing.assert_array_equal(UVMatcher(charts).match(part, uv), brute_force_match(charts, part, uv))


def test_a_part_without_chart_is_an_error_naming_the_file(charts: UVCharts) -> None:
    keep = charts.face_part != 3
    partial = UVCharts(charts.face_part[keep], charts.faces[keep], charts.vertex, charts.u, charts.v, "UV_x.mat")
    with pytest.raises(ValueError, match="UV_x.mat: no chart for part 3"):
        UVMatcher(partial).match(np.array([3]), np.array([[0.5, 0.5]]))


def test_matched_vertices_lie_within_an_edge_of_the_true_surface_point(
    tmp_path: Path, standin_files: tuple[Path, Path]
) -> None:
    """End to end on exact synthetic data: synth -> crops -> match, checked against the renderer's truth."""
    from dlearn.body.io import load_body_model
    from dlearn.data.crops import CropOptions, make_crops
    from dlearn.data.synth import SynthOptions, synthesize
    from dlearn.densepose.match import MatchOptions, match_correspondences, matching_error_mm

    model, uv = standin_files
    synthesize(model, uv, tmp_path, SynthOptions(num_train=6, num_test=1, image_size=96, workers=1))
    json_path = tmp_path / "densepose_train.json"
    make_crops(json_path, tmp_path, tmp_path / "crops.zarr", CropOptions(image_size=32, workers=1))
    num_vertices = load_body_model(model).num_vertices
    match_correspondences(json_path, tmp_path / "crops.zarr", uv, tmp_path / "corr.zarr", MatchOptions(), num_vertices)
    # CSR aligned with the crops store: same samples, same order, offsets spanning every point.
    corr, crops = open_store(tmp_path / "corr.zarr"), open_store(tmp_path / "crops.zarr")
    assert read_sample_ids(corr) == read_sample_ids(crops)
    offsets = corr["offsets"][...]
    assert offsets[0] == 0 and offsets[-1] == corr["vertex"].shape[0] == corr["point"].shape[0] == 600
    assert np.all(np.abs(corr["point"][...]) < 1.0)  # dense points lie inside their crop
    error = matching_error_mm(tmp_path / "corr.zarr", tmp_path / "gt_train.zarr", model)
    assert error["points"] == 600
    # Nearest chart vertex of the true (U, V): about half an edge on average, never far.
    assert error["mean_mm"] < 0.6 * error["mean_edge_mm"]
    assert error["p95_mm"] < 1.2 * error["mean_edge_mm"]
    assert error["max_mm"] < 3.0 * error["mean_edge_mm"]

    # Crops of another annotation file: an error naming the crops store, nothing written.
    with pytest.raises(StoreError, match=r"crops\.zarr: 6 sample\(s\) have no dense annotation"):
        match_correspondences(
            tmp_path / "densepose_test.json", tmp_path / "crops.zarr", uv, tmp_path / "bad.zarr", MatchOptions(), num_vertices
        )
    assert not (tmp_path / "bad.zarr").exists()
