"""Reading DensePose-COCO annotation files into per-person samples.

DensePose-COCO (Güler et al. 2018) extends COCO person annotations with dense points: ``dp_x``,
``dp_y`` in [0, 256) relative to the person box (``x_img = x0 + dp_x * w / 256``), the part
index ``dp_I`` (1..24) and chart coordinates ``dp_U``, ``dp_V`` in [0, 1], plus ``dp_masks``: 14
coarse part masks as COCO RLEs on a 256 x 256 grid over the box. Not every annotation has them.
The synthetic generator writes exactly this format, so one reader serves both.

Keypoint names: an annotation's 51 keypoint numbers mean what the person category's
``keypoints`` list names, slot by slot. DensePose-COCO lists COCO's 17 (:data:`COCO_KEYPOINT_NAMES`);
DensePose-PoseTrack (PoseTrack 2018) lists the same slots but puts ``head_bottom`` and
``head_top`` where COCO has the eyes (:data:`POSETRACK_KEYPOINT_NAMES`). The reader checks the
list against the naming it is told (config ``dataset.densepose_coco.keypoint_names``): ``coco``
(the default) refuses any other list, ``posetrack`` reads PoseTrack's and leaves its two head
points unlabelled (v = 0) in the eye slots, since they are not eyes; a file without a
``keypoints`` list is taken as named as told.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path, PurePath
from typing import Any

import numpy as np
from pycocotools import mask as mask_utils
from pycocotools.coco import COCO

from dlearn.coco_keypoints import COCO_KEYPOINT_NAMES, NUM_KEYPOINTS
from dlearn.errors import InputError

log = logging.getLogger(__name__)

NUM_PARTS = 24
DP_GRID = 256  # dp_x, dp_y and dp_masks live on a 256 x 256 grid over the person box
#: DensePose's 14 coarse masks (``dp_masks``): coarse index (1..14) of each part (1..24); index 0 unused.
COARSE_PART = np.array(
    [0, 1, 1, 2, 3, 4, 5, 6, 7, 6, 7, 8, 9, 8, 9, 10, 11, 10, 11, 12, 13, 12, 13, 14, 14], dtype=np.int64
)
NUM_COARSE = 14
DENSE_KEYS = ("dp_x", "dp_y", "dp_I", "dp_U", "dp_V")
COCO_PERSON_ID = 1  # COCO's person category, used when a file names no "person" category
# A labelled keypoint may lie this fraction of the image's longer side outside the image
# (annotators click slightly past the border); further out it is an error, not a body part.
KEYPOINT_MARGIN = 0.1

#: PoseTrack 2018's person keypoints (DensePose-PoseTrack): COCO's slots, head points for the eyes.
POSETRACK_KEYPOINT_NAMES = ("nose", "head_bottom", "head_top", *COCO_KEYPOINT_NAMES[3:])
#: The keypoint namings the reader knows (``keypoint_names``), and the slots of each whose labels
#: are dropped (v = 0) because they are not COCO's keypoint of that slot.
KEYPOINT_NAMINGS = {"coco": COCO_KEYPOINT_NAMES, "posetrack": POSETRACK_KEYPOINT_NAMES}
UNLABELLED_SLOTS = {"coco": (), "posetrack": (1, 2)}


class AnnotationError(InputError):
    """A malformed annotation; the message names the file and the annotation id."""


@dataclass(frozen=True)
class PersonSample:
    """One annotated person, everything in image pixels.

    Attributes:
        sample_id: ``"{image_id}_{annotation_id}"``, stable across runs and stages; in a mixed
            dataset ``"{source}-{image_id}_{annotation_id}"`` with the source's own ids.
        image_path: the image file (image root joined with the JSON's ``file_name``).
        image_size: (height, width) as the JSON states them, or None where it does not (unused:
            the image rules take the size from the image file itself).
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
    image_size: tuple[int, int] | None  # (height, width)
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


def _malformed(exc: AnnotationError, report: ReadReport, problems: list[str] | None) -> None:
    """Collect a malformed annotation's error: its message into ``problems``, one "malformed" skip.

    Raises:
        AnnotationError: ``exc`` itself, when there is no ``problems`` list to collect into.
    """
    if problems is None:
        raise exc
    problems.append(str(exc))
    report.skipped["malformed"] += 1


def _array(ann: dict, key: str, where: str, dtype: type) -> np.ndarray:
    """Field ``key`` as a flat array of finite numbers (Python's json reads NaN and Infinity)."""
    try:
        values = np.asarray(ann[key], dtype=dtype).reshape(-1)
    except (TypeError, ValueError) as exc:
        raise AnnotationError(f"{where}: field '{key}' is not a list of numbers ({exc})") from exc
    bad = np.flatnonzero(~np.isfinite(values))
    if bad.size:
        # One non-finite number trains every later stage to NaN: refuse it here.
        raise AnnotationError(f"{where}: field '{key}' holds {values[bad[0]]} at index {bad[0]} (numbers must be finite)")
    return values


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


def box_skip_reason(bbox: np.ndarray, image_size: tuple[int, int] | None = None, min_box_size: float = 0.0) -> str | None:
    """Why a person box is skipped, or None to keep it: the one rule of the reader, crops and check-data.

    Args:
        bbox: (4,) finite x0, y0, width, height in pixels.
        image_size: (height, width) of the image file; None checks the box alone.
        min_box_size: smallest longer box side to keep, in pixels.

    Returns:
        "empty box" (a side <= 0), "small box" (longer side < ``min_box_size``), "box off image"
        (no pixel of the box inside the image), or None.
    """
    x0, y0, w, h = (float(v) for v in bbox)
    if w <= 0 or h <= 0:
        return "empty box"
    if max(w, h) < min_box_size:
        return "small box"
    if image_size is not None:
        height, width = image_size
        if x0 >= width or y0 >= height or x0 + w <= 0 or y0 + h <= 0:
            return "box off image"
    return None


def check_keypoints_in_image(sample: PersonSample, image_size: tuple[int, int], json_path: Path) -> None:
    """Refuse labelled keypoints further than :data:`KEYPOINT_MARGIN` outside the image.

    Args:
        sample: the person (keypoints (17, 3) in pixels).
        image_size: (height, width) of the image file.
        json_path: the annotation file, for the message.

    Raises:
        AnnotationError: naming the sample, the keypoint, its position and the image size.
    """
    height, width = image_size
    margin = KEYPOINT_MARGIN * max(height, width)
    xy = sample.keypoints[:, :2]
    labelled = sample.keypoints[:, 2] > 0
    outside = labelled & (
        (xy[:, 0] < -margin) | (xy[:, 0] > width + margin) | (xy[:, 1] < -margin) | (xy[:, 1] > height + margin)
    )
    if outside.any():
        k = int(np.flatnonzero(outside)[0])
        raise AnnotationError(
            f"{json_path}: annotation {sample.annotation_id}: keypoint '{COCO_KEYPOINT_NAMES[k]}' at "
            f"({xy[k, 0]:g}, {xy[k, 1]:g}) lies outside the {width} x {height} image {sample.image_path} "
            f"by more than {margin:g} px"
        )


def apply_image_rules(
    samples: Iterable[PersonSample],
    image_sizes: dict[Path, tuple[int, int]],
    report: ReadReport,
    json_path: Path,
    problems: list[str] | None = None,
) -> list[PersonSample]:
    """The samples whose box and keypoints fit their image file: what crops and check-data keep.

    Boxes that :func:`box_skip_reason` rejects are skipped and counted in ``report``; keypoints
    far outside the image are errors. Samples whose image is not in ``image_sizes`` (unreadable,
    already reported) are dropped without a count.

    Args:
        samples: persons from :func:`read_densepose_coco`.
        image_sizes: image path -> (height, width) of the decoded file.
        report: the read's report; skips are added and ``kept`` updated.
        json_path: the annotation file, for messages.
        problems: when given, keypoint errors are appended here and the sample is counted as
            "malformed" instead of raising.

    Raises:
        AnnotationError: a labelled keypoint lies outside the image (without ``problems``).
    """
    kept = []
    for sample in samples:
        size = image_sizes.get(sample.image_path)
        if size is None:
            continue
        reason = box_skip_reason(sample.bbox, size)
        if reason is not None:
            report.skipped[reason] += 1
            continue
        try:
            check_keypoints_in_image(sample, size, json_path)
        except AnnotationError as exc:
            _malformed(exc, report, problems)
            continue
        kept.append(sample)
    report.kept = len(kept)
    return kept


def _duplicate_ids(dataset: dict, json_path: Path) -> list[str]:
    """One message per kind of record whose ids repeat (pycocotools keeps the last silently)."""
    messages = []
    for kind in ("images", "annotations"):
        counts = Counter(record.get("id") for record in dataset.get(kind, []) if isinstance(record, dict))
        repeated = sorted((i for i, n in counts.items() if n > 1), key=str)
        if repeated:
            shown = ", ".join(f"{i} ({counts[i]} times)" for i in repeated[:5])
            messages.append(
                f"{json_path}: {len(repeated)} {kind[:-1]} id(s) appear more than once: {shown}"
                f"{', ...' if len(repeated) > 5 else ''}; each id must be unique"
            )
    return messages


def _person_categories(dataset: dict) -> set[Any]:
    """Ids of the categories named "person"; COCO's id 1 when the file names none."""
    ids = {c.get("id") for c in dataset.get("categories", []) if isinstance(c, dict) and c.get("name") == "person"}
    return ids or {COCO_PERSON_ID}


def check_keypoint_names(dataset: dict, json_path: Path, naming: str) -> None:
    """Refuse a file whose person categories name other keypoints than ``naming``'s, in order.

    Raises:
        AnnotationError: naming the file, the category and the names found; or an unknown
            ``naming``.
    """
    if naming not in KEYPOINT_NAMINGS:
        raise AnnotationError(
            f"dataset.densepose_coco.keypoint_names: {naming!r} is not one of {', '.join(KEYPOINT_NAMINGS)}"
        )
    expected = list(KEYPOINT_NAMINGS[naming])
    person_ids = _person_categories(dataset)
    for category in dataset.get("categories", []):
        if not isinstance(category, dict) or category.get("id") not in person_ids or "keypoints" not in category:
            continue
        names = category["keypoints"]
        if names == expected:
            continue
        hint = next(
            (f"; these are {other}'s names: set dataset.densepose_coco.keypoint_names: {other}"
             for other, known in KEYPOINT_NAMINGS.items() if other != naming and names == list(known)),
            "",
        )  # fmt: skip
        raise AnnotationError(
            f"{json_path}: category {category.get('id')} ({category.get('name')!r}) names the keypoints {names}, "
            f"expected {naming}'s {len(expected)} in order ({', '.join(expected)}){hint}"
        )


def _check_keypoints(keypoints: np.ndarray, where: str) -> np.ndarray:
    """(51,) finite numbers -> (17, 3), with visibility 0, 1 or 2."""
    if keypoints.size != 3 * NUM_KEYPOINTS:
        raise AnnotationError(f"{where}: field 'keypoints' has {keypoints.size} numbers, expected 51")
    keypoints = keypoints.reshape(NUM_KEYPOINTS, 3)
    bad = np.flatnonzero(~np.isin(keypoints[:, 2], (0, 1, 2)))
    if bad.size:
        k = int(bad[0])
        raise AnnotationError(
            f"{where}: keypoint '{COCO_KEYPOINT_NAMES[k]}' has visibility {keypoints[k, 2]:g}, expected 0, 1 or 2"
        )
    return keypoints


def _image_path(image: dict, image_root: Path, where: str, allow_absolute_paths: bool) -> Path:
    """The image file of an annotation, refusing ``file_name`` entries that leave ``image_root``."""
    name = image.get("file_name")
    if not isinstance(name, str) or not name:
        raise AnnotationError(f"{where}: image {image.get('id')} has no 'file_name' (found {name!r})")
    if not allow_absolute_paths:
        # A file name is data, not a licence to read anywhere: absolute names and '..' that
        # climbs out of image_root need the user's explicit consent.
        if PurePath(name).is_absolute():
            problem = "is an absolute path"
        elif os.path.normpath(name).split(os.sep)[0] == os.pardir:
            problem = f"leads out of the image root {image_root}"
        else:
            problem = None
        if problem is not None:
            raise AnnotationError(
                f"{where}: image {image.get('id')}: file_name {name!r} {problem}; "
                "set crops.allow_absolute_paths (--allow-absolute-paths) to accept such paths"
            )
    return image_root / name


def _image_size(image: dict, where: str) -> tuple[int, int] | None:
    """(height, width) as the JSON states them, or None; only a stated, malformed size is an error."""
    if "height" not in image or "width" not in image:
        return None
    try:
        size = (int(image["height"]), int(image["width"]))
    except (TypeError, ValueError, OverflowError) as exc:
        raise AnnotationError(
            f"{where}: image {image.get('id')}: 'height'/'width' {image['height']!r}/{image['width']!r} "
            f"are not integers ({exc})"
        ) from exc
    return size


def _read_person(
    coco: COCO,
    ann_id: int,
    json_path: Path,
    image_root: Path,
    min_box_size: float,
    require_dense: bool,
    person_ids: set[Any],
    allow_absolute_paths: bool,
    report: ReadReport,
    unlabelled: tuple[int, ...] = (),
) -> PersonSample | None:
    """One annotation as a sample, or None (counted in ``report``) when the rules skip it."""
    ann = coco.anns[ann_id]
    where = f"{json_path}: annotation {ann_id}"
    if ann.get("iscrowd", 0):
        report.skipped["crowd"] += 1
        return None
    if ann.get("category_id", COCO_PERSON_ID) not in person_ids:
        report.skipped["not a person"] += 1
        return None
    bbox = _array(ann, "bbox", where, float) if "bbox" in ann else None
    if bbox is None or bbox.size != 4:
        raise AnnotationError(f"{where}: missing or malformed 'bbox' (found {ann.get('bbox')!r})")
    if ann.get("image_id") not in coco.imgs:
        raise AnnotationError(f"{where}: 'image_id' {ann.get('image_id')!r} names no image of the file")
    image = coco.imgs[ann["image_id"]]
    reason = box_skip_reason(bbox, min_box_size=max(min_box_size, 1e-9))
    if reason is not None:
        report.skipped[reason] += 1
        return None
    has_dense = all(k in ann for k in DENSE_KEYS)
    if not has_dense and require_dense:
        report.skipped["no dense points"] += 1
        return None
    keypoints = _array(ann, "keypoints", where, float) if "keypoints" in ann else np.zeros(3 * NUM_KEYPOINTS)
    keypoints = _check_keypoints(keypoints, where)
    if unlabelled:  # another naming's points in these COCO slots: not COCO's keypoints
        keypoints = keypoints.copy()
        keypoints[list(unlabelled)] = 0.0
    if has_dense:
        xy, part, uv = _parse_dense(ann, bbox, where)
    else:
        xy, part, uv = np.zeros((0, 2)), np.zeros(0, np.int64), np.zeros((0, 2))
    return PersonSample(
        sample_id=_sample_id(ann, ann_id, where),
        image_id=int(ann["image_id"]),
        annotation_id=int(ann_id),
        image_path=_image_path(image, image_root, where, allow_absolute_paths),
        image_size=_image_size(image, where),
        bbox=bbox,
        keypoints=keypoints,
        dense_xy=xy,
        dense_part=part,
        dense_uv=uv,
        dp_masks=ann.get("dp_masks"),
    )


def _sample_id(ann: dict, ann_id: int, where: str) -> str:
    """``{image_id}_{annotation_id}``, or a mixed dataset's ``dlearn_sample_id`` (its source's id,
    :mod:`dlearn.densepose.mix`)."""
    sid = ann.get("dlearn_sample_id")
    if sid is None:
        return f"{ann['image_id']}_{ann_id}"
    if not isinstance(sid, str) or not sid or "/" in sid:
        raise AnnotationError(f"{where}: field 'dlearn_sample_id' is {sid!r}, expected a non-empty name without '/'")
    return sid


def read_densepose_coco(
    json_path: str | Path,
    image_root: str | Path,
    *,
    min_box_size: float = 0.0,
    require_dense: bool = True,
    allow_absolute_paths: bool = False,
    problems: list[str] | None = None,
    keypoint_names: str | None = "coco",
) -> tuple[list[PersonSample], ReadReport]:
    """Read the person annotations of a DensePose-COCO JSON file.

    Skipped and counted (see the returned report): crowd annotations, annotations of other
    categories than "person", boxes with a side <= 0 or smaller than ``min_box_size`` pixels
    on their longer side, and, with ``require_dense``, persons without dense points. Rules that
    need the image's size (boxes off the image, keypoints far outside it) are
    :func:`apply_image_rules`, applied by the stages that open the images.

    Args:
        json_path: the annotation file.
        image_root: folder the images' ``file_name`` entries are relative to.
        min_box_size: smallest longer box side to keep, in pixels.
        require_dense: skip persons without ``dp_*`` fields (otherwise they get empty arrays).
        allow_absolute_paths: accept ``file_name`` entries that are absolute or lead out of
            ``image_root`` with '..' (refused by default).
        problems: when given, a malformed annotation is appended here (its message) and
            skipped, counted as "malformed", instead of raising (``dlearn check-data``); so are
            repeated ids, after which the read goes on with pycocotools' last record of each.
        keypoint_names: the file's keypoint naming, ``coco`` or ``posetrack`` (see the module
            docstring); None: unchecked and kept as they are (for readers that ignore keypoints).

    Raises:
        AnnotationError: the file is not COCO JSON, an image or annotation id repeats, or a
            field of an annotation is malformed or not finite, a keypoint visibility is not 0, 1
            or 2, or a ``file_name`` leaves ``image_root``; the message names the file and the
            annotation id; the person category names other keypoints than ``keypoint_names``
            (names the category and the names found, always raised).
    """
    json_path, image_root = Path(json_path), Path(image_root)
    try:
        with contextlib.redirect_stdout(io.StringIO()):  # pycocotools prints progress
            coco = COCO(str(json_path))
    except Exception as exc:  # json, key and type errors from a malformed file
        raise AnnotationError(f"{json_path}: not a readable COCO annotation file ({exc})") from exc

    duplicates = _duplicate_ids(coco.dataset, json_path)
    if duplicates:
        if problems is None:
            raise AnnotationError(duplicates[0])
        problems.extend(duplicates)
    if keypoint_names is not None:
        # Every annotation's keypoints mean what these names say: a wrong list is the whole file's.
        check_keypoint_names(coco.dataset, json_path, keypoint_names)
    unlabelled = UNLABELLED_SLOTS[keypoint_names] if keypoint_names is not None else ()
    person_ids = _person_categories(coco.dataset)
    report = ReadReport()
    samples: list[PersonSample] = []
    for ann_id in sorted(coco.anns):
        try:
            sample = _read_person(
                coco, ann_id, json_path, image_root, min_box_size, require_dense, person_ids, allow_absolute_paths,
                report, unlabelled,
            )  # fmt: skip
        except AnnotationError as exc:
            _malformed(exc, report, problems)
            continue
        if sample is not None:
            samples.append(sample)
    report.kept = len(samples)
    skipped_people = sum(n for reason, n in report.skipped.items() if reason != "malformed")
    (log.warning if skipped_people else log.info)("%s: %s", json_path, report.summary())
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
