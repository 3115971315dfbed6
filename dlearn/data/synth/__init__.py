r"""Synthetic DensePose-COCO: rendered people with exact 3D ground truth.

Real DensePose-COCO cannot be downloaded here, so the default pipeline runs on a dataset that
this module writes in exactly the DensePose-COCO format (images, ``densepose_{split}.json``),
plus the 3D truth the real data lacks (``gt_{split}.zarr``). One image holds
``persons_per_image`` bodies of the given SMPL-format model, each in a random plausible pose,
with random segment scales and a random weak-perspective camera, rasterised
(:mod:`dlearn.data.raster`).

Conventions (fixed; the registration, the regressor and the evaluation rely on them)
-------------------------------------------------------------------------------------
* Body frame: metres, y up, the person faces +z, the person's left is +x (SMPL's frame).
  ``pose`` (23, 3) is axis-angle of the non-root joints in their parents' frames; the root
  has no rotation (the camera rotation carries the global orientation).
* Camera, pixel units, weak perspective, OpenCV-like image axes (x right, y DOWN):
  ``x_px = s * (R X)[:2] + t``; the camera z axis points into the scene, so the depth
  ``z = s * (R X)_z`` is smaller for points closer to the viewer. An upright person facing
  the camera has ``R = diag(1, -1, -1)`` (a proper rotation, det +1). A person seen from the
  back has ``(R e_z)_z > 0`` (their +z points away from the viewer).
  Stored in pixel units: ``cam_rotation`` (N, 3, 3), ``cam_scale`` (N,) pixels per metre,
  ``cam_translation`` (N, 2) pixels.
* Pixels: pixel (row i, column j) covers [j, j + 1) x [i, i + 1); its centre is (j + .5, i + .5).
  Masks, boxes and the IUV image are sampled at pixel centres.
* Ids: image ids ``split_offset + index + 1`` (train offset 0, test 1_000_000), annotation id
  ``100 * image_id + person + 1``; sample id ``f"{image_id}_{annotation_id}"`` (what
  :func:`dlearn.densepose.coco.read_densepose_coco` produces). Unique within a split and
  disjoint between the splits.

Output (in ``out_dir``)
-----------------------
* ``images/{split}/{image_id:07d}.png``: RGB, ``image_size`` square.
* ``densepose_{split}.json``: COCO with DensePose fields per person: ``bbox`` (tight box of the
  visible person mask), ``area``, ``segmentation`` (compressed RLE, counts as str),
  ``keypoints`` (17 x (x, y, v): v = 2 visible, 1 occluded, 0 outside the image with x = y = 0),
  ``num_keypoints``, ``dp_x``/``dp_y`` (on the 256 grid over the box: ``x = x0 + dp_x * w /
  256``), ``dp_I`` (1..24), ``dp_U``/``dp_V``, ``dp_masks`` (14 coarse part RLEs on a 256 x 256
  grid over the box, ``[]`` for an invisible part). Same seed -> same bytes.
* ``gt_{split}.zarr`` (stage ``synth``), aligned with the sample ids: ``pose`` (N, 23, 3),
  ``scales`` (N, 24), ``cam_rotation``, ``cam_scale``, ``cam_translation``, ``joints3d``
  (N, 24, 3) and ``keypoints3d`` (N, 17, 3) posed in the body frame (metres), ``bbox`` (N, 4),
  ``image_id``, ``annotation_id``, and the exact dense truth in CSR form: ``dense_offsets``
  (N + 1), ``dense_face`` (P,) the body face under each dense point and ``dense_bary`` (P, 3)
  its barycentric coordinates, in the JSON's point order. The surface point of dense point p is
  ``sum_k dense_bary[p, k] * vertices[faces[dense_face[p], k]]`` for the body posed with
  ``pose``/``scales``; with noise off it projects (camera above) onto the JSON's point to
  rounding, and its chart (U, V) is the barycentric mix of the chart vertices of that face.
* ``contact_sheet.png``: image, IUV overlay and keypoints of a few samples.

Exactness: visibility is the first surface hit along the camera's z at an image position, found
by a float64 z-buffer rasteriser (:class:`dlearn.data.raster.RasterScene`, numba kernels): pixel centres,
sub-pixel samples and the 256 x 256 DensePose grid are regular lattices scan-converted face by
face, scattered positions (dense points, keypoints) are tested against the faces of their
pixel. A hit's barycentric coordinates are solved in float64 in the image plane, clipped into
the triangle, and the point's image position recomputed from them, so a dense point and its
surface point agree to rounding. (The former embree ray caster, float32, gives the same faces
but at a few edge samples; it remains as :class:`~dlearn.data.raster.RayCastScene`, the
reference of the tests and ``benchmarks/bench_render.py``.)
All parameters are rounded to float32 (what the store holds) before they are used.

Noise (:class:`NoiseOptions`, all zero = exact): Gaussian pixel jitter of the dense points and
the keypoints (the ground truth keeps the true surface point of the unjittered position), part
confusion (a point near a part boundary takes, with the given probability, the label and UV of
a point of a neighbouring part 1.5 px away), and dropped keypoints (v = 0, x = y = 0).

Scenes: the pose prior (:func:`sample_pose`) mixes standing, walking, sitting-ish, arms-up and
uniformly random poses within per-joint Euler limits (knees and elbows bend one way only); the
segment scales (:func:`sample_scales`) are log-normal, smoothed over the tree, times a global
factor; the camera (:func:`sample_camera`) has the full range of yaw (back views included) and
tilt/roll within +-15 degrees; the weak-perspective scale makes a person 40-90 % of the image
height (35-75 % with several persons), at most ~5 % of the box outside the image. Several
persons are spread horizontally and depth-ordered (one z-buffer over the union of meshes), so
they occlude each other; a person with fewer than 20 visible pixels gets no annotation. The body
is Lambert-shaded with clothing-like colours per part group (shirt, sleeves, trousers, shoes,
skin, hair at the back of the head, dark eyes) over a random textured background (gradient,
low-frequency noise, stripes, blobs), 2 x 2 supersampled.

Keypoints are the body's COCO keypoints (:mod:`dlearn.body.keypoints`: the model's vertex
regressor, e.g. the stand-in's hips on the outside of the hip surface) regressed from the posed
surface and projected, never the skeleton's joints (unless the keypoint definition is the
fallback's). v = 2 when visible: the first surface hit at the keypoint's pixel lies within the
keypoint's reach of it in depth (the mean distance of its regressor's posed vertices from the
regressed point, plus 2 cm: a face vertex is seen within 2 cm, a ring around the elbow from
either side of the arm); a keypoint on a joint (the fallback) when the first hit at its pixel is
skinned mostly to that joint or a tree neighbour; else v = 1; v = 0 outside the image.

Determinism: every image draws from its own generator ``np.random.default_rng([seed, split,
index])``; workers only change which process renders an image, never its content.

Modules: :mod:`~dlearn.data.synth.options` (what to generate, the ids),
:mod:`~dlearn.data.synth.priors` (pose, scale and camera priors), :mod:`~dlearn.data.synth.body`
(the body prepared once per process), :mod:`~dlearn.data.synth.scene` (the persons of an image),
:mod:`~dlearn.data.synth.appearance` (colours, background), :mod:`~dlearn.data.synth.render`
(IUV image, person map, shaded image), :mod:`~dlearn.data.synth.annotate` (dense points, part
confusion, masks, keypoint visibility), :mod:`~dlearn.data.synth.image` (one image; the workers),
:mod:`~dlearn.data.synth.write` (PNG, JSON, ground-truth store, contact sheet); this package's
root holds :func:`synthesize` and the public names of the others.
"""

from __future__ import annotations

import logging
import math
import re
import shutil
import time
from pathlib import Path
from typing import Any

from dlearn.data.synth.image import _render_all
from dlearn.data.synth.options import SPLITS, NoiseOptions, SynthOptions
from dlearn.data.synth.priors import sample_camera, sample_pose, sample_scales
from dlearn.data.synth.write import (
    COCO_SKELETON,
    _coco_categories,
    _write_gt,
    write_contact_sheet,
)
from dlearn.densepose.coco import COARSE_PART
from dlearn.outputs import OutputError, check_folder_output, write_json

log = logging.getLogger(__name__)

__all__ = [
    "COARSE_PART",
    "COCO_SKELETON",
    "SPLITS",
    "NoiseOptions",
    "SynthOptions",
    "sample_camera",
    "sample_pose",
    "sample_scales",
    "synthesize",
]

# What synth writes into images/{split}: images named by their 7-digit id.
_OWN_IMAGE = re.compile(r"^\d{7}\.png$")


def _check_own_images(folder: Path) -> None:
    """An image folder synth may delete: missing, or holding only images named as synth names them.

    Raises:
        OutputError: a file or folder of other content (a user's images) is there.
    """
    if not folder.exists():
        return
    check_folder_output(folder)
    foreign = [entry.name for entry in folder.iterdir() if not _OWN_IMAGE.match(entry.name)]
    if foreign:
        raise OutputError(
            f"{folder}: holds {len(foreign)} file(s) synth did not write (e.g. {foreign[0]!r}); synth replaces "
            "this folder, so give an output folder without them"
        )


def synthesize(
    body_model: Path,
    uv_charts: Path,
    out_dir: Path,
    options: SynthOptions,
    keypoint_regressor: Path | None = None,
) -> dict[str, Any]:
    """Generate the synthetic DensePose-COCO dataset (see the module docstring for the files).

    Args:
        body_model: SMPL-format model file (the stand-in or real SMPL).
        uv_charts: DensePose ``UV_Processed.mat`` of that model.
        out_dir: output folder (created); existing outputs of the same names are replaced.
        options: what to generate.
        keypoint_regressor: COCO keypoint regressor file (see :mod:`dlearn.body.keypoints`);
            None: the model file's, else the fallback.

    Returns:
        Summary: images and persons per split, dense points, seconds, images per second.
    """
    options.validate()
    out_dir = Path(out_dir)
    check_folder_output(out_dir)
    for split in SPLITS:
        _check_own_images(out_dir / "images" / split)
    out_dir.mkdir(parents=True, exist_ok=True)
    counts = {"train": options.num_train, "test": options.num_test}
    for split in SPLITS:
        shutil.rmtree(out_dir / "images" / split, ignore_errors=True)
        (out_dir / "images" / split).mkdir(parents=True, exist_ok=True)
    items = [(s, i) for s, split in enumerate(SPLITS) for i in range(counts[split])]
    chunk = max(1, min(8, math.ceil(len(items) / (4 * options.workers))))
    tasks = [(options.to_dict(), str(out_dir), items[a : a + chunk]) for a in range(0, len(items), chunk)]
    start = time.perf_counter()
    records = _render_all(tasks, options.workers, body_model, uv_charts, keypoint_regressor)
    render_seconds = time.perf_counter() - start

    summary: dict[str, Any] = {"images": {}, "persons": {}, "dense_points": {}}
    previews: list[dict[str, Any]] = []
    for s, split in enumerate(SPLITS):
        recs = [r for r, (rs, _) in zip(records, items) if rs == s]
        coco = {
            "info": {"description": "dlearn synthetic DensePose-COCO", "version": "1"},
            "images": [r["image"] for r in recs],
            "annotations": [a for r in recs for a in r["annotations"]],
            "categories": _coco_categories(),
        }
        write_json(out_dir / f"densepose_{split}.json", coco)
        gts = [g for r in recs for g in r["gt"]]
        _write_gt(out_dir / f"gt_{split}.zarr", gts, options, split)
        summary["images"][split] = len(recs)
        summary["persons"][split] = len(gts)
        summary["dense_points"][split] = int(sum(len(g["dense_face"]) for g in gts))
        previews += [r["preview"] for r in recs if "preview" in r]
    if previews:
        write_contact_sheet(previews, out_dir / "contact_sheet.png")
    seconds = time.perf_counter() - start
    num_images = len(items)
    summary.update(
        seconds=round(seconds, 3),
        render_seconds=round(render_seconds, 3),
        images_per_second=round(num_images / max(render_seconds, 1e-9), 2),
        # Per process, without the workers' start-up (spawn, imports, loading the body).
        images_per_second_per_worker=round(num_images / max(sum(r["seconds"] for r in records), 1e-9), 2),
        workers=options.workers,
        image_size=options.image_size,
    )
    log.info(
        "synth: %d images (%s persons) in %.1f s, %.1f images/s with %d workers",
        num_images,
        summary["persons"],
        seconds,
        summary["images_per_second"],
        options.workers,
    )
    return summary
