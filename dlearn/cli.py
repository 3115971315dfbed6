"""`dlearn <stage>`: one subcommand per workflow rule, each runnable alone with explicit paths.

A registry: each stage is a module of :mod:`dlearn.stages` with its flags (``add_arguments``) and
its work (``run``); this module only collects them, checks the paths and reports errors. A stage's
options are a dataclass in a light module; its flags are generated from the fields
(:mod:`dlearn.options`), so the flag, the config key and the field share one name.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from types import ModuleType
from typing import Any

from dlearn import __version__

log = logging.getLogger("dlearn")

Handler = Callable[[argparse.Namespace], None]


def stages() -> list[ModuleType]:
    """The stage modules, in `dlearn --help` order (see :mod:`dlearn.stages` for what each defines).

    Imported here, not at module level: :mod:`dlearn.codeversion` hashes for a command its own
    stage module's import closure, not every stage's.
    """
    from dlearn.stages import (
        body_model,
        cgan_evaluate,
        cgan_predict,
        cgan_train,
        check_data,
        crops,
        densepose_predictions,
        evaluate,
        evaluate_h36m,
        h36m_crops,
        make_body,
        match,
        merge_registration,
        mix_datasets,
        predict,
        register,
        regress,
        render_report,
        report,
        synth,
        true_depths,
    )

    return [
        check_data, make_body, body_model, synth, crops, densepose_predictions, mix_datasets, match, cgan_train,
        cgan_predict, true_depths, cgan_evaluate, register, merge_registration, regress, predict, evaluate, report,
        render_report, h36m_crops, evaluate_h36m,
    ]  # fmt: skip


class _StageParser(argparse.ArgumentParser):
    """A stage's subparser that adds its flags only when it is used (parsed or its help shown),
    so that `dlearn --help` and `dlearn <stage> ...` import one stage's options, not all."""

    def __init__(self, *args: Any, stage: ModuleType | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._stage = stage

    def populate(self) -> None:
        if self._stage is not None:
            stage, self._stage = self._stage, None
            stage.add_arguments(self)

    def parse_known_args(self, args: Any = None, namespace: Any = None) -> Any:
        self.populate()
        return super().parse_known_args(args, namespace)

    def format_help(self) -> str:
        self.populate()
        return super().format_help()

    def format_usage(self) -> str:
        self.populate()
        return super().format_usage()


def build_parser(lazy: bool = False) -> argparse.ArgumentParser:
    """The `dlearn` parser; with ``lazy``, a stage's flags are added when that stage is used."""
    parser = argparse.ArgumentParser(
        prog="dlearn",
        description="Deform-and-learn: 3D body shape and pose from dense correspondences. "
        "Each subcommand is one stage of the Snakemake workflow.",
    )
    parser.add_argument("--version", action="version", version=f"dlearn {__version__}")
    parser.add_argument(
        "--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"], help="logging level"
    )
    sub = parser.add_subparsers(
        title="stages", dest="stage", required=True, metavar="STAGE", parser_class=_StageParser
    )
    for stage in stages():
        p = sub.add_parser(stage.NAME, help=stage.HELP, description=stage.DESCRIPTION, stage=stage)
        p.set_defaults(handler=stage.run)
        if not lazy:
            p.populate()
    return parser


def __getattr__(name: str) -> Any:
    """``OUTPUTS`` and ``STRING_INPUTS``, gathered from the stage modules on first use."""
    if name == "OUTPUTS":
        # What each stage writes: flag -> kind (see dlearn.outputs.check_output). Every other path
        # flag is an input.
        return {stage.NAME: dict(stage.OUTPUTS) for stage in stages()}
    if name == "STRING_INPUTS":
        # Inputs given as strings because they may be the word "standin" instead of a file.
        return {stage.NAME: stage.STRING_INPUTS for stage in stages() if hasattr(stage, "STRING_INPUTS")}
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


# ROOTS are input folders read by file name, which an output may lie inside.
ROOTS = ("image_root", "iuv_dir")


def _paths(value: object) -> list[Path]:
    values = value if isinstance(value, list) else [value]
    return [v for v in values if isinstance(v, Path)]


def check_paths(args: argparse.Namespace) -> None:
    """No stage writes over its inputs or over what is not dlearn's (see :mod:`dlearn.outputs`)."""
    from dlearn.outputs import check_stage_paths

    stage = {stage.NAME: stage for stage in stages()}[args.stage]
    kinds = stage.OUTPUTS
    outputs = [(f"--{dest.replace('_', '-')}", path, kind) for dest, kind in kinds.items()
               for path in _paths(getattr(args, dest, None))]  # fmt: skip
    inputs = [(f"--{dest.replace('_', '-')}", path) for dest, value in vars(args).items() if dest not in kinds
              for path in _paths(value)]  # fmt: skip
    inputs += [(f"--{dest}", Path(getattr(args, dest))) for dest in getattr(stage, "STRING_INPUTS", ())
               if getattr(args, dest) != "standin"]  # fmt: skip
    check_stage_paths(inputs, outputs, [f"--{r.replace('_', '-')}" for r in ROOTS])


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser(lazy=True).parse_args(argv)
    logging.basicConfig(
        level=args.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr
    )
    handler: Handler = args.handler
    try:
        check_paths(args)
        handler(args)
    except (ValueError, OSError) as exc:
        # Input errors (bad files, keys, shapes) already name what is wrong: no traceback.
        log.error("%s", _describe(exc))
        return 1
    return 0


def _describe(exc: BaseException) -> str:
    """One line for a user error; a path blocked by a file says so (the OS's own words, "File
    exists" or "Not a directory", do not)."""
    if isinstance(exc, (FileExistsError, NotADirectoryError)) and exc.filename is not None:
        return f"{exc.filename}: a file stands where this path needs a folder ({exc.strerror})"
    return str(exc)


if __name__ == "__main__":
    sys.exit(main())
