"""The segment-scale body model (paper section 3) and the weak-perspective camera.

The names below load on first use (PEP 562), so that importing a torch-free submodule such as
:mod:`dlearn.body.io` does not import torch through this package.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from dlearn.lazy import lazy_attributes

if TYPE_CHECKING:
    from dlearn.body.camera import (
        rotation_determinant,
        rotation_from_9d,
        weak_perspective_depth,
        weak_perspective_project,
    )
    from dlearn.body.io import BodyModelData, BodyModelFileError, load_body_model, write_smpl_pickle
    from dlearn.body.model import BodyModel, BodyModelOutput

_WHERE = {
    "BodyModel": "dlearn.body.model",
    "BodyModelData": "dlearn.body.io",
    "BodyModelFileError": "dlearn.body.io",
    "BodyModelOutput": "dlearn.body.model",
    "load_body_model": "dlearn.body.io",
    "rotation_determinant": "dlearn.body.camera",
    "rotation_from_9d": "dlearn.body.camera",
    "weak_perspective_depth": "dlearn.body.camera",
    "weak_perspective_project": "dlearn.body.camera",
    "write_smpl_pickle": "dlearn.body.io",
}
__all__ = [
    "BodyModel",
    "BodyModelData",
    "BodyModelFileError",
    "BodyModelOutput",
    "load_body_model",
    "rotation_determinant",
    "rotation_from_9d",
    "weak_perspective_depth",
    "weak_perspective_project",
    "write_smpl_pickle",
]

__getattr__ = lazy_attributes(__name__, _WHERE)
