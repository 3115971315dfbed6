"""The `evaluate` stage: 3D joint errors of a round's registrations, ConvNet predictions and the
cGAN against synthetic ground truth (paper section 6.1, Fig. 2).

Poses are compared in the camera's orientation (joints rotated by the camera rotation, no
translation): a body seen from the back when it faces the camera is an error. Joint sets:

- ``joints24``: the body model's 24 joints (metric names ``mpjpe``, ``mpjpe_bone_scaled``,
  ``pa_mpjpe``), root = pelvis.
- ``coco12``: the 12 COCO limb keypoints and their mid-hip root (metric names prefixed
  ``coco12_``), the joints the cGAN lifts, so that all three sources of Fig. 2 are compared on
  the same points. Only samples whose 12 limb keypoints are all labelled count. The cGAN's
  pose is (2D keypoint offsets, depth) in crop units with no metric scale, so it gets only the
  scale-free metrics (bone-scaled and Procrustes).

Sources with a camera rotation (registration, ConvNet) also get ``rotation_error_deg`` (with the
count of bodies seen from the wrong side) and ``flipped_limbs`` (limb bones whose depth sign is
reversed), the failures that mean errors hide.

Bone scaling (``bone_scaling``, :data:`~dlearn.evaluation.metrics.BONE_SCALING`): the paper's
``canonical_average`` scales only the prediction, to the mean bone-length sum of the training
split's ground truth (the canonical average skeleton, per joint set); ``both_to_rest`` scales
prediction and ground truth to the body model's rest skeleton; ``ground_truth`` scales the
prediction to each ground truth.

Metric definitions in :mod:`dlearn.evaluation.metrics`; values in millimetres unless the metric
name says otherwise.

Nothing here poses a body (no torch): the registration and prediction stores hold the body-frame
``joints`` and COCO ``keypoints`` their stage computed with the body model (float32), and the
rest skeleton of ``both_to_rest`` is the model file's J_regressor and keypoint definition applied
to its template (:func:`rest_bone_sums`). Posing bodies from parameters is
:mod:`dlearn.evaluation.body_points`'s (the Human3.6M evaluation's joints come from full meshes).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import zarr

from dlearn.body.io import SMPL_JOINT_NAMES, BodyModelData, load_body_model
from dlearn.body.keypoint_definition import KeypointDefinition, keypoint_definition
from dlearn.coco_keypoints import COCO_KEYPOINT_NAMES, ROOT_KEYPOINTS
from dlearn.data.store import StoreError, open_store, read_aligned, read_sample_ids
from dlearn.evaluation.metrics import (
    BONE_SCALING,
    bone_lengths,
    limb_depth_flips,
    mpjpe,
    mpjpe_bone_scaled,
    pa_mpjpe,
    rotation_error_deg,
)

log = logging.getLogger(__name__)

#: COCO limb keypoints (indices into the 17) of the coco12 set; the mid-hip root is appended.
LIMB_KEYPOINTS = list(range(5, 17))
#: Parents in the coco12 set (index 12 is the mid-hip root): shoulders and hips hang from the
#: root, elbows from shoulders, wrists from elbows, knees from hips, ankles from knees.
COCO12_PARENTS = np.array([12, 12, 0, 1, 2, 3, 12, 12, 6, 7, 8, 9, -1])
COCO12_NAMES = [COCO_KEYPOINT_NAMES[i] for i in LIMB_KEYPOINTS] + ["mid_hip"]
#: The limb bones (parent, child) of the 24 joints whose depth sign ``flipped_limbs`` checks.
LIMB_BONES = np.array(
    [
        (SMPL_JOINT_NAMES.index(f"{side}_{parent}"), SMPL_JOINT_NAMES.index(f"{side}_{child}"))
        for side in ("left", "right")
        for parent, child in (("shoulder", "elbow"), ("elbow", "wrist"), ("hip", "knee"), ("knee", "ankle"))
    ]
)
#: The 14 LSP joints of the 17 Human3.6M joints a J_regressor_h36m gives (HMR/SPIN's order).
H36M_TO_LSP14 = [6, 5, 4, 1, 2, 3, 16, 15, 14, 11, 12, 13, 8, 10]
#: Pelvis among the 17 Human3.6M joints (the root of "Protocol #1" root-aligned MPJPE).
H36M_PELVIS = 0
#: The arrays of a registration or prediction store the evaluation reads, and their shapes
#: (rotation: (3, 3), or its 9 numbers row-major).
POINT_SHAPES = {"joints": [(24, 3)], "keypoints": [(17, 3)], "rotation": [(3, 3), (9,)]}
#: What writes each evaluated store again, for the message about a store of an older dlearn.
RERUN = {
    "merge_registration": "the round's registration (`dlearn register` of every shard, then `dlearn merge-registration`)",
    "predict": "`dlearn predict`",
}


def load_joint_regressor(path: Path, num_vertices: int) -> np.ndarray:
    """A (J, num_vertices) joint regressor from a .npy file (J_regressor_h36m.npy: 17 x 6890).

    Raises:
        ValueError: the file is missing, unreadable, or of another shape; the message names it.
    """
    try:
        regressor = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise ValueError(f"{path}: unreadable joint regressor ({exc})") from exc
    if regressor.ndim != 2 or regressor.shape[1] != num_vertices:
        raise ValueError(f"{path}: joint regressor of shape {regressor.shape}, expected (J, {num_vertices})")
    return regressor.astype(np.float64)


@dataclass
class PoseSet:
    """Camera-oriented joints of N samples in both joint sets (metres, or crop units for the cGAN)."""

    joints24: np.ndarray | None  # (N, 24, 3)
    coco12: np.ndarray  # (N, 13, 3)
    rotation: np.ndarray | None = None  # (N, 3, 3) camera rotation (the cGAN has none)

    @classmethod
    def from_body_frame(cls, joints: np.ndarray, keypoints: np.ndarray, rotation: np.ndarray) -> PoseSet:
        """Body-frame (N, 24, 3) joints and (N, 17, 3) COCO keypoints turned to the camera by the
        (N, 3, 3) or (N, 9) rotations, in float64."""
        rotation = np.asarray(rotation, np.float64).reshape(-1, 3, 3)
        return cls(
            rotate(np.asarray(joints, np.float64), rotation),
            coco12(rotate(np.asarray(keypoints, np.float64), rotation)),
            rotation,
        )


def rotate(points: np.ndarray, rotation: np.ndarray) -> np.ndarray:
    """(N, J, 3) body-frame points -> camera orientation R p."""
    return np.einsum("nij,nkj->nki", rotation, points)


def coco12(keypoints17: np.ndarray) -> np.ndarray:
    """(N, 17, 3) -> (N, 13, 3): the limb keypoints and their mid-hip root."""
    root = keypoints17[:, list(ROOT_KEYPOINTS)].mean(1, keepdims=True)
    return np.concatenate([keypoints17[:, LIMB_KEYPOINTS], root], axis=1)


def rest_keypoints(data: BodyModelData, definition: KeypointDefinition) -> np.ndarray:
    """(17, 3) COCO keypoints of the rest body (zero pose, unit scales): a keypoint on a joint is
    that rest joint, the others ``vertex_weights @ v_template`` (every skinning transform is the
    identity at rest, so :class:`~dlearn.body.keypoints.CocoKeypoints` gives the same points)."""
    points = np.asarray(definition.vertex_weights, np.float64) @ np.asarray(data.v_template, np.float64)
    on_joint = definition.joint >= 0
    points[on_joint] = data.rest_joints[definition.joint[on_joint]]
    return points


def rest_bone_sums(data: BodyModelData, definition: KeypointDefinition) -> dict[str, float]:
    """Per joint set, the bone-length sum (metres) of the body model's rest skeleton (zero pose,
    unit scales): the joints ``J_regressor @ v_template`` (:attr:`BodyModelData.rest_joints`, the
    torch model's ``rest_joints``) and the keypoints of :func:`rest_keypoints`."""
    parents = np.asarray(data.parents)
    return {
        "joints24": float(bone_lengths(np.asarray(data.rest_joints, np.float64), parents).sum()),
        "coco12": float(bone_lengths(coco12(rest_keypoints(data, definition)[None])[0], COCO12_PARENTS).sum()),
    }


@dataclass(frozen=True)
class Skeleton:
    """What the metrics need of the body model: the joint tree and the rest skeleton's bone sums."""

    parents: np.ndarray  # (24,) the 24 joints' parents, -1 at the root
    canonical_bone_sum: dict[str, float]  # per joint set, the rest skeleton's bone-length sum (m)

    @classmethod
    def of(cls, body_model: Path, keypoint_regressor: Path | None = None) -> Skeleton:
        """The skeleton of a model file and its keypoints (see :func:`keypoint_definition`)."""
        data = load_body_model(body_model)
        return cls(np.asarray(data.parents), rest_bone_sums(data, keypoint_definition(data, keypoint_regressor)))


def ground_truth(gt_path: Path, ids: list[str]) -> PoseSet:
    keys = ("joints3d", "keypoints3d", "cam_rotation")
    gt = read_aligned(open_store(gt_path, required=keys), ids, keys, gt_path)
    return PoseSet.from_body_frame(gt["joints3d"], gt["keypoints3d"], gt["cam_rotation"])


def cgan_poses(depths_path: Path, keypoints: np.ndarray, ids: list[str]) -> PoseSet:
    """The cGAN's lifted keypoints: the (N, 17, 3) crop keypoints' 2D and the depths, crop units."""
    depths = read_aligned(open_store(depths_path, required=["depth"]), ids, ("depth",), depths_path)["depth"]
    xy = keypoints[..., :2].astype(np.float64)
    lifted = np.concatenate([xy, np.asarray(depths, np.float64)[..., None]], axis=-1)
    return PoseSet(None, coco12(lifted))


def limb_mask(keypoints: np.ndarray) -> np.ndarray:
    """(N,) samples whose 12 COCO limb keypoints are all labelled (the coco12 set's samples)."""
    return (keypoints[:, LIMB_KEYPOINTS, 2] > 0).all(axis=1)


def check_bone_scaling(bone_scaling: str) -> None:
    if bone_scaling not in BONE_SCALING:
        raise ValueError(f"bone_scaling must be one of {', '.join(BONE_SCALING)}, got {bone_scaling!r}")


def canonical_bone_sums(bone_scaling: str, skeleton: Skeleton, train_truth: PoseSet) -> dict[str, float | None]:
    """Per joint set, the bone-length sum (mm) ``mpjpe_bone_scaled`` scales to (None: each
    ground truth's): the training split's mean (``canonical_average``), the rest skeleton's
    (``both_to_rest``)."""
    check_bone_scaling(bone_scaling)
    if bone_scaling == "ground_truth":
        return {"joints24": None, "coco12": None}
    if bone_scaling == "both_to_rest":
        return {name: value * 1000.0 for name, value in skeleton.canonical_bone_sum.items()}
    parents = {"joints24": skeleton.parents, "coco12": COCO12_PARENTS}
    return {
        name: float(bone_lengths(getattr(train_truth, name), parents[name]).sum(-1).mean()) * 1000.0
        for name in ("joints24", "coco12")
    }


def pose_metrics(
    pred: PoseSet,
    gt: PoseSet,
    limbs: np.ndarray,
    skeleton: Skeleton,
    bone_scaling: str = "canonical_average",
    canonical: dict[str, float | None] | None = None,
) -> dict[str, Any]:
    """Per metric: mean, median, 90th percentile and per-joint means (mm), and the sample count;
    with a camera rotation, ``rotation_error_deg`` (and the count of samples off by more than
    90 deg, ``flipped``); with the 24 joints, ``flipped_limbs`` (per sample, the limb bones of
    :data:`LIMB_BONES` whose depth sign is wrong; see :func:`limb_depth_flips`).

    ``bone_scaling``: see the module docstring; ``canonical``: per joint set the bone-length sum
    in mm of :func:`canonical_bone_sums` (needed unless ``ground_truth``).
    """
    check_bone_scaling(bone_scaling)
    if canonical is None:
        if bone_scaling == "canonical_average":
            raise ValueError("bone_scaling canonical_average needs the canonical bone-length sums")
        canonical = canonical_bone_sums(bone_scaling, skeleton, gt)
    out: dict[str, Any] = {}
    sets = [("coco12", "coco12_", COCO12_PARENTS, COCO12_NAMES, limbs)]
    if pred.joints24 is not None and gt.joints24 is not None:
        sets.insert(0, ("joints24", "", skeleton.parents, None, np.ones(len(limbs), bool)))
    for name, prefix, parents, _names, keep in sets:
        p, g = getattr(pred, name)[keep] * 1000.0, getattr(gt, name)[keep] * 1000.0
        root = len(parents) - 1 if name == "coco12" else 0
        errors = {
            f"{prefix}mpjpe_bone_scaled": mpjpe_bone_scaled(
                p, g, parents, root=root, canonical_bone_sum=canonical[name],
                scale_ground_truth=bone_scaling == "both_to_rest",
            ),
            f"{prefix}pa_mpjpe": pa_mpjpe(p, g),
        }
        if pred.joints24 is not None:  # metric units: plain root-aligned MPJPE is defined
            errors[f"{prefix}mpjpe"] = mpjpe(p, g, root=root)
        for metric, e in errors.items():
            if len(e) == 0:
                continue
            out[metric] = {**_summary(e.mean(axis=1)), "per_joint": [round(float(v), 2) for v in e.mean(axis=0)]}
    if pred.rotation is not None and gt.rotation is not None and len(gt.rotation):
        angle = rotation_error_deg(pred.rotation, gt.rotation)
        out["rotation_error_deg"] = {**_summary(angle), "flipped": int((angle > 90.0).sum())}
    if pred.joints24 is not None and gt.joints24 is not None and len(gt.joints24):
        flipped, counted = limb_depth_flips(pred.joints24, gt.joints24, LIMB_BONES)
        per_sample = flipped.sum(axis=1)
        out["flipped_limbs"] = {
            **_summary(per_sample),
            "samples_with_flip": int((per_sample > 0).sum()),
            "bones_counted": int(counted.sum()),
            "bones_flipped": int(flipped.sum()),
        }
    return out


def _summary(per_sample: np.ndarray) -> dict[str, Any]:
    """Mean, median and 90th percentile of per-sample values, and the sample count."""
    return {
        "mean": float(per_sample.mean()),
        "median": float(np.median(per_sample)),
        "p90": float(np.percentile(per_sample, 90)),
        "samples": int(len(per_sample)),
    }


def stored_poses(store: zarr.Group, path: Path, ids: list[str], stage: str) -> PoseSet:
    """The :class:`PoseSet` of a registration or prediction store (opened from ``path``, written
    by ``stage``) in ``ids``' order: its body-frame ``joints`` and ``keypoints`` rotated by its
    ``rotation``, in float64.

    Raises:
        StoreError: a prediction store of another split, an array missing (a store of an older
            dlearn: the message says what to rerun) or of another shape; names the store.
    """
    n = int(store.attrs.get("num_samples", len(read_sample_ids(store))))
    if n != len(ids) and stage == "predict":
        raise StoreError(f"{path}: {n} predictions, the split has {len(ids)} samples")
    missing = [k for k in POINT_SHAPES if k not in store]
    if missing:
        raise StoreError(
            f"{path}: no array {', '.join(missing)} (the body-frame points the evaluation reads; a store "
            f"written by an older dlearn): rerun {RERUN.get(stage, f'stage {stage}')}"
        )
    arrays = read_aligned(store, ids, tuple(POINT_SHAPES), path)
    for key, shapes in POINT_SHAPES.items():
        if arrays[key].shape[1:] not in shapes:
            expected = " or ".join(f"(N, {', '.join(map(str, shape))})" for shape in shapes)
            raise StoreError(f"{path}: {key} has shape {arrays[key].shape}, expected {expected}")
    return PoseSet.from_body_frame(arrays["joints"], arrays["keypoints"], arrays["rotation"])


def evaluate_round(
    round_k: int,
    body_model: Path,
    crops: dict[str, Path],
    gt: dict[str, Path],
    registration: Path,
    predictions: dict[str, Path],
    cgan_depths: Path | None = None,
    bone_scaling: str = "canonical_average",
    keypoint_regressor: Path | None = None,
) -> dict[str, Any]:
    """Every source's metrics for round k (synthetic ground truth).

    Args:
        crops, gt, predictions: per split ("train", "test") the crops, ground-truth and
            prediction stores; registration: the round's (train split) registration store.
        cgan_depths: the cGAN's test depths (None: no cGAN rows).
        bone_scaling: see the module docstring (``canonical_average`` averages the train split's
            ground truth).
        keypoint_regressor: the COCO keypoint regressor file of the rest skeleton's coco12
            keypoints (``both_to_rest``; see :mod:`dlearn.body.keypoints`); None: the model
            file's. The stores' keypoints are those their stage computed.

    Returns:
        {"round", "protocol", "results": {split: {source: metrics}}} (see :func:`pose_metrics`).
    """
    check_bone_scaling(bone_scaling)
    skeleton = Skeleton.of(body_model, keypoint_regressor)
    results: dict[str, dict[str, Any]] = {}
    sources: list[tuple[str, str, Path]] = [("train", "registration", registration)]
    sources += [(split, "convnet", path) for split, path in predictions.items()]
    cache: dict[str, tuple[list[str], PoseSet, np.ndarray]] = {}
    for split in sorted({s for s, _, _ in sources} | ({"test"} if cgan_depths else set())):
        store = open_store(crops[split], stage="crops", required=["keypoints"])
        ids = read_sample_ids(store)
        keypoints = np.asarray(store["keypoints"][...])  # in the store's order, which ids are
        cache[split] = (ids, ground_truth(gt[split], ids), keypoints)
    canonical = canonical_bone_sums(bone_scaling, skeleton, cache["train"][1])
    kept: dict[str, Any] = {}
    for split, source, path in sources:
        ids, truth, keypoints = cache[split]
        limbs = limb_mask(keypoints)
        stage = "merge_registration" if source == "registration" else "predict"
        store = open_store(path, stage=stage)
        if source == "registration":
            kept = registration_kept_fits(store.attrs)
        pred = stored_poses(store, path, ids, stage)
        results.setdefault(split, {})[source] = pose_metrics(pred, truth, limbs, skeleton, bone_scaling, canonical)
    if cgan_depths is not None:
        ids, truth, keypoints = cache["test"]
        cgan = cgan_poses(cgan_depths, keypoints, ids)
        results["test"]["cgan"] = pose_metrics(cgan, truth, limb_mask(keypoints), skeleton, bone_scaling, canonical)
    bone_scaling_text = {
        "canonical_average": "the canonical average skeleton's (mean over the train split's ground truth), "
        "prediction only; the ground truth stays in mm (the paper's protocol)",
        "both_to_rest": "the body model's rest skeleton's, prediction and ground truth",
        "ground_truth": "each ground truth's own, prediction only",
    }
    return {
        "round": round_k,
        "units": "mm",
        "protocol": {
            "frame": "camera orientation (joints rotated by the camera rotation), root-aligned",
            "joints24": "body model joints, root pelvis",
            "coco12": "COCO limb keypoints + mid-hip root (samples with all 12 labelled)",
            "mpjpe_bone_scaled": f"bone-length sums scaled to {bone_scaling_text[bone_scaling]} (Zhou et al.)",
            "bone_scaling": bone_scaling,
            "canonical_bone_sum_mm": {k: None if v is None else round(v, 3) for k, v in canonical.items()},
            "pa_mpjpe": "after similarity Procrustes alignment",
            "mpjpe": "root-aligned, no scaling",
            "rotation_error_deg": "geodesic angle between predicted and true camera rotations, degrees; "
            "flipped: samples off by more than 90 deg",
            "flipped_limbs": "per sample, limb bones (upper arms, forearms, thighs, shins) with the depth "
            "sign of the truth's reversed, among bones at least 0.3 out of the image plane",
        },
        "joint_names": {"coco12": COCO12_NAMES},
        "registration": kept,
        "results": results,
    }


def registration_kept_fits(attrs: Mapping[str, Any]) -> dict[str, Any]:
    """Which fits a round's registration kept, from its store's ``attrs``: its status counts,
    where its fits started (the T-pose, or the previous round's ConvNet predictions) and the share
    of usable samples whose kept fit is this round's (``ok``) rather than the previous round's
    (``kept_previous``, keep-best).

    From round 1 on that share is the paper's mechanism at work: fits started from the ConvNet's
    predictions that match the annotations better than last round's fits.
    """
    counts = {k: int(v) for k, v in dict(attrs.get("status_counts", {})).items()}
    usable = counts.get("ok", 0) + counts.get("kept_previous", 0)
    return {
        "start": str(attrs.get("start", "unknown")),
        "status_counts": counts,
        "new_fit_kept_share": round(counts.get("ok", 0) / usable, 4) if usable else None,
    }
