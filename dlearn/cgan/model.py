"""Kudo et al.'s cGAN (3D pose from 2D key points, learnt from 2D only): networks and geometry.

Frames. The input is 17 COCO key points in normalised crop coordinates (x right, y DOWN, see
:mod:`dlearn.data.crops`). :func:`normalise_2d` centres them on the root (mid-hip) and divides
by their RMS distance from it; the generator predicts one depth per key point in these
normalised units, root-relative (the mean of the two hip depths is subtracted), with the
camera's convention: z points away from the viewer, smaller = closer. Depth in crop units =
normalised depth * scale.

The discriminator sees 2D poses: real ones, and generated 3D poses (x, y, z) rotated about the
vertical (image y) axis by a random angle, x' = x cos t + z sin t, and projected to (x', y).
Every 2D pose it sees (real or fake) goes through the same :func:`normalise_2d`, so neither
position nor size tells them apart, and the same visibility mask: unlabelled key points are
zero-filled AND flagged by an explicit mask input, for the generator and the discriminator.

Rotating and projecting cannot tell a 3D pose P from its depth mirror (x, y, -z): the mirror
rotated by t projects like P rotated by -t. The GAN loss alone therefore leaves the global
depth sign open; :func:`chirality` (the nose lies in front of the ears along the torso's
forward direction, forward = left x up) is a weak 2D-free geometric prior that settles it.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from dlearn.body.keypoints import COCO_FLIP, ROOT_KEYPOINTS
from dlearn.densepose.coco import COCO_KEYPOINT_NAMES

NUM_KEYPOINTS = len(COCO_KEYPOINT_NAMES)  # 17
_K = {name: i for i, name in enumerate(COCO_KEYPOINT_NAMES)}
_EPS = 1e-6


def root_of(xy: Tensor, mask: Tensor) -> Tensor:
    """Root = mean of the labelled hips; mean of all labelled key points when no hip is labelled.

    Args:
        xy: (B, 17, D) points; mask: (B, 17) bool, labelled.

    Returns:
        (B, D) root positions.
    """
    w = mask.to(xy.dtype)
    hips = torch.zeros_like(w)
    hips[:, list(ROOT_KEYPOINTS)] = w[:, list(ROOT_KEYPOINTS)]
    has_hip = hips.sum(1, keepdim=True) > 0
    weights = torch.where(has_hip, hips, w)
    weights = weights / weights.sum(1, keepdim=True).clamp_min(_EPS)
    return (weights[..., None] * xy).sum(1)


def normalise_2d(xy: Tensor, mask: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """Centre on the root and divide by the RMS distance of the labelled key points from it.

    Args:
        xy: (B, 17, 2) key points (any units); mask: (B, 17) bool, labelled.

    Returns:
        pose (B, 17, 2) normalised, unlabelled entries exactly 0; root (B, 2); scale (B,) in
        the units of ``xy`` (clamped away from 0). ``xy[m] == pose[m] * scale + root``.
    """
    w = mask.to(xy.dtype)
    root = root_of(xy, mask)
    offsets = (xy - root[:, None]) * w[..., None]
    count = w.sum(1).clamp_min(1.0)
    scale = ((offsets**2).sum((1, 2)) / count).sqrt().clamp_min(_EPS)
    return offsets / scale[:, None, None], root, scale


def rotate_project(points: Tensor, angle: Tensor) -> Tensor:
    """Rotate 3D points about the vertical (y) axis through the origin and project orthographically.

    x' = x cos t + z sin t, y' = y (the rotation R_y(t) applied to (x, y, z), first two rows).

    Args:
        points: (B, P, 3); angle: (B,) radians.

    Returns:
        (B, P, 2).
    """
    c, s = torch.cos(angle)[:, None], torch.sin(angle)[:, None]
    x = points[..., 0] * c + points[..., 2] * s
    return torch.stack([x, points[..., 1]], dim=-1)


def network_input(pose: Tensor, mask: Tensor) -> Tensor:
    """(B, 17, 2) normalised pose and (B, 17) mask -> (B, 51): masked coordinates, then the mask."""
    m = mask.to(pose.dtype)
    return torch.cat([(pose * m[..., None]).flatten(1), m], dim=1)


class ResidualBlock(nn.Module):
    """Two linear layers with leaky ReLU and an identity skip: act(x + W2 act(W1 x))."""

    def __init__(self, width: int, slope: float = 0.2):
        super().__init__()
        self.lin1 = nn.Linear(width, width)
        self.lin2 = nn.Linear(width, width)
        self.act = nn.LeakyReLU(slope)

    def forward(self, x: Tensor) -> Tensor:
        return self.act(x + self.lin2(self.act(self.lin1(x))))


class _MLP(nn.Module):
    def __init__(self, in_size: int, out_size: int, hidden_size: int, num_blocks: int):
        super().__init__()
        self.inp = nn.Linear(in_size, hidden_size)
        self.act = nn.LeakyReLU(0.2)
        self.blocks = nn.Sequential(*[ResidualBlock(hidden_size) for _ in range(num_blocks)])
        self.out = nn.Linear(hidden_size, out_size)

    def forward(self, x: Tensor) -> Tensor:
        return self.out(self.blocks(self.act(self.inp(x))))


class Generator(nn.Module):
    """Normalised 2D pose + mask -> root-relative normalised depth per key point.

    Args:
        hidden_size: width of the MLP; num_blocks: residual blocks.
    """

    def __init__(self, hidden_size: int = 1024, num_blocks: int = 2, symmetric: bool = True):
        super().__init__()
        self.mlp = _MLP(3 * NUM_KEYPOINTS, NUM_KEYPOINTS, hidden_size, num_blocks)
        self.symmetric = symmetric
        self.register_buffer("flip", torch.as_tensor(COCO_FLIP), persistent=False)

    def forward(self, pose: Tensor, mask: Tensor) -> Tensor:
        """(B, 17, 2), (B, 17) bool -> (B, 17) depths, mean of the two hip depths = 0.

        With ``symmetric``, the output is the mean of the MLP's depths for the pose and for
        its mirror image (x -> -x, left/right swapped), mapped back: mirroring a person keeps
        every depth, so the generator is exactly mirror-equivariant and cannot learn a
        left/right bias.
        """
        if self.symmetric:
            mirrored = pose[:, self.flip] * torch.tensor([-1.0, 1.0], dtype=pose.dtype, device=pose.device)
            # One MLP pass over the pose and its mirror (one batch of 2B: half the calls).
            both = self.mlp(network_input(torch.cat([pose, mirrored]), torch.cat([mask, mask[:, self.flip]])))
            depth, depth_mirrored = both.split(pose.shape[0])
            depth = (depth + depth_mirrored[:, self.flip]) / 2
        else:
            depth = self.mlp(network_input(pose, mask))
        return depth - depth[:, list(ROOT_KEYPOINTS)].mean(1, keepdim=True)


class Discriminator(nn.Module):
    """Normalised 2D pose + mask -> one logit (real > 0)."""

    def __init__(self, hidden_size: int = 1024, num_blocks: int = 2):
        super().__init__()
        self.mlp = _MLP(3 * NUM_KEYPOINTS, 1, hidden_size, num_blocks)

    def forward(self, pose: Tensor, mask: Tensor) -> Tensor:
        """(B, 17, 2), (B, 17) bool -> (B,) logits."""
        return self.mlp(network_input(pose, mask))[:, 0]


def lift(pose: Tensor, depth: Tensor) -> Tensor:
    """(B, 17, 2) normalised pose and (B, 17) depth -> (B, 17, 3) 3D pose in the same units."""
    return torch.cat([pose, depth[..., None]], dim=-1)


def fake_views(pose: Tensor, depth: Tensor, mask: Tensor, angle: Tensor) -> Tensor:
    """Generated 3D poses rotated by ``angle`` about the vertical axis, projected, renormalised.

    Args:
        pose: (B, 17, 2) normalised input; depth: (B, 17) generated; mask: (B, 17); angle: (B,).

    Returns:
        (B, 17, 2) normalised 2D poses (masked), what the discriminator sees as fakes.
    """
    projected = rotate_project(lift(pose, depth), angle)
    return normalise_2d(projected, mask)[0]


CHIRALITY_KEYPOINTS = tuple(
    _K[n]
    for n in ("nose", "left_ear", "right_ear", "left_shoulder", "right_shoulder", "left_hip", "right_hip")
)


def chirality(points: Tensor) -> Tensor:
    """Cosine between the head direction (nose - mid-ears) and the torso's forward direction.

    In a right-handed frame (the camera's: x right, y down, z away) a body's forward direction
    is left x up, with left = (left - right shoulder) + (left - right hip) and up = mid-shoulder
    - mid-hip. A real person's nose lies in front of the ears (positive cosine); the depth
    mirror of a pose has the opposite sign.

    Args:
        points: (B, 17, 3).

    Returns:
        (B,) cosines in [-1, 1].
    """
    k = _K
    left = (
        points[:, k["left_shoulder"]]
        - points[:, k["right_shoulder"]]
        + points[:, k["left_hip"]]
        - points[:, k["right_hip"]]
    )
    up = (
        points[:, k["left_shoulder"]]
        + points[:, k["right_shoulder"]]
        - points[:, k["left_hip"]]
        - points[:, k["right_hip"]]
    ) / 2
    forward = torch.linalg.cross(left, up)
    head = points[:, k["nose"]] - (points[:, k["left_ear"]] + points[:, k["right_ear"]]) / 2
    return (forward * head).sum(-1) / (forward.norm(dim=-1) * head.norm(dim=-1)).clamp_min(_EPS)
