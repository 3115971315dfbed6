"""`dlearn body-model`: the stand-in, or the user's checked SMPL and UV files."""

from __future__ import annotations

import argparse
from pathlib import Path

NAME = "body-model"
HELP = "stage body_model: write the stand-in, or check and link the user's SMPL and UV files"
DESCRIPTION = (
    "Workflow stage body_model. With --model standin --uv standin the procedural stand-in "
    "is written; otherwise the SMPL-format model and UV_Processed.mat are checked (keys, shapes, "
    "vertex ids) and linked to the output paths."
)
OUTPUTS = {"out_model": "link", "out_uv": "link", "out_preview": "file"}
#: Inputs given as strings because they may be the word "standin" instead of a file.
STRING_INPUTS = ("model", "uv")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", required=True, help='"standin" or an SMPL-format .pkl/.npz file')
    p.add_argument("--uv", required=True, help='"standin" or DensePose\'s UV_Processed.mat')
    p.add_argument("--out-model", type=Path, required=True, help="output model path (file or link)")
    p.add_argument("--out-uv", type=Path, required=True, help="output UV charts path (file or link)")
    p.add_argument("--out-preview", type=Path, required=True, help="output preview PNG")


def run(args: argparse.Namespace) -> None:
    from dlearn.body.prepare import prepare_body_files

    prepare_body_files(args.model, args.uv, args.out_model, args.out_uv, args.out_preview)
