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
by a float64 z-buffer rasteriser (:class:`dlearn.data.raster.RasterScene`): pixel centres,
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
"""

from __future__ import annotations

import json
import logging
import math
import multiprocessing
import re
import shutil
import time
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np
from pycocotools import mask as mask_utils

from dlearn.body.io import NUM_JOINTS, SMPL_JOINT_NAMES, BodyModelData, load_body_model
from dlearn.body.keypoints import coco_keypoint_model
from dlearn.body.symmetry import JOINT_FLIP
from dlearn.data.raster import Hits, RasterScene, RayCastScene
from dlearn.data.store import csr_offsets, write_store
from dlearn.densepose.coco import COCO_KEYPOINT_NAMES, DP_GRID, NUM_KEYPOINTS
from dlearn.densepose.uv import (
    NUM_PARTS,
    face_chart_corners,
    load_uv_charts,
    part_colours,
)
from dlearn.outputs import (
    OutputError,
    check_file_output,
    check_folder_output,
    clean_stale_siblings,
    tmp_sibling,
)

log = logging.getLogger(__name__)

__all__ = [
    "COARSE_PART",
    "COCO_SKELETON",
    "NoiseOptions",
    "SPLITS",
    "SynthOptions",
    "sample_camera",
    "sample_pose",
    "sample_scales",
    "synthesize",
]

SPLITS = ("train", "test")
# What synth writes into images/{split}: images named by their 7-digit id.
_OWN_IMAGE = re.compile(r"^\d{7}\.png$")
SPLIT_ID_OFFSET = {"train": 0, "test": 1_000_000}
MAX_PERSONS = 99  # annotation id = 100 * image_id + person + 1
STAGE = "synth"

#: COCO's person skeleton (1-based keypoint indices), as in person_keypoints_*.json.
COCO_SKELETON = [
    [16, 14], [14, 12], [17, 15], [15, 13], [12, 13], [6, 12], [7, 13], [6, 7], [6, 8], [7, 9],
    [8, 10], [9, 11], [2, 3], [1, 2], [1, 3], [2, 4], [3, 5], [4, 6], [5, 7],
]  # fmt: skip

#: DensePose's 14 coarse masks: coarse index (1..14) of each part (1..24); index 0 unused.
COARSE_PART = np.array(
    [0, 1, 1, 2, 3, 4, 5, 6, 7, 6, 7, 8, 9, 8, 9, 10, 11, 10, 11, 12, 13, 12, 13, 14, 14], dtype=np.int64
)
NUM_COARSE = 14

_J = {name: i for i, name in enumerate(SMPL_JOINT_NAMES)}
_DP_SCALE = float(DP_GRID)

# --------------------------------------------------------------------------------------------
# Options


@dataclass(frozen=True)
class NoiseOptions:
    """Annotation noise; all zero = exact annotations.

    Attributes:
        dense_jitter_px: std of Gaussian jitter of the dense points' image positions (pixels).
        keypoint_jitter_px: std of Gaussian jitter of labelled keypoints (pixels).
        part_confusion: probability that a dense point near a part boundary (a neighbouring
            part within 1.5 px) takes that neighbour's part label and UV.
        missing_keypoints: probability that a labelled keypoint is dropped (v = 0, x = y = 0).
    """

    dense_jitter_px: float = 0.0
    keypoint_jitter_px: float = 0.0
    part_confusion: float = 0.0
    missing_keypoints: float = 0.0

    @property
    def exact(self) -> bool:
        return all(getattr(self, f.name) == 0 for f in fields(self))


@dataclass(frozen=True)
class SynthOptions:
    """What :func:`synthesize` generates.

    Attributes:
        num_train: images in the train split (persons = images x persons_per_image, less the
            rare person hidden by others).
        num_test: images in the test split.
        image_size: side of the square images (pixels).
        seed: base seed; image ``i`` of split ``k`` uses ``default_rng([seed, k, i])``.
        persons_per_image: people per image; several are depth-ordered and occlude each other.
        dense_points_per_person: dense points sampled on a person's visible surface.
        scale_sigma: std of the per-segment log scales (after smoothing over the tree).
        noise: annotation noise (:class:`NoiseOptions`).
        workers: processes (1 = in this process).
        write_iuv: also write each image's exact IUV map as DensePose's inference output
            (``iuv/<image id>_IUV.png`` and ``_INDS.png``, person k of the image as instance k),
            the input of ``dlearn densepose-predictions``.
    """

    num_train: int = 64
    num_test: int = 16
    image_size: int = 128
    seed: int = 0
    persons_per_image: int = 1
    dense_points_per_person: int = 100
    scale_sigma: float = 0.08
    noise: NoiseOptions = field(default_factory=NoiseOptions)
    workers: int = 2
    write_iuv: bool = False

    def validate(self) -> None:
        if self.num_train < 0 or self.num_test < 0:
            raise ValueError("num_train and num_test must be >= 0")
        if self.image_size < 32:
            raise ValueError(f"image_size must be >= 32 pixels, got {self.image_size}")
        if not 1 <= self.persons_per_image <= MAX_PERSONS:
            raise ValueError(f"persons_per_image must be in 1..{MAX_PERSONS}, got {self.persons_per_image}")
        if self.dense_points_per_person < 1:
            raise ValueError("dense_points_per_person must be >= 1")
        if not 0 <= self.scale_sigma <= 0.5:
            raise ValueError(f"scale_sigma must be in [0, 0.5], got {self.scale_sigma}")
        if self.workers < 1:
            raise ValueError("workers must be >= 1")
        n = self.noise
        if n.dense_jitter_px < 0 or n.keypoint_jitter_px < 0:
            raise ValueError("jitter must be >= 0")
        for name in ("part_confusion", "missing_keypoints"):
            if not 0 <= getattr(n, name) <= 1:
                raise ValueError(f"noise.{name} must be a probability in [0, 1]")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> "SynthOptions":
        """Options from a (config) dict; ``noise`` may be a dict. Unknown keys are an error."""
        values = dict(values)
        known = {f.name for f in fields(cls)}
        unknown = set(values) - known
        if unknown:
            raise ValueError(f"unknown synth option(s): {', '.join(sorted(unknown))}")
        noise = values.pop("noise", None)
        if isinstance(noise, dict):
            noise_known = {f.name for f in fields(NoiseOptions)}
            bad = set(noise) - noise_known
            if bad:
                raise ValueError(f"unknown synth noise option(s): {', '.join(sorted(bad))}")
            noise = NoiseOptions(**noise)
        return cls(**values, **({} if noise is None else {"noise": noise}))


# --------------------------------------------------------------------------------------------
# Pose, scale and camera priors

#: Per-joint Euler limits (radians, rotation about x, y, z in the joint's local frame; the
#: rotation is Rz Ry Rx) for the midline and the LEFT side; the right side is the mirror image
#: (x kept, y and z negated). Left arm along +x, legs along -y in the rest pose:
#: hip x < 0 swings the thigh forward, knee x > 0 bends the shin backward only, shoulder z > 0
#: raises the arm, shoulder y < 0 swings it forward, elbow y < 0 bends the forearm forward only.
_LIMITS: dict[str, tuple[tuple[float, float], tuple[float, float], tuple[float, float]]] = {
    "left_hip": ((-2.0, 0.6), (-0.6, 0.6), (-0.35, 0.9)),
    "left_knee": ((0.0, 2.4), (-0.1, 0.1), (-0.1, 0.1)),
    "left_ankle": ((-0.6, 0.6), (-0.3, 0.3), (-0.3, 0.3)),
    "left_foot": ((-0.3, 0.3), (-0.1, 0.1), (-0.1, 0.1)),
    "spine1": ((-0.3, 0.6), (-0.4, 0.4), (-0.3, 0.3)),
    "spine2": ((-0.2, 0.4), (-0.3, 0.3), (-0.2, 0.2)),
    "spine3": ((-0.2, 0.4), (-0.3, 0.3), (-0.2, 0.2)),
    "neck": ((-0.4, 0.5), (-0.7, 0.7), (-0.35, 0.35)),
    "head": ((-0.3, 0.4), (-0.4, 0.4), (-0.3, 0.3)),
    "left_collar": ((-0.2, 0.2), (-0.3, 0.3), (-0.2, 0.35)),
    "left_shoulder": ((-1.0, 1.0), (-1.5, 0.7), (-1.45, 1.3)),
    "left_elbow": ((-0.8, 0.8), (-2.5, 0.0), (-0.1, 0.1)),
    "left_wrist": ((-0.8, 0.8), (-0.4, 0.4), (-0.8, 0.8)),
    "left_hand": ((-0.2, 0.2), (-0.2, 0.2), (-0.3, 0.3)),
}

_MIDLINE = ("spine1", "spine2", "spine3", "neck", "head")
_SIDED = ("hip", "knee", "ankle", "foot", "collar", "shoulder", "elbow", "wrist", "hand")
POSE_MODES = ("standing", "walking", "sitting", "arms_up", "random")
_MODE_PROBS = np.array([0.3, 0.25, 0.15, 0.15, 0.15])


def _euler_to_rotvec(euler: np.ndarray) -> np.ndarray:
    """(..., 3) Euler angles (x, y, z), R = Rz Ry Rx -> (..., 3) axis-angle."""
    from scipy.spatial.transform import Rotation

    return Rotation.from_euler("xyz", euler.reshape(-1, 3)).as_rotvec().reshape(euler.shape)


def sample_pose(rng: np.random.Generator) -> tuple[np.ndarray, str]:
    """A random plausible pose: (23, 3) axis-angle and the mode it was drawn from.

    A mode (standing, walking, sitting-ish, arms up, random within the limits) sets the main
    angles; all angles then get small Gaussian noise and are clipped to the joint limits.
    """
    mode = POSE_MODES[int(rng.choice(len(POSE_MODES), p=_MODE_PROBS))]
    # Semantic angles: for the sided joints both entries are in the left side's convention.
    ang: dict[str, np.ndarray] = {name: np.zeros(3) for name in _MIDLINE}
    for side in ("left", "right"):
        for j in _SIDED:
            ang[f"{side}_{j}"] = np.zeros(3)

    def both(joint: str, axis: int, lo: float, hi: float, same: bool = False) -> None:
        a = rng.uniform(lo, hi)
        ang[f"left_{joint}"][axis] = a
        ang[f"right_{joint}"][axis] = a if same else rng.uniform(lo, hi)

    if mode == "standing":
        both("hip", 0, -0.25, 0.15)
        both("hip", 2, -0.05, 0.25)
        both("knee", 0, 0.0, 0.35)
        both("shoulder", 2, -1.4, -0.7)
        both("shoulder", 1, -0.5, 0.4)
        both("elbow", 1, -1.0, 0.0)
    elif mode == "walking":
        a = rng.uniform(-1.0, 1.0)
        ang["left_hip"][0], ang["right_hip"][0] = -0.55 * a, 0.55 * a
        both("knee", 0, 0.05, 0.9)
        both("shoulder", 2, -1.4, -1.0)
        ang["left_shoulder"][1], ang["right_shoulder"][1] = 0.6 * a, -0.6 * a
        both("elbow", 1, -1.0, -0.1)
    elif mode == "sitting":
        both("hip", 0, -1.8, -1.1)
        both("hip", 2, -0.1, 0.4)
        both("knee", 0, 1.1, 2.0)
        ang["spine1"][0] = rng.uniform(0.0, 0.35)
        both("shoulder", 2, -1.4, -0.8)
        both("shoulder", 1, -1.0, 0.1)
        both("elbow", 1, -1.8, -0.2)
    elif mode == "arms_up":
        both("hip", 0, -0.3, 0.15)
        both("hip", 2, -0.05, 0.35)
        both("knee", 0, 0.0, 0.4)
        both("shoulder", 2, 0.2, 1.3)
        both("shoulder", 1, -0.9, 0.3)
        both("elbow", 1, -1.6, 0.0)
    else:  # random: uniform within the limits (trunk and head at half range)
        for name, value in ang.items():
            lim = np.array(_LIMITS[name if name in _LIMITS else "left_" + name.split("_", 1)[1]])
            lo, hi = lim[:, 0], lim[:, 1]
            if name in _MIDLINE:
                mid = 0.5 * (lo + hi)
                lo, hi = mid + 0.5 * (lo - mid), mid + 0.5 * (hi - mid)
            value[:] = rng.uniform(lo, hi)

    pose_euler = np.zeros((NUM_JOINTS - 1, 3))
    for name, value in ang.items():
        key = name if name in _LIMITS else "left_" + name.split("_", 1)[1]
        lim = np.array(_LIMITS[key])
        noisy = np.clip(value + rng.normal(scale=0.08, size=3), lim[:, 0], lim[:, 1])
        if name.startswith("right_"):
            noisy = noisy * np.array([1.0, -1.0, -1.0])  # mirror across x = 0
        pose_euler[_J[name] - 1] = noisy
    return _euler_to_rotvec(pose_euler), mode


def _tree_neighbours(parents: np.ndarray) -> list[list[int]]:
    nbrs: list[list[int]] = [[] for _ in parents]
    for j in range(1, len(parents)):
        nbrs[j].append(int(parents[j]))
        nbrs[int(parents[j])].append(j)
    return nbrs


_SMOOTHED_STD = 0.45  # std of the symmetrised, smoothed unit normal log scales (measured)


def sample_scales(rng: np.random.Generator, sigma: float, parents: np.ndarray) -> np.ndarray:
    """(24,) segment scales: log-normal per segment (std ``sigma``), mostly left/right symmetric,
    smoothed over the tree (neighbouring segments agree), times a global log-normal factor (std
    ``sigma / 2``). With ``sigma`` = 0.08 the segments spread about +-15 % (2 sigma)."""
    if sigma == 0:
        return np.ones(NUM_JOINTS)
    raw = rng.normal(size=NUM_JOINTS)
    raw = 0.7 * 0.5 * (raw + raw[JOINT_FLIP]) + 0.3 * raw  # mostly left/right symmetric
    nbrs = _tree_neighbours(parents)
    for _ in range(2):
        raw = np.array([0.5 * raw[j] + 0.5 * np.mean(raw[nbrs[j]]) for j in range(NUM_JOINTS)])
    raw = raw * (sigma / _SMOOTHED_STD)  # per-segment log std = sigma after smoothing
    global_log = rng.normal(scale=0.5 * sigma)
    return np.exp(np.clip(raw + global_log, -3 * sigma - 0.05, 3 * sigma + 0.05))


def _rot_x(a: float) -> np.ndarray:
    c, s = math.cos(a), math.sin(a)
    return np.array([[1, 0, 0], [0, c, -s], [0, s, c]])


def _rot_y(a: float) -> np.ndarray:
    c, s = math.cos(a), math.sin(a)
    return np.array([[c, 0, s], [0, 1, 0], [-s, 0, c]])


def _rot_z(a: float) -> np.ndarray:
    c, s = math.cos(a), math.sin(a)
    return np.array([[c, -s, 0], [s, c, 0], [0, 0, 1]])


#: Camera rotation of an upright person facing the camera (y down, z into the scene).
UPRIGHT_FACING = np.diag([1.0, -1.0, -1.0])


def sample_camera(rng: np.random.Generator, max_tilt: float = math.radians(15)) -> tuple[np.ndarray, float]:
    """A camera rotation: full-range yaw about the body's vertical axis, then tilt and roll
    (Gaussian, clipped to +-``max_tilt``) about the camera's x and z axes. Returns (R, yaw)."""
    yaw = float(rng.uniform(-math.pi, math.pi))
    tilt = float(np.clip(rng.normal(scale=0.5 * max_tilt), -max_tilt, max_tilt))
    roll = float(np.clip(rng.normal(scale=0.4 * max_tilt), -max_tilt, max_tilt))
    return _rot_x(tilt) @ _rot_z(roll) @ UPRIGHT_FACING @ _rot_y(yaw), yaw


# --------------------------------------------------------------------------------------------
# The body, prepared once per process


class _Body:
    """Body model, charts and per-face attributes used to render (built once per process)."""

    def __init__(self, model_path: str | Path, uv_path: str | Path, keypoint_regressor: str | Path | None = None):
        import torch

        from dlearn.body.model import BodyModel

        self.data: BodyModelData = load_body_model(model_path)
        self.charts = load_uv_charts(uv_path, num_vertices=self.data.num_vertices)
        self.faces = self.data.faces
        self.face_chart, self.face_part = face_chart_corners(self.charts, self.faces)
        self.model = BodyModel(self.data, dtype=torch.float64)
        self.keypoints = coco_keypoint_model(self.model, self.data, keypoint_regressor)
        definition = self.keypoints.definition
        self.kp_joint = definition.joint  # (17,) -1: regressed from the surface
        self.kp_rows = definition.vertex_weights  # (17, N)
        self.kp_support = np.flatnonzero(np.abs(self.kp_rows).sum(axis=0))
        self.parents = self.data.parents
        nbrs = _tree_neighbours(self.parents)
        self.joint_ok = np.zeros((NUM_JOINTS, NUM_JOINTS), dtype=bool)  # [keypoint joint, skinned joint]
        for j in range(NUM_JOINTS):
            self.joint_ok[j, j] = True
            self.joint_ok[j, nbrs[j]] = True
        self.weights = self.data.weights
        self.face_region = self._face_regions()

    def _face_regions(self) -> np.ndarray:
        """(F,) colour region of each face: 0 skin, 1 shirt, 2 sleeve, 3 trousers, 4 lower leg,
        5 shoes, 6 hair, 7 eyes, 8 hands."""
        rest = self.data.v_template
        centroid = rest[self.faces].mean(axis=1)
        part = self.face_part
        region = np.zeros(len(part), dtype=np.int64)
        region[np.isin(part, [1, 2, 15, 16, 17, 18])] = 1
        region[np.isin(part, [19, 20, 21, 22])] = 2
        region[np.isin(part, [7, 8, 9, 10])] = 3
        region[np.isin(part, [11, 12, 13, 14])] = 4
        region[np.isin(part, [5, 6])] = 5
        region[np.isin(part, [3, 4])] = 8
        head = np.isin(part, [23, 24])
        rel = centroid - self.data.rest_joints[_J["head"]]
        hair = head & (rel[:, 1] > 0.0) & ((rel[:, 2] < -0.01) | (rel[:, 1] > 0.13))
        region[hair] = 6
        eyes = self.kp_rows[1:3] @ rest  # (2, 3) rest eye keypoints
        near_eye = np.min(np.linalg.norm(centroid[:, None, :] - eyes[None], axis=2), axis=1) < 0.012
        region[head & near_eye] = 7
        return region

    def pose(self, pose: np.ndarray, scales: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Posed (N, 3) vertices, (24, 3) joints and (17, 3) COCO keypoints in float64."""
        import torch

        pose_t = torch.as_tensor(pose[None])
        with torch.no_grad():
            out = self.model(pose_t, torch.as_tensor(scales[None]))
            keypoints = self.keypoints(out, pose_t)
        return out.vertices[0].numpy(), out.joints[0].numpy(), keypoints[0].numpy()

    def keypoint_reach(self, vertices: np.ndarray, keypoints: np.ndarray) -> np.ndarray:
        """(17,) mean distance (body units) of each keypoint's regressor vertices from it, weighted
        by |weight|: how far below the surface a regressed point may lie and still be seen."""
        rows = np.abs(self.kp_rows[:, self.kp_support])  # (17, S)
        dist = np.linalg.norm(vertices[self.kp_support][None] - keypoints[:, None], axis=-1)
        return (rows * dist).sum(axis=1) / rows.sum(axis=1)


_WORKER_BODY: _Body | None = None


def _init_worker(model_path: str, uv_path: str, keypoint_regressor: str | None) -> None:
    global _WORKER_BODY
    import torch

    torch.set_num_threads(1)
    _WORKER_BODY = _Body(model_path, uv_path, keypoint_regressor)


# --------------------------------------------------------------------------------------------
# Appearance

_SKIN_TONES = np.array(
    [[0.96, 0.80, 0.69], [0.90, 0.72, 0.58], [0.78, 0.57, 0.44], [0.60, 0.42, 0.30], [0.42, 0.28, 0.20]]
)


def _random_colour(rng: np.random.Generator) -> np.ndarray:
    import colorsys

    h, s, v = rng.uniform(0, 1), rng.uniform(0.2, 0.9), rng.uniform(0.2, 0.95)
    return np.array(colorsys.hsv_to_rgb(h, s, v))


def _person_face_colours(rng: np.random.Generator, body: _Body) -> np.ndarray:
    """(F, 3) clothing-like colour of every face of one person."""
    skin = np.clip(_SKIN_TONES[rng.integers(len(_SKIN_TONES))] * rng.uniform(0.9, 1.1), 0, 1)
    shirt, trousers = _random_colour(rng), _random_colour(rng)
    shoes = _random_colour(rng) * rng.uniform(0.3, 0.8)
    hair = np.array([0.1, 0.07, 0.04]) + rng.uniform(0, 0.5) * np.array([0.9, 0.6, 0.3]) * rng.uniform(0.2, 1)
    long_sleeves, long_trousers = rng.random() < 0.5, rng.random() < 0.75
    region_colour = np.array(
        [
            skin,
            shirt,
            shirt if long_sleeves else skin,
            trousers,
            trousers if long_trousers else skin,
            shoes,
            hair,
            np.array([0.08, 0.08, 0.1]),
            skin,
        ]
    )
    part_tint = rng.uniform(0.88, 1.12, size=(NUM_PARTS + 1, 1))  # parts differ slightly (seams)
    return np.clip(region_colour[body.face_region] * part_tint[body.face_part], 0, 1)


def _background(rng: np.random.Generator, size: int) -> np.ndarray:
    """(size, size, 3) random textured background in [0, 1]: gradient, noise, stripes, blobs."""
    from scipy.ndimage import zoom

    yy, xx = np.mgrid[0:size, 0:size] / size
    angle = rng.uniform(0, 2 * math.pi)
    ramp = (np.cos(angle) * xx + np.sin(angle) * yy)[..., None]
    ramp = (ramp - ramp.min()) / max(np.ptp(ramp), 1e-9)
    c0, c1 = _random_colour(rng), _random_colour(rng)
    img = c0 * (1 - ramp) + c1 * ramp
    cells = int(rng.integers(3, 10))
    low = rng.normal(scale=rng.uniform(0.05, 0.25), size=(cells, cells, 3))
    img = img + zoom(low, (size / cells, size / cells, 1), order=1)[:size, :size]
    if rng.random() < 0.5:
        theta = rng.uniform(0, math.pi)
        freq = rng.uniform(3, 20)
        phase = np.cos(theta) * xx + np.sin(theta) * yy
        stripes = (np.sin(2 * math.pi * freq * phase) > rng.uniform(-0.5, 0.5))[..., None]
        img = np.where(stripes, img * rng.uniform(0.5, 0.95), img)
    for _ in range(int(rng.integers(2, 9))):
        cx, cy = rng.uniform(0, 1, size=2)
        rx, ry = rng.uniform(0.03, 0.3, size=2)
        rot = rng.uniform(0, math.pi)
        dx, dy = xx - cx, yy - cy
        u = (np.cos(rot) * dx + np.sin(rot) * dy) / rx
        v = (-np.sin(rot) * dx + np.cos(rot) * dy) / ry
        blob = (u * u + v * v < 1)[..., None]
        img = np.where(blob, 0.3 * img + 0.7 * _random_colour(rng), img)
    img = img + rng.normal(scale=0.02, size=img.shape)
    return np.clip(img, 0, 1)


# --------------------------------------------------------------------------------------------
# One image


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
    colours: np.ndarray  # (F, 3)
    depth_offset: float
    yaw: float
    mode: str


def _f32(x: Any) -> np.ndarray:
    return np.asarray(x, dtype=np.float32).astype(np.float64)


def _to_pixels(points: np.ndarray, p: _Person) -> np.ndarray:
    """(P, 3) body points -> (P, 3) pixel x, y and scene depth."""
    cam = p.scale * (points @ p.rotation.T)
    return np.column_stack([cam[:, :2] + p.translation, cam[:, 2] + p.depth_offset])


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
        proj = vertices @ rotation.T
        lo, hi = proj[:, :2].min(axis=0), proj[:, :2].max(axis=0)
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
                colours=_person_face_colours(rng, body),
                depth_offset=float(order[k]) * 4.0 * size,
                yaw=yaw,
                mode=mode,
            )
        )
    return persons


def _rle(mask: np.ndarray) -> dict[str, Any]:
    rle = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
    return {"size": [int(rle["size"][0]), int(rle["size"][1])], "counts": rle["counts"].decode("ascii")}


def _shade(
    body: _Body,
    persons: list[_Person],
    hits: Hits,
    normals: np.ndarray,
    light: np.ndarray,
    ambient: float,
) -> np.ndarray:
    """(M, 3) colour of the hits (undefined for misses)."""
    colour = np.zeros((len(hits.person), 3))
    hit = hits.person >= 0
    if not hit.any():
        return colour
    person, face, lam = hits.person[hit], hits.face[hit], hits.bary[hit]
    n_vertices = len(persons[0].vertices)
    corners = body.faces[face] + (person * n_vertices)[:, None]
    normal = np.einsum("hk,hkd->hd", lam, normals[corners])
    normal /= np.maximum(np.linalg.norm(normal, axis=1, keepdims=True), 1e-12)
    lambert = np.abs(normal @ light)
    base = np.stack([p.colours for p in persons])[person, face]  # (K, F, 3) -> (H, 3)
    colour[hit] = base * (ambient + (1 - ambient) * lambert)[:, None]
    return colour


def _vertex_normals(vertices: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """(N, 3) unit vertex normals: the sum of the area-weighted normals of the faces around."""
    tri = vertices[faces]
    fn = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
    # One bincount per coordinate over the corners (first corners of all faces, then second,
    # third) adds in the order np.add.at per corner would, several times faster.
    corner = faces.T.ravel()
    vn = np.column_stack([np.bincount(corner, np.tile(fn[:, d], 3), len(vertices)) for d in range(3)])
    return vn / np.maximum(np.linalg.norm(vn, axis=1, keepdims=True), 1e-12)


def _uv_of(body: _Body, face: np.ndarray, lam: np.ndarray) -> np.ndarray:
    """(H, 2) chart (U, V) of hits on body faces ``face`` at barycentric ``lam`` (0 if uncharted)."""
    chart = body.face_chart[face]
    charted = (chart >= 0).all(axis=1, keepdims=True)
    chart = np.maximum(chart, 0)
    u = np.einsum("hk,hk->h", lam, body.charts.u[chart])
    v = np.einsum("hk,hk->h", lam, body.charts.v[chart])
    return np.where(charted, np.clip(np.column_stack([u, v]), 0.0, 1.0), 0.0)


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
    from PIL import Image

    started = time.perf_counter()
    rng = np.random.default_rng([options.seed, split_index, image_index])
    split = SPLITS[split_index]
    size = options.image_size
    image_id = SPLIT_ID_OFFSET[split] + image_index + 1
    file_name = f"images/{split}/{image_id:07d}.png"
    noise = options.noise

    persons = _sample_persons(rng, body, options)
    pixel_vertices = [_to_pixels(p.vertices, p) for p in persons]
    scene = scene_type(pixel_vertices, body.faces)
    normals = _vertex_normals(scene.vertices, scene.faces)

    # Pixel centres (row-major): person mask, IUV image.
    hit, centre_hits = scene.grid(0.5, 0.5, 1.0, 1.0, size, size)
    person_map = np.full(size * size, -1, dtype=np.int64)
    person_map[hit] = centre_hits.person
    person_map = person_map.reshape(size, size)
    iuv = np.zeros((size, size, 3), dtype=np.float32)
    if len(hit):
        flat = iuv.reshape(-1, 3)
        flat[hit, 0] = body.face_part[centre_hits.face]
        flat[hit, 1:] = _uv_of(body, centre_hits.face, centre_hits.bary)

    # Colour: 2 x 2 supersampled Lambert shading over the textured background.
    background = _background(rng, size)
    light = np.array([rng.uniform(-0.6, 0.6), rng.uniform(-0.8, 0.3), -1.0])
    light /= np.linalg.norm(light)
    ambient = float(rng.uniform(0.3, 0.5))
    # The sub-pixel samples (pixel + 0.25 / 0.75) of all pixels form one lattice twice as fine.
    hit, sub = scene.grid(0.25, 0.25, 0.5, 0.5, 2 * size, 2 * size)
    samples = np.repeat(np.repeat(background, 2, axis=0), 2, axis=1).reshape(-1, 3)
    samples[hit] = _shade(body, persons, sub, normals, light, ambient)
    samples = samples.reshape(size, 2, size, 2, 3)
    rgb = np.zeros((size * size, 3))
    for sx, sy in ((0, 0), (1, 0), (0, 1), (1, 1)):  # (x, y) offsets 0.25 / 0.75, summed in order
        rgb += samples[:, sy, :, sx].reshape(-1, 3)
    rgb = rgb / 4.0 * rng.uniform(0.8, 1.15) + rng.normal(scale=0.01, size=rgb.shape)
    image = (np.clip(rgb, 0, 1).reshape(size, size, 3) * 255 + 0.5).astype(np.uint8)
    path = out_dir / file_name
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(image).save(path, format="PNG")
    if options.write_iuv:
        from dlearn.densepose.predictions import write_iuv

        # What DensePose would predict if it were exact: the rendered parts, charts and persons.
        write_iuv(out_dir / "iuv" / f"{image_id:07d}", iuv[..., 0].astype(np.int64), iuv[..., 1:], person_map)

    annotations: list[dict[str, Any]] = []
    gts: list[dict[str, Any]] = []
    for k, p in enumerate(persons):
        mask = person_map == k
        if mask.sum() < 20:
            continue
        rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
        x0, y0 = float(cols[0]), float(rows[0])
        w, h = float(cols[-1] + 1 - cols[0]), float(rows[-1] + 1 - rows[0])

        # Dense points: uniform on the visible person inside the box, exact hits only.
        want = options.dense_points_per_person
        fill = max(mask.sum() / (w * h), 0.05)
        xy_list, face_list, bary_list = [], [], []
        got = 0
        for _ in range(8):
            m = int(math.ceil((want - got) / fill * 1.3)) + 16
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
        xy = np.concatenate(xy_list)
        faces = np.concatenate(face_list)
        bary = np.concatenate(bary_list)
        parts = body.face_part[faces].astype(np.int64)
        uv = _uv_of(body, faces, bary)

        if noise.part_confusion > 0 and len(xy):
            angles = np.arange(8) * (2 * math.pi / 8)
            ring = 1.5 * np.column_stack([np.cos(angles), np.sin(angles)])
            probes = scene.cast((xy[:, None, :] + ring[None]).reshape(-1, 2))
            pp = probes.person.reshape(-1, 8)
            pf = probes.face.reshape(-1, 8)
            probe_part = np.where(pp == k, body.face_part[np.maximum(pf, 0)], 0)
            other = (probe_part > 0) & (probe_part != parts[:, None])
            draw = rng.random(len(xy))
            pick = rng.random((len(xy), 8))
            for i in np.flatnonzero(other.any(axis=1) & (draw < noise.part_confusion)):
                choice = int(np.argmax(np.where(other[i], pick[i], -1.0)))
                flat = i * 8 + choice
                parts[i] = probe_part[i, choice]
                uv[i] = _uv_of(body, probes.face[flat : flat + 1], probes.bary[flat : flat + 1])[0]
        ann_xy = xy
        if noise.dense_jitter_px > 0 and len(xy):
            ann_xy = xy + rng.normal(scale=noise.dense_jitter_px, size=xy.shape)
            ann_xy = np.clip(ann_xy, [x0, y0], [x0 + w, y0 + h])
        dp_x = np.clip((ann_xy[:, 0] - x0) * _DP_SCALE / w, 0.0, _DP_SCALE)
        dp_y = np.clip((ann_xy[:, 1] - y0) * _DP_SCALE / h, 0.0, _DP_SCALE)

        # dp_masks: coarse parts at the centres of a 256 x 256 grid over the box.
        step_x, step_y = w / DP_GRID, h / DP_GRID
        hit, grid_hits = scene.grid(
            x0 + 0.5 * step_x, y0 + 0.5 * step_y, step_x, step_y, DP_GRID, DP_GRID, need_bary=False
        )
        own = grid_hits.person == k
        coarse = np.zeros(DP_GRID * DP_GRID, dtype=np.int64)
        coarse[hit[own]] = COARSE_PART[body.face_part[grid_hits.face[own]]]
        coarse = coarse.reshape(DP_GRID, DP_GRID)
        dp_masks: list[Any] = []
        for c in range(1, NUM_COARSE + 1):
            cm = coarse == c
            dp_masks.append(_rle(cm) if cm.any() else [])

        # Keypoints: projection, visibility by the depth test / skinning test.
        kp_px = _to_pixels(p.keypoints3d, p)
        inside = (kp_px[:, 0] >= 0) & (kp_px[:, 0] < size) & (kp_px[:, 1] >= 0) & (kp_px[:, 1] < size)
        kp_hits = scene.cast(kp_px[:, :2])
        vis = np.zeros(NUM_KEYPOINTS, dtype=np.int64)
        for i in range(NUM_KEYPOINTS):
            if not inside[i]:
                continue
            vis[i] = 1
            if kp_hits.person[i] != k:
                continue
            joint = int(body.kp_joint[i])
            if joint < 0:  # regressed from the surface: the first hit is within its reach
                if abs(kp_hits.depth[i] - kp_px[i, 2]) < (p.keypoint_reach[i] + 0.02) * p.scale:
                    vis[i] = 2
            else:  # joint: the first hit is skinned to this joint or a neighbour in the tree
                wts = kp_hits.bary[i] @ body.weights[body.faces[kp_hits.face[i]]]
                if body.joint_ok[joint, int(np.argmax(wts))]:
                    vis[i] = 2
        kp_xy = kp_px[:, :2].copy()
        if noise.keypoint_jitter_px > 0:
            jitter = rng.normal(scale=noise.keypoint_jitter_px, size=kp_xy.shape)
            kp_xy = np.clip(kp_xy + jitter, 0.0, np.nextafter(size, 0))
        if noise.missing_keypoints > 0:
            drop = rng.random(NUM_KEYPOINTS) < noise.missing_keypoints
            vis[drop] = 0
        kp_xy[vis == 0] = 0.0
        keypoints: list[float] = []
        for i in range(NUM_KEYPOINTS):
            keypoints += [float(kp_xy[i, 0]), float(kp_xy[i, 1]), float(vis[i])]

        annotation_id = 100 * image_id + k + 1
        annotations.append(
            {
                "id": annotation_id,
                "image_id": image_id,
                "category_id": 1,
                "iscrowd": 0,
                "bbox": [x0, y0, w, h],
                "area": float(mask.sum()),
                "segmentation": _rle(mask),
                "keypoints": keypoints,
                "num_keypoints": int((vis > 0).sum()),
                "dp_x": [float(v) for v in dp_x],
                "dp_y": [float(v) for v in dp_y],
                "dp_I": [float(v) for v in parts],
                "dp_U": [float(v) for v in uv[:, 0]],
                "dp_V": [float(v) for v in uv[:, 1]],
                "dp_masks": dp_masks,
            }
        )
        gts.append(
            {
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
                "bbox": np.array([x0, y0, w, h]),
                "dense_face": faces.astype(np.int32),
                "dense_bary": bary.astype(np.float32),
                "yaw": np.float32(p.yaw),
            }
        )
    record: dict[str, Any] = {
        "image": {"id": image_id, "file_name": file_name, "width": size, "height": size},
        "annotations": annotations,
        "gt": gts,
        "seconds": time.perf_counter() - started,
    }
    if keep_preview:
        record["preview"] = {
            "image": image,
            "iuv": iuv,
            "keypoints": [np.asarray(a["keypoints"]).reshape(-1, 3) for a in annotations],
            "yaw": [float(p.yaw) for p in persons],
            "mode": [p.mode for p in persons],
            "back": [bool((p.rotation @ np.array([0.0, 0.0, 1.0]))[2] > 0) for p in persons],
        }
    return record


_PREVIEW_IMAGES = {"train": 24, "test": 4}


def _render_chunk(task: tuple[dict[str, Any], str, list[tuple[int, int]]]) -> list[dict[str, Any]]:
    options_dict, out_dir, items = task
    options = SynthOptions.from_dict(options_dict)
    assert _WORKER_BODY is not None, "worker not initialised"
    return [
        _render_image(_WORKER_BODY, options, s, i, Path(out_dir), i < _PREVIEW_IMAGES[SPLITS[s]])
        for s, i in items
    ]


# --------------------------------------------------------------------------------------------
# Writing


def _coco_categories() -> list[dict[str, Any]]:
    return [
        {
            "id": 1,
            "name": "person",
            "supercategory": "person",
            "keypoints": list(COCO_KEYPOINT_NAMES),
            "skeleton": COCO_SKELETON,
        }
    ]


def _write_json(path: Path, obj: Any) -> None:
    check_file_output(path)
    clean_stale_siblings(path)
    tmp = tmp_sibling(path)
    tmp.write_text(json.dumps(obj, separators=(",", ":")))
    tmp.replace(path)


def _write_gt(path: Path, gts: list[dict[str, Any]], options: SynthOptions, split: str) -> None:
    n = len(gts)

    def stack(key: str, shape: tuple[int, ...], dtype: Any) -> np.ndarray:
        if n == 0:
            return np.zeros((0, *shape), dtype=dtype)
        return np.stack([np.asarray(g[key]) for g in gts]).astype(dtype)

    counts = [len(g["dense_face"]) for g in gts]
    arrays = {
        "image_id": stack("image_id", (), np.int64),
        "annotation_id": stack("annotation_id", (), np.int64),
        "pose": stack("pose", (NUM_JOINTS - 1, 3), np.float32),
        "scales": stack("scales", (NUM_JOINTS,), np.float32),
        "cam_rotation": stack("cam_rotation", (3, 3), np.float32),
        "cam_scale": stack("cam_scale", (), np.float32),
        "cam_translation": stack("cam_translation", (2,), np.float32),
        "joints3d": stack("joints3d", (NUM_JOINTS, 3), np.float32),
        "keypoints3d": stack("keypoints3d", (NUM_KEYPOINTS, 3), np.float32),
        "bbox": stack("bbox", (4,), np.float64),
        "yaw": stack("yaw", (), np.float32),
        "dense_offsets": csr_offsets(counts),
        "dense_face": np.concatenate([g["dense_face"] for g in gts]) if n else np.zeros(0, np.int32),
        "dense_bary": np.concatenate([g["dense_bary"] for g in gts]) if n else np.zeros((0, 3), np.float32),
    }
    attrs = {
        "split": split,
        "body_frame": "metres; y up, person faces +z, person's left = +x (SMPL)",
        "camera": "x_px = cam_scale * (cam_rotation @ X)[:2] + cam_translation; image x right, y down; "
        "depth = cam_scale * (cam_rotation @ X)[2], smaller = closer; upright facing the camera: "
        "cam_rotation = diag(1, -1, -1)",
        "units": {
            "pose": "axis-angle, radians",
            "joints3d": "m",
            "keypoints3d": "m",
            "cam_scale": "px per m",
            "cam_translation": "px",
            "bbox": "px (x0, y0, w, h)",
            "yaw": "radians, camera yaw about the body's vertical axis (0 = facing the camera)",
        },
        "dense": "CSR over samples (dense_offsets); surface point = sum_k dense_bary[:, k] * "
        "vertices[faces[dense_face, k]], in the JSON's dp point order",
        "keypoint_names": list(COCO_KEYPOINT_NAMES),
    }
    write_store(
        path,
        arrays,
        stage=STAGE,
        sample_id=[g["sample_id"] for g in gts],
        options=options.to_dict(),
        attrs=attrs,
    )




def write_contact_sheet(previews: list[dict[str, Any]], path: Path, num: int = 8) -> Path:
    """Image, IUV overlay (part colours, U contours) and keypoints with skeleton for ``num``
    previews, back views included when there are any."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    usable = [i for i, p in enumerate(previews) if p["keypoints"]]
    back = [i for i in usable if any(previews[i]["back"])]
    front = [i for i in usable if not any(previews[i]["back"])]
    picked = back[: num // 2] + front[: num - min(len(back), num // 2)]
    picked = (picked + [i for i in usable if i not in picked])[:num]
    chosen = [previews[i] for i in sorted(picked)]
    cols = 2
    rows = max(1, math.ceil(len(chosen) / cols))
    fig, axes = plt.subplots(rows, 3 * cols, figsize=(3 * cols * 2.2, rows * 2.4), dpi=100, squeeze=False)
    colours = part_colours()
    for ax in axes.ravel():
        ax.axis("off")
    for n, prev in enumerate(chosen):
        r, c = divmod(n, cols)
        img = prev["image"]
        iuv = prev["iuv"]
        ax_img, ax_iuv, ax_kp = axes[r, 3 * c], axes[r, 3 * c + 1], axes[r, 3 * c + 2]
        ax_img.imshow(img)
        if len(prev["mode"]) == 1:
            view = "back" if prev["back"][0] else "front"
            title = f"{prev['mode'][0]}, {view} (yaw {math.degrees(prev['yaw'][0]):.0f})"
        else:
            title = f"{len(prev['mode'])} persons, {sum(prev['back'])} from the back"
        ax_img.set_title(title, fontsize=7)
        part = iuv[..., 0].astype(np.int64)
        overlay = img / 255.0 * 0.35 + 0.65 * colours[part]
        overlay = np.where(part[..., None] > 0, overlay, img / 255.0 * 0.5)
        ax_iuv.imshow(overlay)
        if (part > 0).any():
            u = np.where(part > 0, iuv[..., 1], np.nan)
            ax_iuv.contour(u, levels=[0.25, 0.5, 0.75], colors="k", linewidths=0.3)
        ax_iuv.set_title("IUV (I colours, U contours)", fontsize=7)
        ax_kp.imshow(img)
        for kp in prev["keypoints"]:
            for a, b in COCO_SKELETON:
                if kp[a - 1, 2] > 0 and kp[b - 1, 2] > 0:
                    ax_kp.plot(
                        kp[[a - 1, b - 1], 0] - 0.5, kp[[a - 1, b - 1], 1] - 0.5, "-", color="w", lw=0.8
                    )
            for v, colour in ((2, "lime"), (1, "orange")):
                sel = kp[:, 2] == v
                ax_kp.scatter(kp[sel, 0] - 0.5, kp[sel, 1] - 0.5, s=6, c=colour, zorder=3)
            if kp[0, 2] > 0:
                ax_kp.scatter(kp[:1, 0] - 0.5, kp[:1, 1] - 0.5, s=14, c="red", marker="x", zorder=4)
        ax_kp.set_title("keypoints (green v=2, orange v=1, x nose)", fontsize=6)
    fig.tight_layout()
    path = Path(path)
    check_file_output(path)
    clean_stale_siblings(path)
    tmp = tmp_sibling(path)
    fig.savefig(tmp, format="png", metadata={"Software": None})
    plt.close(fig)
    tmp.replace(path)
    return path


# --------------------------------------------------------------------------------------------
# Entry point


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
    body_model: Path, uv_charts: Path, out_dir: Path, options: SynthOptions, keypoint_regressor: Path | None = None
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
    import torch

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
    records: list[dict[str, Any]] = []
    if options.workers == 1 or len(tasks) <= 1:
        threads = torch.get_num_threads()
        torch.set_num_threads(1)  # same arithmetic as in a worker
        global _WORKER_BODY
        previous = _WORKER_BODY
        try:
            _WORKER_BODY = _Body(body_model, uv_charts, keypoint_regressor)
            for task in tasks:
                records += _render_chunk(task)
        finally:
            _WORKER_BODY = previous
            torch.set_num_threads(threads)
    else:
        ctx = multiprocessing.get_context("spawn")
        with ctx.Pool(
            min(options.workers, len(tasks)),
            initializer=_init_worker,
            initargs=(str(body_model), str(uv_charts), None if keypoint_regressor is None else str(keypoint_regressor)),
        ) as pool:
            for result in pool.imap(_render_chunk, tasks):
                records += result
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
        _write_json(out_dir / f"densepose_{split}.json", coco)
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
