"""Regressor data loading against the training step: can the loader keep the step fed?

Writes a crops store of random images (chunked as the crops stage writes them), then measures
(1) the DataLoader alone: batches of crops, registration targets and padded correspondences
read from the store by worker processes through the cache of decoded chunks, as `dlearn
regress` reads them (and, for comparison, with one chunk cached: every batch decoding each chunk
it touches, the reader before the cache), and (2) training
steps alone (forward, eq. 5 loss with the body model, backward, Adam) on batches already in
memory. Target: loader images/s >= 3x training images/s, so the step never waits for data.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from summary import record

from dlearn.body.keypoints import coco_keypoint_model
from dlearn.body.model import BodyModel
from dlearn.body.standin import build_standin
from dlearn.data.store import StoreWriter
from dlearn.device import resolve_device
from dlearn.registration.data import FitData, to_fit_batch
from dlearn.regressor.data import RegressorBatches, augment, epoch_batches, images_to_tensor
from dlearn.regressor.model import Regressor, RegressorSpec
from dlearn.regressor.train import RegressorOptions, _loader, regressor_loss

TARGET_RATIO = 3.0
#: Chunks per shuffle window (config.yaml's regressor.shuffle_chunks).
SHUFFLE_CHUNKS = 8


def _store(root: Path, n: int, size: int, points: int, rng: np.random.Generator) -> tuple[Path, FitData]:
    path = root / "crops.zarr"
    with StoreWriter(path, stage="crops", sample_id=[f"{i}_0" for i in range(n)]) as w:
        images = w.create("image", (n, size, size, 3), np.uint8, chunk_rows=64)
        for first in range(0, n, 64):
            rows = min(64, n - first)
            images[first : first + rows] = rng.integers(0, 256, (rows, size, size, 3), dtype=np.uint8)
    fit = FitData(
        ids=[f"{i}_0" for i in range(n)], offsets=np.arange(n + 1) * points,
        vertex=rng.integers(0, 6816, n * points), point=rng.uniform(-1, 1, (n * points, 2)),
        part=rng.integers(1, 25, n * points), keypoints=np.concatenate([rng.uniform(-1, 1, (n, 17, 2)), np.ones((n, 17, 1))], -1),
        depth=rng.normal(0, 0.2, (n, 17)), depth_mask=np.ones((n, 17)),
    )  # fmt: skip
    return path, fit


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=1024)
    parser.add_argument("--image-size", type=int, default=64)
    parser.add_argument("--backbone", default="tiny16")  # config.yaml's
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--workers", type=int, default=0)  # config.yaml's on a CPU
    parser.add_argument("--train-steps", type=int, default=10)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    device = resolve_device(args.device)
    rng = np.random.default_rng(0)
    points = 100
    with tempfile.TemporaryDirectory() as tmp:
        crops, fit = _store(Path(tmp), args.samples, args.image_size, points, rng)
        rows = np.arange(args.samples)
        targets = rng.normal(0, 0.1, (args.samples, 105)).astype(np.float32)
        batches = epoch_batches(rows, 64, args.batch_size, SHUFFLE_CHUNKS, torch.Generator().manual_seed(0))
        kept: list[dict] = []

        def loader_rate(cache_chunks: int) -> float:
            dataset = RegressorBatches(crops, rows, targets, fit, rows, points, cache_chunks=cache_chunks)
            start, seen = time.perf_counter(), 0
            for item in _loader(dataset, batches, args.workers, device.type == "cuda"):
                images = images_to_tensor(item["image"], device, channels_last=False)
                seen += images.shape[0]
                if len(kept) < 4:
                    kept.append(item)
            if device.type == "cuda":
                torch.cuda.synchronize()
            return seen / (time.perf_counter() - start)

        # As `dlearn regress` reads: the decoded chunks of two shuffle windows kept; and with one
        # chunk kept, which decodes every chunk a batch touches again (the reader before the cache).
        cached_rate, uncached_rate = loader_rate(2 * SHUFFLE_CHUNKS), loader_rate(1)

        data = build_standin().model
        body = BodyModel(data).to(device)
        keypoints = coco_keypoint_model(body, data)
        model = Regressor(RegressorSpec(args.backbone, 256)).to(device)
        optimiser = torch.optim.Adam(model.parameters(), lr=1e-3)
        options = RegressorOptions()
        generator = torch.Generator().manual_seed(0)

        def step(item: dict) -> None:
            images = images_to_tensor(item["image"], device, channels_last=False)
            theta_t = item["theta"].to(device)
            batch = to_fit_batch(item, device, torch.float32)
            images, theta_t, batch = augment(images, theta_t, batch, options.augment, generator)
            loss, _ = regressor_loss(body, keypoints, model(images), theta_t, batch, options.weights)
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()

        step(kept[0])  # warm-up
        start = time.perf_counter()
        for i in range(args.train_steps):
            step(kept[i % len(kept)])
        if device.type == "cuda":
            torch.cuda.synchronize()
        train_rate = args.train_steps * args.batch_size / (time.perf_counter() - start)
    ratio = cached_rate / train_rate
    print(f"{args.samples} crops of {args.image_size} px, batch {args.batch_size}, {args.workers} loader workers, "
          f"{args.backbone} on {device}, torch threads {torch.get_num_threads()}")  # fmt: skip
    print(f"{'':34s}{'images/s':>12}{'ratio':>9}{'target':>9}")
    print(f"{'training step (baseline)':34s}{train_rate:>12,.0f}{1.0:>9.1f}")
    verdict = "ok" if ratio >= TARGET_RATIO else "MISSED"
    print(f"{'loader, one chunk cached':34s}{uncached_rate:>12,.0f}{uncached_rate / train_rate:>9.1f}")
    print(f"{'loader (store -> device batches)':34s}{cached_rate:>12,.0f}{ratio:>9.1f}{'>= 3':>9}  {verdict}")
    record("regressor loader", f"{cached_rate:,.0f} images/s vs step {train_rate:,.0f}", "training step", ratio,
           ">= 3x", ratio >= TARGET_RATIO)  # fmt: skip


if __name__ == "__main__":
    main()
