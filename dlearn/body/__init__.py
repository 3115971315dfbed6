"""The segment-scale body model (paper section 3) and the weak-perspective camera."""

from dlearn.body.camera import (
    rotation_determinant,
    rotation_from_9d,
    weak_perspective_depth,
    weak_perspective_project,
)
from dlearn.body.io import BodyModelData, BodyModelFileError, load_body_model, write_smpl_pickle
from dlearn.body.model import BodyModel, BodyModelOutput

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
