"""The regressor of paper section 5: a ResNet that predicts the registration's theta from a crop.

theta = [pose a (23 x 3 axis-angle), segment scales s (24), camera rotation (9 numbers,
Gram-Schmidt gives the rotation), camera scale (1), 2D translation (2)]: 105 numbers, laid
out as :data:`THETA_SLICES`. The head predicts theta as an offset from a reference theta (the
mean of the training registrations, stored in the model), so an untrained head already
predicts a plausible body and camera.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torchvision
from torch import Tensor, nn

from dlearn.errors import InputError
from dlearn.registration.fit import Params

#: Where each parameter lives in the 105-vector theta.
THETA_SLICES: OrderedDict[str, slice] = OrderedDict(
    pose=slice(0, 69), scales=slice(69, 93), rotation=slice(93, 102), cam_scale=slice(102, 103), translation=slice(103, 105)
)
THETA_SIZE = 105
BACKBONES = ("resnet18", "resnet34", "resnet50")
#: ImageNet normalisation, which torchvision's pretrained weights expect.
IMAGE_MEAN = (0.485, 0.456, 0.406)
IMAGE_STD = (0.229, 0.224, 0.225)


class WeightsError(InputError):
    """A pretrained weights file is missing or does not fit the backbone; names the file."""


def theta_from_params(params: Params) -> Tensor:
    """(B, 105) theta of :class:`Params` (pose, scales, raw rotation, camera scale, translation)."""
    b = params.pose.shape[0]
    return torch.cat(
        [
            params.pose.reshape(b, 69),
            params.scales.reshape(b, 24),
            params.rotation.reshape(b, 9),
            params.cam_scale.reshape(b, 1),
            params.translation.reshape(b, 2),
        ],
        dim=1,
    )


def params_from_theta(theta: Tensor) -> Params:
    """(B, 105) theta -> :class:`Params` (views, gradients flow)."""
    s = THETA_SLICES
    return Params(
        pose=theta[:, s["pose"]].reshape(-1, 23, 3),
        scales=theta[:, s["scales"]],
        rotation=theta[:, s["rotation"]],
        cam_scale=theta[:, s["cam_scale"]][:, 0],
        translation=theta[:, s["translation"]],
    )


def theta_from_arrays(arrays: dict[str, np.ndarray]) -> np.ndarray:
    """(N, 105) float32 theta from a registration store's arrays (rotation (N, 3, 3) or (N, 9))."""
    n = len(arrays["pose"])
    return np.concatenate(
        [
            np.asarray(arrays["pose"]).reshape(n, 69),
            np.asarray(arrays["scales"]).reshape(n, 24),
            np.asarray(arrays["rotation"]).reshape(n, 9),
            np.asarray(arrays["cam_scale"]).reshape(n, 1),
            np.asarray(arrays["cam_translation"]).reshape(n, 2),
        ],
        axis=1,
    ).astype(np.float32)


@dataclass(frozen=True)
class RegressorSpec:
    """What builds the network (stored with its weights).

    Attributes:
        backbone: resnet18, resnet34 or resnet50.
        head_hidden: width of the head's hidden layer.
    """

    backbone: str = "resnet18"
    head_hidden: int = 512


class Regressor(nn.Module):
    """ResNet backbone (global average pooled features) and a two-layer head predicting theta.

    Input: (B, 3, S, S) float images in [0, 1] (normalised inside with the ImageNet statistics).
    Output: (B, 105) theta = reference theta + head(features).
    """

    def __init__(self, spec: RegressorSpec, reference_theta: Tensor | None = None):
        super().__init__()
        if spec.backbone not in BACKBONES:
            raise ValueError(f"backbone must be one of {', '.join(BACKBONES)}, got {spec.backbone!r}")
        self.spec = spec
        backbone = getattr(torchvision.models, spec.backbone)(weights=None)
        features = backbone.fc.in_features
        backbone.fc = nn.Identity()
        self.backbone = backbone
        self.head = nn.Sequential(
            nn.Linear(features, spec.head_hidden), nn.ReLU(inplace=True), nn.Linear(spec.head_hidden, THETA_SIZE)
        )
        # A small last layer: the untrained network predicts (close to) the reference theta.
        nn.init.normal_(self.head[-1].weight, std=1e-3)
        nn.init.zeros_(self.head[-1].bias)
        reference = torch.zeros(THETA_SIZE) if reference_theta is None else reference_theta.float()
        self.register_buffer("reference_theta", reference.clone())
        self.register_buffer("image_mean", torch.tensor(IMAGE_MEAN).reshape(1, 3, 1, 1))
        self.register_buffer("image_std", torch.tensor(IMAGE_STD).reshape(1, 3, 1, 1))

    def forward(self, images: Tensor) -> Tensor:
        x = (images - self.image_mean.to(images.dtype)) / self.image_std.to(images.dtype)
        return self.reference_theta + self.head(self.backbone(x)).float()


def load_backbone_weights(model: Regressor, path: Path) -> None:
    """Load a torchvision ResNet state dict (e.g. ImageNet weights) into the backbone; its
    classifier (``fc.*``) is dropped.

    Raises:
        WeightsError: the file does not exist, is unreadable, or its tensors do not match.
    """
    path = Path(path)
    if not path.is_file():
        raise WeightsError(
            f"regressor.pretrained: weights file {path} does not exist (give torchvision's "
            f"{model.spec.backbone} state dict, or 'none' to train from scratch)"
        )
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises several types for foreign files
        raise WeightsError(f"{path}: unreadable weights file ({type(exc).__name__}: {exc})") from exc
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    if not isinstance(state, dict):
        raise WeightsError(f"{path}: not a state dict")
    state = {k: v for k, v in state.items() if not k.startswith("fc.")}
    try:
        missing, unexpected = model.backbone.load_state_dict(state, strict=False)
    except RuntimeError as exc:  # shape mismatch: another architecture
        raise WeightsError(f"{path}: does not fit {model.spec.backbone} ({exc})") from exc
    if missing or unexpected:
        raise WeightsError(
            f"{path}: does not fit {model.spec.backbone}: {len(missing)} missing keys (e.g. "
            f"{missing[:3]}), {len(unexpected)} unexpected (e.g. {unexpected[:3]})"
        )
