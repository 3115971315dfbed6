"""The regressor of paper section 5: a ConvNet that predicts the registration's theta from a crop.

theta = [pose a (23 x 3 axis-angle), segment scales s (24), camera rotation (9 numbers,
Gram-Schmidt gives the rotation), camera scale (1), 2D translation (2)]: 105 numbers, laid
out as :data:`THETA_SLICES`. The head predicts theta as an offset from a reference theta (the
mean of the training registrations, stored in the model), so an untrained head already
predicts a plausible body and camera.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor, nn

from dlearn.errors import InputError
from dlearn.params import (  # the parameter vector, re-exported: its former home
    THETA_SIZE,
    THETA_SLICES,  # noqa: F401
    params_from_theta,  # noqa: F401
    theta_from_arrays,  # noqa: F401
    theta_from_params,  # noqa: F401
)

#: torchvision ResNets (the paper's is resnet50) and dlearn's small ConvNet at widths 16 and 32
#: (``tiny16``, ``tiny32``: see :class:`SmallConvNet` and docs/regressor_study.md).
BACKBONES = ("tiny16", "tiny32", "resnet18", "resnet34", "resnet50")
#: ImageNet normalisation, which torchvision's pretrained weights expect.
IMAGE_MEAN = (0.485, 0.456, 0.406)
IMAGE_STD = (0.229, 0.224, 0.225)


class WeightsError(InputError):
    """A pretrained weights file is missing or does not fit the backbone; names the file."""


@dataclass(frozen=True)
class RegressorSpec:
    """What builds the network (stored with its weights).

    Attributes:
        backbone: tiny16, tiny32, resnet18, resnet34 or resnet50.
        head_hidden: width of the head's hidden layer.
    """

    backbone: str = "resnet18"
    head_hidden: int = 512


class SmallConvNet(nn.Module):
    """A small from-scratch backbone for low-resolution crops: four stages of two 3x3
    conv-BN-ReLU (the first of stride 2) of widths w, 2w, 4w, 8w, then average pooling to a
    ``grid`` x ``grid`` map, flattened (``tiny16``: grid 1, global average pooling).

    With w = 16 (``tiny16``) it has 0.35 M parameters and one forward-backward of 16 crops of
    64 px costs ~12x less CPU time than ResNet18; trained from scratch on a few thousand crops
    it learns pose where ResNet18 does not in the same time (docs/regressor_study.md). A 3 x 3
    grid, which keeps where in the crop each feature is, did not learn better (study row T25),
    nor did twice the width (``tiny32``, 1.3 M parameters, ~1.9x the time a step; study section
    "Test split, data and steps").

    Input (B, 3, S, S); output (B, 8w * grid**2).
    """

    def __init__(self, width: int = 16, grid: int = 1):
        super().__init__()
        layers: list[nn.Module] = []
        c_in = 3
        for stage in range(4):
            c_out = width * 2**stage
            for stride in (2, 1):
                layers += [nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU(inplace=True)]
                c_in = c_out
        self.features = nn.Sequential(*layers, nn.AdaptiveAvgPool2d(grid), nn.Flatten())
        self.out_features = c_in * grid * grid

    def forward(self, x: Tensor) -> Tensor:
        return self.features(x)


def build_backbone(name: str) -> tuple[nn.Module, int]:
    """The backbone called ``name`` (one of :data:`BACKBONES`, untrained) and its feature width."""
    if name.startswith("tiny"):  # tiny16, tiny32: the width
        net = SmallConvNet(int(name.removeprefix("tiny")))
        return net, net.out_features
    # Imported here: torchvision's import pulls in torch._dynamo (~4 s per stage start on 2 cores),
    # which the tiny16 backbone and the stages that only read theta do not need.
    import torchvision

    resnet = getattr(torchvision.models, name)(weights=None)
    features = resnet.fc.in_features
    resnet.fc = nn.Identity()
    return resnet, features


class Regressor(nn.Module):
    """ConvNet backbone (global average pooled features) and a two-layer head predicting theta.

    Input: (B, 3, S, S) float images in [0, 1] (normalised inside with the ImageNet statistics).
    Output: (B, 105) theta = reference theta + head(features).
    """

    def __init__(self, spec: RegressorSpec, reference_theta: Tensor | None = None):
        super().__init__()
        if spec.backbone not in BACKBONES:
            raise ValueError(f"backbone must be one of {', '.join(BACKBONES)}, got {spec.backbone!r}")
        self.spec = spec
        self.backbone, features = build_backbone(spec.backbone)
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
    if not model.spec.backbone.startswith("resnet"):
        raise WeightsError(
            f"regressor.pretrained: {path}: the {model.spec.backbone} backbone has no pretrained weights "
            "(they exist for the torchvision ResNets); give 'none' or choose a resnet backbone"
        )
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
