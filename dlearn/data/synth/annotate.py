"""Annotating one rendered image in DensePose-COCO's terms, person by person: the tight box and
RLE mask of the visible person, dense points (uniform on the visible surface, exact hits only,
with their part and chart UV), the optional annotation noise (part confusion near part borders,
dense-point and keypoint jitter, dropped keypoints), the 14 coarse part masks on the 256 x 256
grid over the box, and the COCO keypoints with their visibility; plus each person's 3D truth.

Keypoint visibility: v = 2 when visible: the first surface hit at the keypoint's pixel lies
within the keypoint's reach of it in depth (:meth:`dlearn.data.synth.body._Body.keypoint_reach`,
plus 2 cm); a keypoint on a joint (the fallback regressor) when the first hit at its pixel is
skinned mostly to that joint or a tree neighbour; else v = 1; v = 0 outside the image.

The random draws happen in a fixed order per person (dense-point candidates, part confusion,
dense jitter, keypoint jitter, dropped keypoints): the same seed gives the same annotations.
"""

from __future__ import annotations

import math
from typing import Any

import numba
import numpy as np
from pycocotools import mask as mask_utils

from dlearn.data.raster import RasterScene, RayCastScene
from dlearn.data.synth.body import _Body, _uv_of
from dlearn.data.synth.options import NoiseOptions, SynthOptions
from dlearn.data.synth.scene import _Person, _to_pixels
from dlearn.densepose.coco import DP_GRID, NUM_COARSE, NUM_KEYPOINTS

#: A person with fewer visible pixels gets no annotation.
MIN_VISIBLE_PIXELS = 20

_DP_SCALE = float(DP_GRID)

Scene = RasterScene | RayCastScene
Box = tuple[float, float, float, float]  # x0, y0, w, h (pixels)


def _rle(mask: np.ndarray) -> dict[str, Any]:
    rle = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
    return {"size": [int(rle["size"][0]), int(rle["size"][1])], "counts": rle["counts"].decode("ascii")}


def _person_box(mask: np.ndarray) -> Box:
    """Tight box (x0, y0, w, h) of the (H, W) boolean person mask, in whole pixels."""
    rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    x0, y0 = float(cols[0]), float(rows[0])
    w, h = float(cols[-1] + 1 - cols[0]), float(rows[-1] + 1 - rows[0])
    return x0, y0, w, h


def _dense_points(
    rng: np.random.Generator, scene: Scene, body: _Body, k: int, area: int, box: Box, want: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Up to ``want`` points uniform on the visible person ``k`` (``area`` pixels) inside ``box``,
    exact hits on charted faces only: (P, 2) image positions, (P,) body faces and (P, 3)
    barycentric coordinates."""
    x0, y0, w, h = box
    fill = max(area / (w * h), 0.05)
    xy_list, face_list, bary_list = [], [], []
    got = 0
    for _ in range(8):
        m = math.ceil((want - got) / fill * 1.3) + 16
        cand = np.column_stack([x0 + rng.random(m) * w, y0 + rng.random(m) * h])
        hits = scene.cast(cand)
        own = (hits.person == k) & hits.exact
        own[own] = body.face_part[hits.face[own]] > 0  # uncharted faces carry no label
        keep = np.flatnonzero(own)[: want - got]
        xy_list.append(hits.xy[keep])
        face_list.append(hits.face[keep])
        bary_list.append(hits.bary[keep])
        got += len(keep)
        if got >= want:
            break
    return np.concatenate(xy_list), np.concatenate(face_list), np.concatenate(bary_list)


def _confuse_parts(
    rng: np.random.Generator,
    scene: Scene,
    body: _Body,
    k: int,
    xy: np.ndarray,
    parts: np.ndarray,
    uv: np.ndarray,
    probability: float,
) -> None:
    """Part confusion, in place: a dense point with a point of another part of person ``k``
    1.5 px away takes, with ``probability``, the part label and UV of one such point.

    The draws come first (one per point, then one per probe), so only the points drawn for
    confusion are probed: the same draws and outcome as probing every point."""
    draw = rng.random(len(xy))
    pick = rng.random((len(xy), 8))
    drawn = np.flatnonzero(draw < probability)
    if not len(drawn):
        return
    angles = np.arange(8) * (2 * math.pi / 8)
    ring = 1.5 * np.column_stack([np.cos(angles), np.sin(angles)])
    probes = scene.cast((xy[drawn, None, :] + ring[None]).reshape(-1, 2))
    pp = probes.person.reshape(-1, 8)
    pf = probes.face.reshape(-1, 8)
    probe_part = np.where(pp == k, body.face_part[np.maximum(pf, 0)], 0)
    other = (probe_part > 0) & (probe_part != parts[drawn, None])
    for row in np.flatnonzero(other.any(axis=1)):
        i = drawn[row]
        choice = int(np.argmax(np.where(other[row], pick[i], -1.0)))
        flat = row * 8 + choice
        parts[i] = probe_part[row, choice]
        uv[i] = _uv_of(body, probes.face[flat : flat + 1], probes.bary[flat : flat + 1])[0]


def _dp_coordinates(
    rng: np.random.Generator, xy: np.ndarray, box: Box, jitter_px: float
) -> tuple[np.ndarray, np.ndarray]:
    """(P,) ``dp_x`` and ``dp_y`` of the (optionally jittered, clipped to the box) dense points
    on the 256 grid over the box."""
    x0, y0, w, h = box
    ann_xy = xy
    if jitter_px > 0 and len(xy):
        ann_xy = xy + rng.normal(scale=jitter_px, size=xy.shape)
        ann_xy = np.clip(ann_xy, [x0, y0], [x0 + w, y0 + h])
    dp_x = np.clip((ann_xy[:, 0] - x0) * _DP_SCALE / w, 0.0, _DP_SCALE)
    dp_y = np.clip((ann_xy[:, 1] - y0) * _DP_SCALE / h, 0.0, _DP_SCALE)
    return dp_x, dp_y


@numba.njit(cache=True, nogil=True)
def _coarse_rle_strings(labels: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """The 14 coarse part masks of an (n, n) lattice as COCO compressed RLE strings, in one pass:
    ``labels`` (n * n,) holds each position's coarse part (0: none), row-major; mask c holds the
    positions labelled c. Returns the ASCII bytes of all strings (uint8) and (15,) offsets: mask
    c is ``bytes[offsets[c - 1]:offsets[c]]``, empty when the part is absent.

    The encoding is pycocotools' (``mask.encode``, then its ``rleToString``; a test compares):
    run lengths in column-major order starting with a run of zeros, then each count, less the
    count two before it from the fourth on, in 5-bit groups, low first, ``0x20`` marking that
    more follow, plus 48."""
    size = n * n
    # Label changes along the column-major walk: (coarse part, position) where a run of the
    # part starts or ends.
    change_part = np.empty(2 * size + 2, np.int64)
    change_pos = np.empty(2 * size + 2, np.int64)
    changes = 0
    prev = 0
    for j in range(n):
        for i in range(n):
            label = labels[i * n + j]
            if label != prev:
                pos = j * n + i
                if prev > 0:
                    change_part[changes], change_pos[changes] = prev, pos
                    changes += 1
                if label > 0:
                    change_part[changes], change_pos[changes] = label, pos
                    changes += 1
                prev = label
    if prev > 0:
        change_part[changes], change_pos[changes] = prev, size
        changes += 1
    out = np.empty(7 * (changes + 2 * NUM_COARSE), np.uint8)  # <= 7 characters per count
    offsets = np.zeros(NUM_COARSE + 1, np.int64)
    counts = np.empty(changes + 1, np.int64)
    used = 0
    for part in range(1, NUM_COARSE + 1):
        m, last = 0, 0
        for c in range(changes):
            if change_part[c] == part:
                counts[m] = change_pos[c] - last
                last = change_pos[c]
                m += 1
        if m > 0:
            if last < size:  # the run of zeros after the part's last run
                counts[m] = size - last
                m += 1
            for c in range(m):
                x = counts[c] - counts[c - 2] if c > 2 else counts[c]
                more = True
                while more:
                    ch = x & 0x1F
                    x >>= 5
                    more = x != -1 if ch & 0x10 else x != 0
                    if more:
                        ch |= 0x20
                    out[used] = ch + 48
                    used += 1
        offsets[part] = used
    return out[:used], offsets


def _dp_masks(scene: Scene, body: _Body, k: int, box: Box) -> list[Any]:
    """``dp_masks``: the 14 coarse parts of person ``k`` at the centres of a 256 x 256 grid over
    the box, each a compressed RLE (:func:`_coarse_rle_strings`), or ``[]`` for an invisible part.
    The z-buffer writes the coarse part of person ``k``'s faces (0 for the others') directly."""
    x0, y0, w, h = box
    step_x, step_y = w / DP_GRID, h / DP_GRID
    labels = np.zeros(len(scene.faces), np.uint8)  # per global face
    labels[k * scene.num_faces : (k + 1) * scene.num_faces] = body.face_coarse
    coarse = scene.grid_values(x0 + 0.5 * step_x, y0 + 0.5 * step_y, step_x, step_y, DP_GRID, DP_GRID, labels, 0)
    strings, offsets = _coarse_rle_strings(coarse, DP_GRID)
    dp_masks: list[Any] = [[] for _ in range(NUM_COARSE)]
    for c in np.flatnonzero(np.diff(offsets)):
        counts = strings[offsets[c] : offsets[c + 1]].tobytes().decode("ascii")
        dp_masks[c] = {"size": [DP_GRID, DP_GRID], "counts": counts}
    return dp_masks


def _keypoint_visibility(
    scene: Scene, body: _Body, p: _Person, k: int, size: int
) -> tuple[np.ndarray, np.ndarray]:
    """Person ``k``'s keypoints: (17, 3) pixel x, y and depth, and (17,) int64 visibility
    (0 outside the image, 1 occluded, 2 visible; see the module docstring)."""
    kp_px = _to_pixels(p.keypoints3d, p)
    inside = (kp_px[:, 0] >= 0) & (kp_px[:, 0] < size) & (kp_px[:, 1] >= 0) & (kp_px[:, 1] < size)
    kp_hits = scene.cast(kp_px[:, :2])
    vis = inside.astype(np.int64)
    seen = inside & (kp_hits.person == k)
    # Regressed from the surface: the first hit is within its reach.
    near = np.abs(kp_hits.depth - kp_px[:, 2]) < (p.keypoint_reach + 0.02) * p.scale
    vis[seen & (body.kp_joint < 0) & near] = 2
    for i in np.flatnonzero(seen & (body.kp_joint >= 0)):
        # On a joint: the first hit is skinned to this joint or a neighbour in the tree.
        wts = kp_hits.bary[i] @ body.weights[body.faces[kp_hits.face[i]]]
        if body.joint_ok[body.kp_joint[i], int(np.argmax(wts))]:
            vis[i] = 2
    return kp_px, vis


def _keypoint_annotation(
    rng: np.random.Generator, kp_px: np.ndarray, vis: np.ndarray, size: int, noise: NoiseOptions
) -> list[float]:
    """COCO ``keypoints`` (17 x (x, y, v)) with the keypoint noise: jitter (clipped to the image)
    and dropped keypoints; ``vis`` is updated in place (dropped: 0), x = y = 0 where v = 0."""
    kp_xy = kp_px[:, :2].copy()
    if noise.keypoint_jitter_px > 0:
        jitter = rng.normal(scale=noise.keypoint_jitter_px, size=kp_xy.shape)
        kp_xy = np.clip(kp_xy + jitter, 0.0, np.nextafter(size, 0))
    if noise.missing_keypoints > 0:
        drop = rng.random(NUM_KEYPOINTS) < noise.missing_keypoints
        vis[drop] = 0
    kp_xy[vis == 0] = 0.0
    return np.column_stack([kp_xy, vis]).ravel().tolist()


def _annotate_person(
    rng: np.random.Generator,
    scene: Scene,
    body: _Body,
    options: SynthOptions,
    image_id: int,
    k: int,
    p: _Person,
    mask: np.ndarray,
    area: int,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Person ``k`` of image ``image_id``, visible at ``mask`` (``area`` pixels): its
    DensePose-COCO annotation and its ground-truth record (3D truth and the dense points' faces
    and barycentrics)."""
    noise = options.noise
    box = _person_box(mask)
    xy, faces, bary = _dense_points(rng, scene, body, k, area, box, options.dense_points_per_person)
    parts = body.face_part[faces].astype(np.int64)
    uv = _uv_of(body, faces, bary)
    if noise.part_confusion > 0 and len(xy):
        _confuse_parts(rng, scene, body, k, xy, parts, uv, noise.part_confusion)
    dp_x, dp_y = _dp_coordinates(rng, xy, box, noise.dense_jitter_px)
    dp_masks = _dp_masks(scene, body, k, box)
    kp_px, vis = _keypoint_visibility(scene, body, p, k, options.image_size)
    keypoints = _keypoint_annotation(rng, kp_px, vis, options.image_size, noise)

    annotation_id = 100 * image_id + k + 1
    annotation = {
        "id": annotation_id,
        "image_id": image_id,
        "category_id": 1,
        "iscrowd": 0,
        "bbox": list(box),
        "area": float(area),
        "segmentation": _rle(mask),
        "keypoints": keypoints,
        "num_keypoints": int((vis > 0).sum()),
        "dp_x": dp_x.tolist(),
        "dp_y": dp_y.tolist(),
        "dp_I": parts.astype(np.float64).tolist(),
        "dp_U": uv[:, 0].tolist(),
        "dp_V": uv[:, 1].tolist(),
        "dp_masks": dp_masks,
    }
    gt = {
        "sample_id": f"{image_id}_{annotation_id}",
        "image_id": image_id,
        "annotation_id": annotation_id,
        "pose": p.pose.astype(np.float32),
        "scales": p.scales.astype(np.float32),
        "cam_rotation": p.rotation.astype(np.float32),
        "cam_scale": np.float32(p.scale),
        "cam_translation": p.translation.astype(np.float32),
        "joints3d": p.joints.astype(np.float32),
        "keypoints3d": p.keypoints3d.astype(np.float32),
        "bbox": np.array(box),
        "dense_face": faces.astype(np.int32),
        "dense_bary": bary.astype(np.float32),
        "yaw": np.float32(p.yaw),
    }
    return annotation, gt


def _annotate_persons(
    rng: np.random.Generator,
    scene: Scene,
    body: _Body,
    options: SynthOptions,
    image_id: int,
    persons: list[_Person],
    person_map: np.ndarray,
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Annotations and ground-truth records of the persons visible in ``person_map`` (at least
    :data:`MIN_VISIBLE_PIXELS` pixels), in person order."""
    annotations: list[dict[str, Any]] = []
    gts: list[dict[str, Any]] = []
    for k, p in enumerate(persons):
        mask = person_map == k
        area = int(mask.sum())
        if area < MIN_VISIBLE_PIXELS:
            continue
        annotation, gt = _annotate_person(rng, scene, body, options, image_id, k, p, mask, area)
        annotations.append(annotation)
        gts.append(gt)
    return annotations, gts
