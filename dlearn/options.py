"""Stage options: frozen dataclasses, exposed one-to-one as command-line flags.

A field ``image_size`` becomes ``--image-size``; a nested options dataclass ``noise`` with a
field ``dense_jitter_px`` becomes ``--noise-dense-jitter-px``. Help texts come from the
``Attributes:`` section of the dataclass docstring, so the options are documented once. The
Snakemake rules build the same flags from the config (:func:`cli_flags`), so a config
key, a flag and a field always share one name.

A field's bounds live in its metadata (:func:`option`) and are checked, with every float's
finiteness, when the dataclass is built from flags (:func:`options_from_args`): ``--steps 0`` or
``--lr nan`` is an :class:`OptionError` naming the flag, not a silently empty or NaN run.
"""

from __future__ import annotations

import argparse
import dataclasses
import inspect
import math
import operator
import re
import shlex
import typing
from typing import Any, TypeVar

from dlearn.errors import InputError

T = TypeVar("T")

#: Bound keywords of :func:`option`, as JSON-schema names them (the config schema uses the same),
#: with their sign and test.
_BOUNDS = {
    "minimum": (">=", operator.ge),
    "exclusive_minimum": (">", operator.gt),
    "maximum": ("<=", operator.le),
}


#: Keys of the workflow config's stage blocks that are not the stage's options: the workflow reads
#: them itself (sharding, round 0's weights, warm starts, the input paths, the Human3.6M
#: evaluation's files) and never passes them as option flags. Block (dotted config path) -> keys.
#: The options that the workflow takes from outside the block, such as ``device`` (the config's
#: top-level key) or the crops' ``keypoint_names`` (the dataset's), are added by the rules.
#: tests/test_options_schema.py checks every block's other keys against its options dataclass.
WORKFLOW_KEYS: dict[str, tuple[str, ...]] = {
    "registration": ("shards", "first_round"),
    "regressor": ("warm_start",),
    "evaluation": ("h36m",),
    "dataset.densepose_predictions": (
        "train_keypoints", "test_keypoints", "iuv_dir", "image_root", "train_dump", "test_dump",
    ),
}  # fmt: skip


def stage_block(config: dict[str, Any], block: str) -> dict[str, Any]:
    """The config block at dotted path ``block`` without its :data:`WORKFLOW_KEYS`: the stage's
    options, in the config's order."""
    values = config
    for key in block.split("."):
        values = values[key]
    return {k: v for k, v in values.items() if k not in WORKFLOW_KEYS.get(block, ())}


class OptionError(InputError):
    """A stage option is out of its range or not a finite number; the message names the flag."""


def option(
    default: Any,
    *,
    minimum: float | None = None,
    exclusive_minimum: float | None = None,
    maximum: float | None = None,
    choices: tuple[str, ...] | None = None,
    parse_bounds: bool = False,
) -> Any:
    """A dataclass field with ``default`` and bounds that :func:`check_options` enforces.

    ``choices`` are the accepted values of a string (argparse refuses others, and so does
    :func:`check_options`). With ``parse_bounds`` the flag's bounds are also argparse's: a value
    out of them is a usage error (exit status 2) naming the flag, as for the stages' own
    integer flags (``--shard``), instead of an :class:`OptionError` when the options are built.
    """
    bounds = {"minimum": minimum, "exclusive_minimum": exclusive_minimum, "maximum": maximum}
    metadata: dict[str, Any] = {k: v for k, v in bounds.items() if v is not None}
    if choices is not None:
        metadata["choices"] = tuple(choices)
    if parse_bounds:
        metadata["parse_bounds"] = True
    return dataclasses.field(default=default, metadata=metadata)


def _bounded(kind: type, metadata: Any) -> Any:
    """An argparse type: ``kind`` within the bounds of ``metadata`` (argparse's error names the flag)."""

    def parse(text: str) -> Any:
        value = kind(text)
        for key, (_sign, holds) in _BOUNDS.items():
            if key in metadata and not holds(value, metadata[key]):
                below = "below the minimum" if key != "maximum" else "above the maximum"
                raise argparse.ArgumentTypeError(f"{value} is {below} {metadata[key]}")
        return value

    parse.__name__ = kind.__name__  # argparse's "invalid int value" for a non-number
    return parse


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def check_options(options: Any, prefix: str = "") -> None:
    """Check every field of an options dataclass (recursing into nested ones): floats must be
    finite, and numbers within the bounds of their :func:`option` metadata.

    Raises:
        OptionError: naming the flag (``--steps``), the field and the value found.
    """
    for field in dataclasses.fields(options):
        value = getattr(options, field.name)
        name = f"{prefix}{field.name}"
        if dataclasses.is_dataclass(value):
            check_options(value, prefix=f"{name}_")
            continue
        where = f"{_flag(name)} ({type(options).__name__}.{field.name})"
        if "choices" in field.metadata and value not in field.metadata["choices"]:
            raise OptionError(f"{where} is {value!r}, expected one of {', '.join(field.metadata['choices'])}")
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            continue
        # NaN passes every comparison below, so finiteness is checked on its own.
        if isinstance(value, float) and not math.isfinite(value):
            raise OptionError(f"{where} is {value}, expected a finite number")
        for key, (sign, holds) in _BOUNDS.items():
            if key in field.metadata and not holds(value, field.metadata[key]):
                raise OptionError(f"{where} is {value}, expected {sign} {field.metadata[key]}")


def _attribute_help(cls: type) -> dict[str, str]:
    """Field -> help text from a Google-style ``Attributes:`` docstring section."""
    doc = inspect.getdoc(cls) or ""
    section = doc.split("Attributes:", 1)[1] if "Attributes:" in doc else ""
    helps: dict[str, str] = {}
    current = None
    for line in section.splitlines():
        match = re.match(r"^\s{4}(\w+):\s*(.*)$", line)
        if match:
            current = match.group(1)
            helps[current] = match.group(2)
        elif current and line.startswith(" " * 8):
            helps[current] += " " + line.strip()
        elif line.strip() == "":
            current = None
    return helps


def add_options(parser: argparse.ArgumentParser, cls: type, prefix: str = "") -> None:
    """Add one flag per field of the options dataclass ``cls`` (recursing into nested ones)."""
    hints = typing.get_type_hints(cls)
    helps = _attribute_help(cls)
    for field in dataclasses.fields(cls):
        kind = hints[field.name]
        name = f"{prefix}{field.name}"
        if dataclasses.is_dataclass(kind):
            add_options(parser, kind, prefix=f"{name}_")
            continue
        default = field.default if field.default is not dataclasses.MISSING else field.default_factory()  # type: ignore[misc]
        flag = _flag(name)
        bounds = "".join(f", {s} {field.metadata[k]}" for k, (s, _) in _BOUNDS.items() if k in field.metadata)
        text = f"{helps.get(field.name, '')} (default: {default}{bounds})".strip()
        if kind is bool:
            parser.add_argument(flag, dest=name, action=argparse.BooleanOptionalAction, default=default, help=text)
        elif "choices" in field.metadata:
            parser.add_argument(flag, dest=name, default=default, choices=field.metadata["choices"], help=text)
        else:
            parse = _bounded(kind, field.metadata) if field.metadata.get("parse_bounds") else kind
            parser.add_argument(flag, dest=name, type=parse, default=default, help=text, metavar=kind.__name__.upper())


def cli_flags(options: dict[str, Any], prefix: str = "") -> str:
    """Options (a config block, or a stored ``asdict`` of an options dataclass) -> ``dlearn`` flags:
    ``{"noise": {"dense_jitter_px": 1}}`` -> ``--noise-dense-jitter-px 1``, a bool ``x`` ->
    ``--x`` / ``--no-x``; values shell-quoted. The workflow's rules build their flags with it, and
    experiments/retrain_regressor.sh rebuilds a trained model's from its ``options``."""
    flags = []
    for key, value in options.items():
        name = f"{prefix}{key}".replace("_", "-")
        if isinstance(value, dict):
            flags.append(cli_flags(value, prefix=f"{prefix}{key}_"))
        elif isinstance(value, bool):
            flags.append(f"--{name}" if value else f"--no-{name}")
        else:
            flags.append(f"--{name} {shlex.quote(str(value))}")
    return " ".join(flag for flag in flags if flag)


def options_from_args(args: argparse.Namespace, cls: type[T], prefix: str = "") -> T:
    """Build the options dataclass ``cls`` from parsed flags (see :func:`add_options`).

    Raises:
        OptionError: a value is not finite or out of its field's bounds (:func:`check_options`).
    """
    hints = typing.get_type_hints(cls)
    values: dict[str, Any] = {}
    for field in dataclasses.fields(cls):  # type: ignore[arg-type]
        kind = hints[field.name]
        name = f"{prefix}{field.name}"
        values[field.name] = (
            options_from_args(args, kind, prefix=f"{name}_") if dataclasses.is_dataclass(kind) else getattr(args, name)
        )
    options = cls(**values)
    if not prefix:  # nested dataclasses are checked with their parent, under the full flag name
        check_options(options)
    return options
