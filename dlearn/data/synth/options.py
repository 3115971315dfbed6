"""What :func:`dlearn.data.synth.synthesize` generates (:class:`SynthOptions`, :class:`NoiseOptions`)
and the ids it gives: the splits, their image id offsets, the most persons an image may hold."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import Any

SPLITS = ("train", "test")
SPLIT_ID_OFFSET = {"train": 0, "test": 1_000_000}
MAX_PERSONS = 99  # annotation id = 100 * image_id + person + 1


@dataclass(frozen=True)
class NoiseOptions:
    """Annotation noise; all zero = exact annotations.

    Attributes:
        dense_jitter_px: std of Gaussian jitter of the dense points' image positions (pixels).
        keypoint_jitter_px: std of Gaussian jitter of labelled keypoints (pixels).
        part_confusion: probability that a dense point near a part boundary (a neighbouring
            part within 1.5 px) takes that neighbour's part label and UV.
        missing_keypoints: probability that a labelled keypoint is dropped (v = 0, x = y = 0).
    """

    dense_jitter_px: float = 0.0
    keypoint_jitter_px: float = 0.0
    part_confusion: float = 0.0
    missing_keypoints: float = 0.0

    @property
    def exact(self) -> bool:
        return all(getattr(self, f.name) == 0 for f in fields(self))


@dataclass(frozen=True)
class SynthOptions:
    """What :func:`synthesize` generates.

    Attributes:
        num_train: images in the train split (persons = images x persons_per_image, less the
            rare person hidden by others).
        num_test: images in the test split.
        image_size: side of the square images (pixels).
        seed: base seed; image ``i`` of split ``k`` uses ``default_rng([seed, k, i])``.
        persons_per_image: people per image; several are depth-ordered and occlude each other.
        dense_points_per_person: dense points sampled on a person's visible surface.
        scale_sigma: std of the per-segment log scales (after smoothing over the tree).
        noise: annotation noise (:class:`NoiseOptions`).
        workers: processes (1 = in this process).
        write_iuv: also write each image's exact IUV map as DensePose's inference output
            (``iuv/<image id>_IUV.png`` and ``_INDS.png``, person k of the image as instance k),
            the input of ``dlearn densepose-predictions``.
    """

    num_train: int = 64
    num_test: int = 16
    image_size: int = 128
    seed: int = 0
    persons_per_image: int = 1
    dense_points_per_person: int = 100
    scale_sigma: float = 0.08
    noise: NoiseOptions = field(default_factory=NoiseOptions)
    workers: int = 2
    write_iuv: bool = False

    def validate(self) -> None:
        if self.num_train < 0 or self.num_test < 0:
            raise ValueError("num_train and num_test must be >= 0")
        if self.image_size < 32:
            raise ValueError(f"image_size must be >= 32 pixels, got {self.image_size}")
        if not 1 <= self.persons_per_image <= MAX_PERSONS:
            raise ValueError(f"persons_per_image must be in 1..{MAX_PERSONS}, got {self.persons_per_image}")
        if self.dense_points_per_person < 1:
            raise ValueError("dense_points_per_person must be >= 1")
        if not 0 <= self.scale_sigma <= 0.5:
            raise ValueError(f"scale_sigma must be in [0, 0.5], got {self.scale_sigma}")
        if self.workers < 1:
            raise ValueError("workers must be >= 1")
        n = self.noise
        if n.dense_jitter_px < 0 or n.keypoint_jitter_px < 0:
            raise ValueError("jitter must be >= 0")
        for name in ("part_confusion", "missing_keypoints"):
            if not 0 <= getattr(n, name) <= 1:
                raise ValueError(f"noise.{name} must be a probability in [0, 1]")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> SynthOptions:
        """Options from a (config) dict; ``noise`` may be a dict. Unknown keys are an error."""
        values = dict(values)
        known = {f.name for f in fields(cls)}
        unknown = set(values) - known
        if unknown:
            raise ValueError(f"unknown synth option(s): {', '.join(sorted(unknown))}")
        noise = values.pop("noise", None)
        if isinstance(noise, dict):
            noise_known = {f.name for f in fields(NoiseOptions)}
            bad = set(noise) - noise_known
            if bad:
                raise ValueError(f"unknown synth noise option(s): {', '.join(sorted(bad))}")
            noise = NoiseOptions(**noise)
        return cls(**values, **({} if noise is None else {"noise": noise}))
