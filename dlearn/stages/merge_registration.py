"""`dlearn merge-registration`: concatenate round k's shard stores, optionally drawing an overlay."""

from __future__ import annotations

import argparse
from pathlib import Path

NAME = "merge-registration"
HELP = "stage merge_registration: concatenate the shard stores of round k"
DESCRIPTION = "Concatenate registration shard stores, checking they cover every sample once, in order."
OUTPUTS = {"out": "store", "overlay": "file"}


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--shards", type=Path, nargs="+", required=True, help="shard stores, in shard order")
    p.add_argument("--correspondences", type=Path, required=True, help="correspondences_train.zarr")
    p.add_argument("--out", type=Path, required=True, help="output registration.zarr")
    p.add_argument("--overlay", type=Path, help="also draw fitted meshes over their crops into this PNG")
    p.add_argument("--crops", type=Path, help="crops_train.zarr (for --overlay)")
    p.add_argument("--body-model", type=Path, help="SMPL-format body model file (for --overlay)")
    p.add_argument("--uv", type=Path, help="UV_Processed.mat (for --overlay: part colours)")


def run(args: argparse.Namespace) -> None:
    from dlearn.registration.merge import merge_registration
    from dlearn.registration.overlay import write_overlay

    merge_registration(args.shards, args.correspondences, args.out)
    if args.overlay is not None:
        if args.crops is None or args.body_model is None or args.uv is None:
            raise ValueError("--overlay needs --crops, --body-model and --uv")
        write_overlay([("registration", args.out)], args.crops, args.body_model, args.uv, args.overlay)
