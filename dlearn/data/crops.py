"""The `crops` stage: square person crops, the regressor's input, cached in a zarr store.

Normalised crop coordinates (used by registration, regressor and every stored 2D point): the
person box, made square about its centre with side ``box_scale * max(w, h)``, maps to
[-1, 1]^2 with x to the right and y DOWN, like image pixels:

    u = (x - cx) / (side / 2),    v = (y - cy) / (side / 2).

Pixel i of an S-pixel crop covers u in [-1 + 2i/S, -1 + 2(i+1)/S]; its centre is
-1 + (2i + 1)/S. The store keeps the box (cx, cy, side) of each sample so that results can be
mapped back to the image.
"""

from __future__ import annotations

import logging
import multiprocessing
import time
from contextlib import nullcontext
from dataclasses import asdict
from pathlib import Path

import numpy as np
from PIL import Image

from dlearn.crop_geometry import from_crop, square_boxes, to_crop  # noqa: F401 (from_crop: re-exported)
from dlearn.data.crop_options import CropOptions
from dlearn.data.store import StoreWriter
from dlearn.densepose.coco import PersonSample, apply_image_rules, read_densepose_coco
from dlearn.errors import InputError

log = logging.getLogger(__name__)

# Grey images with 16 bits per pixel: PIL's convert("RGB") clips them at 255 instead of scaling.
# PNG opens them as I;16 (or I, 32-bit, in older Pillow), so "I" is read as 16-bit too.
SIXTEEN_BIT_MODES = ("I;16", "I;16L", "I;16B", "I;16N", "I")


class ImageError(InputError):
    """An image is missing or unreadable; the message names it and the sample."""


def crop_image(image: Image.Image, box: np.ndarray, size: int) -> np.ndarray:
    """Cut the square ``box`` (cx, cy, side) out of ``image`` and resize it to ``size``.

    Outside the image is black. Downscaling is antialiased (PIL's resize filters over the
    source footprint), so large real images do not alias.

    Returns:
        (size, size, 3) uint8.
    """
    cx, cy, side = (float(v) for v in box)
    x0, y0 = cx - side / 2, cy - side / 2
    # Integer window around the box (padded with black where it leaves the image), then an
    # exact fractional box inside it.
    ix0, iy0 = int(np.floor(x0)), int(np.floor(y0))
    ix1, iy1 = int(np.ceil(x0 + side)), int(np.ceil(y0 + side))
    window = image.crop((ix0, iy0, ix1, iy1))
    resized = window.resize(
        (size, size),
        resample=Image.Resampling.BILINEAR,
        box=(x0 - ix0, y0 - iy0, x0 - ix0 + side, y0 - iy0 + side),
    )
    return np.asarray(resized, dtype=np.uint8)


def to_rgb8(image: Image.Image) -> Image.Image:
    """RGB with 8 bits per channel; 16-bit grey is scaled by 255 / 65535, not clipped at 255."""
    if image.mode in SIXTEEN_BIT_MODES:
        grey = np.asarray(image, dtype=np.float64) / 257.0  # 65535 / 257 = 255
        return Image.fromarray(np.clip(np.rint(grey), 0, 255).astype(np.uint8)).convert("RGB")
    return image.convert("RGB")


def _image_error(path: Path, owner: str, exc: BaseException) -> ImageError:
    """The one-line error of an image that does not open or decode."""
    if isinstance(exc, FileNotFoundError):
        return ImageError(f"{path}: image of sample {owner} does not exist")
    if isinstance(exc, Image.DecompressionBombError):
        return ImageError(
            f"{path}: image of sample {owner} is refused as a decompression bomb ({exc}; PIL's limit is "
            f"Image.MAX_IMAGE_PIXELS = {Image.MAX_IMAGE_PIXELS} pixels, errors above twice that)"
        )
    return ImageError(f"{path}: image of sample {owner} is unreadable ({type(exc).__name__}: {exc})")


def image_size(path: Path, owner: str, decode: bool = False) -> tuple[int, int]:
    """(height, width) of an image file, from its header or, with ``decode``, after decoding it all.

    Args:
        path: the image file.
        owner: the sample id(s) that use it, for the message.
        decode: decode every pixel (finds truncated and corrupt files; check-data does this).

    Raises:
        ImageError: the file is missing, is not an image, does not decode, or exceeds PIL's
            decompression-bomb limit.
    """
    try:
        with Image.open(path) as img:
            if decode:
                img.load()
            return img.height, img.width
    except Exception as exc:  # PIL's plugins raise OSError, SyntaxError, ValueError, EOFError, ...
        raise _image_error(path, owner, exc) from exc


def _load_rgb(path: Path, sample_id: str) -> Image.Image:
    try:
        with Image.open(path) as img:
            return to_rgb8(img)
    except Exception as exc:  # PIL's plugins raise OSError, SyntaxError, ValueError, EOFError, ...
        raise _image_error(path, sample_id, exc) from exc


def crop_task(task: tuple[str, Path, np.ndarray, int]) -> np.ndarray:
    sample_id, path, box, size = task
    return crop_image(_load_rgb(path, sample_id), box, size)


def crop_keypoints(samples: list[PersonSample], boxes: np.ndarray) -> np.ndarray:
    """(N, 17, 3) keypoints in normalised crop coordinates; unlabelled ones (v = 0) are zeros."""
    out = np.zeros((len(samples), 17, 3), dtype=np.float32)
    for i, (sample, box) in enumerate(zip(samples, boxes)):
        labelled = sample.keypoints[:, 2] > 0
        out[i, labelled, :2] = to_crop(sample.keypoints[labelled, :2], box)
        out[i, :, 2] = sample.keypoints[:, 2]
    return out


def make_crops(json_path: Path, image_root: Path, out_path: Path, options: CropOptions) -> dict:
    """Write ``crops_{split}.zarr``: image (N, S, S, 3) uint8, keypoints (N, 17, 3), box (N, 3).

    Samples are the persons :func:`read_densepose_coco` keeps (the same list the match stage
    reads), in its order.

    Persons whose box lies off their image are skipped and counted (the store's ``skipped``
    attribute), by the rule check-data applies too (:func:`apply_image_rules`).

    Returns:
        A summary: samples, skipped counts, seconds, images per second.

    Raises:
        AnnotationError: an annotation is malformed (see :func:`read_densepose_coco`) or a
            keypoint lies far outside its image (nothing is written).
        ImageError: an image is missing or unreadable (nothing is written).
    """
    start = time.perf_counter()
    samples, report = read_densepose_coco(
        json_path,
        image_root,
        min_box_size=options.min_box_size,
        allow_absolute_paths=options.allow_absolute_paths,
        keypoint_names=options.keypoint_names,
    )
    # Image headers only: the sizes the box and keypoint rules need, and a missing file found
    # before anything is written.
    owners: dict[Path, str] = {}
    for sample in samples:
        owners.setdefault(sample.image_path, sample.sample_id)
    sizes = {path: image_size(path, owner) for path, owner in owners.items()}
    samples = apply_image_rules(samples, sizes, report, json_path)
    boxes = square_boxes(np.array([s.bbox for s in samples]).reshape(-1, 4), options.box_scale)
    size = options.image_size
    tasks = [(s.sample_id, s.image_path, box, size) for s, box in zip(samples, boxes)]
    attrs = {
        "frame": "normalised crop coordinates: square box (cx, cy, side) -> [-1, 1], x right, y down",
        "box": "cx, cy, side in image pixels",
        "source": str(json_path),
        "skipped": dict(report.skipped),
    }
    ids = [s.sample_id for s in samples]
    with StoreWriter(out_path, stage="crops", sample_id=ids, options=asdict(options), attrs=attrs) as w:
        w.write("box", boxes.astype(np.float32))
        w.write("keypoints", crop_keypoints(samples, boxes))
        images = w.create("image", (len(samples), size, size, 3), np.uint8, chunk_rows=options.chunk_rows)
        rows = options.chunk_rows
        # Worker processes only pay off beyond one chunk of images.
        use_pool = options.workers > 1 and len(tasks) > rows
        pool_context = multiprocessing.get_context("spawn").Pool(options.workers) if use_pool else nullcontext()
        with pool_context as pool:
            crop_all = pool.map if pool is not None else lambda fn, items: [fn(item) for item in items]
            for first in range(0, len(tasks), rows):
                batch = crop_all(crop_task, tasks[first : first + rows])
                images[first : first + len(batch)] = np.stack(batch)
    seconds = time.perf_counter() - start
    summary = {
        "samples": len(samples),
        "skipped": dict(report.skipped),
        "seconds": round(seconds, 3),
        "images_per_second": round(len(samples) / max(seconds, 1e-9), 1),
    }
    log.info(
        "%s: %d crops of %d px (%s), %.1f images/s",
        out_path, len(samples), size, report.summary(), summary["images_per_second"],
    )  # fmt: skip
    return summary

