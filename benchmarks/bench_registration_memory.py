"""Registration peak memory at N and 10N samples, same run: it must stay flat apart from the
per-sample inputs and outputs (samples are fitted chunk by chunk).

Usage: python benchmarks/bench_registration_memory.py [--samples 2048] [--steps 5]

Batch and chunk are the stage's default batch size (registration.batch_size).

Each size runs `dlearn register` in a fresh process on random correspondences (100 per sample)
for the stand-in body; the peak resident set size of that process is reported.
"""

from __future__ import annotations

import argparse
import resource
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
from summary import record

from dlearn.body.standin import write_standin
from dlearn.data.store import csr_offsets, write_store
from dlearn.registration.fit import RegistrationOptions

POINTS = 100


def _stores(root: Path, n: int, num_vertices: int) -> tuple[Path, Path]:
    rng = np.random.default_rng(0)
    ids = [f"{i}_{i}" for i in range(n)]
    corr = write_store(
        root / f"corr_{n}.zarr",
        {
            "offsets": csr_offsets(np.full(n, POINTS)),
            "vertex": rng.integers(0, num_vertices, n * POINTS).astype(np.int32),
            "point": rng.uniform(-0.8, 0.8, (n * POINTS, 2)).astype(np.float32),
            "part": rng.integers(1, 25, n * POINTS).astype(np.uint8),
        },
        stage="match",
        sample_id=ids,
    )
    keypoints = np.concatenate([rng.uniform(-0.8, 0.8, (n, 17, 2)), np.full((n, 17, 1), 2.0)], axis=2)
    crops = write_store(root / f"crops_{n}.zarr", {"keypoints": keypoints.astype(np.float32)}, stage="crops", sample_id=ids)
    return corr, crops


def _peak_rss_mb(cmd: list[str]) -> float:
    """Peak RSS of the child process (ru_maxrss of the children is the largest one so far)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    subprocess.run(cmd, check=True, capture_output=True)
    after = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return max(after, before) / 1024.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=2048)
    parser.add_argument("--steps", type=int, default=5)
    args = parser.parse_args()
    batch = RegistrationOptions().batch_size
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        model, _ = write_standin(root)
        rows = []
        for n in (args.samples, 10 * args.samples):  # ascending: ru_maxrss only grows
            corr, crops = _stores(root, n, 6816)
            cmd = [
                sys.executable, "-m", "dlearn", "register", "--correspondences", str(corr), "--crops", str(crops),
                "--body-model", str(model), "--out", str(root / f"reg_{n}.zarr"), "--no-use-depth",
                "--steps", str(args.steps), "--batch-size", str(batch), "--chunk-size", str(batch), "--device", "cpu",
            ]  # fmt: skip
            rows.append((n, _peak_rss_mb(cmd)))
    (n1, m1), (n10, m10) = rows
    # What has to grow: inputs (vertex int32, point 2 x f32, part u8, offsets i64) and outputs.
    per_sample_mb = (POINTS * (4 + 8 + 1) + 8 + 17 * 12 + 4 * (69 + 24 + 9 + 1 + 2 + 72 + 5 + 1) + 1) / 1e6
    expected = (n10 - n1) * per_sample_mb
    print(f"{'samples':>8}{'peak RSS (MB)':>16}")
    print(f"{n1:>8}{m1:>16.0f}")
    print(f"{n10:>8}{m10:>16.0f}")
    print(f"growth {m10 - m1:.0f} MB for {n10 - n1} more samples; stored inputs+outputs ~{expected:.0f} MB "
          f"(loaded once, float64 in memory: ~2-3x); ratio RSS(10N)/RSS(N) = {m10 / m1:.2f}")
    record("registration memory", f"peak {m10:.0f} MB at {n10} samples", f"{m1:.0f} MB at {n1}", m10 / m1,
           "flat (growth <= outputs)", m10 - m1 <= 3 * expected + 100)  # fmt: skip


if __name__ == "__main__":
    main()
