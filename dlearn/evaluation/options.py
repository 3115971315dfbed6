"""Options of the evaluate, report and h36m_crops stages: standard library only, so that
`dlearn --help` and these stages' parsers do not load the body model or torch."""

from __future__ import annotations

from dataclasses import dataclass

from dlearn.data.crop_options import CropOptions
from dlearn.options import option

#: The bone-scaled MPJPE's variants (see :func:`dlearn.evaluation.evaluate.check_bone_scaling`).
BONE_SCALING = ("canonical_average", "both_to_rest", "ground_truth")


@dataclass(frozen=True)
class EvaluateOptions:
    """Options of the evaluate stage (config block ``evaluation``).

    Attributes:
        bone_scaling: bone-scaled MPJPE: canonical_average (the paper's: only the prediction, to
            the mean bone-length sum of the train split's ground truth), both_to_rest (prediction and
            ground truth to the body model's rest skeleton) or ground_truth (the prediction to each
            ground truth).
    """

    bone_scaling: str = option("canonical_average", choices=BONE_SCALING)


@dataclass(frozen=True)
class ReportOptions:
    """Options of the report's figures, stage render-report (config block ``report``).

    Attributes:
        overlay_samples: samples per overlay.
        meshes_per_round: test meshes (.obj) exported per round.
    """

    overlay_samples: int = option(8, minimum=1, parse_bounds=True)
    meshes_per_round: int = option(4, minimum=0, parse_bounds=True)


@dataclass(frozen=True)
class H36mCropOptions:
    """Options of the h36m_crops stage.

    Attributes:
        image_size: crop side in pixels (the regressor's input).
        box_scale: crop side relative to the person's box: the training crops' crops.box_scale.
    """

    image_size: int = 64
    box_scale: float = CropOptions.box_scale

    def crop_options(self) -> CropOptions:
        """The crops stage's options for these crops (one process: the frames are read in order)."""
        return CropOptions(image_size=self.image_size, box_scale=self.box_scale, workers=1)
