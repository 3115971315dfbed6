"""The evaluation's files: a round's JSON report and its CSV table, one row per (round, split,
source, metric). Standard library only, so that the report stage reads and writes tables without
importing the evaluation (torch, the body model)."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

#: The columns of an ``evaluation.csv`` and of the report's ``summary.csv``.
CSV_COLUMNS = ("round", "split", "source", "metric", "value")


def csv_rows(report: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per (split, source, metric) of an :func:`evaluate_round` report (means)."""
    rows = []
    for split, by_source in report["results"].items():
        for source, metrics in by_source.items():
            for metric, value in metrics.items():
                rows.append({"round": report["round"], "split": split, "source": source, "metric": metric,
                             "value": round(value["mean"], 3)})  # fmt: skip
    share = report.get("registration", {}).get("new_fit_kept_share")
    if share is not None:
        rows.append({"round": report["round"], "split": "train", "source": "registration",
                     "metric": "new_fit_kept_share", "value": share})  # fmt: skip
    return rows


def write_csv(rows: list[dict[str, Any]], path: Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=CSV_COLUMNS)
        writer.writeheader()
        writer.writerows(rows)
    return path


def write_evaluation(report: dict[str, Any], json_path: Path, csv_path: Path) -> None:
    Path(json_path).parent.mkdir(parents=True, exist_ok=True)
    Path(json_path).write_text(json.dumps(report, indent=2) + "\n")
    write_csv(csv_rows(report), csv_path)
