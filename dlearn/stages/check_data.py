"""`dlearn check-data`: check every input a config names before anything runs (no torch)."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

log = logging.getLogger("dlearn")

NAME = "check-data"
HELP = "stage check_data: check every input a config names before anything runs"
DESCRIPTION = (
    "Body model and UV file, annotation files and the images they reference: one line "
    "per problem naming the file and record, then a summary; exit status 1 on any problem."
)
OUTPUTS = {"out": "file"}


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", type=Path, help="workflow config file (config.yaml)")
    p.add_argument("--config-json", help="the config's body, dataset and crops blocks as JSON (the workflow's rule)")
    p.add_argument("--out", type=Path, help="write the list of checked inputs here when all is well")


def run(args: argparse.Namespace) -> None:
    import json

    from dlearn.check import check_config

    if (args.config is None) == (args.config_json is None):
        raise ValueError("give one of --config and --config-json")
    source = args.config if args.config is not None else "--config-json"
    report = check_config(args.config if args.config is not None else json.loads(args.config_json))
    for line in report.checked:
        log.info("ok: %s", line)
    for line in report.problems:
        log.error("problem: %s", line)
    log.info("%s: %s", source, report.summary())
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text("\n".join([*(f"ok: {c}" for c in report.checked), report.summary()]) + "\n")
    if report.problems:
        raise ValueError(f"{source}: {len(report.problems)} input problems (listed above)")
