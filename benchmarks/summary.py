"""One row per benchmark figure for `make bench`'s table (benchmarks/run_all.py).

Each bench_*.py prints its own detail and calls :func:`record` for its headline figure; when
run by run_all.py the rows are appended (JSON lines) to the file named by DLEARN_BENCH_SUMMARY.
"""

from __future__ import annotations

import json
import os


def record(benchmark: str, figure: str, baseline: str, ratio: float, target: str, ok: bool | None) -> None:
    path = os.environ.get("DLEARN_BENCH_SUMMARY")
    if not path:
        return
    row = {"benchmark": benchmark, "figure": figure, "baseline": baseline, "ratio": round(float(ratio), 2),
           "target": target, "verdict": "-" if ok is None else ("ok" if ok else "MISSED")}  # fmt: skip
    with open(path, "a") as fh:
        fh.write(json.dumps(row) + "\n")
