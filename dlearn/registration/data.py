"""The per-sample data the registration losses compare against, shared by the registration and
the regressor: dense correspondences (CSR), 2D keypoints and cGAN depths, aligned by sample id.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from dlearn.data.store import open_store, read_aligned, read_sample_ids
from dlearn.params import PARAM_KEYS
from dlearn.registration.fit import FitBatch

#: The registration's parameters as stored (registration and prediction stores alike).


@dataclass
class FitData:
    """Loss targets of N samples, in the order of the correspondences store.

    Attributes:
        ids: (N,) sample ids.
        offsets: (N + 1,) CSR offsets into the point arrays.
        vertex: (M,) matched body vertex of each annotated point.
        point: (M, 2) annotated points, normalised crop coordinates.
        part: (M,) DensePose part of each point.
        keypoints: (N, 17, 3) crop-coordinate keypoints and visibility.
        depth: (N, 17) cGAN root-relative depths (zeros without depths).
        depth_mask: (N, 17) 1 where a depth is used.
    """

    ids: list[str]
    offsets: np.ndarray
    vertex: np.ndarray
    point: np.ndarray
    part: np.ndarray
    keypoints: np.ndarray
    depth: np.ndarray
    depth_mask: np.ndarray

    def counts(self, rows: np.ndarray) -> np.ndarray:
        """(len(rows),) number of annotated points of each row."""
        return self.offsets[rows + 1] - self.offsets[rows]


def samples_without_depth(data: FitData, rows: np.ndarray | None = None) -> int:
    """How many of ``rows`` (default: all) have no depth term at all: every ``valid`` of the
    depths store False, as cgan-predict writes for samples outside the cGAN's training
    criteria (a hip unlabelled, too few key points) and for non-finite depths."""
    mask = data.depth_mask if rows is None else data.depth_mask[rows]
    return int((mask.sum(1) == 0).sum())


def read_params(path: Path, ids: list[str], stage: str | None = None) -> dict[str, np.ndarray]:
    """The registration parameters of a registration or prediction store, reordered to ``ids``."""
    return read_aligned(open_store(path, stage=stage, required=PARAM_KEYS), ids, PARAM_KEYS, path)


def load_fit_data(correspondences: Path, crops: Path, depths: Path | None) -> FitData:
    """Join the correspondences, the crops' keypoints and (optionally) the cGAN depths by sample id.

    Raises:
        StoreError: a store is missing, of the wrong stage, or lacks one of the samples.
    """
    corr = open_store(correspondences, stage="match", required=["offsets", "vertex", "point", "part"])
    ids = read_sample_ids(corr)
    keypoints = read_aligned(open_store(crops, stage="crops", required=["keypoints"]), ids, ("keypoints",), crops)
    if depths is not None:
        d = read_aligned(open_store(depths, required=["depth", "valid"]), ids, ("depth", "valid"), depths)
        depth, depth_mask = d["depth"].astype(np.float64), d["valid"].astype(np.float64)
    else:
        depth, depth_mask = np.zeros((len(ids), 17)), np.zeros((len(ids), 17))
    return FitData(
        ids=ids,
        offsets=np.asarray(corr["offsets"][...]),
        vertex=np.asarray(corr["vertex"][...], dtype=np.int64),
        point=np.asarray(corr["point"][...], dtype=np.float64),
        part=np.asarray(corr["part"][...], dtype=np.int64),
        keypoints=keypoints["keypoints"].astype(np.float64),
        depth=depth,
        depth_mask=depth_mask,
    )


def padded_arrays(
    data: FitData, rows: np.ndarray, num_points: int | None = None, subset_key: tuple[int, ...] | None = None
) -> dict[str, np.ndarray]:
    """The numpy arrays of :class:`FitBatch` for ``rows``, points padded to ``num_points``
    (default: the largest count among the rows).

    A sample with more points than ``num_points`` keeps its first ones, or, with a
    ``subset_key`` (e.g. (seed, epoch)), a random subset drawn from ``default_rng((*subset_key,
    row))``: DensePose gives its points in part order, so a prefix would cover a few parts only.
    """
    counts = data.counts(rows)
    p = max(int(counts.max()) if len(rows) else 0, 1) if num_points is None else num_points
    b = len(rows)
    vertex = np.zeros((b, p), np.int64)
    point = np.zeros((b, p, 2), np.float32)
    mask = np.zeros((b, p), np.float32)
    for i, r in enumerate(rows):
        c = min(int(counts[i]), p)
        if subset_key is not None and counts[i] > p:
            # Sorted: the points keep their order, only which ones varies with the key.
            rng = np.random.default_rng((*subset_key, int(r)))
            span = data.offsets[r] + np.sort(rng.choice(int(counts[i]), c, replace=False))
        else:
            span = slice(data.offsets[r], data.offsets[r] + c)
        vertex[i, :c], point[i, :c], mask[i, :c] = data.vertex[span], data.point[span], 1.0
    kp = data.keypoints[rows]
    return {
        "vertex": vertex,
        "point": point,
        "point_mask": mask,
        "keypoints": kp[..., :2].astype(np.float32),
        "keypoint_mask": (kp[..., 2] > 0).astype(np.float32),
        "depth": data.depth[rows].astype(np.float32),
        "depth_mask": data.depth_mask[rows].astype(np.float32),
    }


def to_fit_batch(arrays: dict[str, np.ndarray | torch.Tensor], device: torch.device, dtype: torch.dtype) -> FitBatch:
    """:func:`padded_arrays` (numpy or tensors) -> :class:`FitBatch` on ``device``."""

    def t(name: str) -> torch.Tensor:
        kind = torch.long if name == "vertex" else dtype
        return torch.as_tensor(arrays[name]).to(device=device, dtype=kind, non_blocking=True)

    return FitBatch(**{name: t(name) for name in FitBatch.__dataclass_fields__})


def fit_batch(data: FitData, rows: np.ndarray, device: torch.device, dtype: torch.dtype) -> FitBatch:
    """The :class:`FitBatch` of ``rows`` (points padded to the rows' largest count)."""
    return to_fit_batch(padded_arrays(data, rows), device, dtype)
