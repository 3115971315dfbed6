"""`dlearn mix-datasets`: several DensePose-COCO files -> one, sample ids keeping their source."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

log = logging.getLogger("dlearn")

NAME = "mix-datasets"
HELP = "stage mix_datasets: several DensePose-COCO files -> one, sample ids keeping their source"
DESCRIPTION = (
    "Concatenate DensePose-COCO files (dataset.kind: mixed): ids renumbered, each annotation's "
    "sample id '<source>-<image id>_<annotation id>' kept in dlearn_sample_id, file names made relative "
    "to --image-root (a folder holding every source's image root)."
)
OUTPUTS = {"out": "file"}


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--source", nargs=4, action="append", required=True,
                   metavar=("NAME", "JSON", "IMAGE_ROOT", "KEYPOINT_NAMES"),
                   help="a source: its name (sample-id prefix), DensePose-COCO file, image root and keypoint naming "
                   "(coco or posetrack); repeat per source")  # fmt: skip
    p.add_argument("--image-root", type=Path, required=True, help="folder the mixed file_name entries are relative to")
    p.add_argument("--out", type=Path, required=True, help="output DensePose-COCO JSON")


def run(args: argparse.Namespace) -> None:
    from dlearn.densepose.mix import mix_datasets

    sources = [(name, Path(path), Path(root), naming) for name, path, root, naming in args.source]
    summary = mix_datasets(sources, args.out, args.image_root)
    log.info("%s: %s", args.out, summary)
