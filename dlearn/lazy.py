"""Package attributes that load on first use (PEP 562), so a light submodule stays light.

A package ``__init__`` declares its names under ``if TYPE_CHECKING:`` (which
:mod:`dlearn.codeversion` follows) and sets ``__getattr__ = lazy_attributes(__name__, where)``.
Standard library only: every package ``__init__`` on an import path loads it.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from typing import Any


def lazy_attributes(package: str, where: Mapping[str, str]) -> Callable[[str], Any]:
    """The module ``__getattr__`` of ``package``: name -> the attribute of the module ``where[name]``.

    Raises (from the returned function):
        AttributeError: a name that ``where`` does not list, worded as Python's own.
    """

    def __getattr__(name: str) -> Any:
        if name not in where:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        return getattr(importlib.import_module(where[name]), name)

    return __getattr__
