"""Project a paper-scale run (~100k images, 5 rounds, ResNet50 at 224 px, 30 epochs per round)
from per-sample costs measured here, on N devices with registration sharded over SLURM jobs.

Per round: registration = images x steps / (sample-steps/s x N) (shards are independent jobs);
regressor training = images x epochs / training images/s on ONE device (dlearn trains the
regressor on a single device: no data-parallel training yet); predictions of both splits =
(train + test images) / inference images/s. The cGAN (once, minutes) and data preparation
are left out. Rates not given are measured now, on --device, with the stage's own code.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from dlearn.body.keypoints import keypoint_vertex_ids
from dlearn.body.model import BodyModel
from dlearn.body.standin import build_standin
from dlearn.device import resolve_device
from dlearn.registration.data import to_fit_batch
from dlearn.registration.fit import RegistrationOptions
from dlearn.regressor.model import Regressor, RegressorSpec
from dlearn.regressor.train import RegressorLossWeights, regressor_loss


def measure_registration(device: torch.device, steps: int = 20) -> float:
    """Sample-steps/s of the stage on one batch of the default registration.batch_size."""
    from bench_registration import _problem, _rate

    samples = RegistrationOptions().batch_size

    data = build_standin().model
    model = BodyModel(data).to(device)
    kp_ids = torch.as_tensor(keypoint_vertex_ids(data), device=device)
    batch, init = _problem(samples, data.num_vertices, torch.Generator().manual_seed(0))
    batch = type(batch)(*(getattr(batch, f).to(device) for f in batch.__dataclass_fields__))
    init = type(init)(*(t.to(device) for t in init.tensors()))
    _rate(model, batch, init, kp_ids, samples, 2)
    return _rate(model, batch, init, kp_ids, samples, steps)


def measure_regressor(device: torch.device, backbone: str, size: int, batch_size: int, steps: int) -> tuple[float, float]:
    """(training images/s, inference images/s) of the regressor with the body-model loss."""
    rng = np.random.default_rng(0)
    data = build_standin().model
    body = BodyModel(data).to(device)
    kp_ids = torch.as_tensor(keypoint_vertex_ids(data), device=device)
    model = Regressor(RegressorSpec(backbone, 512)).to(device)
    optimiser = torch.optim.Adam(model.parameters(), lr=1e-4)
    images = torch.rand(batch_size, 3, size, size, device=device)
    target = torch.as_tensor(rng.normal(0, 0.1, (batch_size, 105)), dtype=torch.float32, device=device)
    arrays = {
        "vertex": rng.integers(0, data.num_vertices, (batch_size, 100)), "point": rng.uniform(-1, 1, (batch_size, 100, 2)),
        "point_mask": np.ones((batch_size, 100)), "keypoints": rng.uniform(-1, 1, (batch_size, 17, 2)),
        "keypoint_mask": np.ones((batch_size, 17)), "depth": np.zeros((batch_size, 17)), "depth_mask": np.ones((batch_size, 17)),
    }  # fmt: skip
    batch = to_fit_batch(arrays, device, torch.float32)

    def sync() -> None:
        if device.type == "cuda":
            torch.cuda.synchronize()

    def train_step() -> None:
        loss, _ = regressor_loss(body, kp_ids, model(images), target, batch, RegressorLossWeights())
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()

    train_step()
    sync()
    start = time.perf_counter()
    for _ in range(steps):
        train_step()
    sync()
    train = steps * batch_size / (time.perf_counter() - start)
    model.eval()
    with torch.no_grad():
        model(images)
        sync()
        start = time.perf_counter()
        for _ in range(steps):
            model(images)
        sync()
    return train, steps * batch_size / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=100_000)
    parser.add_argument("--test-images", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--steps", type=int, default=400, help="registration steps per sample (an upper bound)")
    parser.add_argument("--devices", type=int, nargs="+", default=[1, 4, 8])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--backbone", default="resnet50")
    parser.add_argument("--image-size", type=int, default=224)
    parser.add_argument("--batch-size", type=int, default=30)
    parser.add_argument("--measure-steps", type=int, default=3)
    parser.add_argument("--registration-rate", type=float, help="sample-steps/s per device (measured if absent)")
    parser.add_argument("--train-rate", type=float, help="regressor training images/s (measured if absent)")
    parser.add_argument("--predict-rate", type=float, help="regressor inference images/s (measured if absent)")
    args = parser.parse_args()
    device = resolve_device(args.device)
    reg = args.registration_rate or measure_registration(device)
    train, pred = args.train_rate, args.predict_rate
    if train is None or pred is None:
        t, p = measure_regressor(device, args.backbone, args.image_size, args.batch_size, args.measure_steps)
        train, pred = train or t, pred or p
    print(f"rates on {device} ({torch.get_num_threads()} threads): registration {reg:,.0f} sample-steps/s; "
          f"{args.backbone} {args.image_size} px: training {train:,.1f} images/s, inference {pred:,.1f} images/s")
    print(f"run: {args.images:,} train + {args.test_images:,} test images, {args.rounds} rounds, "
          f"{args.steps} registration steps, {args.epochs} epochs")  # fmt: skip
    print(f"{'devices':>8}{'registration h':>16}{'regressor h':>13}{'predict h':>11}{'per round h':>13}{'total days':>12}")
    for n in args.devices:
        registration = args.images * args.steps / (reg * n) / 3600
        regress = args.images * args.epochs / train / 3600
        predict = (args.images + args.test_images) / pred / 3600
        per_round = registration + regress + predict
        days = per_round * args.rounds / 24
        print(f"{n:>8}{registration:>16.2f}{regress:>13.2f}{predict:>11.2f}{per_round:>13.2f}{days:>12.2f}")


if __name__ == "__main__":
    main()
