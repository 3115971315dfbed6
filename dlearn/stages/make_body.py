"""`dlearn make-body`: write the procedural stand-in body."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

log = logging.getLogger("dlearn")

NAME = "make-body"
HELP = "write the procedural stand-in body (SMPL_NEUTRAL.pkl, UV_Processed.mat, preview.png)"
DESCRIPTION = (
    "Write the procedural stand-in humanoid in SMPL's file format, its DensePose-format "
    "UV charts and a preview PNG into a folder. Deterministic: same bytes every run."
)
OUTPUTS = {"out": "folder"}


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", type=Path, required=True, help="output folder")


def run(args: argparse.Namespace) -> None:
    from dlearn.body.standin import write_standin

    model_path, uv_path = write_standin(args.out, preview=True)
    log.info("wrote %s, %s and %s", model_path, uv_path, args.out / "preview.png")
