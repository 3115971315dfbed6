"""Accuracy of the cGAN's depths where 3D ground truth is known (the cGAN line of paper Fig. 2).

Protocol (per sample, root = mid-hip, only samples with both hips labelled and valid depths,
i.e. inside the cGAN's training criteria):

- ground truth: R @ keypoints3d (camera orientation, metres), root-relative;
- prediction: (2D key point offsets from the 2D root in crop units, depth) converted to metres
  by the factor (side / 2) / cam_scale, then multiplied by the single least-squares scale that
  best aligns it with the ground truth over the labelled (v > 0) key points;
- MPJPE: mean Euclidean error in millimetres over all labelled key points of all samples.

Baselines, computed the same way with another depth: ``zero_depth`` (all depths 0) and
``train_mean_depth``: the per-joint mean of the cGAN's *normalised* depths (depth / scale) on
the TRAIN split (2D only, no 3D ground truth), times each test sample's normalisation scale.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from dlearn.coco_keypoints import ROOT_KEYPOINTS
from dlearn.data.store import open_store, read_aligned, read_sample_ids, write_store
from dlearn.plots import pyplot, save_figure

log = logging.getLogger(__name__)

_HIPS = list(ROOT_KEYPOINTS)

TRUE_DEPTH_FRAME = (
    "depth: (N, 17) ground-truth depth of each COCO key point in normalised crop units (square box "
    "side/2 = 1), relative to the mid-hip, camera z away from the viewer; valid: (N, 17) all true"
)


def scaled_mpjpe(pred: np.ndarray, gt: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Per-key-point errors after the per-sample least-squares scale alignment.

    Args:
        pred, gt: (N, 17, 3) root-relative; mask: (N, 17) bool, key points that count.

    Returns:
        (N, 17) errors in the units of ``gt`` (0 where not counted).
    """
    w = mask[..., None].astype(np.float64)
    num = (pred * gt * w).sum((1, 2))
    den = (pred * pred * w).sum((1, 2))
    alpha = np.where(den > 0, num / np.maximum(den, 1e-12), 1.0)
    return np.linalg.norm(alpha[:, None, None] * pred - gt, axis=-1) * mask


def metres_per_crop_unit(side: np.ndarray, cam_scale: np.ndarray) -> np.ndarray:
    """(N,) metres per normalised crop unit: a crop of ``side`` pixels spans 2 units, and the
    ground-truth camera draws ``cam_scale`` pixels per metre."""
    return np.asarray(side, np.float64) / 2.0 / np.asarray(cam_scale, np.float64)


def camera_keypoints(kp3d: np.ndarray, rotation: np.ndarray) -> np.ndarray:
    """(N, 17, 3) body-frame key points -> camera orientation, relative to the mid-hip."""
    points = np.einsum("nij,nkj->nki", rotation, kp3d)
    return points - points[:, _HIPS].mean(1, keepdims=True)


def true_depths(crops_path: Path, gt_path: Path, out_path: Path) -> dict:
    """Write the ground truth's key point depths as a depths store (stage ``true_depths``).

    The store has the arrays of the cGAN's (:data:`TRUE_DEPTH_FRAME`), so the registration and
    the regressor can use it in place of ``depths_{split}.zarr``: with synthetic data this runs
    the method with perfect depths, the bound on what a better depth source can give (config
    ``depth_source: ground_truth``).

    Returns:
        A summary: samples, mean absolute depth (crop units).
    """
    crops_path, gt_path = Path(crops_path), Path(gt_path)
    crops = open_store(crops_path, stage="crops", required=("box",))
    ids = read_sample_ids(crops)
    box = read_aligned(crops, ids, ("box",), crops_path)["box"]
    gt_keys = ("keypoints3d", "cam_rotation", "cam_scale")
    gt = read_aligned(open_store(gt_path, required=gt_keys), ids, gt_keys, gt_path)
    metres = camera_keypoints(gt["keypoints3d"].astype(np.float64), gt["cam_rotation"].astype(np.float64))
    depth = metres[..., 2] / metres_per_crop_unit(box[:, 2], gt["cam_scale"])[:, None]
    write_store(
        out_path,
        {"depth": depth.astype(np.float32), "valid": np.ones(depth.shape, bool)},
        stage="true_depths",
        sample_id=ids,
        attrs={"frame": TRUE_DEPTH_FRAME, "crops": str(crops_path), "gt": str(gt_path)},
    )
    summary = {"samples": len(ids), "mean_abs_depth": round(float(np.abs(depth).mean()), 4) if len(ids) else 0.0}
    log.info("%s: ground-truth depths %s", out_path, summary)
    return summary


def mean_normalised_depth(depths_path: Path) -> np.ndarray:
    """(17,) per-joint mean of depth / scale over the valid key points of a depths store."""
    group = open_store(depths_path, stage="cgan_predict", required=("depth", "valid", "scale"))
    depth, valid, scale = (np.asarray(group[k][...], np.float64) for k in ("depth", "valid", "scale"))
    valid = valid.astype(bool) & (scale[:, None] > 0)
    normalised = np.where(valid, depth / np.maximum(scale[:, None], 1e-12), 0.0)
    return normalised.sum(0) / np.maximum(valid.sum(0), 1)


def evaluate_depths(
    depths_path: Path, crops_path: Path, gt_path: Path, train_depths_path: Path | None = None
) -> dict:
    """MPJPE (mm) of GT 2D + cGAN depth, of zero depth and (with ``train_depths_path``) of the
    train split's mean normalised depth per joint; see the module docstring for the protocol.

    Returns:
        {"samples", "skipped_samples", "keypoints", "mpjpe_mm": {"cgan", "zero_depth",
        "train_mean_depth"}, "improvement_over_zero": 1 - cgan / zero_depth,
        "per_joint_mm": {method: [17 floats]}}.
    """
    depths_path, crops_path, gt_path = Path(depths_path), Path(crops_path), Path(gt_path)
    dgroup = open_store(depths_path, stage="cgan_predict", required=("depth", "valid", "scale"))
    ids = read_sample_ids(dgroup)
    depth = np.asarray(dgroup["depth"][...], np.float64)
    scale = np.asarray(dgroup["scale"][...], np.float64)
    # Samples outside the cGAN's training criteria have no valid depth: not the cGAN's to score.
    has_depth = np.asarray(dgroup["valid"][...], bool).any(1)
    cgroup = open_store(crops_path, stage="crops", required=("keypoints", "box"))
    crops = read_aligned(cgroup, ids, ("keypoints", "box"), crops_path)
    keypoints = crops["keypoints"].astype(np.float64)
    side = crops["box"][:, 2].astype(np.float64)
    ggroup = open_store(gt_path, required=("keypoints3d", "cam_rotation", "cam_scale"))
    gt_keys = ("keypoints3d", "cam_rotation", "cam_scale")
    gt_arrays = read_aligned(ggroup, ids, gt_keys, gt_path)
    kp3d, rotation, cam_scale = (gt_arrays[k].astype(np.float64) for k in gt_keys)

    labelled = keypoints[..., 2] > 0
    keep = labelled[:, _HIPS].all(1) & has_depth
    gt = camera_keypoints(kp3d, rotation)
    offsets = keypoints[..., :2] - keypoints[:, _HIPS, :2].mean(1, keepdims=True)
    metres = metres_per_crop_unit(side, cam_scale)[:, None, None]

    candidates = {"cgan": depth, "zero_depth": np.zeros_like(depth)}
    if train_depths_path is not None:
        candidates["train_mean_depth"] = mean_normalised_depth(Path(train_depths_path))[None] * scale[:, None]
    mask = labelled & keep[:, None]
    result: dict = {
        "samples": int(keep.sum()),
        "skipped_samples": int((~keep).sum()),
        "keypoints": int(mask.sum()),
        "mpjpe_mm": {},
        "per_joint_mm": {},
    }
    for name, d in candidates.items():
        d = d - d[:, _HIPS].mean(1, keepdims=True)  # root-relative, whatever the source
        pred = np.concatenate([offsets, d[..., None]], axis=-1) * metres
        errors = scaled_mpjpe(pred[keep], gt[keep], mask[keep]) * 1000.0
        result["mpjpe_mm"][name] = round(float(errors.sum() / max(mask.sum(), 1)), 2)
        result["per_joint_mm"][name] = [
            round(float(v), 2) for v in errors.sum(0) / np.maximum(mask[keep].sum(0), 1)
        ]
    zero = result["mpjpe_mm"]["zero_depth"]
    result["improvement_over_zero"] = round(1.0 - result["mpjpe_mm"]["cgan"] / zero, 4) if zero > 0 else None
    log.info("%s: MPJPE %s mm over %d samples", depths_path, result["mpjpe_mm"], result["samples"])
    return result


def plot_training_curve(curve: list[dict[str, float]], png_path: Path) -> Path:
    """Plot the per-epoch mean losses of :func:`dlearn.cgan.train.train_cgan`'s ``curve``
    (also stored as ``history`` in the model file) to ``png_path``."""
    plt = pyplot()

    epochs = [row["epoch"] for row in curve]
    fig, ax = plt.subplots(figsize=(5, 3.2), dpi=120)
    for key, label in (
        ("loss_d", "discriminator"),
        ("loss_g", "generator (adversarial)"),
        ("loss_prior", "chirality prior"),
    ):
        ax.plot(epochs, [row[key] for row in curve], label=label)
    ax.axhline(2 * np.log(2), color="grey", lw=0.8, ls=":", label="D at chance (2 ln 2)")
    ax.set_xlabel("epoch")
    ax.set_ylabel("mean loss")
    ax.legend(fontsize=7)
    return save_figure(fig, png_path)
