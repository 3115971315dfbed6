"""The `match` stage: DensePose (I, U, V) annotations -> body model vertices (paper section 6.1).

A data stage like :mod:`dlearn.data.crops`, whose store it aligns with; it reads the annotations
and UV charts through the DensePose readers (:mod:`dlearn.densepose`).

Each annotated point carries a part index I and chart coordinates (U, V). Its correspondence
is the vertex of part I whose chart coordinates are nearest to (U, V). One KD-tree per part
over that part's chart vertices, queried with every point of the part at once, across all
samples, makes this a few vectorised queries for a whole dataset.

Output (``correspondences_{split}.zarr``), CSR over the samples of the crops store, in its order:
``offsets`` (N + 1), ``vertex`` (P,) body vertex id, ``point`` (P, 2) position in normalised crop
coordinates (see :mod:`dlearn.data.crops`), ``part`` (P,) 1..24, ``uv`` (P, 2).
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

import numpy as np
from scipy.spatial import cKDTree

from dlearn.data.crops import to_crop
from dlearn.data.store import StoreError, csr_offsets, open_store, read_sample_ids, write_store
from dlearn.densepose.coco import PersonSample, read_densepose_coco
from dlearn.densepose.options import MatchOptions
from dlearn.densepose.uv import NUM_PARTS, UVCharts, load_uv_charts

log = logging.getLogger(__name__)


class UVMatcher:
    """Nearest chart vertex per part, in (U, V).

    Args:
        charts: the UV charts of the body model.
    """

    def __init__(self, charts: UVCharts):
        self._trees: dict[int, cKDTree] = {}
        self._vertex: dict[int, np.ndarray] = {}
        uv = np.stack([charts.u, charts.v], axis=1)
        for part in range(1, NUM_PARTS + 1):
            chart_vertices = np.unique(charts.part_faces(part))
            if chart_vertices.size == 0:
                continue
            self._trees[part] = cKDTree(uv[chart_vertices])
            self._vertex[part] = charts.vertex[chart_vertices]
        self.source = charts.source

    def match(self, part: np.ndarray, uv: np.ndarray, workers: int = -1) -> np.ndarray:
        """Body vertex of each point.

        Args:
            part: (P,) part index 1..24 of each point.
            uv: (P, 2) chart coordinates.
            workers: threads of the KD-tree queries (-1: all cores).

        Returns:
            (P,) int64 body vertex ids.

        Raises:
            ValueError: a point names a part that has no chart.
        """
        part = np.asarray(part)
        out = np.empty(len(part), dtype=np.int64)
        for p in np.unique(part):
            if int(p) not in self._trees:
                raise ValueError(f"{self.source}: no chart for part {int(p)}, which annotations use")
            rows = np.flatnonzero(part == p)
            _, nearest = self._trees[int(p)].query(uv[rows], k=1, workers=workers)
            out[rows] = self._vertex[int(p)][nearest]
        return out


def brute_force_match(charts: UVCharts, part: np.ndarray, uv: np.ndarray) -> np.ndarray:
    """Reference matcher: exhaustive nearest chart vertex per point (tests and benchmark only)."""
    chart_uv = np.stack([charts.u, charts.v], axis=1)
    out = np.empty(len(part), dtype=np.int64)
    for p in np.unique(part):
        chart_vertices = np.unique(charts.part_faces(int(p)))
        rows = np.flatnonzero(part == p)
        for first in range(0, len(rows), 4096):
            chunk = rows[first : first + 4096]
            d2 = ((uv[chunk, None, :] - chart_uv[None, chart_vertices, :]) ** 2).sum(-1)
            out[chunk] = charts.vertex[chart_vertices[d2.argmin(axis=1)]]
    return out


def _aligned_samples(json_path: Path, crops_path: Path) -> tuple[list[PersonSample], np.ndarray]:
    """The JSON's persons in the crops store's order, with their crop boxes."""
    crops = open_store(crops_path, stage="crops", required=["box"])
    ids = read_sample_ids(crops)
    # Images are never opened here (crops did, under its path rule): any file_name is fine.
    # Keypoints unused here (crops and check-data check their names).
    samples, _ = read_densepose_coco(
        json_path, json_path.parent, require_dense=True, allow_absolute_paths=True, keypoint_names=None
    )
    by_id = {s.sample_id: s for s in samples}
    missing = [i for i in ids if i not in by_id]
    if missing:
        raise StoreError(
            f"{crops_path}: {len(missing)} sample(s) have no dense annotation in {json_path} "
            f"(first: {missing[0]}); rebuild the crops from this annotation file"
        )
    return [by_id[i] for i in ids], np.asarray(crops["box"][...], dtype=np.float64)


def match_correspondences(
    json_path: Path, crops_path: Path, uv_path: Path, out_path: Path, options: MatchOptions, num_vertices: int
) -> dict:
    """Write ``correspondences_{split}.zarr`` for the samples of ``crops_path``.

    Args:
        json_path: the DensePose-COCO annotation file of the split.
        crops_path: the split's crops store (defines the samples, their order and boxes).
        uv_path: UV_Processed.mat of the body model.
        out_path: the correspondences store to write.
        options: :class:`MatchOptions`.
        num_vertices: vertex count of the body model (checks the UV file's vertex ids).

    Returns:
        A summary: samples, points, seconds, points per second of the matching itself.
    """
    charts = load_uv_charts(uv_path, num_vertices=num_vertices)
    samples, boxes = _aligned_samples(json_path, crops_path)
    counts = [len(s.dense_part) for s in samples]
    part = np.concatenate([s.dense_part for s in samples]) if samples else np.zeros(0, np.int64)
    uv = np.concatenate([s.dense_uv for s in samples]) if samples else np.zeros((0, 2))
    point = (
        np.concatenate([to_crop(s.dense_xy, box) for s, box in zip(samples, boxes)])
        if samples
        else np.zeros((0, 2))
    )

    start = time.perf_counter()
    vertex = UVMatcher(charts).match(part, uv, workers=options.workers)
    seconds = time.perf_counter() - start

    write_store(
        out_path,
        {
            "offsets": csr_offsets(counts),
            "vertex": vertex.astype(np.int32),
            "point": point.astype(np.float32),
            "part": part.astype(np.uint8),
            "uv": uv.astype(np.float32),
        },
        stage="match",
        sample_id=[s.sample_id for s in samples],
        options={"workers": options.workers},
        attrs={
            "layout": "CSR: rows offsets[i]:offsets[i+1] of vertex/point/part/uv belong to sample i",
            "frame": "point in normalised crop coordinates (x right, y down, box -> [-1, 1])",
            "uv_charts": str(uv_path),
            "source": str(json_path),
        },
        chunk_rows=1 << 16,
    )
    summary = {
        "samples": len(samples),
        "points": int(len(part)),
        "seconds": round(seconds, 4),
        "points_per_second": round(len(part) / max(seconds, 1e-9)),
    }
    log.info(
        "%s: %d points of %d samples matched, %.0f points/s", out_path, len(part), len(samples), summary["points_per_second"]
    )
    return summary


def matching_error_mm(correspondences_path: Path, gt_path: Path, body_model_path: Path) -> dict:
    """How far each matched vertex lies from the true surface point of its pixel (synthetic data).

    The true point is rebuilt from the generator's exact dense ground truth (body face and
    barycentric coordinates, in the JSON's point order) on the body posed and scaled as in
    the ground truth; the matched vertex is taken on the same posed body. Both in the body
    file's units (metres), reported in millimetres.

    Returns:
        mean, median, p95 and max distance in mm, the number of points, and the body's mean
        edge length in mm (the scale the error should be compared with).
    """
    import torch

    from dlearn.body.model import BodyModel

    corr = open_store(correspondences_path, stage="match", required=["offsets", "vertex"])
    gt = open_store(gt_path, required=["pose", "scales", "dense_offsets", "dense_face", "dense_bary"])
    gt_row = {sid: i for i, sid in enumerate(read_sample_ids(gt))}
    ids = read_sample_ids(corr)
    missing = [sid for sid in ids if sid not in gt_row]
    if missing:
        raise StoreError(f"{gt_path}: no ground truth for {len(missing)} sample(s) of {correspondences_path}")

    model = BodyModel.from_file(body_model_path, dtype=torch.float64)
    faces = model.faces.numpy()
    rows = np.array([gt_row[sid] for sid in ids], dtype=np.int64)
    with torch.no_grad():
        vertices = model(
            torch.as_tensor(gt["pose"][...][rows], dtype=torch.float64),
            torch.as_tensor(gt["scales"][...][rows], dtype=torch.float64),
        ).vertices.numpy()

    offsets, vertex = corr["offsets"][...], corr["vertex"][...]
    gt_offsets, gt_face, gt_bary = gt["dense_offsets"][...], gt["dense_face"][...], gt["dense_bary"][...]
    distances = []
    for i, row in enumerate(rows):
        matched = vertices[i, vertex[offsets[i] : offsets[i + 1]]]
        span = slice(gt_offsets[row], gt_offsets[row + 1])
        corners = vertices[i, faces[gt_face[span]]]  # (P, 3 corners, 3)
        truth = (gt_bary[span, :, None] * corners).sum(axis=1)
        if len(truth) != len(matched):
            raise StoreError(f"{correspondences_path}: sample {ids[i]} has {len(matched)} points, ground truth {len(truth)}")
        distances.append(np.linalg.norm(matched - truth, axis=1))
    d = 1000.0 * np.concatenate(distances) if distances else np.zeros(0)
    template = model.v_template.numpy()
    edges = np.concatenate([faces[:, [0, 1]], faces[:, [1, 2]], faces[:, [2, 0]]])
    edge_mm = 1000.0 * np.linalg.norm(template[edges[:, 0]] - template[edges[:, 1]], axis=1).mean()
    return {
        "points": int(d.size),
        "mean_mm": float(d.mean()) if d.size else float("nan"),
        "median_mm": float(np.median(d)) if d.size else float("nan"),
        "p95_mm": float(np.percentile(d, 95)) if d.size else float("nan"),
        "max_mm": float(d.max()) if d.size else float("nan"),
        "mean_edge_mm": float(edge_mm),
    }
