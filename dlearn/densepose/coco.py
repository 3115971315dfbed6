"""Reading DensePose-COCO annotation files into per-person samples.

DensePose-COCO (Güler et al. 2018) extends COCO person annotations with dense points: ``dp_x``,
``dp_y`` in [0, 256) relative to the person box (``x_img = x0 + dp_x * w / 256``), the part
index ``dp_I`` (1..24) and chart coordinates ``dp_U``, ``dp_V`` in [0, 1], plus ``dp_masks``: 14
coarse part masks as COCO RLEs on a 256 x 256 grid over the box. Not every annotation has them.
The synthetic generator writes exactly this format, so one reader serves both.
"""

from __future__ import annotations

import contextlib
import io
import logging
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from pycocotools import mask as mask_utils
from pycocotools.coco import COCO

from dlearn.errors import InputError

log = logging.getLogger(__name__)

NUM_KEYPOINTS = 17
NUM_PARTS = 24
DP_GRID = 256  # dp_x, dp_y and dp_masks live on a 256 x 256 grid over the person box
DENSE_KEYS = ("dp_x", "dp_y", "dp_I", "dp_U", "dp_V")

COCO_KEYPOINT_NAMES = (
    "nose", "left_eye", "right_eye", "left_ear", "right_ear", "left_shoulder", "right_shoulder",
    "left_elbow", "right_elbow", "left_wrist", "right_wrist", "left_hip", "right_hip",
    "left_knee", "right_knee", "left_ankle", "right_ankle",
)  # fmt: skip


class AnnotationError(InputError):
    """A malformed annotation; the message names the file and the annotation id."""


@dataclass(frozen=True)
class PersonSample:
    """One annotated person, everything in image pixels.

    Attributes:
        sample_id: ``"{image_id}_{annotation_id}"``, stable across runs and stages.
        image_path: the image file (image root joined with the JSON's ``file_name``).
        bbox: (4,) x0, y0, width, height.
        keypoints: (17, 3) x, y, visibility (0 not labelled, 1 labelled but hidden, 2 visible).
        dense_xy: (P, 2) dense point positions.
        dense_part: (P,) part index 1..24.
        dense_uv: (P, 2) chart coordinates U, V in [0, 1].
        dp_masks: the 14 RLEs (or None), decoded on demand by :func:`decode_dp_masks`.
    """

    sample_id: str
    image_id: int
    annotation_id: int
    image_path: Path
    image_size: tuple[int, int]  # (height, width)
    bbox: np.ndarray
    keypoints: np.ndarray
    dense_xy: np.ndarray
    dense_part: np.ndarray
    dense_uv: np.ndarray
    dp_masks: list[Any] | None = field(default=None, repr=False)


@dataclass
class ReadReport:
    """What a read kept and skipped, by reason."""

    kept: int = 0
    skipped: Counter = field(default_factory=Counter)

    def summary(self) -> str:
        reasons = ", ".join(f"{n} {reason}" for reason, n in sorted(self.skipped.items())) or "none"
        return f"kept {self.kept} persons; skipped: {reasons}"


def _array(ann: dict, key: str, where: str, dtype: type) -> np.ndarray:
    try:
        return np.asarray(ann[key], dtype=dtype).reshape(-1)
    except (TypeError, ValueError) as exc:
        raise AnnotationError(f"{where}: field '{key}' is not a list of numbers ({exc})") from exc


def _parse_dense(ann: dict, bbox: np.ndarray, where: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    x, y = _array(ann, "dp_x", where, float), _array(ann, "dp_y", where, float)
    part = _array(ann, "dp_I", where, float)
    u, v = _array(ann, "dp_U", where, float), _array(ann, "dp_V", where, float)
    lengths = {k: len(a) for k, a in zip(DENSE_KEYS, (x, y, part, u, v))}
    if len(set(lengths.values())) != 1:
        raise AnnotationError(f"{where}: dense fields have different lengths {lengths}")
    if np.any(part != np.round(part)) or np.any((part < 1) | (part > NUM_PARTS)):
        raise AnnotationError(f"{where}: field 'dp_I' has values outside the part indices 1..{NUM_PARTS}")
    if np.any((u < 0) | (u > 1) | (v < 0) | (v > 1)) or not np.all(np.isfinite(u + v)):
        raise AnnotationError(f"{where}: fields 'dp_U'/'dp_V' have values outside [0, 1]")
    if np.any((x < 0) | (x > DP_GRID) | (y < 0) | (y > DP_GRID)):
        raise AnnotationError(f"{where}: fields 'dp_x'/'dp_y' have values outside [0, {DP_GRID}]")
    x0, y0, w, h = bbox
    xy = np.stack([x0 + x * w / DP_GRID, y0 + y * h / DP_GRID], axis=1)
    return xy, part.astype(np.int64), np.stack([u, v], axis=1)


def _read_person(
    coco: COCO,
    ann_id: int,
    json_path: Path,
    image_root: Path,
    min_box_size: float,
    require_dense: bool,
    report: ReadReport,
) -> PersonSample | None:
    """One annotation as a sample, or None (counted in ``report``) when the rules skip it."""
    ann = coco.anns[ann_id]
    where = f"{json_path}: annotation {ann_id}"
    if ann.get("iscrowd", 0):
        report.skipped["crowd"] += 1
        return None
    try:
        bbox = np.asarray(ann["bbox"], dtype=np.float64).reshape(4)
        image = coco.imgs[ann["image_id"]]
    except (KeyError, TypeError, ValueError) as exc:
        raise AnnotationError(f"{where}: missing or malformed 'bbox'/'image_id' ({exc})") from exc
    if max(bbox[2], bbox[3]) < max(min_box_size, 1e-9):
        report.skipped["small box"] += 1
        return None
    has_dense = all(k in ann for k in DENSE_KEYS)
    if not has_dense and require_dense:
        report.skipped["no dense points"] += 1
        return None
    keypoints = _array(ann, "keypoints", where, float) if "keypoints" in ann else np.zeros(3 * NUM_KEYPOINTS)
    if keypoints.size != 3 * NUM_KEYPOINTS:
        raise AnnotationError(f"{where}: field 'keypoints' has {keypoints.size} numbers, expected 51")
    if has_dense:
        xy, part, uv = _parse_dense(ann, bbox, where)
    else:
        xy, part, uv = np.zeros((0, 2)), np.zeros(0, np.int64), np.zeros((0, 2))
    return PersonSample(
        sample_id=f"{ann['image_id']}_{ann_id}",
        image_id=int(ann["image_id"]),
        annotation_id=int(ann_id),
        image_path=image_root / image["file_name"],
        image_size=(int(image["height"]), int(image["width"])),
        bbox=bbox,
        keypoints=keypoints.reshape(NUM_KEYPOINTS, 3),
        dense_xy=xy,
        dense_part=part,
        dense_uv=uv,
        dp_masks=ann.get("dp_masks"),
    )


def read_densepose_coco(
    json_path: str | Path,
    image_root: str | Path,
    *,
    min_box_size: float = 0.0,
    require_dense: bool = True,
    problems: list[str] | None = None,
) -> tuple[list[PersonSample], ReadReport]:
    """Read the person annotations of a DensePose-COCO JSON file.

    Skipped and counted (see the returned report): crowd annotations, persons whose box is
    smaller than ``min_box_size`` pixels on its longer side, and, with ``require_dense``,
    persons without dense points.

    Args:
        json_path: the annotation file.
        image_root: folder the images' ``file_name`` entries are relative to.
        min_box_size: smallest longer box side to keep, in pixels.
        require_dense: skip persons without ``dp_*`` fields (otherwise they get empty arrays).
        problems: when given, a malformed annotation is appended here (its message) and
            skipped, counted as "malformed", instead of raising (``dlearn check-data``).

    Raises:
        AnnotationError: the file is not COCO JSON, or a field of an annotation is malformed;
            the message names the file and the annotation id.
    """
    json_path, image_root = Path(json_path), Path(image_root)
    try:
        with contextlib.redirect_stdout(io.StringIO()):  # pycocotools prints progress
            coco = COCO(str(json_path))
    except Exception as exc:  # json, key and type errors from a malformed file
        raise AnnotationError(f"{json_path}: not a readable COCO annotation file ({exc})") from exc

    report = ReadReport()
    samples: list[PersonSample] = []
    for ann_id in sorted(coco.anns):
        try:
            sample = _read_person(coco, ann_id, json_path, image_root, min_box_size, require_dense, report)
        except AnnotationError as exc:
            if problems is None:
                raise
            problems.append(str(exc))
            report.skipped["malformed"] += 1
            continue
        if sample is not None:
            samples.append(sample)
    report.kept = len(samples)
    log.info("%s: %s", json_path, report.summary())
    return samples, report


def decode_dp_masks(sample: PersonSample) -> np.ndarray:
    """(256, 256) uint8 coarse part map over the person box: 0 background, 1..14 the mask index.

    Raises:
        AnnotationError: the sample has no ``dp_masks`` or an RLE does not decode.
    """
    if not sample.dp_masks:
        raise AnnotationError(f"sample {sample.sample_id}: no 'dp_masks'")
    out = np.zeros((DP_GRID, DP_GRID), dtype=np.uint8)
    for index, rle in enumerate(sample.dp_masks, start=1):
        if not rle:
            continue  # DensePose stores an empty list for a part that is not visible
        try:
            mask = mask_utils.decode(rle)
        except Exception as exc:
            raise AnnotationError(f"sample {sample.sample_id}: dp_masks[{index - 1}] does not decode ({exc})") from exc
        out[mask > 0] = index
    return out
