"""Gradient-based deformable registration of a batch of samples (paper section 4).

Per sample, theta = [pose a (23 x 3), segment scales s (24), camera rotation M (9 numbers,
Gram-Schmidt), camera scale, 2D translation] minimises
    w_dense L_dense + w_KP L_KP + w_scale L_scale + w_joint L_joint + w_det L_det
(terms in :mod:`dlearn.registration.losses`) with Adam. Every sample has its own parameters
and its own loss, so a batch is many independent problems solved in one vectorised loop.
Only the vertices that have correspondences are skinned, per sample; the COCO keypoints come
from the skinning transforms (:class:`dlearn.body.keypoints.CocoKeypoints`).

Segment scales are optimised as log-scales, so they stay positive whatever the steps (a
negative scale would mirror its segment; a raw scale driven below the loss's clamp has no
gradient). Adam's step in log-scale is about ``lr`` in relative terms, the same step as on
raw scales near s = 1. A start scale <= :data:`MIN_START_SCALE` (e.g. a regressor's negative
prediction) starts at that value.

Robustness: each sample keeps the best (lowest-loss, finite) parameters it reached; a sample
whose loss becomes non-finite is reset to them, frozen and flagged, without touching the
others.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from dlearn.body.camera import camera_points, rotation_from_9d
from dlearn.body.keypoints import ROOT_KEYPOINTS, CocoKeypoints
from dlearn.body.model import BodyModel, VertexSelection
from dlearn.params import Params
from dlearn.registration import losses
from dlearn.registration.options import LossWeights, RegistrationOptions

#: Camera rotation of an upright person facing the camera (image y down, camera z away).
UPRIGHT_FACING = np.diag([1.0, -1.0, -1.0])

#: Start scales below this (zero, negative, tiny) start here: the log-scale needs s > 0.
MIN_START_SCALE = 1e-2


@dataclass
class FitBatch:
    """The data of B samples, padded to the batch's largest point count.

    Attributes:
        vertex: (B, P) matched body vertex of each point (0 for padding).
        point: (B, P, 2) annotated points, normalised crop coordinates.
        point_mask: (B, P) 1 for real points.
        keypoints: (B, 17, 2) annotated COCO keypoints.
        keypoint_mask: (B, 17) 1 where labelled.
        depth: (B, 17) cGAN root-relative depths.
        depth_mask: (B, 17) 1 where a cGAN depth is used.
    """

    vertex: Tensor
    point: Tensor
    point_mask: Tensor
    keypoints: Tensor
    keypoint_mask: Tensor
    depth: Tensor
    depth_mask: Tensor


@dataclass
class Prediction:
    """What the model predicts for a batch under some parameters."""

    dense: Tensor  # (B, P, 2) projected matched vertices
    keypoints: Tensor  # (B, 17, 2) projected keypoints
    keypoint_depth: Tensor  # (B, 17) root-relative depths
    joints: Tensor  # (B, 24, 3) joints in the body frame
    keypoints3d: Tensor  # (B, 17, 3) COCO keypoints in the body frame


def evaluated_vertices(model: BodyModel, batch: FitBatch) -> VertexSelection:
    """The vertices a batch needs: each sample's corresponded vertices."""
    return model.select(batch.vertex)


def predict(
    model: BodyModel, params: Params, batch: FitBatch, vertices: VertexSelection, keypoints: CocoKeypoints
) -> Prediction:
    """Pose the body, then project the matched vertices and the keypoints (paper eq. 1).

    ``vertices`` is :func:`evaluated_vertices` of the batch (gathered once per fit).
    """
    p = batch.vertex.shape[1]
    out = model(params.pose, params.scales, vertex_ids=vertices)
    kp3d = keypoints(out, params.pose)
    rotation = rotation_from_9d(params.rotation)
    cam = camera_points(torch.cat([out.vertices[:, :p], kp3d], dim=1), rotation, params.cam_scale)
    projected = cam[..., :2] + params.translation[:, None, :]
    depth = cam[:, p:, 2]
    root_depth = depth[:, list(ROOT_KEYPOINTS)].mean(-1, keepdim=True)
    return Prediction(projected[:, :p], projected[:, p:], depth - root_depth, out.joints, kp3d)


def data_terms(
    model: BodyModel, params: Params, batch: FitBatch, vertices: VertexSelection, keypoints: CocoKeypoints
) -> tuple[dict[str, Tensor], Prediction]:
    """The terms that compare the body with the annotations, L_dense and L_KP, (B,) each (the
    regressor's loss uses them too), and the prediction they were computed from."""
    pred = predict(model, params, batch, vertices, keypoints)
    terms = {
        "dense": losses.dense_loss(pred.dense, batch.point, batch.point_mask),
        "kp": losses.keypoint_loss(
            pred.keypoints, batch.keypoints, batch.keypoint_mask, pred.keypoint_depth, batch.depth, batch.depth_mask
        ),
    }
    return terms, pred


def loss_terms(
    model: BodyModel,
    params: Params,
    batch: FitBatch,
    vertices: VertexSelection,
    keypoints: CocoKeypoints,
    scale_anchor: float,
) -> tuple[dict[str, Tensor], Prediction]:
    """Each loss term per sample, (B,) each, and the prediction they were computed from."""
    terms, pred = data_terms(model, params, batch, vertices, keypoints)
    terms = {
        **terms,
        "scale": losses.scale_loss(params.scales, model.parents, scale_anchor),
        "joint": losses.joint_loss(params.pose),
        "det": losses.det_loss(params.rotation),
    }
    return terms, pred


def weighted_total(terms: dict[str, Tensor], weights: LossWeights) -> Tensor:
    return sum(getattr(weights, name) * value for name, value in terms.items())  # type: ignore[return-value]


def data_loss(terms: dict[str, Tensor], weights: LossWeights) -> Tensor:
    """The fit to the annotations, w_dense L_dense + w_KP L_KP: what keep-best compares."""
    return weights.dense * terms["dense"] + weights.kp * terms["kp"]


@dataclass
class FitResult:
    params: Params
    terms: dict[str, Tensor]  # final per-term losses (B,) each, unweighted
    total: Tensor  # (B,) weighted total
    joints: Tensor  # (B, 24, 3) body frame
    keypoints: Tensor  # (B, 17, 3) COCO keypoints (the fit's keypoint model), body frame
    non_finite: Tensor  # (B,) bool: the loss became non-finite at some step
    steps: int


def _rows(mask: Tensor, like: Tensor) -> Tensor:
    """(B,) sample mask broadcastable against a (B, ...) parameter tensor."""
    return mask.reshape(-1, *([1] * (like.dim() - 1)))


def _optimised(params: Params) -> list[Tensor]:
    """The tensors Adam moves: the parameters with the segment scales as log-scales."""
    log_scales = params.scales.clamp_min(MIN_START_SCALE).log()
    return [params.pose, log_scales, params.rotation, params.cam_scale, params.translation]


def _params_of(optimised: list[Tensor]) -> Params:
    """:class:`Params` of :func:`_optimised` tensors (scales = exp(log-scales) > 0)."""
    pose, log_scales, rotation, cam_scale, translation = optimised
    return Params(pose, log_scales.exp(), rotation, cam_scale, translation)


def fit(model: BodyModel, init: Params, batch: FitBatch, keypoints: CocoKeypoints, options: RegistrationOptions) -> FitResult:
    """Minimise the registration loss for every sample of the batch from ``init``."""
    leaves = [t.detach().clone() for t in _optimised(init)]
    for t in leaves:
        t.requires_grad_(True)
    optimiser = torch.optim.Adam(leaves, lr=options.lr)
    vertices = evaluated_vertices(model, batch)
    best = [t.detach().clone() for t in leaves]
    best_loss = torch.full((batch.vertex.shape[0],), float("inf"), dtype=batch.point.dtype, device=batch.point.device)
    frozen = torch.zeros_like(best_loss, dtype=torch.bool)
    history: list[float] = []
    step = 0
    for step in range(1, options.steps + 1):
        optimiser.zero_grad(set_to_none=True)
        terms, _ = loss_terms(model, _params_of(leaves), batch, vertices, keypoints, options.scale_anchor)
        total = weighted_total(terms, options.weights)
        finite = torch.isfinite(total)
        with torch.no_grad():
            frozen |= ~finite
            improved = finite & ~frozen & (total < best_loss)
            best_loss = torch.where(improved, total, best_loss)
            for keep, current in zip(best, leaves):
                keep.copy_(torch.where(_rows(improved, keep), current, keep))
        # A diverged sample contributes nothing (torch.where keeps NaN out of the sum).
        torch.where(finite & ~frozen, total, torch.zeros_like(total)).sum().backward()
        optimiser.step()
        if bool(frozen.any()):
            with torch.no_grad():
                for keep, current in zip(best, leaves):
                    current.copy_(torch.where(_rows(frozen, keep), keep, current))  # Adam's momentum must not move it
        history.append(float(best_loss[~frozen].sum()) if bool((~frozen).any()) else 0.0)
        if step >= 2 * options.patience and step % options.patience == 0:
            before, now = history[-options.patience - 1], history[-1]
            if before - now <= options.tolerance * max(abs(before), 1e-12):
                break
    best_params = _params_of(best)
    with torch.no_grad():
        terms, pred = loss_terms(model, best_params, batch, vertices, keypoints, options.scale_anchor)
        total = weighted_total(terms, options.weights)
    terms = {k: v.detach() for k, v in terms.items()}
    return FitResult(best_params, terms, total, pred.joints, pred.keypoints3d, frozen.clone(), step)


def initial_params(
    template_points: list[np.ndarray], points: list[np.ndarray], parts: list[np.ndarray], rigid_parts: tuple[int, ...]
) -> dict[str, np.ndarray]:
    """Round 0 start: T-pose, unit scales, and a camera fitted to the rigid parts' points.

    The camera comes from a least-squares affine fit p ~ A v + t of the annotated points of the
    rigid parts (torso) to their matched template vertices, with A's rows orthonormalised into
    the first two rows of R (the third is their cross product, det +1). This decides between a
    person seen from the front and from the back before the optimisation starts, which a fixed
    facing-camera start cannot (beyond the paper, which starts facing the camera). Samples with
    too few rigid points start upright and facing the camera, scaled to the crop.

    Args:
        template_points: per sample (P_i, 3) rest-pose positions of the matched vertices.
        points: per sample (P_i, 2) annotated positions.
        parts: per sample (P_i,) part index of each point.
        rigid_parts: part indices whose points enter the camera fit.

    Returns:
        Arrays rotation (N, 9), cam_scale (N,), translation (N, 2).
    """
    n = len(points)
    rotation = np.tile(UPRIGHT_FACING.reshape(1, 9), (n, 1))
    cam_scale = np.full(n, 0.9)  # a 1.8 m body over most of a crop of side 2 (box_scale 1.2)
    translation = np.zeros((n, 2))
    for i, (v, p, part) in enumerate(zip(template_points, points, parts)):
        rigid = np.isin(part, rigid_parts)
        if rigid.sum() < 8:
            continue
        design = np.concatenate([v[rigid], np.ones((rigid.sum(), 1))], axis=1)
        solution, *_ = np.linalg.lstsq(design, p[rigid], rcond=None)
        a = solution[:3].T  # (2, 3)
        r1 = a[0] / max(np.linalg.norm(a[0]), 1e-9)
        r2 = a[1] - (r1 @ a[1]) * r1
        r2 = r2 / max(np.linalg.norm(r2), 1e-9)
        scale = 0.5 * (np.linalg.norm(a[0]) + np.linalg.norm(a[1]))
        if not np.isfinite(scale) or scale <= 1e-3:
            continue
        rotation[i] = np.stack([r1, r2, np.cross(r1, r2)]).reshape(9)
        cam_scale[i] = scale
        translation[i] = solution[3]
    return {"rotation": rotation, "cam_scale": cam_scale, "translation": translation}
