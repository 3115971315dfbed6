"""DensePose *predictions* as training data: IUV maps + 2D keypoints -> DensePose-COCO records.

The paper's Human3.6M training frames ("Ours (DensePose)") have no annotated dense points: their
correspondences come from running the DensePose model on the frames. This module turns that
model's per-image output into the DensePose-COCO annotation format that the crops and match
stages read, so everything after it is unchanged.

Input, per image, as DensePose's ``tools/infer_simple.py`` writes it (``vis_one_image`` in
``detectron/utils/vis.py`` of facebookresearch/DensePose):

* ``<name>_IUV.png``: an array ``[I, 255 U, 255 V]`` (I the part 0..24, 0 background) written by
  ``cv2.imwrite``, which takes the array as **BGR**: on disk (RGB as PIL reads it) red is V,
  green is U and blue is I.
* ``<name>_INDS.png``: one 8-bit channel, the instance of each pixel. Instances are numbered by
  *ascending detection score* from 0 (``enumerate(np.argsort(score))``), so the lowest-scoring
  instance shares the value 0 with the background: a pixel belongs to a person where I > 0, and
  its INDS value says which.

``<name>`` is what DensePose writes: the image's base name up to its first dot
(``os.path.basename(im_name).split('.')[0]``); the full stem and a sub-folder mirroring the
image's relative path are accepted too (:func:`iuv_paths`).

The persons, their boxes and 2D keypoints come from a COCO-format keypoint file (annotations or
converted detections: ``images`` with ``file_name``, ``annotations`` with ``bbox`` and
``keypoints``), read by :func:`dlearn.densepose.coco.read_densepose_coco`. Each person takes the
IUV instance with most pixels inside its box (each instance serves one person); its dense points
are a seeded random subset of that instance's pixels inside the box, spread evenly over the parts
it shows (DensePose-COCO annotators placed about 100 points per person over the body). Pixels of
other instances and background are never used. Persons without an instance, with too few pixels
or too few labelled keypoints are skipped and counted.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path, PurePath
from typing import Any

import numpy as np
from PIL import Image

from dlearn.densepose.coco import DP_GRID, NUM_PARTS, PersonSample, ReadReport, read_densepose_coco
from dlearn.errors import InputError
from dlearn.options import option

log = logging.getLogger(__name__)

IUV_SUFFIX = "_IUV.png"
INDS_SUFFIX = "_INDS.png"
UV_SCALE = 255.0  # DensePose stores U and V in [0, 1] as 255 * U, 255 * V (uint8)


class PredictionError(InputError):
    """A DensePose prediction file is missing or malformed; the message names the file and the value."""


@dataclass(frozen=True)
class PredictionOptions:
    """How dense points are taken from predicted IUV maps.

    Attributes:
        points_per_person: dense points sampled per person (DensePose-COCO has about 100).
        min_points: persons whose instance has fewer pixels inside their box are skipped.
        min_keypoints: persons with fewer labelled keypoints are skipped.
        seed: base seed of the point subsets; person (image_id, annotation_id) uses
            ``default_rng([seed, image_id, annotation_id])``, so a subset does not depend on
            which other persons the file holds.
    """

    points_per_person: int = option(100, minimum=1)
    min_points: int = option(20, minimum=1)
    min_keypoints: int = option(4, minimum=0)
    seed: int = option(0, minimum=0)


@dataclass(frozen=True)
class IUVMap:
    """One image's prediction.

    Attributes:
        part: (H, W) int64 part index, 0 background, 1..24.
        uv: (H, W, 2) float64 chart coordinates U, V in [0, 1].
        instance: (H, W) int64 instance value of INDS where part > 0, -1 elsewhere.
    """

    part: np.ndarray
    uv: np.ndarray
    instance: np.ndarray

    @property
    def size(self) -> tuple[int, int]:
        return self.part.shape  # type: ignore[return-value]


def iuv_paths(iuv_dir: Path, relative_name: str) -> tuple[Path, Path]:
    """The ``_IUV.png`` and ``_INDS.png`` of an image, the first candidate whose IUV file exists.

    Candidates for ``images/S1/a.b.jpg``: ``iuv_dir/images/S1/a.b_IUV.png`` (mirrored folders),
    ``iuv_dir/a.b_IUV.png`` and DensePose's own ``iuv_dir/a_IUV.png`` (base name up to the first
    dot). When none exists, the DensePose name is returned (for the message).
    """
    relative = PurePath(relative_name)
    base = relative.name
    stems = [str(relative.parent / base.rsplit(".", 1)[0]), base.rsplit(".", 1)[0], base.split(".")[0]]
    candidates = list(dict.fromkeys(stems))
    for stem in candidates:
        if (iuv_dir / f"{stem}{IUV_SUFFIX}").is_file():
            return iuv_dir / f"{stem}{IUV_SUFFIX}", iuv_dir / f"{stem}{INDS_SUFFIX}"
    return iuv_dir / f"{candidates[-1]}{IUV_SUFFIX}", iuv_dir / f"{candidates[-1]}{INDS_SUFFIX}"


def _open_png(path: Path, modes: tuple[str, ...], what: str) -> np.ndarray:
    try:
        with Image.open(path) as img:
            if img.mode not in modes:
                raise PredictionError(
                    f"{path}: {what} has PIL mode {img.mode!r}, expected {' or '.join(modes)} "
                    "(DensePose writes 8-bit PNGs)"
                )
            return np.asarray(img)
    except PredictionError:
        raise
    except FileNotFoundError as exc:
        raise PredictionError(f"{path}: {what} does not exist") from exc
    except Exception as exc:  # PIL's plugins raise OSError, SyntaxError, ValueError, ...
        raise PredictionError(f"{path}: {what} is unreadable ({type(exc).__name__}: {exc})") from exc


def read_iuv(iuv_path: Path, inds_path: Path) -> IUVMap:
    """Read one image's ``_IUV.png`` and ``_INDS.png`` (see the module docstring for the format).

    Raises:
        PredictionError: a file is missing or unreadable, not 8-bit RGB / grey, the two sizes
            differ, or I holds a value above 24.
    """
    iuv = _open_png(iuv_path, ("RGB",), "IUV map")
    inds = _open_png(inds_path, ("L",), "INDS instance map")
    if inds.shape != iuv.shape[:2]:
        raise PredictionError(
            f"{inds_path}: instance map is {inds.shape[1]} x {inds.shape[0]} but {iuv_path} is "
            f"{iuv.shape[1]} x {iuv.shape[0]} (width x height)"
        )
    # cv2 wrote the array [I, U, V] as BGR: blue holds I, green U, red V.
    part = iuv[..., 2].astype(np.int64)
    bad = part > NUM_PARTS
    if bad.any():
        raise PredictionError(
            f"{iuv_path}: part index I (blue channel) is {int(part.max())} at {int(bad.sum())} pixels, expected "
            f"0..{NUM_PARTS}; is this a DensePose IUV map (channel 0 I, written by cv2 in BGR order)?"
        )
    uv = np.stack([iuv[..., 1], iuv[..., 0]], axis=-1).astype(np.float64) / UV_SCALE
    instance = np.where(part > 0, inds.astype(np.int64), -1)
    return IUVMap(part=part, uv=uv, instance=instance)


def _box_pixels(bbox: np.ndarray, size: tuple[int, int]) -> tuple[slice, slice]:
    """Rows and columns of the pixels whose centres lie inside the box (x0, y0, w, h)."""
    x0, y0, w, h = (float(v) for v in bbox)
    height, width = size
    c0, c1 = max(int(np.ceil(x0 - 0.5)), 0), min(int(np.floor(x0 + w - 0.5)) + 1, width)
    r0, r1 = max(int(np.ceil(y0 - 0.5)), 0), min(int(np.floor(y0 + h - 0.5)) + 1, height)
    return slice(r0, max(r1, r0)), slice(c0, max(c1, c0))


def assign_instances(persons: list[PersonSample], iuv: IUVMap) -> list[int | None]:
    """The IUV instance of each person: most pixels inside its box, each instance used once.

    Greedy over (person, instance) pairs by decreasing pixel count, so two overlapping boxes get
    the two people rather than both the front one.

    Returns:
        Per person its INDS value, or None when no free instance has a pixel inside its box.
    """
    values = np.unique(iuv.instance[iuv.instance >= 0])
    counts = np.zeros((len(persons), len(values)), dtype=np.int64)
    for p, person in enumerate(persons):
        rows, cols = _box_pixels(person.bbox, iuv.size)
        inside = iuv.instance[rows, cols]
        counts[p] = [(inside == value).sum() for value in values]
    chosen: list[int | None] = [None] * len(persons)
    for flat in np.argsort(-counts, axis=None, kind="stable"):
        p, k = np.unravel_index(flat, counts.shape)
        if counts[p, k] == 0:
            break
        if chosen[p] is None and int(values[k]) not in chosen:
            chosen[p] = int(values[k])
    return chosen


def spread_subset(part: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    """Indices of ``n`` of the points, spread evenly over their parts (round-robin in random order).

    Args:
        part: (P,) part index of each candidate point.
        n: how many to take (all when P <= n).

    Returns:
        (min(n, P),) indices into ``part``.
    """
    order = rng.permutation(len(part))
    shuffled = part[order]
    rank = np.zeros(len(part), dtype=np.int64)
    for value in np.unique(shuffled):
        where = np.flatnonzero(shuffled == value)
        rank[where] = np.arange(len(where))
    # The k-th point of every part comes before the (k+1)-th of any: parts share n evenly.
    return order[np.argsort(rank, kind="stable")[:n]]


def dense_points(
    person: PersonSample, iuv: IUVMap, value: int, options: PredictionOptions
) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    """The person's dense points: a subset of instance ``value``'s pixels inside its box.

    Returns:
        xy (P, 2) pixel centres in image pixels, part (P,) 1..24, uv (P, 2) in [0, 1]; None
        when the instance has fewer than ``options.min_points`` pixels inside the box.
    """
    rows, cols = _box_pixels(person.bbox, iuv.size)
    r, c = np.nonzero(iuv.instance[rows, cols] == value)
    if len(r) < options.min_points:
        return None
    r, c = r + rows.start, c + cols.start
    rng = np.random.default_rng([options.seed, person.image_id, person.annotation_id])
    keep = spread_subset(iuv.part[r, c], options.points_per_person, rng)
    r, c = r[keep], c[keep]
    xy = np.stack([c + 0.5, r + 0.5], axis=1).astype(np.float64)
    return xy, iuv.part[r, c], iuv.uv[r, c]


def _relative_name(sample: PersonSample, image_root: Path) -> str:
    try:
        return str(sample.image_path.relative_to(image_root))
    except ValueError:
        return sample.image_path.name


def _annotation(sample: PersonSample, xy: np.ndarray, part: np.ndarray, uv: np.ndarray) -> dict[str, Any]:
    """A DensePose-COCO annotation record of the person (dp_x, dp_y on the 256 grid over the box)."""
    x0, y0, w, h = (float(v) for v in sample.bbox)
    dp_x = np.clip((xy[:, 0] - x0) * DP_GRID / w, 0.0, DP_GRID)
    dp_y = np.clip((xy[:, 1] - y0) * DP_GRID / h, 0.0, DP_GRID)
    return {
        "id": sample.annotation_id,
        "image_id": sample.image_id,
        "category_id": 1,
        "iscrowd": 0,
        "bbox": [x0, y0, w, h],
        "keypoints": [float(v) for v in sample.keypoints.reshape(-1)],
        "num_keypoints": int((sample.keypoints[:, 2] > 0).sum()),
        "dp_x": [float(v) for v in dp_x],
        "dp_y": [float(v) for v in dp_y],
        "dp_I": [float(v) for v in part],
        "dp_U": [float(v) for v in uv[:, 0]],
        "dp_V": [float(v) for v in uv[:, 1]],
    }


def _check_size(iuv: IUVMap, iuv_path: Path, image_path: Path, owner: str) -> None:
    """The map must cover its image pixel for pixel (a resized frame shifts every point)."""
    from dlearn.data.crops import image_size

    size = image_size(image_path, owner)
    if size != iuv.size:
        raise PredictionError(
            f"{iuv_path}: IUV map is {iuv.size[1]} x {iuv.size[0]} but its image {image_path} is "
            f"{size[1]} x {size[0]} (width x height)"
        )


def _by_image(samples: Iterable[PersonSample]) -> dict[Path, list[PersonSample]]:
    groups: dict[Path, list[PersonSample]] = {}
    for sample in samples:
        groups.setdefault(sample.image_path, []).append(sample)
    return groups


def predictions_to_coco(
    keypoints_json: str | Path,
    iuv_dir: str | Path,
    image_root: str | Path,
    options: PredictionOptions = PredictionOptions(),
    *,
    allow_absolute_paths: bool = False,
    problems: list[str] | None = None,
) -> tuple[dict[str, Any], ReadReport]:
    """Build a DensePose-COCO dataset from predicted IUV maps and a COCO keypoint file.

    Args:
        keypoints_json: COCO-format file with ``images`` and person ``annotations`` (``bbox``,
            ``keypoints``); dense fields in it are ignored.
        iuv_dir: folder of the ``_IUV.png`` / ``_INDS.png`` files (see :func:`iuv_paths`).
        image_root: folder the file's ``file_name`` entries are relative to.
        options: sampling and skip thresholds.
        allow_absolute_paths: as for :func:`read_densepose_coco`.
        problems: when given, a bad prediction file is appended here and its persons are
            counted as "malformed" instead of raising (check-data).

    Returns:
        The dataset (``images``, ``annotations`` with dp_* fields, ``categories``) and the
        report of kept and skipped persons. Sample ids stay ``{image_id}_{annotation_id}``.

    Raises:
        AnnotationError: the keypoint file is malformed (see :func:`read_densepose_coco`).
        PredictionError: an image with persons has no IUV map, or a map is malformed, or two
            images share one IUV file name.
    """
    keypoints_json, iuv_dir, image_root = Path(keypoints_json), Path(iuv_dir), Path(image_root)
    samples, report = read_densepose_coco(
        keypoints_json, image_root, require_dense=False, allow_absolute_paths=allow_absolute_paths, problems=problems
    )
    images: list[dict[str, Any]] = []
    annotations: list[dict[str, Any]] = []
    used: dict[Path, Path] = {}
    for image_path, persons in _by_image(samples).items():
        name = _relative_name(persons[0], image_root)
        iuv_path, inds_path = iuv_paths(iuv_dir, name)
        try:
            if iuv_path in used:
                # DensePose names its output by the base name up to the first dot: frames such
                # as S1_Walking.54138969_000001.jpg and ..._000002.jpg would share one map.
                raise PredictionError(
                    f"{iuv_path}: IUV map of both {used[iuv_path]} and {image_path}; name the maps after "
                    "the full image name (<stem>_IUV.png) or mirror the image folders"
                )
            used[iuv_path] = image_path
            iuv = read_iuv(iuv_path, inds_path)
            _check_size(iuv, iuv_path, image_path, persons[0].sample_id)
        except InputError as exc:  # the maps, or the image itself (ImageError)
            message = f"{exc} (keypoints of {image_path} in {keypoints_json})"
            if problems is None:
                raise PredictionError(message) from exc
            problems.append(message)
            report.skipped["malformed"] += len(persons)
            continue
        kept_here = _image_persons(persons, iuv, options, report, annotations)
        if kept_here:
            height, width = iuv.size
            images.append({"id": persons[0].image_id, "file_name": name, "height": height, "width": width})
    report.kept = len(annotations)
    dataset = {
        "info": {"description": f"dlearn: DensePose predictions {iuv_dir} with keypoints {keypoints_json}"},
        "images": images,
        "annotations": annotations,
        "categories": [{"id": 1, "name": "person", "supercategory": "person"}],
    }
    log.info("%s + %s: %s", keypoints_json, iuv_dir, report.summary())
    return dataset, report


def _image_persons(
    persons: list[PersonSample],
    iuv: IUVMap,
    options: PredictionOptions,
    report: ReadReport,
    annotations: list[dict[str, Any]],
) -> int:
    """Append the annotations of one image's persons; returns how many were kept."""
    kept = 0
    for person, value in zip(persons, assign_instances(persons, iuv)):
        if int((person.keypoints[:, 2] > 0).sum()) < options.min_keypoints:
            report.skipped["too few keypoints"] += 1
            continue
        if value is None:
            report.skipped["no IUV instance"] += 1
            continue
        points = dense_points(person, iuv, value, options)
        if points is None:
            report.skipped["too few dense points"] += 1
            continue
        annotations.append(_annotation(person, *points))
        kept += 1
    return kept


def write_iuv(path_stem: Path, part: np.ndarray, uv: np.ndarray, instance: np.ndarray) -> tuple[Path, Path]:
    """Write ``<stem>_IUV.png`` and ``<stem>_INDS.png`` byte-compatible with DensePose's output.

    Args:
        path_stem: the path without the suffixes.
        part: (H, W) part index 0..24.
        uv: (H, W, 2) chart coordinates in [0, 1] (ignored where part is 0).
        instance: (H, W) instance value 0..255 (ignored where part is 0).
    """
    fg = part > 0
    u = np.where(fg, np.clip(uv[..., 0], 0, 1) * UV_SCALE, 0)
    v = np.where(fg, np.clip(uv[..., 1], 0, 1) * UV_SCALE, 0)
    # DensePose truncates 255 * U with astype(uint8); cv2 then stores [I, U, V] as B, G, R.
    rgb = np.stack([v, u, part], axis=-1).astype(np.uint8)
    path_stem.parent.mkdir(parents=True, exist_ok=True)
    iuv_path = path_stem.with_name(path_stem.name + IUV_SUFFIX)
    inds_path = path_stem.with_name(path_stem.name + INDS_SUFFIX)
    Image.fromarray(rgb, mode="RGB").save(iuv_path, format="PNG")
    Image.fromarray(np.where(fg, instance, 0).astype(np.uint8), mode="L").save(inds_path, format="PNG")
    return iuv_path, inds_path


def write_predictions_dataset(
    keypoints_json: Path, iuv_dir: Path, image_root: Path, out: Path, options: PredictionOptions,
    allow_absolute_paths: bool = False,
) -> dict[str, Any]:
    """The ``densepose_predictions`` stage: write the DensePose-COCO JSON of :func:`predictions_to_coco`.

    Returns:
        A summary: persons kept, skipped by reason, dense points.
    """
    from dlearn.outputs import check_file_output, clean_stale_siblings, tmp_sibling

    dataset, report = predictions_to_coco(
        keypoints_json, iuv_dir, image_root, options, allow_absolute_paths=allow_absolute_paths
    )
    out = Path(out)
    check_file_output(out)
    clean_stale_siblings(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = tmp_sibling(out)
    tmp.write_text(json.dumps(dataset, separators=(",", ":")))
    tmp.replace(out)
    return {
        "persons": report.kept,
        "skipped": dict(report.skipped),
        "dense_points": sum(len(a["dp_I"]) for a in dataset["annotations"]),
    }
