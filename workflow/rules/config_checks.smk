# Config checks that JSON schema cannot express, run right after the schema's validation.
import math
from pathlib import Path

from snakemake.exceptions import WorkflowError


def check_finite(config):
    """Every number of the config is finite, or a WorkflowError names its key. JSON schema cannot
    reject NaN (it passes every minimum and maximum) nor inf where a key has no maximum.
    """
    todo = list(config.items())
    while todo:
        key, value = todo.pop()
        if isinstance(value, dict):
            todo += [(f"{key}.{name}", item) for name, item in value.items()]
        elif isinstance(value, float) and not math.isfinite(value):
            raise WorkflowError(f"config key {key}: {value} is not a finite number")


def check_results_folder(results):
    """The results folder and its parents are folders or absent; otherwise Snakemake would fail
    with NotADirectoryError's traceback while it looks for existing outputs."""
    for folder in (Path(results), *Path(results).parents):
        if folder.exists() and not folder.is_dir():
            raise WorkflowError(
                f"config key results: {folder} is an existing file, not a folder"
            )


check_finite(config)
check_results_folder(config["results"])
