"""Options of the cgan_train stage (flags, config block ``cgan``): no torch, so that `dlearn --help`
and the workflow read them without loading the networks."""

from __future__ import annotations

from dataclasses import dataclass

from dlearn.coco_keypoints import NUM_KEYPOINTS
from dlearn.options import option


@dataclass(frozen=True)
class CganOptions:
    """Options of the cGAN stages (Kudo et al. 2018: 3D pose from 2D key points, learnt from 2D).

    Attributes:
        epochs: training epochs (an epoch is one pass over the training poses, and at least
            min_steps_per_epoch steps, so that small data sets still get trained).
        min_steps_per_epoch: lower bound on the optimiser steps of one epoch.
        batch_size: 2D poses per step.
        hidden_size: width of the generator's and the discriminator's MLPs.
        num_blocks: residual blocks of each MLP.
        symmetric: make the generator exactly mirror-equivariant (average its depths for the pose
            and for the pose flipped left/right).
        lr: Adam learning rate of both networks.
        beta1: Adam beta1 of both networks.
        beta2: Adam beta2 of both networks.
        rotation_deg: the discriminator's fakes are rotated about the vertical axis by an angle
            uniform in [-rotation_deg, rotation_deg] degrees.
        flip: augment the 2D poses by a horizontal flip (x -> -x, left/right key points swapped).
        jitter_deg: augment the 2D poses by an in-plane rotation uniform in +-jitter_deg degrees.
        input_noise: standard deviation of Gaussian noise added to every 2D pose the
            discriminator sees, real or fake (normalised units: the pose's RMS radius is 1);
            keeps it from memorising a small training set.
        ema_decay: the saved generator is an exponential moving average of the trained one's
            weights with this decay per step (smooths the GAN's oscillations); 0 disables it.
        chirality_weight: weight of the hinge prior that the nose lies in front of the ears
            (settles the depth sign that the GAN loss leaves open); 0 disables it.
        min_keypoints: training uses poses with both hips and at least this many labelled key points.
        seed: seed of the weights, the batches, the augmentation and the rotations.
        device: auto (CUDA when present, else CPU), cpu or cuda.
    """

    epochs: int = option(20, minimum=1)
    min_steps_per_epoch: int = option(100, minimum=1)
    batch_size: int = option(16, minimum=1)
    hidden_size: int = option(1024, minimum=1)
    num_blocks: int = option(2, minimum=0)
    symmetric: bool = True
    lr: float = option(2e-4, exclusive_minimum=0)
    beta1: float = option(0.5, minimum=0, maximum=1)
    beta2: float = option(0.999, minimum=0, maximum=1)
    rotation_deg: float = option(180.0, minimum=0, maximum=180)
    flip: bool = True
    jitter_deg: float = option(10.0, minimum=0)
    input_noise: float = option(0.0, minimum=0)
    ema_decay: float = option(0.999, minimum=0, maximum=1)
    chirality_weight: float = option(1.0, minimum=0)
    min_keypoints: int = option(8, minimum=1, maximum=NUM_KEYPOINTS)
    seed: int = 0
    device: str = "auto"
