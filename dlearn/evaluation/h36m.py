"""Human3.6M evaluation from a SPIN-style ``.npz`` (the paper's "Protocol #1": subjects S9, S11,
as the file gives them).

Protocol, stated in every output: the predicted mesh's 17 Human3.6M joints come from a
J_regressor_h36m (17 x vertices, ``.npy``) and are rotated into the camera's orientation; the
14 LSP joints (``H36M_TO_LSP14``) are compared with the file's ``S`` at SPIN's ``J24_TO_J14``
slots (:data:`~dlearn.data.h36m.SPIN_J24_TO_LSP14`), both aligned at the mid-hip. Frames with a
joint of confidence 0 are skipped and counted; more than ``max_skipped`` of them is an error.
Metrics, mm: ``h36m_mpjpe`` (root-aligned), ``h36m_mpjpe_bone_scaled`` (bone lengths scaled as
``bone_scaling`` says: the paper's ``canonical_average`` scales only the prediction, to the mean
bone-length sum of the training subjects S1, S5-S8 read from ``train_npz``, or, without one, of
the body model's rest skeleton through the regressor), ``h36m_pa_mpjpe`` (Procrustes;
HMR/SPIN's "P1"/"P2" numbers are this metric on other camera subsets).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np

from dlearn.data.h36m import (
    SPIN_J24_TO_LSP14,
    EvaluationFileError,
    read_spin_joints,
    read_spin_npz,
)
from dlearn.data.h36m_crops import (
    make_h36m_crops,  # noqa: F401 (re-exported: its former home)
    sample_ids,
)
from dlearn.data.store import open_store, read_sample_ids
from dlearn.evaluation.body_points import PoseComputer
from dlearn.evaluation.evaluate import H36M_TO_LSP14, check_bone_scaling, load_joint_regressor
from dlearn.evaluation.metrics import bone_lengths, mpjpe, mpjpe_bone_scaled, pa_mpjpe
from dlearn.params import PARAM_KEYS

log = logging.getLogger(__name__)

#: LSP14 joints plus their mid-hip root (index 14): parents of the bone-scaling tree.
LSP14_PARENTS = np.array([1, 2, 14, 14, 3, 4, 7, 8, 12, 12, 9, 10, 14, 12, -1])
LSP14_HIPS = (2, 3)
PROTOCOL = (
    "Human3.6M Protocol #1 of the paper (frames of the SPIN-style npz): 14 LSP joints from "
    "J_regressor_h36m of the predicted mesh against the npz's S at SPIN's J24_TO_J14 slots, camera "
    "orientation, mid-hip aligned"
)


def _with_root(joints: np.ndarray) -> np.ndarray:
    """(N, 14, 3) -> (N, 15, 3) with the mid-hip appended."""
    return np.concatenate([joints, joints[:, list(LSP14_HIPS)].mean(1, keepdims=True)], axis=1)


def _bone_sum_mm(lsp14: np.ndarray) -> np.ndarray:
    """(N, 14, 3) LSP joints in metres -> (N,) bone-length sums of the LSP14 tree in mm."""
    return bone_lengths(_with_root(lsp14), LSP14_PARENTS).sum(-1) * 1000.0


def training_bone_sum(train_npz: Path) -> tuple[float, int]:
    """The canonical average skeleton of the training subjects: mean LSP14 bone-length sum (mm)
    over the frames of a SPIN-style training npz (h36m_train.npz, S1, S5-S8) whose 14 joints are
    all present, and the number of those frames.

    Raises:
        EvaluationFileError: unreadable file, no ``S`` or no complete frame.
    """
    joints, confidence = read_spin_joints(train_npz)
    complete = (confidence > 0).all(axis=1)
    if not complete.any():
        raise EvaluationFileError(f"{train_npz}: no frame of 'S' has all 14 LSP joints (confidence > 0)")
    return float(_bone_sum_mm(joints[complete]).mean()), int(complete.sum())


def evaluate_h36m(
    round_k: int,
    predictions: Path,
    npz: Path,
    joint_regressor: Path,
    body_model: Path,
    bone_scaling: str = "canonical_average",
    *,
    train_npz: Path | None = None,
    max_skipped: float = 0.01,
) -> dict[str, Any]:
    """Round k's ConvNet on the Human3.6M frames (see the module docstring for the protocol).

    Raises:
        EvaluationFileError: more than ``max_skipped`` (a fraction) of the frames lack a joint.
    """
    check_bone_scaling(bone_scaling)
    if not 0.0 <= max_skipped <= 1.0:
        raise ValueError(f"max_skipped is a fraction of the frames in [0, 1], got {max_skipped}")
    frames = read_spin_npz(npz)
    n = len(frames.imgname)
    store = open_store(predictions, stage="predict", required=PARAM_KEYS)
    if read_sample_ids(store) != sample_ids(n):
        raise ValueError(f"{predictions}: {len(read_sample_ids(store))} predictions, {npz} has {n} frames")
    truth, confidence = frames.lsp14()
    keep = (confidence > 0).all(axis=1)
    skipped = int((~keep).sum())
    log.info("%s: %d of %d frames skipped (an LSP joint with confidence 0)", npz, skipped, n)
    if skipped > max_skipped * n:
        raise EvaluationFileError(
            f"{npz}: {skipped} of {n} frames lack one of the 14 LSP joints (confidence 0 at S[:, {SPIN_J24_TO_LSP14}]), "
            f"more than evaluation.h36m.max_skipped = {max_skipped:g} of them: is 'S' in SPIN's 24-joint layout?"
        )
    poses = PoseComputer(body_model)
    regressor = load_joint_regressor(joint_regressor, poses.model.num_vertices)
    if regressor.shape[0] != 17:
        raise ValueError(f"{joint_regressor}: {regressor.shape[0]} joints, expected the 17 of Human3.6M")
    arrays = {k: np.asarray(store[k][...]) for k in PARAM_KEYS}
    pred = _with_root(poses.regressed_joints(arrays, regressor)[:, H36M_TO_LSP14]) * 1000.0
    gt = _with_root(truth) * 1000.0
    pred, gt = pred[keep], gt[keep]
    canonical, source = None, "each ground truth's own"
    if bone_scaling == "canonical_average" and train_npz is not None:
        canonical, train_frames = training_bone_sum(train_npz)
        source = f"mean over the {train_frames} frames of {train_npz} (training subjects)"
    elif bone_scaling != "ground_truth":
        rest = poses.regressed_joints(
            {"pose": np.zeros((1, 23, 3)), "scales": np.ones((1, 24)), "rotation": np.eye(3)[None]}, regressor
        )
        canonical = float(_bone_sum_mm(rest[:, H36M_TO_LSP14])[0])
        source = "the body model's rest skeleton through the joint regressor"
        if bone_scaling == "canonical_average":
            log.warning("no evaluation.h36m.train_npz: bone scaling to the rest skeleton's sum, %.1f mm", canonical)
    root = 14
    errors = {
        "h36m_mpjpe": mpjpe(pred, gt, root=root),
        "h36m_mpjpe_bone_scaled": mpjpe_bone_scaled(
            pred, gt, LSP14_PARENTS, root=root, canonical_bone_sum=canonical,
            scale_ground_truth=bone_scaling == "both_to_rest",
        ),
        "h36m_pa_mpjpe": pa_mpjpe(pred, gt),
    }
    metrics = {
        name: {"mean": float(e[:, :14].mean()), "median": float(np.median(e[:, :14].mean(1))),
               "per_joint": [round(float(v), 2) for v in e[:, :14].mean(0)], "samples": int(len(e))}
        for name, e in errors.items() if len(e)
    }  # fmt: skip
    return {
        "round": round_k,
        "units": "mm",
        "protocol": {
            "h36m": PROTOCOL,
            "bone_scaling": bone_scaling,
            "canonical_bone_sum_mm": None if canonical is None else round(canonical, 3),
            "canonical_source": source,
            "frames": n,
            "skipped_frames": skipped,
        },
        "results": {"h36m": {"convnet": metrics}},
    }
