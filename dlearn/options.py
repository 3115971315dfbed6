"""Stage options: frozen dataclasses, exposed one-to-one as command-line flags.

A field ``image_size`` becomes ``--image-size``; a nested options dataclass ``noise`` with a
field ``dense_jitter_px`` becomes ``--noise-dense-jitter-px``. Help texts come from the
``Attributes:`` section of the dataclass docstring, so the options are documented once. The
Snakemake rules build the same flags from the config (``cli_flags`` in common.smk), so a config
key, a flag and a field always share one name.
"""

from __future__ import annotations

import argparse
import dataclasses
import inspect
import re
import typing
from typing import Any, TypeVar

T = TypeVar("T")


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
        flag = "--" + name.replace("_", "-")
        text = f"{helps.get(field.name, '')} (default: {default})".strip()
        if kind is bool:
            parser.add_argument(flag, dest=name, action=argparse.BooleanOptionalAction, default=default, help=text)
        else:
            parser.add_argument(flag, dest=name, type=kind, default=default, help=text, metavar=kind.__name__.upper())


def options_from_args(args: argparse.Namespace, cls: type[T], prefix: str = "") -> T:
    """Build the options dataclass ``cls`` from parsed flags (see :func:`add_options`)."""
    hints = typing.get_type_hints(cls)
    values: dict[str, Any] = {}
    for field in dataclasses.fields(cls):  # type: ignore[arg-type]
        kind = hints[field.name]
        name = f"{prefix}{field.name}"
        values[field.name] = (
            options_from_args(args, kind, prefix=f"{name}_") if dataclasses.is_dataclass(kind) else getattr(args, name)
        )
    return cls(**values)
