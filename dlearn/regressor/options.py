"""Options of the regress and predict stages (flags, config block ``regressor``): no torch, so that
`dlearn --help` and the workflow read them without loading the network."""

from __future__ import annotations

from dataclasses import dataclass

from dlearn.options import option


@dataclass(frozen=True)
class AugmentOptions:
    """Training augmentation (off: all zero).

    Attributes:
        scale: crops are zoomed by a factor drawn from [1 - scale, 1 + scale].
        translation: crops are shifted by up to this fraction of the half crop side, per axis.
        colour: per-channel gains drawn from [1 - colour, 1 + colour].
        flip: mirror half the crops horizontally (needs the body's ``vertex_symmetry``).
    """

    scale: float = 0.1
    translation: float = 0.1
    colour: float = 0.2
    flip: bool = False


@dataclass(frozen=True)
class RegressorLossWeights:
    """Weights of the regressor loss (paper eq. 5 and section 6).

    Attributes:
        theta: alpha, on the smooth-L1 distance to the registration's theta.
        dense: beta, on L_dense of the predicted body.
        kp: gamma, on L_KP of the predicted body.
        joints: on the mean distance (metres) between the root-relative 3D joints of the
            predicted body and of the registration's (not in the paper: 0 there). It weights the
            69 pose numbers by their effect on the body; with it a small ConvNet learns pose
            in fewer steps (docs/regressor_study.md).
        camera_joints: on the same distance with each body turned by its own camera rotation
            (predicted, registered): the root-relative 3D error in the camera's orientation,
            which bone-scaled MPJPE measures, so that the camera rotation is learnt in metres
            rather than only through its 9 numbers in the theta term (not in the paper: 0 there).
    """

    theta: float = 1.0
    dense: float = 10.0
    kp: float = 1.0
    joints: float = 0.0
    camera_joints: float = 0.0


@dataclass(frozen=True)
class RegressorOptions:
    """Options of the regressor's training (defaults: the paper's, section 6).

    Attributes:
        backbone: tiny16 or tiny32 (dlearn's small ConvNet, widths 16 / 32), resnet18, resnet34 or
            resnet50 (the paper's).
        head_hidden: width of the head's hidden layer.
        pretrained: a local torchvision ResNet state dict (ImageNet weights), or none (train
            from scratch). Ignored when warm-starting from a previous round's model.
        epochs: passes over the training samples.
        batch_size: crops per optimisation step.
        lr: Adam learning rate.
        weight_decay: Adam weight decay.
        lr_schedule: constant, or cosine (decays to 0 over the epochs).
        use_depth: use the cGAN depths in L_KP.
        max_points: dense points per sample: a sample with more uses a random subset of this
            many, drawn anew each epoch (padding cost).
        workers: DataLoader worker processes.
        shuffle_chunks: batches mix samples of this many store chunks (see regressor.data).
        device: auto (CUDA when present), cpu or cuda.
        amp: mixed precision (float16 autocast) on CUDA; ignored on CPU.
        channels_last: channels-last memory format on CUDA; ignored on CPU.
        seed: seed of the initialisation, the batch order and the augmentation.
        weights: loss weights alpha, beta, gamma.
        augment: crop and colour augmentation.
    """

    backbone: str = "resnet50"
    head_hidden: int = option(512, minimum=1)
    pretrained: str = "none"
    epochs: int = option(30, minimum=1)
    batch_size: int = option(30, minimum=2)
    lr: float = option(1e-4, exclusive_minimum=0)
    weight_decay: float = option(0.0, minimum=0)
    lr_schedule: str = "constant"
    use_depth: bool = True
    max_points: int = option(256, minimum=1)
    workers: int = option(2, minimum=0)
    shuffle_chunks: int = option(8, minimum=1)
    device: str = "auto"
    amp: bool = True
    channels_last: bool = True
    seed: int = 0
    weights: RegressorLossWeights = RegressorLossWeights()
    augment: AugmentOptions = AugmentOptions()


@dataclass(frozen=True)
class PredictOptions:
    """Options of the predict stage.

    Attributes:
        device: auto, cpu or cuda.
        batch_size: crops per forward pass.
        workers: DataLoader worker processes.
    """

    device: str = "auto"
    batch_size: int = option(64, minimum=1, parse_bounds=True)
    workers: int = option(0, minimum=0, parse_bounds=True)
