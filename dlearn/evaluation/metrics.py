"""3D joint errors, in the units of the inputs (callers pass millimetres).

Three alignments, named explicitly because the literature's protocol names are confused:

- ``mpjpe``: root-aligned (both poses translated so their root joints coincide).
- ``mpjpe_bone_scaled``: root-aligned after scaling the prediction so that the sum of its
  bone lengths equals a reference sum. The paper's protocol (after Zhou et al. 2016) scales
  only the prediction, to a canonical average skeleton's sum, and leaves the ground truth in
  millimetres (:data:`BONE_SCALING` ``canonical_average``); ``both_to_rest`` scales the
  ground truth to the same sum too; ``ground_truth`` scales the prediction to each ground
  truth's own sum.
- ``pa_mpjpe``: after the similarity transform (rotation, scale, translation) that best aligns
  the prediction to the ground truth (Procrustes).

And two failure counts that the mean errors hide: the camera rotation error (a body seen from
the wrong side is off by ~180 deg) and limb bones whose depth sign is wrong (the weak-perspective
ambiguity that dense correspondences and depths must resolve).
"""

from __future__ import annotations

import numpy as np

#: The bone-length scalings of ``mpjpe_bone_scaled`` (see the module docstring).
BONE_SCALING = ("canonical_average", "both_to_rest", "ground_truth")


def bone_lengths(joints: np.ndarray, parents: np.ndarray) -> np.ndarray:
    """(..., J, 3) joints -> (..., J-1) lengths of the bones joint -> parent (root excluded)."""
    child = np.flatnonzero(parents >= 0)
    return np.linalg.norm(joints[..., child, :] - joints[..., parents[child], :], axis=-1)


def mpjpe(pred: np.ndarray, gt: np.ndarray, root: int = 0) -> np.ndarray:
    """(N, J, 3) x 2 -> (N, J) per-joint errors after aligning the root joints."""
    return np.linalg.norm((pred - pred[:, root : root + 1]) - (gt - gt[:, root : root + 1]), axis=-1)


def bone_scaled(pred: np.ndarray, parents: np.ndarray, target_bone_sum: np.ndarray) -> np.ndarray:
    """Scale each (J, 3) prediction about its origin so its bone lengths sum to ``target_bone_sum`` (N,)."""
    factor = np.asarray(target_bone_sum, dtype=np.float64) / bone_lengths(pred, parents).sum(axis=-1)
    return pred * factor[:, None, None]


def mpjpe_bone_scaled(
    pred: np.ndarray,
    gt: np.ndarray,
    parents: np.ndarray,
    root: int = 0,
    canonical_bone_sum: float | None = None,
    scale_ground_truth: bool = False,
) -> np.ndarray:
    """(N, J) per-joint errors after bone-length scaling (see the module docstring).

    Args:
        pred, gt: (N, J, 3) joints.
        parents: (J,) parent of each joint (-1 for the root), the tree whose bones are summed.
        canonical_bone_sum: None: the prediction is scaled to each ground truth's bone-length
            sum; else to this sum (the paper's protocol), the ground truth unchanged.
        scale_ground_truth: with a canonical sum, scale the ground truth to it too.
    """
    if canonical_bone_sum is None:
        target = bone_lengths(gt, parents).sum(axis=-1)
    else:
        target = np.full(len(gt), float(canonical_bone_sum))
        if scale_ground_truth:
            gt = bone_scaled(gt, parents, target)
    return mpjpe(bone_scaled(pred, parents, target), gt, root)


def procrustes_align(pred: np.ndarray, gt: np.ndarray) -> np.ndarray:
    """(N, J, 3) predictions moved by the best similarity transform onto ``gt`` (Umeyama)."""
    mu_p, mu_g = pred.mean(axis=1, keepdims=True), gt.mean(axis=1, keepdims=True)
    p, g = pred - mu_p, gt - mu_g
    cov = np.einsum("nji,njk->nik", g, p)  # sum_j g_j p_j^T
    u, sigma, vt = np.linalg.svd(cov)
    d = np.sign(np.linalg.det(u @ vt))  # no reflections
    fix = np.ones_like(sigma)
    fix[:, -1] = d
    rotation = u @ (fix[:, :, None] * vt)
    scale = (sigma * fix).sum(axis=1) / (p**2).sum(axis=(1, 2))
    return scale[:, None, None] * np.einsum("nik,njk->nji", rotation, p) + mu_g


def pa_mpjpe(pred: np.ndarray, gt: np.ndarray) -> np.ndarray:
    """(N, J) per-joint errors after Procrustes (similarity) alignment."""
    return np.linalg.norm(procrustes_align(pred, gt) - gt, axis=-1)


def rotation_error_deg(pred: np.ndarray, gt: np.ndarray) -> np.ndarray:
    """(N, 3, 3) x 2 -> (N,) geodesic angle in degrees between two rotations."""
    relative = np.einsum("nij,nkj->nik", pred, gt)
    cos = (np.trace(relative, axis1=1, axis2=2) - 1.0) / 2.0
    return np.degrees(np.arccos(np.clip(cos, -1.0, 1.0)))


def limb_depth_flips(
    pred: np.ndarray, gt: np.ndarray, bones: np.ndarray, min_out_of_plane: float = 0.3
) -> tuple[np.ndarray, np.ndarray]:
    """Bones pointing towards the camera where the truth points away, or the reverse.

    Args:
        pred, gt: (N, J, 3) camera-oriented joints (z along the viewing direction).
        bones: (B, 2) joint index pairs (parent, child).
        min_out_of_plane: a bone counts only where its true depth component is at least this
            fraction of its length (a bone nearly parallel to the image has no depth sign).

    Returns:
        flipped (N, B) and counted (N, B) booleans; flipped implies counted.
    """
    true_bone = gt[:, bones[:, 1]] - gt[:, bones[:, 0]]
    pred_bone = pred[:, bones[:, 1]] - pred[:, bones[:, 0]]
    counted = np.abs(true_bone[..., 2]) >= min_out_of_plane * np.linalg.norm(true_bone, axis=-1)
    flipped = counted & (np.sign(pred_bone[..., 2]) != np.sign(true_bone[..., 2]))
    return flipped, counted
