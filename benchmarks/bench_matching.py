"""UV-to-vertex matching throughput: per-part KD-trees vs an exhaustive search, same run.

Usage: python benchmarks/bench_matching.py [--points 2000000] [--baseline-points 20000]

Points are spread over the 24 parts with uniform (U, V), on the stand-in's charts. Target:
>= 1,000,000 points/s on 2 cores (DensePose-COCO's ~5M points in under 5 s).
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from summary import record

from dlearn.body.standin import build_standin
from dlearn.densepose.match import UVMatcher, brute_force_match

TARGET_POINTS_PER_SECOND = 1_000_000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--points", type=int, default=2_000_000)
    parser.add_argument("--baseline-points", type=int, default=20_000)
    args = parser.parse_args()

    charts = build_standin().uv
    rng = np.random.default_rng(0)
    part = rng.integers(1, 25, size=args.points)
    uv = rng.random((args.points, 2))

    start = time.perf_counter()
    matcher = UVMatcher(charts)
    build = time.perf_counter() - start
    start = time.perf_counter()
    matched = matcher.match(part, uv)
    kd_rate = args.points / (time.perf_counter() - start)

    n = args.baseline_points
    start = time.perf_counter()
    reference = brute_force_match(charts, part[:n], uv[:n])
    brute_rate = n / (time.perf_counter() - start)
    assert np.array_equal(matched[:n], reference), "KD-tree and brute force disagree"

    print(f"stand-in charts: {charts.num_chart_vertices} chart vertices; {args.points} points")
    print(f"{'method':<28}{'points/s':>14}{'ratio':>10}{'target':>16}")
    print(f"{'brute force (baseline)':<28}{brute_rate:>14,.0f}{1.0:>10.1f}")
    verdict = "ok" if kd_rate >= TARGET_POINTS_PER_SECOND else "MISSED"
    print(f"{'KD-tree per part':<28}{kd_rate:>14,.0f}{kd_rate / brute_rate:>10.1f}{'>= 1,000,000':>16}  {verdict}")
    print(f"(KD-tree build: {build * 1000:.1f} ms)")
    record("matching", f"{kd_rate / 1e6:.1f}M points/s", "brute force", kd_rate / brute_rate, ">= 1M points/s",
           kd_rate >= TARGET_POINTS_PER_SECOND)  # fmt: skip


if __name__ == "__main__":
    main()
