"""Kudo et al.'s cGAN: 3D key point depths from 2D key points, learnt from 2D poses only.

:mod:`dlearn.cgan.model` holds the networks and the geometry, :mod:`dlearn.cgan.train` the
`cgan_train` and `cgan_predict` stages, :mod:`dlearn.cgan.evaluate` the accuracy against 3D
ground truth. The toy 2D/3D data sets the tests train it on are in ``tests/cgan_toy.py``.
"""

from dlearn.cgan.evaluate import evaluate_depths
from dlearn.cgan.train import CganOptions, CheckpointError, predict_depths, train_cgan

__all__ = ["CganOptions", "CheckpointError", "evaluate_depths", "predict_depths", "train_cgan"]
