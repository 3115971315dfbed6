"""Throughput of the body model: 100-vertex sparse forward vs full mesh vs smplx's LBS.

Usage: python benchmarks/bench_body.py [--batch 64] [--vertices 100] [--repeats 20] [--device cpu]
       [--threads N] [--random]

Uses the procedural stand-in body (it has no pose blend shapes), or with ``--random`` a random
model of SMPL's size with pose blend shapes. All rows are timed in the same run and reported
as ratios to ``smplx.lbs.lbs`` (median of the repeats, after warm-up).
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import numpy as np
import torch
from smplx.lbs import lbs
from summary import record

from dlearn.body.io import NUM_JOINTS, NUM_POSE_BLEND, SMPL_PARENTS, BodyModelData
from dlearn.body.model import BodyModel
from dlearn.body.standin import build_standin


def _model_data(random: bool) -> tuple[BodyModelData, str]:
    if not random:
        return build_standin().model, "stand-in"
    rng = np.random.default_rng(0)
    n = 6890
    weights = rng.random((n, NUM_JOINTS)) ** 8
    weights /= weights.sum(1, keepdims=True)
    regressor = rng.random((NUM_JOINTS, n))
    data = BodyModelData(
        v_template=rng.normal(size=(n, 3)),
        faces=rng.integers(0, n, size=(2 * n, 3)),
        weights=weights,
        parents=SMPL_PARENTS.copy(),
        j_regressor=regressor / regressor.sum(1, keepdims=True),
        posedirs=0.01 * rng.normal(size=(n, 3, NUM_POSE_BLEND)),
    )
    return data, "random (non-zero pose blend shapes)"


def _time(fn: Callable[[], object], device: torch.device, warmup: int, repeats: int) -> float:
    """Median seconds per call."""

    def sync() -> None:
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        sync()
        start = time.perf_counter()
        fn()
        sync()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--vertices", type=int, default=100, help="vertex_ids in the sparse forward")
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--random", action="store_true", help="random SMPL-size model, not the stand-in")
    parser.add_argument("--threads", type=int, help="torch CPU threads (default: torch's choice)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)

    data, name = _model_data(args.random)
    model = BodyModel(data).to(device)
    n, batch = model.num_vertices, args.batch
    gen = torch.Generator().manual_seed(0)
    pose = (0.5 * torch.randn(batch, 23, 3, generator=gen)).to(device)
    scales = (0.8 + 0.4 * torch.rand(batch, 24, generator=gen)).to(device)
    vertex_ids = torch.randperm(n, generator=gen)[: args.vertices].to(device)

    # smplx's LBS on the same arrays, in the layouts SMPL.forward passes it.
    f32 = dict(dtype=torch.float32, device=device)
    posedirs = data.posedirs if data.posedirs is not None else np.zeros((n, 3, NUM_POSE_BLEND))
    smplx_args = dict(
        v_template=model.v_template,
        shapedirs=torch.zeros(n, 3, 10, **f32),
        posedirs=torch.as_tensor(posedirs.reshape(n * 3, -1).T.copy(), **f32),  # (207, N*3)
        J_regressor=torch.as_tensor(data.j_regressor, **f32),
        parents=model.parents,
        lbs_weights=model.weights,
    )
    betas = torch.zeros(batch, 10, **f32)

    def with_root(p: torch.Tensor) -> torch.Tensor:
        return torch.cat([torch.zeros(batch, 3, **f32), p.reshape(batch, -1)], dim=1)

    rows: list[tuple[str, Callable[[torch.Tensor, torch.Tensor], torch.Tensor]]] = [
        ("smplx.lbs.lbs (full mesh)", lambda p, s: lbs(betas, with_root(p), **smplx_args)[0]),
        ("BodyModel full mesh", lambda p, s: model(p, s).vertices),
        (f"BodyModel {args.vertices} vertex_ids", lambda p, s: model(p, s, vertex_ids=vertex_ids).vertices),
    ]

    print(
        f"model: {name}, {n} vertices; batch {batch}; device {device}; torch threads {torch.get_num_threads()}"
    )
    print(f"median of {args.repeats} after {args.warmup} warm-up calls; speed-up relative to smplx.lbs.lbs")
    print(f"{'':32s} {'forward':>22s}   {'forward+backward':>22s}")
    base: dict[str, float] = {}
    for label, fn in rows:

        # Both are timed within this iteration; binding fn says so (and keeps ruff's B023 quiet).
        def forward(fn: Callable = fn) -> None:
            with torch.no_grad():
                fn(pose, scales)

        def forward_backward(fn: Callable = fn) -> None:
            p, s = pose.clone().requires_grad_(), scales.clone().requires_grad_()
            fn(p, s).square().sum().backward()

        cells = []
        for mode, call in (("fwd", forward), ("bwd", forward_backward)):
            seconds = _time(call, device, args.warmup, args.repeats)
            base.setdefault(mode, seconds)
            cells.append(f"{batch / seconds:9.0f}/s  x{base[mode] / seconds:7.1f}")
        print(f"{label:32s} {cells[0]:>22s}   {cells[1]:>22s}")
        record_rate = batch / seconds
    record("body model", f"{args.vertices} vertex_ids: {record_rate:,.0f} bodies/s (fwd+bwd)", "smplx.lbs full mesh",
           base["bwd"] / seconds, "-", None)  # fmt: skip


if __name__ == "__main__":
    main()
