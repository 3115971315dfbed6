"""`make bench`: run every benchmarks/bench_*.py and print one table of headline figures, each a
ratio against a baseline measured in the same run, with its target; then the last demo's wall
time and per-rule times from the Snakemake `benchmark:` files in logs/benchmarks/.
"""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
DEMO_TARGET_S = 600.0


def demo_times(bench_dir: Path) -> tuple[float, dict[str, float]] | None:
    """(wall seconds, seconds per rule) of the last run whose benchmark files are in ``bench_dir``:
    a job starts at its file's mtime minus its run time, the run spans first start to last end."""
    files = sorted(bench_dir.glob("*.tsv"))
    if not files:
        return None
    per_rule: dict[str, float] = {}
    starts, ends = [], []
    for f in files:
        with f.open() as fh:
            rows = list(csv.DictReader(fh, delimiter="\t"))
        seconds = float(rows[-1]["s"])
        end = f.stat().st_mtime
        starts.append(end - seconds)
        ends.append(end)
        per_rule[f.stem] = seconds
    return max(ends) - min(starts), per_rule


def main() -> int:
    scripts = sorted(HERE.glob("bench_*.py"))
    with tempfile.NamedTemporaryFile("r", suffix=".jsonl") as summary:
        env = dict(os.environ, DLEARN_BENCH_SUMMARY=summary.name)
        for script in scripts:
            print(f"== {script.name}", flush=True)
            proc = subprocess.run([sys.executable, str(script)], cwd=REPO, env=env, check=False)
            if proc.returncode != 0:
                print(f"{script.name} failed ({proc.returncode})")
                return proc.returncode
        rows = [json.loads(line) for line in Path(summary.name).read_text().splitlines()]
    timing = demo_times(REPO / "logs" / "benchmarks")
    if timing is not None:
        wall, per_rule = timing
        rows.append({"benchmark": "demo wall time", "figure": f"{wall / 60:.1f} min (last `make demo`)",
                     "baseline": "10 min target", "ratio": round(wall / DEMO_TARGET_S, 2), "target": "<= 1.0",
                     "verdict": "ok" if wall <= DEMO_TARGET_S else "MISSED"})  # fmt: skip
    print()
    header = ("benchmark", "figure", "baseline", "ratio", "target", "verdict")
    widths = [max(len(str(r[h])) for r in [dict(zip(header, header)), *rows]) for h in header]
    for r in [dict(zip(header, header)), *rows]:
        print("  ".join(str(r[h]).ljust(w) for h, w in zip(header, widths)))
    if timing is not None:
        print("\nper-rule seconds of the last demo (logs/benchmarks/):")
        for name, seconds in sorted(timing[1].items(), key=lambda kv: -kv[1]):
            print(f"  {name:40s}{seconds:8.1f}")
    else:
        print("\n(no logs/benchmarks/: run `make demo` for the demo's wall time and per-rule times)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
