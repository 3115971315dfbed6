"""The parameter vector theta of a body and its camera, in its three forms.

- :class:`Params`: tensors of B samples, what the registration optimises and the regressor's head
  outputs (pose, segment scales, raw camera rotation, camera scale, 2D translation);
- theta: the (B, 105) vector the regressor predicts, laid out as :data:`THETA_SLICES`;
- store arrays: the registration and prediction stores' :data:`PARAM_KEYS` (and ``status``,
  codes in :data:`STATUS`).

The registration, the regressor and the evaluation import it from here, not from each other.
numpy only at import (torch is imported by the functions that build tensors), so the stages that
only read stores do not load torch through it.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import torch
    from torch import Tensor

#: The arrays of a registration or prediction store that hold theta.
PARAM_KEYS = ("pose", "scales", "rotation", "cam_scale", "cam_translation")
#: A sample's ``status`` in a registration or prediction store.
STATUS = {"ok": 0, "kept_previous": 1, "no_correspondences": 2, "non_finite": 3}

#: Where each parameter lives in the 105-vector theta.
THETA_SLICES: OrderedDict[str, slice] = OrderedDict(
    pose=slice(0, 69), scales=slice(69, 93), rotation=slice(93, 102), cam_scale=slice(102, 103), translation=slice(103, 105)
)
THETA_SIZE = 105


def status_counts(status: np.ndarray) -> dict[str, int]:
    """Samples per :data:`STATUS` name."""
    return {name: int((status == code).sum()) for name, code in STATUS.items()}


@dataclass
class Params:
    """Body and camera parameters of B samples (the registration's theta)."""

    pose: Tensor  # (B, 23, 3)
    scales: Tensor  # (B, 24)
    rotation: Tensor  # (B, 9) raw, row-major; Gram-Schmidt gives the rotation
    cam_scale: Tensor  # (B,)
    translation: Tensor  # (B, 2)

    def tensors(self) -> list[Tensor]:
        return [self.pose, self.scales, self.rotation, self.cam_scale, self.translation]

    def detach(self) -> Params:
        return Params(*(t.detach().clone() for t in self.tensors()))


def params_from_arrays(arrays: dict[str, np.ndarray], device: torch.device, dtype: torch.dtype) -> Params:
    """:class:`Params` of a store's :data:`PARAM_KEYS` arrays (rotation (N, 3, 3) or (N, 9))."""
    import torch

    def t(x: np.ndarray) -> torch.Tensor:
        return torch.as_tensor(np.asarray(x, dtype=np.float64), dtype=dtype, device=device)

    return Params(
        pose=t(arrays["pose"]).reshape(-1, 23, 3),
        scales=t(arrays["scales"]),
        rotation=t(arrays["rotation"]).reshape(-1, 9),
        cam_scale=t(arrays["cam_scale"]),
        translation=t(arrays["cam_translation"]),
    )


def theta_from_params(params: Params) -> Tensor:
    """(B, 105) theta of :class:`Params` (pose, scales, raw rotation, camera scale, translation)."""
    import torch

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
