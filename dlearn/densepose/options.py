"""Options of the match and densepose_predictions stages (flags, config blocks ``match`` and
``dataset.densepose_predictions``): no numpy or scipy, so that `dlearn --help` stays light."""

from __future__ import annotations

from dataclasses import dataclass

from dlearn.options import option


@dataclass(frozen=True)
class MatchOptions:
    """Options of the match stage.

    Attributes:
        workers: KD-tree query threads (-1: all cores).
    """

    workers: int = -1


@dataclass(frozen=True)
class PredictionOptions:
    """How dense points are taken from predicted IUV maps.

    Attributes:
        points_per_person: dense points sampled per person (DensePose-COCO has about 100).
        min_points: persons whose instance has fewer pixels inside their box are skipped.
        min_keypoints: persons with fewer labelled keypoints are skipped.
        seed: base seed of the point subsets; person (image_id, annotation_id) uses
            ``default_rng([seed, image_id, annotation_id])``, so a subset does not depend on
            which other persons the file holds.
    """

    points_per_person: int = option(100, minimum=1)
    min_points: int = option(20, minimum=1)
    min_keypoints: int = option(4, minimum=0)
    seed: int = option(0, minimum=0)
