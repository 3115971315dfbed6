"""Helpers that several test files share (imported by name, like ``cgan_toy``: ``tests/`` is on
the path); the shared fixtures are in ``conftest.py``."""

from __future__ import annotations

import sys
import types
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest


@contextmanager
def fake_chumpy() -> Iterator[type]:
    """chumpy's ``Ch`` (module ``chumpy.ch``), importable only inside the block: files pickled
    with it hold chumpy arrays as the official SMPL files do, and the loader must read them
    without chumpy (which does not import with numpy >= 1.24)."""

    class Ch:
        def __init__(self, x: Any) -> None:
            self.x = x  # chumpy's __getstate__ is the instance dict: the array under 'x'
            self.dterms = ("x",)

    Ch.__module__, Ch.__qualname__ = "chumpy.ch", "Ch"
    fake = types.ModuleType("chumpy.ch")
    fake.Ch = Ch
    saved = {name: sys.modules.get(name) for name in ("chumpy", "chumpy.ch")}
    sys.modules["chumpy"], sys.modules["chumpy.ch"] = types.ModuleType("chumpy"), fake
    try:
        yield Ch
    finally:
        for name, module in saved.items():
            if module is None:
                del sys.modules[name]
            else:
                sys.modules[name] = module


@contextmanager
def killed_on_call(owner: Any, name: str, call: int) -> Iterator[None]:
    """A job killed mid-run: inside the block, ``owner.name`` raises KeyboardInterrupt on its
    ``call``-th call (the calls before it run the real one). The block must end by that
    interrupt; ``owner.name`` is the real one again after it."""
    real = getattr(owner, name)
    calls = 0

    def dies(*args: object, **kwargs: object) -> Any:
        nonlocal calls
        calls += 1
        if calls == call:
            raise KeyboardInterrupt("job killed")
        return real(*args, **kwargs)

    setattr(owner, name, dies)
    try:
        with pytest.raises(KeyboardInterrupt):
            yield
    finally:
        setattr(owner, name, real)


def with_body_points(arrays: dict[str, Any], body_model: Any) -> dict[str, Any]:
    """``arrays`` (a registration or prediction store's parameters) with the body-frame
    ``joints`` (N, 24, 3) and COCO ``keypoints`` (N, 17, 3) their stage would store (float32),
    posed from ``pose`` and ``scales`` through the body model: for stores written by hand."""
    from dlearn.evaluation.body_points import PoseComputer

    joints, keypoints = PoseComputer(body_model).body_points(arrays["pose"], arrays["scales"])
    return {**arrays, "joints": joints.astype("float32"), "keypoints": keypoints.astype("float32")}


def constant_regressor(path: Any, theta: Any) -> Any:
    """A model.pt at ``path`` whose network predicts ``theta`` (105,) for every crop."""
    import torch

    from dlearn.checkpoint import REGRESSOR_FORMAT, atomic_save
    from dlearn.regressor.model import Regressor, RegressorSpec
    from dlearn.regressor.train import MODEL_VERSION

    spec = RegressorSpec("resnet18", 8)
    model = Regressor(spec, torch.as_tensor(theta, dtype=torch.float32))
    torch.nn.init.zeros_(model.head[-1].weight)
    atomic_save({"format": REGRESSOR_FORMAT, "version": MODEL_VERSION, "spec": {"backbone": "resnet18", "head_hidden": 8},
                 "options": {}, "state_dict": model.state_dict(), "curve": []}, path)  # fmt: skip
    return path
