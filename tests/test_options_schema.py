"""The config schema's stage blocks and the stages' options dataclasses do not drift apart.

Every key of a stage block (less the workflow's own, :data:`dlearn.options.WORKFLOW_KEYS`) is a
field of the stage's options dataclass with the same default, type, choices and at least its
bounds; every field is in the block unless the workflow sets it from elsewhere (listed below).
Nested dataclasses are nested blocks, checked the same way.
"""

from __future__ import annotations

import dataclasses
import typing
from pathlib import Path
from typing import Any

import pytest
import yaml

from dlearn.cgan.options import CganOptions
from dlearn.data.crop_options import CropOptions
from dlearn.data.synth.options import SynthOptions
from dlearn.densepose.options import PredictionOptions
from dlearn.evaluation.options import EvaluateOptions, ReportOptions
from dlearn.options import WORKFLOW_KEYS
from dlearn.registration.options import RegistrationOptions
from dlearn.regressor.options import PredictOptions, RegressorOptions

REPO = Path(__file__).resolve().parents[1]
SCHEMA = yaml.safe_load((REPO / "workflow" / "schemas" / "config.schema.yaml").read_text())

#: Block -> (options dataclass, fields the rules take from elsewhere than the block).
BLOCKS: dict[str, tuple[type, set[str]]] = {
    "dataset.synthetic": (SynthOptions, {"workers"}),  # the rule's threads
    "crops": (CropOptions, {"workers", "chunk_rows", "keypoint_names"}),  # threads, fixed, dataset naming
    "dataset.densepose_predictions": (PredictionOptions, set()),
    "cgan": (CganOptions, {"device"}),  # config.device
    "registration": (RegistrationOptions, {"device"}),
    "regressor": (RegressorOptions, {"device"}),
    "predict": (PredictOptions, {"device"}),
    "evaluation": (EvaluateOptions, set()),
    "report": (ReportOptions, set()),
}

_TYPES = {int: "integer", float: "number", bool: "boolean", str: "string"}


def _block(path: str) -> dict[str, Any]:
    node = SCHEMA
    for key in path.split("."):
        node = node["properties"][key]
    return node


def _resolve(node: dict[str, Any]) -> dict[str, Any]:
    if "$ref" in node:
        name = node["$ref"].rsplit("/", 1)[-1]
        return {**SCHEMA["definitions"][name], **{k: v for k, v in node.items() if k != "$ref"}}
    return node


def _drift(cls: type, node: dict[str, Any], path: str, elsewhere: set[str], workflow: tuple[str, ...] = ()) -> list[str]:
    node = _resolve(node)
    keys = {k for k in node["properties"] if k not in workflow}
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    problems = [f"{path}.{k}: no field {cls.__name__}.{k}" for k in sorted(keys - set(fields))]
    problems += [f"{path}: no key for {cls.__name__}.{k}" for k in sorted(set(fields) - keys - elsewhere)]
    for name in sorted(keys & set(fields)):
        field, prop, where = fields[name], _resolve(node["properties"][name]), f"{path}.{name}"
        kind = hints[name]
        if dataclasses.is_dataclass(kind):
            problems += _drift(kind, prop, where, set())
            continue
        default = field.default
        if prop.get("default") != default or type(prop.get("default")) is not type(default) and kind is not float:
            problems.append(f"{where}: default {prop.get('default')!r}, {cls.__name__}.{name} = {default!r}")
        if prop.get("type") != _TYPES[kind]:
            problems.append(f"{where}: type {prop.get('type')}, {cls.__name__}.{name} is {kind.__name__}")
        if "choices" in field.metadata and tuple(prop.get("enum", ())) != field.metadata["choices"]:
            problems.append(f"{where}: enum {prop.get('enum')}, choices {field.metadata['choices']}")
        # The schema may be stricter than the dataclass (a config sanity range), never looser.
        for bound, schema_key, tighter in (
            ("minimum", "minimum", lambda s, d: s >= d),
            ("exclusive_minimum", "exclusiveMinimum", lambda s, d: s >= d),
            ("maximum", "maximum", lambda s, d: s <= d),
        ):
            if bound in field.metadata:
                value = prop.get(schema_key, prop.get("exclusiveMinimum") if bound == "minimum" else None)
                if value is None or not tighter(value, field.metadata[bound]):
                    problems.append(f"{where}: {schema_key} {value}, {cls.__name__}.{name} needs {field.metadata[bound]}")
    return problems


@pytest.mark.parametrize("block", sorted(BLOCKS))
def test_config_block_matches_its_options_dataclass(block: str) -> None:
    cls, elsewhere = BLOCKS[block]
    assert _drift(cls, _block(block), block, elsewhere, WORKFLOW_KEYS.get(block, ())) == []


def test_workflow_keys_are_keys_of_their_blocks() -> None:
    for block, keys in WORKFLOW_KEYS.items():
        assert set(keys) <= set(_block(block)["properties"]), block
