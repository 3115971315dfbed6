"""`dlearn <stage>`: one subcommand per workflow rule, each runnable alone with explicit paths.

Stage modules are imported inside the handlers so that `dlearn --help` stays fast and a stage's
heavy dependencies load only when that stage runs.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from dlearn import __version__

log = logging.getLogger("dlearn")

Handler = Callable[[argparse.Namespace], None]


def _make_body(args: argparse.Namespace) -> None:
    from dlearn.body.standin import write_standin

    model_path, uv_path = write_standin(args.out)
    log.info("wrote %s and %s", model_path, uv_path)


def _body_model(args: argparse.Namespace) -> None:
    from dlearn.body.prepare import prepare_body_files

    prepare_body_files(args.model, args.uv, args.out_model, args.out_uv, args.out_preview)


def _add_make_body(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "make-body",
        help="write the procedural stand-in body (SMPL_NEUTRAL.pkl, UV_Processed.mat, preview.png)",
        description="Write the procedural stand-in humanoid in SMPL's file format, its DensePose-format "
        "UV charts and a preview PNG into a folder. Deterministic: same bytes every run.",
    )
    p.add_argument("--out", type=Path, required=True, help="output folder")
    p.set_defaults(handler=_make_body)


def _add_body_model(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "body-model",
        help="stage body_model: write the stand-in, or check and link the user's SMPL and UV files",
        description="Workflow stage body_model. With --model standin --uv standin the procedural stand-in "
        "is written; otherwise the SMPL-format model and UV_Processed.mat are checked (keys, shapes, "
        "vertex ids) and linked to the output paths.",
    )
    p.add_argument("--model", required=True, help='"standin" or an SMPL-format .pkl/.npz file')
    p.add_argument("--uv", required=True, help='"standin" or DensePose\'s UV_Processed.mat')
    p.add_argument("--out-model", type=Path, required=True, help="output model path (file or link)")
    p.add_argument("--out-uv", type=Path, required=True, help="output UV charts path (file or link)")
    p.add_argument("--out-preview", type=Path, required=True, help="output preview PNG")
    p.set_defaults(handler=_body_model)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="dlearn",
        description="Deform-and-learn: 3D body shape and pose from dense correspondences. "
        "Each subcommand is one stage of the Snakemake workflow.",
    )
    parser.add_argument("--version", action="version", version=f"dlearn {__version__}")
    parser.add_argument(
        "--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"], help="logging level"
    )
    sub = parser.add_subparsers(title="stages", dest="stage", required=True, metavar="STAGE")
    for add in (_add_make_body, _add_body_model):
        add(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=args.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr
    )
    handler: Handler = args.handler
    try:
        handler(args)
    except (ValueError, OSError) as exc:
        # Input errors (bad files, keys, shapes) already name what is wrong: no traceback.
        log.error("%s", exc)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
