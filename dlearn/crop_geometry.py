"""Crop geometry: square person boxes and normalised crop coordinates (numpy only).

A crop box is (cx, cy, side) in image pixels; normalised crop coordinates put the box's centre at
0 and its edges at -1 and 1. The crops stage, the matching stage, the Human3.6M crops and the
cGAN's toy data all frame people this way; this module sits below them all (no dlearn imports),
so none of them imports another for it.
"""

from __future__ import annotations

import numpy as np


def square_boxes(bbox: np.ndarray, box_scale: float) -> np.ndarray:
    """(N, 4) x0, y0, w, h boxes -> (N, 3) square crop boxes cx, cy, side (pixels)."""
    bbox = np.asarray(bbox, dtype=np.float64).reshape(-1, 4)
    centre = bbox[:, :2] + bbox[:, 2:] / 2
    side = box_scale * bbox[:, 2:].max(axis=1)
    return np.concatenate([centre, side[:, None]], axis=1)


def to_crop(points: np.ndarray, box: np.ndarray) -> np.ndarray:
    """Image pixels (..., 2) -> normalised crop coordinates, for one box (3,) = cx, cy, side."""
    return (np.asarray(points, dtype=np.float64) - box[:2]) / (box[2] / 2)


def from_crop(points: np.ndarray, box: np.ndarray) -> np.ndarray:
    """Normalised crop coordinates (..., 2) -> image pixels, inverse of :func:`to_crop`."""
    return np.asarray(points, dtype=np.float64) * (box[2] / 2) + box[:2]
