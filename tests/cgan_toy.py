"""Toy 2D/3D key point data sets for the cGAN tests: training and evaluation without the synthetic renderer.

Poses come from a simple prior (independent joint angles, uniform in plausible ranges) applied
to a body model (the stand-in by default); cameras look at the body from a random yaw (full
circle), with small pitch and roll. The stores have the layout of the crops store (key points
in normalised crop coordinates, box) and of the synthetic generator's ``gt_{split}.zarr``
(keypoints3d in the body frame, cam_rotation, cam_scale, cam_translation, bbox), aligned by
sample id.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from dlearn.body.io import SMPL_JOINT_NAMES, BodyModelData
from dlearn.body.keypoints import coco_keypoint_model
from dlearn.body.model import BodyModel
from dlearn.crop_geometry import square_boxes
from dlearn.data.store import write_store

_J = {name: i for i, name in enumerate(SMPL_JOINT_NAMES)}

#: (joint, low, high) axis-angle component ranges in radians, body frame (x left, y up, z forward).
_RANGES = {
    "left_hip": ((-1.8, 0.4), (-0.4, 0.4), (-0.1, 0.6)),
    "right_hip": ((-1.8, 0.4), (-0.4, 0.4), (-0.6, 0.1)),
    "left_knee": ((0.0, 2.2), (-0.1, 0.1), (-0.1, 0.1)),
    "right_knee": ((0.0, 2.2), (-0.1, 0.1), (-0.1, 0.1)),
    "spine1": ((-0.2, 0.5), (-0.3, 0.3), (-0.2, 0.2)),
    "spine2": ((-0.1, 0.3), (-0.2, 0.2), (-0.1, 0.1)),
    "spine3": ((-0.1, 0.3), (-0.2, 0.2), (-0.1, 0.1)),
    "neck": ((-0.3, 0.5), (-0.5, 0.5), (-0.3, 0.3)),
    "head": ((-0.3, 0.3), (-0.4, 0.4), (-0.2, 0.2)),
    "left_collar": ((-0.1, 0.1), (-0.2, 0.2), (-0.2, 0.2)),
    "right_collar": ((-0.1, 0.1), (-0.2, 0.2), (-0.2, 0.2)),
    "left_shoulder": ((-0.6, 0.6), (-1.5, 0.8), (-1.5, 0.5)),
    "right_shoulder": ((-0.6, 0.6), (-0.8, 1.5), (-0.5, 1.5)),
    "left_elbow": ((-0.1, 0.1), (-2.3, 0.0), (-0.1, 0.1)),
    "right_elbow": ((-0.1, 0.1), (0.0, 2.3), (-0.1, 0.1)),
    "left_ankle": ((-0.3, 0.3), (-0.1, 0.1), (-0.1, 0.1)),
    "right_ankle": ((-0.3, 0.3), (-0.1, 0.1), (-0.1, 0.1)),
}


def random_poses(n: int, rng: np.random.Generator) -> np.ndarray:
    """(n, 23, 3) axis-angle poses from the independent uniform joint-angle prior."""
    pose = np.zeros((n, 23, 3))
    for name, ranges in _RANGES.items():
        for axis, (low, high) in enumerate(ranges):
            pose[:, _J[name] - 1, axis] = rng.uniform(low, high, n)
    return pose


def _rot_x(a: np.ndarray) -> np.ndarray:
    c, s, o, z = np.cos(a), np.sin(a), np.ones_like(a), np.zeros_like(a)
    return np.stack([np.stack([o, z, z], -1), np.stack([z, c, -s], -1), np.stack([z, s, c], -1)], -2)


def _rot_y(a: np.ndarray) -> np.ndarray:
    c, s, o, z = np.cos(a), np.sin(a), np.ones_like(a), np.zeros_like(a)
    return np.stack([np.stack([c, z, s], -1), np.stack([z, o, z], -1), np.stack([-s, z, c], -1)], -2)


def _rot_z(a: np.ndarray) -> np.ndarray:
    c, s, o, z = np.cos(a), np.sin(a), np.ones_like(a), np.zeros_like(a)
    return np.stack([np.stack([c, -s, z], -1), np.stack([s, c, z], -1), np.stack([z, z, o], -1)], -2)


def random_cameras(n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Body -> camera rotations (n, 3, 3) (yaw uniform, pitch +-0.2, roll +-0.1 rad), scales (n,)
    in pixels per metre and translations (n, 2) in pixels.

    The base rotation diag(1, -1, -1) turns the body frame (y up, facing +z) into the camera's
    (y down, z away from the viewer), so yaw 0 shows the person from the front.
    """
    base = np.diag([1.0, -1.0, -1.0])
    yaw = rng.uniform(-np.pi, np.pi, n)
    rotation = _rot_z(rng.uniform(-0.1, 0.1, n)) @ _rot_x(rng.uniform(-0.2, 0.2, n)) @ base @ _rot_y(yaw)
    return rotation, rng.uniform(60.0, 120.0, n), rng.uniform(80.0, 180.0, (n, 2))


def make_toy_stores(
    out_dir: Path,
    split: str,
    n: int,
    seed: int,
    body: BodyModelData | None = None,
    keypoint_jitter_px: float = 1.0,
    missing: float = 0.02,
    prior: str = "uniform",
) -> tuple[Path, Path]:
    """Write ``out_dir/crops_{split}.zarr`` and ``out_dir/gt_{split}.zarr`` of ``n`` random persons.

    ``prior``: ``uniform`` (:func:`random_poses`, :func:`random_cameras`) or ``synth`` (the
    synthetic generator's pose modes and cameras, :mod:`dlearn.data.synth`).

    Returns:
        The two store paths.
    """
    if body is None:
        from dlearn.body.standin import build_standin

        body = build_standin().model
    rng = np.random.default_rng(seed)
    model = BodyModel(body, dtype=torch.float64)
    keypoints = coco_keypoint_model(model, body)
    if prior == "synth":
        from dlearn.data.synth import sample_camera, sample_pose

        pose = torch.as_tensor(np.stack([sample_pose(rng)[0] for _ in range(n)]))
    else:
        pose = torch.as_tensor(random_poses(n, rng))
    scales = torch.as_tensor(np.exp(rng.normal(0.0, 0.05, (n, 24))))
    with torch.no_grad():
        out = model(pose, scales, vertex_ids=torch.zeros(0, dtype=torch.long))
        kp3d = keypoints(out, pose).numpy()  # (n, 17, 3) body frame, metres
    rotation, cam_scale, cam_t = random_cameras(n, rng)
    if prior == "synth":
        rotation = np.stack([sample_camera(rng)[0] for _ in range(n)])
    pixels = cam_scale[:, None, None] * np.einsum("nij,nkj->nki", rotation, kp3d)[..., :2] + cam_t[:, None]
    pixels = pixels + rng.normal(0.0, keypoint_jitter_px, pixels.shape)
    lo, hi = pixels.min(1), pixels.max(1)
    bbox = np.concatenate([lo - 5, hi - lo + 10], axis=1)  # x0, y0, w, h with a margin
    box = square_boxes(bbox, 1.2)
    visibility = np.where(rng.random((n, 17)) < missing, 0, np.where(rng.random((n, 17)) < 0.1, 1, 2))
    crop = (pixels - box[:, None, :2]) / (box[:, None, 2:] / 2)
    keypoints = np.concatenate([crop, visibility[..., None]], axis=-1).astype(np.float32)
    keypoints[visibility == 0, :2] = 0.0
    ids = [f"{seed}_{i}" for i in range(n)]
    out_dir = Path(out_dir)
    crops = write_store(
        out_dir / f"crops_{split}.zarr",
        {"keypoints": keypoints, "box": box.astype(np.float32)},
        stage="crops",
        sample_id=ids,
        attrs={"toy": True},
    )
    gt = write_store(
        out_dir / f"gt_{split}.zarr",
        {
            "keypoints3d": kp3d.astype(np.float32),
            "cam_rotation": rotation.astype(np.float32),
            "cam_scale": cam_scale.astype(np.float32),
            "cam_translation": cam_t.astype(np.float32),
            "bbox": bbox.astype(np.float32),
        },
        stage="synth",
        sample_id=ids,
        attrs={"toy": True},
    )
    return crops, gt
