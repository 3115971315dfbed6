"""`dlearn match`: UV-to-vertex matching, the nearest body vertex of every dense point (no torch)."""

from __future__ import annotations

import argparse
from pathlib import Path

from dlearn.densepose.options import MatchOptions
from dlearn.options import add_options, options_from_args
from dlearn.stages.common import add_body_model

NAME = "match"
HELP = "stage match: nearest body vertex in (U, V) of its part for every dense point"
DESCRIPTION = (
    "UV-to-vertex matching (paper section 6.1): one KD-tree per part over the chart "
    "vertices; writes correspondences_{split}.zarr (CSR) aligned with the crops store."
)
OUTPUTS = {"out": "store"}


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--annotations", type=Path, required=True, help="DensePose-COCO JSON file")
    p.add_argument("--crops", type=Path, required=True, help="crops_{split}.zarr of the same split")
    add_body_model(p)
    p.add_argument("--uv", type=Path, required=True, help="UV_Processed.mat of the body model")
    p.add_argument("--out", type=Path, required=True, help="output correspondences_{split}.zarr")
    add_options(p, MatchOptions)


def run(args: argparse.Namespace) -> None:
    from dlearn.body.io import load_body_model
    from dlearn.data.match import match_correspondences

    num_vertices = load_body_model(args.body_model).num_vertices
    match_correspondences(
        args.annotations, args.crops, args.uv, args.out, options_from_args(args, MatchOptions), num_vertices
    )
