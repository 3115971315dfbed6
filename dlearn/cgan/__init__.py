"""Kudo et al.'s cGAN: 3D key point depths from 2D key points, learnt from 2D poses only.

:mod:`dlearn.cgan.model` holds the networks and the geometry, :mod:`dlearn.cgan.train` the
`cgan_train` and `cgan_predict` stages, :mod:`dlearn.cgan.evaluate` the accuracy against 3D
ground truth. The toy 2D/3D data sets the tests train it on are in ``tests/cgan_toy.py``. The
names below load on first use (PEP 562): importing the light :mod:`dlearn.cgan.options` does not import torch.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from dlearn.lazy import lazy_attributes

if TYPE_CHECKING:
    from dlearn.cgan.evaluate import evaluate_depths
    from dlearn.cgan.options import CganOptions
    from dlearn.cgan.train import CheckpointError, predict_depths, train_cgan

_WHERE = {
    "CganOptions": "dlearn.cgan.options",
    "CheckpointError": "dlearn.cgan.train",
    "evaluate_depths": "dlearn.cgan.evaluate",
    "predict_depths": "dlearn.cgan.train",
    "train_cgan": "dlearn.cgan.train",
}
__all__ = [
    "CganOptions",
    "CheckpointError",
    "evaluate_depths",
    "predict_depths",
    "train_cgan",
]

__getattr__ = lazy_attributes(__name__, _WHERE)
