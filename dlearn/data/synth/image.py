"""One image, start to end: sample its persons, render it, write its files and annotate it; and
the rendering of all images, in this process or in a pool of worker processes.

Determinism: every image draws from its own generator ``np.random.default_rng([seed, split,
index])``, in a fixed order (persons, then shading, then the annotations person by person);
workers only change which process renders an image, never its content.
"""

from __future__ import annotations

import multiprocessing
import time
from pathlib import Path
from typing import Any

import numpy as np

from dlearn.data.raster import RasterScene, RayCastScene
from dlearn.data.synth.annotate import _annotate_persons
from dlearn.data.synth.body import _Body
from dlearn.data.synth.options import SPLIT_ID_OFFSET, SPLITS, SynthOptions
from dlearn.data.synth.render import _rasterise_centres, _shade_image
from dlearn.data.synth.scene import _Person, _sample_persons, _to_pixels
from dlearn.data.synth.write import _write_image_files

#: Images per split whose preview (image, IUV, keypoints) the contact sheet may pick from.
_PREVIEW_IMAGES = {"train": 24, "test": 4}

#: The body of this process (a worker's, or the main process's while it renders in-process).
_WORKER_BODY: _Body | None = None


def _render_image(
    body: _Body,
    options: SynthOptions,
    split_index: int,
    image_index: int,
    out_dir: Path,
    keep_preview: bool,
    scene_type: type[RasterScene | RayCastScene] = RasterScene,
) -> dict[str, Any]:
    """Generate, render and annotate one image; write its PNG; return its records.

    ``scene_type`` answers the visibility queries: the rasteriser, or the former ray caster
    that tests and benchmarks compare it with (same interface, :mod:`dlearn.data.raster`)."""
    started = time.perf_counter()
    rng = np.random.default_rng([options.seed, split_index, image_index])
    split = SPLITS[split_index]
    size = options.image_size
    image_id = SPLIT_ID_OFFSET[split] + image_index + 1
    file_name = f"images/{split}/{image_id:07d}.png"

    persons = _sample_persons(rng, body, options)
    scene = scene_type([_to_pixels(p.vertices, p) for p in persons], body.faces)
    # The IUV image only where it is written or previewed: the annotations need the person map.
    person_map, iuv = _rasterise_centres(scene, body, size, options.write_iuv or keep_preview)
    image = _shade_image(rng, body, persons, scene, size)
    _write_image_files(out_dir, file_name, image_id, image, iuv, person_map, options.write_iuv)
    annotations, gts = _annotate_persons(rng, scene, body, options, image_id, persons, person_map)

    record: dict[str, Any] = {
        "image": {"id": image_id, "file_name": file_name, "width": size, "height": size},
        "annotations": annotations,
        "gt": gts,
        "seconds": time.perf_counter() - started,
    }
    if keep_preview:
        assert iuv is not None
        record["preview"] = _preview(image, iuv, annotations, persons)
    return record


def _preview(
    image: np.ndarray, iuv: np.ndarray, annotations: list[dict[str, Any]], persons: list[_Person]
) -> dict[str, Any]:
    """What the contact sheet draws of one image: the image, IUV, keypoints and the persons'
    pose modes and views."""
    return {
        "image": image,
        "iuv": iuv,
        "keypoints": [np.asarray(a["keypoints"]).reshape(-1, 3) for a in annotations],
        "yaw": [float(p.yaw) for p in persons],
        "mode": [p.mode for p in persons],
        "back": [bool((p.rotation @ np.array([0.0, 0.0, 1.0]))[2] > 0) for p in persons],
    }


def _init_worker(model_path: str, uv_path: str, keypoint_regressor: str | None) -> None:
    global _WORKER_BODY
    _WORKER_BODY = _Body(model_path, uv_path, keypoint_regressor)


def _render_chunk(task: tuple[dict[str, Any], str, list[tuple[int, int]]]) -> list[dict[str, Any]]:
    options_dict, out_dir, items = task
    options = SynthOptions.from_dict(options_dict)
    assert _WORKER_BODY is not None, "worker not initialised"
    return [
        _render_image(_WORKER_BODY, options, s, i, Path(out_dir), i < _PREVIEW_IMAGES[SPLITS[s]])
        for s, i in items
    ]


def _render_all(
    tasks: list[tuple[dict[str, Any], str, list[tuple[int, int]]]],
    workers: int,
    body_model: Path,
    uv_charts: Path,
    keypoint_regressor: Path | None,
) -> list[dict[str, Any]]:
    """The records of every image of ``tasks`` (chunks of (split index, image index)), in task
    order: in this process (one worker or one task), else in a pool of ``workers`` processes.
    No torch: the body is posed in numpy (:class:`~dlearn.body.numpy_model.NumpyBodyModel`)."""
    records: list[dict[str, Any]] = []
    if workers == 1 or len(tasks) <= 1:
        global _WORKER_BODY
        previous = _WORKER_BODY
        try:
            _WORKER_BODY = _Body(body_model, uv_charts, keypoint_regressor)
            for task in tasks:
                records += _render_chunk(task)
        finally:
            _WORKER_BODY = previous
    else:
        ctx = multiprocessing.get_context("spawn")
        with ctx.Pool(
            min(workers, len(tasks)),
            initializer=_init_worker,
            initargs=(
                str(body_model),
                str(uv_charts),
                None if keypoint_regressor is None else str(keypoint_regressor),
            ),
        ) as pool:
            for result in pool.imap(_render_chunk, tasks):
                records += result
    return records
