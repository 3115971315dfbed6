"""Flags that several stages share (light: standard library only)."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path


def int_at_least(minimum: int) -> Callable[[str], int]:
    """An argparse type for the flags outside the options dataclasses: an integer >= ``minimum``
    (argparse's error names the flag)."""

    def parse(text: str) -> int:
        value = int(text)
        if value < minimum:
            raise argparse.ArgumentTypeError(f"{value} is below the minimum {minimum}")
        return value

    parse.__name__ = "int"  # argparse's "invalid int value" for a non-integer
    return parse


def add_body_model(p: argparse.ArgumentParser) -> None:
    """The body model flag of every stage that needs the model file itself."""
    p.add_argument("--body-model", type=Path, required=True, help="SMPL-format body model file")


def add_keypoint_regressor(p: argparse.ArgumentParser) -> None:
    """The COCO keypoints' regressor flag of every stage that computes the model's keypoints."""
    p.add_argument(
        "--keypoint-regressor", type=Path,
        help="COCO keypoint regressor .npy of the body model (config body.keypoint_regressor): (17, N) in "
        "COCO's order or (19, N) in HMR's cocoplus order (default: the model file's, else face vertices "
        "and skeleton joints, with a warning)",
    )  # fmt: skip
