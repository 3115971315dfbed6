"""The persons of one image: each drawn from the priors, posed, scaled to 40-90 % of the image
height (35-75 % with several persons, spread horizontally), placed with at most ~5 % of the box
outside the image, and depth-ordered far enough apart that the bodies never interpenetrate."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numba
import numpy as np

from dlearn.data.synth.appearance import _person_colours
from dlearn.data.synth.body import _Body
from dlearn.data.synth.options import SynthOptions
from dlearn.data.synth.priors import sample_camera, sample_pose, sample_scales


@dataclass
class _Person:
    pose: np.ndarray  # (23, 3), float32-exact
    scales: np.ndarray  # (24,)
    rotation: np.ndarray  # (3, 3)
    scale: float
    translation: np.ndarray  # (2,)
    vertices: np.ndarray  # (N, 3) posed, body frame
    joints: np.ndarray  # (24, 3)
    keypoints3d: np.ndarray  # (17, 3)
    keypoint_reach: np.ndarray  # (17,) body units, see _Body.keypoint_reach
    colours: np.ndarray  # (9 * 25, 3) by body.face_colour_key, see _person_colours
    depth_offset: float
    yaw: float
    mode: str


def _f32(x: Any) -> np.ndarray:
    return np.asarray(x, dtype=np.float32).astype(np.float64)


@numba.njit(cache=True, nogil=True)
def _camera_points(points: np.ndarray, rotation: np.ndarray, scale: float, shift: np.ndarray) -> np.ndarray:
    """(3, P) ``scale * (R X) + shift`` of the (P, 3) body points X, coordinate-major (the rows'
    minima and maxima are then contiguous reductions), each dot product summed in axis order."""
    out = np.empty((3, points.shape[0]))
    for i in range(points.shape[0]):
        x, y, z = points[i, 0], points[i, 1], points[i, 2]
        for a in range(3):
            out[a, i] = scale * (x * rotation[a, 0] + y * rotation[a, 1] + z * rotation[a, 2]) + shift[a]
    return out


def _to_pixels(points: np.ndarray, p: _Person) -> np.ndarray:
    """(P, 3) body points -> (P, 3) pixel x, y and scene depth."""
    shift = np.array([p.translation[0], p.translation[1], p.depth_offset])
    return _camera_points(np.ascontiguousarray(points, dtype=np.float64), p.rotation, p.scale, shift).T


def _sample_persons(rng: np.random.Generator, body: _Body, options: SynthOptions) -> list[_Person]:
    size = options.image_size
    count = options.persons_per_image
    # Depth order: random, far enough apart that the bodies never interpenetrate.
    order = rng.permutation(count)
    persons: list[_Person] = []
    for k in range(count):
        pose_aa, mode = sample_pose(rng)
        pose = _f32(pose_aa)
        scales = _f32(sample_scales(rng, options.scale_sigma, body.parents))
        rotation, yaw = sample_camera(rng)
        rotation = _f32(rotation)
        vertices, joints, keypoints3d = body.pose(pose, scales)
        proj = _camera_points(vertices, rotation, 1.0, np.zeros(3))
        lo, hi = proj[:2].min(axis=1), proj[:2].max(axis=1)
        extent = np.maximum(hi - lo, 1e-6)
        if count == 1:
            frac = rng.uniform(0.4, 0.9)
        else:
            frac = rng.uniform(0.35, 0.75)
        scale = frac * size / extent[1]
        scale = min(scale, 0.95 * size / extent[0])
        box = scale * extent
        # Box corner: at most ~5 % of the box outside the image on each side.
        corner = np.array([rng.uniform(-0.05 * box[i], size - 0.95 * box[i]) for i in range(2)])
        if count > 1:  # spread people horizontally over the image
            slot = (k + rng.uniform(0.0, 1.0)) / count
            corner[0] = np.clip(slot * size - 0.5 * box[0], -0.05 * box[0], size - 0.95 * box[0])
        scale = float(_f32(scale))
        translation = _f32(corner - scale * lo)
        persons.append(
            _Person(
                pose=pose,
                scales=scales,
                rotation=rotation,
                scale=scale,
                translation=translation,
                vertices=vertices,
                joints=joints,
                keypoints3d=keypoints3d,
                keypoint_reach=body.keypoint_reach(vertices, keypoints3d),
                colours=_person_colours(rng, body),
                depth_offset=float(order[k]) * 4.0 * size,
                yaw=yaw,
                mode=mode,
            )
        )
    return persons
