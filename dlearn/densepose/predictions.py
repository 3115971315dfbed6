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

import logging
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path, PurePath
from typing import Any

import numpy as np
from PIL import Image

from dlearn.densepose.coco import (
    DP_GRID,
    NUM_KEYPOINTS,
    NUM_PARTS,
    PersonSample,
    ReadReport,
    _image_path,
    box_skip_reason,
    read_densepose_coco,
)
from dlearn.densepose.dump import DumpInstance, entry_instances, load_dump
from dlearn.densepose.options import PredictionOptions
from dlearn.errors import InputError

log = logging.getLogger(__name__)

IUV_SUFFIX = "_IUV.png"
INDS_SUFFIX = "_INDS.png"
#: Slot of SPIN's 24 ground-truth joints (``constants.JOINT_NAMES[25:]``: 0 Right Ankle, 1 Right
#: Knee, 2 Right Hip, 3 Left Hip, 4 Left Knee, 5 Left Ankle, 6 Right Wrist, 7 Right Elbow, 8 Right
#: Shoulder, 9 Left Shoulder, 10 Left Elbow, 11 Left Wrist, 12 Neck (LSP), 13 Top of Head (LSP),
#: 14 Pelvis (MPII), 15 Thorax (MPII), 16 Spine (H36M), 17 Jaw (H36M), 18 Head (H36M), 19 Nose,
#: 20 Left Eye, 21 Right Eye, 22 Left Ear, 23 Right Ear) of each of COCO's 17 keypoints.
SPIN_J24_TO_COCO = [19, 20, 21, 22, 23, 9, 8, 10, 7, 11, 6, 3, 2, 4, 1, 5, 0]
UV_SCALE = 255.0  # DensePose stores U and V in [0, 1] as 255 * U, 255 * V (uint8)


class PredictionError(InputError):
    """A DensePose prediction file is missing or malformed; the message names the file and the value."""


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
    #: Image pixel (row, column) of element [0, 0]: a map may cover a window of its image (one
    #: instance of an apply_net dump covers its box).
    origin: tuple[int, int] = (0, 0)
    #: (height, width) of the image; None: the map covers the whole image.
    image_shape: tuple[int, int] | None = None

    @property
    def size(self) -> tuple[int, int]:
        """(height, width) of the image the map belongs to."""
        return self.image_shape or self.part.shape  # type: ignore[return-value]


#: One image's prediction: a whole-image map (IUV PNG) or one map per instance (apply_net dump).
Prediction = IUVMap | list[IUVMap]


def _layers(iuv: Prediction) -> list[IUVMap]:
    return iuv if isinstance(iuv, list) else [iuv]


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


def _window(iuv: IUVMap, bbox: np.ndarray) -> tuple[slice, slice]:
    """Rows and columns of ``iuv``'s arrays whose image pixels have their centres inside the box."""
    rows, cols = _box_pixels(bbox, iuv.size)
    (oy, ox), (h, w) = iuv.origin, iuv.part.shape
    r0, c0 = min(max(rows.start - oy, 0), h), min(max(cols.start - ox, 0), w)
    return slice(r0, max(min(rows.stop - oy, h), r0)), slice(c0, max(min(cols.stop - ox, w), c0))


def assign_instances(persons: list[PersonSample], iuv: Prediction) -> list[int | None]:
    """The IUV instance of each person: most pixels inside its box, each instance used once.

    Greedy over (person, instance) pairs by decreasing pixel count, so two overlapping boxes get
    the two people rather than both the front one.

    Returns:
        Per person its INDS value, or None when no free instance has a pixel inside its box.
    """
    layers = _layers(iuv)
    values = np.unique(np.concatenate([layer.instance[layer.instance >= 0] for layer in layers] or [np.zeros(0)]))
    counts = np.zeros((len(persons), len(values)), dtype=np.int64)
    for p, person in enumerate(persons):
        for layer in layers:
            rows, cols = _window(layer, person.bbox)
            inside = layer.instance[rows, cols]
            counts[p] += [(inside == value).sum() for value in values]
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
    person: PersonSample, iuv: Prediction, value: int, options: PredictionOptions
) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    """The person's dense points: a subset of instance ``value``'s pixels inside its box.

    Returns:
        xy (P, 2) pixel centres in image pixels, part (P,) 1..24, uv (P, 2) in [0, 1]; None
        when the instance has fewer than ``options.min_points`` pixels inside the box.
    """
    rows_, cols_, parts, uvs = [], [], [], []
    for layer in _layers(iuv):
        rows, cols = _window(layer, person.bbox)
        r, c = np.nonzero(layer.instance[rows, cols] == value)
        r, c = r + rows.start, c + cols.start
        rows_.append(r + layer.origin[0])
        cols_.append(c + layer.origin[1])
        parts.append(layer.part[r, c])
        uvs.append(layer.uv[r, c])
    r, c, part, uv = np.concatenate(rows_), np.concatenate(cols_), np.concatenate(parts), np.concatenate(uvs)
    if len(r) < options.min_points:
        return None
    rng = np.random.default_rng([options.seed, person.image_id, person.annotation_id])
    keep = spread_subset(part, options.points_per_person, rng)
    xy = np.stack([c[keep] + 0.5, r[keep] + 0.5], axis=1).astype(np.float64)
    return xy, part[keep], uv[keep]


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


def read_spin_keypoints(
    npz_path: str | Path,
    image_root: str | Path,
    *,
    allow_absolute_paths: bool = False,
    problems: list[str] | None = None,
) -> tuple[list[PersonSample], ReadReport]:
    """Persons from a SPIN-style npz (``imgname``, ``center``, ``scale``, ``part``): SPIN's
    ``h36m_train.npz`` ships Human3.6M's 2D ground truth this way.

    ``part`` is (N, 24, 3): x, y in image pixels and a confidence, in the 24 "ground truth"
    slots of SPIN's ``constants.JOINT_NAMES`` (after its 25 OpenPose joints). The COCO
    keypoints among them (:data:`SPIN_J24_TO_COCO`) become the person's keypoints, visible
    (v = 2) where the confidence is above 0; the other slots (neck, head top, pelvis, thorax,
    spine, jaw, head) are dropped. Human3.6M fills no face slot, so its persons have 12 COCO
    keypoints, and its hips are skeleton joints, not COCO's annotated hips. The box is
    :attr:`SpinEvaluationSet.person_boxes`' (square, side ``scale * 200 / 0.9`` about ``center``).
    Rows naming the same ``imgname`` are persons of one image: image id = the order of first
    appearance, annotation id = the row.

    Raises:
        PredictionError: missing file or key, a shape other than SPIN's, a non-finite number, or
            an ``imgname`` that leaves ``image_root`` (names the file, key and row).
    """
    from dlearn.data.h36m import SPIN_BOX_UNIT, SPIN_H36M_BOX_FACTOR

    npz_path, image_root = Path(npz_path), Path(image_root)
    try:
        with np.load(npz_path, allow_pickle=False) as npz:
            missing = [k for k in ("imgname", "center", "scale", "part") if k not in npz.files]
            if missing:
                raise PredictionError(f"{npz_path}: key '{missing[0]}' is missing (SPIN npz: imgname, center, scale, part)")
            data = {k: npz[k] for k in ("imgname", "center", "scale", "part")}
    except FileNotFoundError as exc:
        raise PredictionError(f"{npz_path}: keypoint file does not exist") from exc
    except (OSError, ValueError) as exc:
        raise PredictionError(f"{npz_path}: not a readable .npz file ({exc})") from exc
    n = len(data["imgname"])
    expected = {"imgname": (n,), "center": (n, 2), "scale": (n,), "part": (n, 24, 3)}
    for key, shape in expected.items():
        if data[key].shape != shape:
            raise PredictionError(f"{npz_path}: key '{key}' has shape {data[key].shape}, expected {shape} (SPIN's layout)")
        if key != "imgname":
            bad = np.flatnonzero(~np.isfinite(data[key].reshape(n, -1)).all(axis=1))
            if bad.size:
                raise PredictionError(f"{npz_path}: key '{key}' holds a non-finite number in row {bad[0]}")
    side = data["scale"].astype(np.float64) * SPIN_BOX_UNIT / SPIN_H36M_BOX_FACTOR
    center = data["center"].astype(np.float64)
    report = ReadReport()
    samples: list[PersonSample] = []
    image_ids: dict[str, int] = {}
    for row in range(n):
        name = str(data["imgname"][row])
        image_id = image_ids.setdefault(name, len(image_ids))
        where = f"{npz_path}: row {row}"
        try:
            image_path = _image_path({"id": image_id, "file_name": name}, image_root, where, allow_absolute_paths)
        except InputError as exc:
            if problems is None:
                raise PredictionError(str(exc)) from exc
            problems.append(str(exc))
            report.skipped["malformed"] += 1
            continue
        bbox = np.array([center[row, 0] - side[row] / 2, center[row, 1] - side[row] / 2, side[row], side[row]])
        reason = box_skip_reason(bbox, min_box_size=1e-9)
        if reason is not None:
            report.skipped[reason] += 1
            continue
        part = data["part"][row].astype(np.float64)
        keypoints = np.zeros((NUM_KEYPOINTS, 3))
        keypoints[:, :2] = part[SPIN_J24_TO_COCO, :2]
        keypoints[:, 2] = np.where(part[SPIN_J24_TO_COCO, 2] > 0, 2.0, 0.0)
        keypoints[keypoints[:, 2] == 0, :2] = 0.0
        samples.append(
            PersonSample(
                sample_id=f"{image_id}_{row}", image_id=image_id, annotation_id=row, image_path=image_path,
                image_size=None, bbox=bbox, keypoints=keypoints, dense_xy=np.zeros((0, 2)),
                dense_part=np.zeros(0, np.int64), dense_uv=np.zeros((0, 2)),
            )  # fmt: skip
        )
    report.kept = len(samples)
    log.info("%s: %s", npz_path, report.summary())
    return samples, report


def read_keypoint_persons(
    path: str | Path, image_root: str | Path, *, allow_absolute_paths: bool = False, problems: list[str] | None = None
) -> tuple[list[PersonSample], ReadReport]:
    """The persons of a keypoint file: SPIN-style ``.npz`` (:func:`read_spin_keypoints`) or COCO JSON."""
    if Path(path).suffix == ".npz":
        return read_spin_keypoints(path, image_root, allow_absolute_paths=allow_absolute_paths, problems=problems)
    return read_densepose_coco(
        path, image_root, require_dense=False, allow_absolute_paths=allow_absolute_paths, problems=problems
    )


def _dump_layers(instances: list[DumpInstance], image_shape: tuple[int, int], where: str) -> list[IUVMap]:
    """One map per dump instance over its box (instance value = its index in the entry)."""
    height, width = image_shape
    layers = []
    for k, inst in enumerate(instances):
        h, w = inst.labels.shape
        if inst.x < -1 or inst.y < -1 or inst.x + w > width + 1 or inst.y + h > height + 1:
            raise PredictionError(
                f"{where}, instance {k}: box x {inst.x}..{inst.x + w}, y {inst.y}..{inst.y + h} lies outside the "
                f"{width} x {height} image (a dump of another, resized image?)"
            )
        instance = np.where(inst.labels > 0, k, -1)
        layers.append(IUVMap(part=inst.labels, uv=inst.uv, instance=instance, origin=(inst.y, inst.x), image_shape=image_shape))
    return layers


def _dump_entries(dumps: list[Path], groups: dict[Path, list[PersonSample]], image_root: Path) -> dict[Path, tuple[str, dict]]:
    """Each image with persons -> (where, entry) of its dump entry, matched by ``file_name``.

    An entry belongs to the image whose path relative to ``image_root`` ends its ``file_name``
    (apply_net records the path it was given: relative to its working folder, or absolute).
    """
    by_name: dict[str, list[Path]] = {}
    for image_path in groups:
        by_name.setdefault(image_path.name, []).append(image_path)
    found: dict[Path, tuple[str, dict]] = {}
    for dump in dumps:
        for i, entry in enumerate(load_dump(dump)):
            where = f"{dump}: entry {i}"
            name = entry.get("file_name")
            if not isinstance(name, str) or not name:
                raise PredictionError(f"{where}: 'file_name' is {name!r}, expected the image path")
            parts = PurePath(name).parts
            candidates = [
                p for p in by_name.get(PurePath(name).name, [])
                if parts[-len(PurePath(_relative(p, image_root)).parts):] == PurePath(_relative(p, image_root)).parts
            ]  # fmt: skip
            if len(candidates) > 1:
                raise PredictionError(f"{where}: file_name {name!r} matches images {candidates[0]} and {candidates[1]}")
            if not candidates:
                continue  # an image without persons in the keypoint file
            if candidates[0] in found:
                raise PredictionError(f"{where}: second prediction of {candidates[0]} (first: {found[candidates[0]][0]})")
            found[candidates[0]] = (where, entry)
    return found


def _relative(path: Path, root: Path) -> str:
    try:
        return str(path.relative_to(root))
    except ValueError:
        return path.name


def predictions_to_coco(
    keypoints_json: str | Path,
    iuv_dir: str | Path | None,
    image_root: str | Path,
    options: PredictionOptions = PredictionOptions(),  # noqa: B008 (frozen)
    *,
    dumps: list[Path] | None = None,
    allow_absolute_paths: bool = False,
    problems: list[str] | None = None,
) -> tuple[dict[str, Any], ReadReport]:
    """Build a DensePose-COCO dataset from predicted IUV maps and 2D keypoints.

    Args:
        keypoints_json: COCO-format file with ``images`` and person ``annotations`` (``bbox``,
            ``keypoints``; dense fields in it are ignored), or a SPIN-style ``.npz`` with
            ``part`` (:func:`read_spin_keypoints`).
        iuv_dir: folder of the ``_IUV.png`` / ``_INDS.png`` files (see :func:`iuv_paths`);
            unused with ``dumps``.
        image_root: folder the file's ``file_name`` entries are relative to.
        options: sampling and skip thresholds.
        dumps: detectron2 DensePose ``apply_net.py dump`` files (:mod:`dlearn.densepose.dump`)
            instead of IUV PNGs: each instance's labels / uv over its box.
        allow_absolute_paths: as for :func:`read_densepose_coco`.
        problems: when given, a bad prediction file is appended here and its persons are
            counted as "malformed" instead of raising (check-data).

    Returns:
        The dataset (``images``, ``annotations`` with dp_* fields, ``categories``) and the
        report of kept and skipped persons. Sample ids stay ``{image_id}_{annotation_id}``.

    Raises:
        AnnotationError: the keypoint file is malformed (see :func:`read_densepose_coco`).
        PredictionError: an image with persons has no IUV map or dump entry, or a map, dump or
            SPIN npz is malformed, or two images share one IUV file name.
    """
    keypoints_json, image_root = Path(keypoints_json), Path(image_root)
    samples, report = read_keypoint_persons(
        keypoints_json, image_root, allow_absolute_paths=allow_absolute_paths, problems=problems
    )
    groups = _by_image(samples)
    source = f"{', '.join(map(str, dumps))}" if dumps is not None else str(iuv_dir)
    entries: dict[Path, tuple[str, dict]] = {}
    if dumps is not None:
        try:
            entries = _dump_entries([Path(d) for d in dumps], groups, image_root)
        except InputError as exc:  # a whole dump: nothing of this split can be read
            if problems is None:
                raise
            problems.append(str(exc))
            report.skipped["malformed"] += len(samples)
            groups = {}
    images: list[dict[str, Any]] = []
    annotations: list[dict[str, Any]] = []
    used: dict[Path, Path] = {}
    for image_path, persons in groups.items():
        name = _relative_name(persons[0], image_root)
        try:
            if dumps is not None:
                iuv, label = _dump_prediction(entries, image_path, persons[0].sample_id, source)
            else:
                iuv, label = _png_prediction(Path(iuv_dir or ""), name, image_path, persons[0].sample_id, used)
        except InputError as exc:  # the maps, or the image itself (ImageError)
            message = f"{exc} (keypoints of {image_path} in {keypoints_json})"
            if problems is None:
                raise PredictionError(message) from exc
            problems.append(message)
            report.skipped["malformed"] += len(persons)
            continue
        kept_here = _image_persons(persons, iuv, options, report, annotations)
        if kept_here:
            height, width = _layers(iuv)[0].size
            images.append({"id": persons[0].image_id, "file_name": name, "height": height, "width": width})
    report.kept = len(annotations)
    dataset = {
        "info": {"description": f"dlearn: DensePose predictions {source} with keypoints {keypoints_json}"},
        "images": images,
        "annotations": annotations,
        "categories": [{"id": 1, "name": "person", "supercategory": "person"}],
    }
    log.info("%s + %s: %s", keypoints_json, source, report.summary())
    return dataset, report


def _png_prediction(iuv_dir: Path, name: str, image_path: Path, owner: str, used: dict[Path, Path]) -> tuple[IUVMap, str]:
    iuv_path, inds_path = iuv_paths(iuv_dir, name)
    if iuv_path in used:
        # DensePose names its output by the base name up to the first dot: frames such
        # as S1_Walking.54138969_000001.jpg and ..._000002.jpg would share one map.
        raise PredictionError(
            f"{iuv_path}: IUV map of both {used[iuv_path]} and {image_path}; name the maps after "
            "the full image name (<stem>_IUV.png) or mirror the image folders"
        )
    used[iuv_path] = image_path
    iuv = read_iuv(iuv_path, inds_path)
    _check_size(iuv, iuv_path, image_path, owner)
    return iuv, str(iuv_path)


def _dump_prediction(
    entries: dict[Path, tuple[str, dict]], image_path: Path, owner: str, source: str
) -> tuple[list[IUVMap], str]:
    from dlearn.data.crops import image_size

    if image_path not in entries:
        raise PredictionError(f"{source}: no dump entry has the file_name of {image_path}")
    where, entry = entries[image_path]
    instances = entry_instances(entry, where)
    return _dump_layers(instances, image_size(image_path, owner), where), where


def _image_persons(
    persons: list[PersonSample],
    iuv: Prediction,
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


def dump_files(path: str | Path) -> list[Path]:
    """The apply_net dumps a config names: the file itself, or every ``*.pkl`` of a folder, sorted.

    Raises:
        PredictionError: the path does not exist, or the folder holds no ``.pkl`` file.
    """
    path = Path(path)
    if path.is_dir():
        files = sorted(path.glob("*.pkl"))
        if not files:
            raise PredictionError(f"{path}: folder holds no apply_net dump (*.pkl)")
        return files
    if not path.is_file():
        raise PredictionError(f"{path}: DensePose dump does not exist")
    return [path]


def write_predictions_dataset(
    keypoints_json: Path, iuv_dir: Path | None, image_root: Path, out: Path, options: PredictionOptions,
    allow_absolute_paths: bool = False, dump: Path | None = None,
) -> dict[str, Any]:
    """The ``densepose_predictions`` stage: write the DensePose-COCO JSON of :func:`predictions_to_coco`.

    Returns:
        A summary: persons kept, skipped by reason, dense points.
    """
    from dlearn.outputs import write_json

    dataset, report = predictions_to_coco(
        keypoints_json, iuv_dir, image_root, options, allow_absolute_paths=allow_absolute_paths,
        dumps=None if dump is None else dump_files(dump),
    )  # fmt: skip
    write_json(out, dataset)
    return {
        "persons": report.kept,
        "skipped": dict(report.skipped),
        "dense_points": sum(len(a["dp_I"]) for a in dataset["annotations"]),
    }
