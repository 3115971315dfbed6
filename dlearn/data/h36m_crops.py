"""The h36m_crops stage: crops of the Human3.6M evaluation frames of a SPIN-style ``.npz``.

A data stage like :mod:`dlearn.data.crops`, whose framing it shares; no torch (the evaluation of
the predictions on these frames is :mod:`dlearn.evaluation.h36m`).
"""

from __future__ import annotations

import logging
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

from dlearn.crop_geometry import square_boxes
from dlearn.data.crops import CropOptions, crop_task
from dlearn.data.h36m import read_spin_npz
from dlearn.data.store import StoreWriter

log = logging.getLogger(__name__)


def sample_ids(n: int) -> list[str]:
    return [f"h36m_{i}" for i in range(n)]


def make_h36m_crops(npz: Path, image_root: Path, out_path: Path, options: CropOptions) -> dict[str, Any]:
    """Crops of the evaluation frames, framed like the training crops: the person's box
    recovered from the npz (side = scale x 200 / 0.9, SPIN's factor undone, see
    :attr:`~dlearn.data.h36m.SpinEvaluationSet.person_boxes`) made square with side
    ``options.box_scale`` x that, as the crops stage does; otherwise the person fills 1.2 / 0.9
    = 1.33 times more of the crop than in training and the regressor is evaluated out of
    distribution.

    Raises:
        EvaluationFileError: the npz is unreadable; ImageError: an image is missing.
    """
    start = time.perf_counter()
    frames = read_spin_npz(npz)
    n = len(frames.imgname)
    boxes = square_boxes(frames.person_boxes, options.box_scale)
    ids = sample_ids(n)
    attrs = {
        "frame": "normalised crop coordinates",
        "box": "cx, cy, side in image pixels: side = box_scale x scale x 200 / 0.9 (SPIN's box is 0.9 x the person's)",
        "source": str(npz),
    }
    with StoreWriter(out_path, stage="crops", sample_id=ids, options=asdict(options), attrs=attrs) as w:
        w.write("box", boxes.astype(np.float32))
        w.write("keypoints", np.zeros((n, 17, 3), np.float32))  # Human3.6M frames carry no 2D labels here
        images = w.create("image", (n, options.image_size, options.image_size, 3), np.uint8, chunk_rows=options.chunk_rows)
        for first in range(0, n, options.chunk_rows):
            rows = range(first, min(n, first + options.chunk_rows))
            images[first : rows[-1] + 1] = np.stack(
                [crop_task((ids[i], image_root / frames.imgname[i], boxes[i], options.image_size)) for i in rows]
            )
    summary = {"samples": n, "seconds": round(time.perf_counter() - start, 2)}
    log.info("%s: %s", out_path, summary)
    return summary
