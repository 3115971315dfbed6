"""`dlearn report`: every round's evaluation gathered into the summary table and the MPJPE history.

Reads CSV files only and imports no torch (the figures that pose meshes or read network files
are `dlearn render-report`'s).
"""

from __future__ import annotations

import argparse
from pathlib import Path

NAME = "report"
HELP = "stage report: summary table and MPJPE history (paper Fig. 2) of every round"
DESCRIPTION = "Gather every round's evaluation into the run's summary table and MPJPE history; lists are in round order."
OUTPUTS = {"summary": "file", "history": "file"}


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--evaluations", type=Path, nargs="*", default=[], help="every round's evaluation.csv")
    p.add_argument("--summary", type=Path, required=True, help="output summary.csv (header only without evaluations)")
    p.add_argument("--history", type=Path, required=True, help="output mpjpe_history.png")


def run(args: argparse.Namespace) -> None:
    from dlearn.evaluation.report import gather_evaluations, plot_history

    rows = gather_evaluations(args.evaluations, args.summary)
    plot_history(rows, args.history)
