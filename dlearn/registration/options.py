"""Options of the register stage (flags, config block ``registration``): no torch, so that
`dlearn --help` and the workflow read them without loading the optimiser."""

from __future__ import annotations

from dataclasses import dataclass

from dlearn.options import option

#: The registration's loss terms, in the order of the stores' ``losses`` columns.
LOSS_TERMS = ("dense", "kp", "scale", "joint", "det")


@dataclass(frozen=True)
class LossWeights:
    """Weights of the registration loss terms (paper section 6; these are the later rounds').

    Attributes:
        dense: weight of the dense correspondence loss (eq. 3).
        kp: weight of the key-point loss, 2D and cGAN depth (eq. 4).
        scale: weight of the segment-scale smoothness.
        joint: weight of the kinematic regulariser.
        det: weight of the rotation determinant penalty.
    """

    dense: float = option(1000.0, minimum=0)
    kp: float = option(1.0, minimum=0)
    scale: float = option(10.0, minimum=0)
    joint: float = option(0.001, minimum=0)
    det: float = option(1.0, minimum=0)


@dataclass(frozen=True)
class RegistrationOptions:
    """Options of the registration: the optimiser, the loss weights and the stage's batching.

    Attributes:
        batch_size: samples optimised together (independent problems, one vectorised loop).
        chunk_size: samples per checkpointed chunk.
        keep_best: keep a sample's previous-round fit when the new one fits the data worse.
        use_depth: use the cGAN depths in the key-point loss (eq. 4).
        device: auto (CUDA when present), cpu or cuda.
        lr: Adam learning rate (the paper's 0.1).
        steps: maximum optimisation steps per batch.
        patience: steps between convergence checks.
        tolerance: a batch stops when its total loss fell by less than this fraction over the
            last patience steps.
        scale_anchor: weight of the pull of log scales towards 0 inside L_scale.
        weights: loss term weights (the rule passes round 0's stiff ones for round 0).
        max_failed_fraction: the stage fails when more than this fraction of a shard's samples
            went non-finite (a NaN or inf loss: bad input, or too high an lr), rather than hand
            them on frozen at their last finite fit.
    """

    batch_size: int = option(2048, minimum=1)
    chunk_size: int = option(2048, minimum=1)
    keep_best: bool = True
    use_depth: bool = True
    device: str = "auto"
    lr: float = option(0.1, exclusive_minimum=0)
    steps: int = option(400, minimum=1)
    patience: int = option(25, minimum=1)
    tolerance: float = option(1e-4, minimum=0)
    scale_anchor: float = option(0.1, minimum=0)
    weights: LossWeights = LossWeights()
    max_failed_fraction: float = option(0.05, minimum=0, maximum=1)
