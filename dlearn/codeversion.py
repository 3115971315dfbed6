"""Which dlearn source files a `dlearn <command>` runs, and one hash of them.

The Snakemake rules pass this hash as a param, so that editing any module a stage imports reruns
that stage's rule and nothing else (Snakemake does not track the code of imported packages).
The files are found from the import statements (``ast``), not by importing: the Snakefile
evaluates this at parse time, so the module uses the standard library only (no torch).

A command's sources are: the package's ``__main__``, ``cli``, ``options`` and what they import at
module level (every command runs them), plus the import closure of the command's stage module
(:mod:`dlearn.stages`: the module whose ``NAME`` is the command; its ``run`` imports the stage's
implementation). ``cli`` imports the stage modules inside a function, so one command's hash does
not depend on the other stages' modules. The closure follows ``import dlearn.x``,
``from dlearn.x import y`` (``y`` a submodule or not) and relative imports, also those inside
functions and ``if TYPE_CHECKING:`` blocks (the lazy names of a package ``__init__`` are
declared there), and every package ``__init__`` on the way. It does not see other modules loaded
by name at run time (``importlib.import_module``).
"""

from __future__ import annotations

import ast
import hashlib
from collections.abc import Iterable, Iterator
from functools import lru_cache
from pathlib import Path

PACKAGE = "dlearn"
#: Run by every command: ``python -m dlearn`` and the console script both enter through the first
#: two; every command loads the flag machinery while ``cli`` collects the stages' parsers.
ENTRY_MODULES = ("dlearn.__main__", "dlearn.cli", "dlearn.options")
#: The package of the stage modules, one per command.
STAGES = f"{PACKAGE}.stages"


class UnknownCommandError(LookupError):
    """A command name that no stage module (``dlearn/stages/*.py``, its ``NAME``) defines."""


def module_file(root: Path, module: str) -> Path | None:
    """The source file of dotted ``module`` under ``root`` (the folder holding ``dlearn/``), or
    None when it is not a dlearn module (a third-party module, or a name imported from a module)."""
    parts = module.split(".")
    if parts[0] != PACKAGE:
        return None
    base = root.joinpath(*parts)
    if (base / "__init__.py").is_file():
        return base / "__init__.py"
    if base.with_suffix(".py").is_file():
        return base.with_suffix(".py")
    return None


def _walk(node: ast.AST, into_functions: bool) -> Iterator[ast.AST]:
    """``node`` and its descendants; without ``into_functions``, only what runs at import time."""
    yield node
    for child in ast.iter_child_nodes(node):
        if not into_functions and isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
            continue
        yield from _walk(child, into_functions)


def _import_targets(nodes: Iterable[ast.AST], module: str, is_package: bool) -> set[str]:
    """Dotted names that the import statements among ``nodes`` of ``module`` may load: for
    ``from a import b`` both ``a`` and ``a.b`` (``b`` may be a submodule; names that are not
    modules are dropped later by :func:`module_file`)."""
    names: set[str] = set()
    for node in nodes:
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                # A relative import counts from the module's package (the module itself if a package).
                package = module.split(".") if is_package else module.split(".")[:-1]
                package = package[: len(package) - (node.level - 1)]
                base = ".".join(package + ([node.module] if node.module else []))
            else:
                base = node.module or ""
            names.add(base)
            names.update(f"{base}.{alias.name}" for alias in node.names if alias.name != "*")
    return names


def _with_parents(module: str) -> list[str]:
    """``a.b.c`` -> ``a``, ``a.b``, ``a.b.c``: importing a module runs its packages' ``__init__``."""
    parts = module.split(".")
    return [".".join(parts[: i + 1]) for i in range(len(parts))]


@lru_cache(maxsize=1024)
def _module_imports(source: str, module: str, is_package: bool, deep: bool) -> frozenset[str]:
    """:func:`_import_targets` of a module's whole text (``deep``) or of its import-time part.

    Cached on the text, not the path, so an edited file is parsed again: the Snakefile asks for
    every rule's command, and the commands share most of their modules.
    """
    return frozenset(_import_targets(_walk(ast.parse(source), deep), module, is_package))


def import_closure(root: Path, modules: Iterable[str], shallow: Iterable[str] = ()) -> dict[str, Path]:
    """Every dlearn module that importing ``modules`` may run, with its file.

    Args:
        root: the folder that holds the ``dlearn`` package.
        modules: dotted names; their imports are followed everywhere, inside functions too.
        shallow: dotted names whose function bodies are not followed (only their module-level
            imports): ``cli`` imports every stage inside its command functions.
    Returns:
        module name -> source file, for the dlearn modules among them and all they import.
    """
    shallow = set(shallow)
    found: dict[str, Path] = {}
    deep_done: set[str] = set()
    queue = [(name, name not in shallow) for name in [*shallow, *modules]]
    while queue:
        name, deep = queue.pop()
        for module in _with_parents(name):
            # The packages on the way run their __init__: followed like any module they import.
            follow = deep if module == name else module not in shallow
            path = module_file(root, module)
            if path is None or (module in found and (module in deep_done or not follow)):
                continue
            found[module] = path
            if follow:
                deep_done.add(module)
            targets = _module_imports(
                path.read_text(encoding="utf-8"), module, path.name == "__init__.py", follow
            )
            queue.extend((target, target not in shallow) for target in targets if target.startswith(PACKAGE))
    return found


@lru_cache(maxsize=256)
def _stage_name(source: str) -> str | None:
    """The ``NAME = "..."`` a stage module's text assigns at module level, if any."""
    for node in ast.parse(source).body:
        if (
            isinstance(node, ast.Assign)
            and [getattr(t, "id", None) for t in node.targets] == ["NAME"]
            and isinstance(node.value, ast.Constant)
            and isinstance(node.value.value, str)
        ):
            return node.value.value
    return None


def stage_commands(root: Path) -> dict[str, str]:
    """Command name -> dotted name of its stage module, from the ``NAME`` of ``dlearn/stages/*.py``."""
    folder = root.joinpath(*STAGES.split("."))
    commands = {}
    for path in sorted(folder.glob("*.py")):
        name = _stage_name(path.read_text(encoding="utf-8"))
        if name is not None:
            commands[name] = f"{STAGES}.{path.stem}"
    return commands


def command_modules(root: Path, command: str) -> set[str]:
    """The stage module of ``command`` (the module of :mod:`dlearn.stages` whose ``NAME`` it is).

    Raises:
        UnknownCommandError: no stage module names ``command``.
    """
    commands = stage_commands(root)
    if command not in commands:
        raise UnknownCommandError(
            f"{root.joinpath(*STAGES.split('.'))} defines no command {command!r}; it has {', '.join(sorted(commands))}"
        )
    return {commands[command]}


def command_files(root: Path, command: str) -> list[Path]:
    """Every dlearn source file that ``dlearn <command>`` runs, sorted (see the module docstring)."""
    closure = import_closure(root, command_modules(root, command), shallow=ENTRY_MODULES)
    return sorted(set(closure.values()))


def code_version(root: Path, command: str) -> str:
    """16 hex digits of the SHA-256 of ``command``'s source files (relative paths and contents):
    the same on every machine for the same sources, changed by any edit to one of them."""
    digest = hashlib.sha256()
    for path in command_files(root, command):
        digest.update(path.relative_to(root).as_posix().encode())
        digest.update(b"\0")
        digest.update(path.read_bytes())
        digest.update(b"\0")
    return digest.hexdigest()[:16]
