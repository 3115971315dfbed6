"""experiments/regressor_study.py: the per-mode errors and the 6D output it reports rest on
replaying the synthesizer's pose mode and on an exact 6D <-> axis-angle round trip."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

SCRIPT = Path(__file__).resolve().parents[1] / "experiments" / "regressor_study.py"


@pytest.fixture(scope="module")
def study():
    spec = importlib.util.spec_from_file_location("regressor_study", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up
    spec.loader.exec_module(module)
    yield module
    del sys.modules[spec.name]


def test_pose_mode_is_the_mode_the_synthesizer_drew(study, standin_files) -> None:
    from dlearn.data.synth import SPLITS, SynthOptions
    from dlearn.data.synth.body import _Body
    from dlearn.data.synth.options import SPLIT_ID_OFFSET
    from dlearn.data.synth.scene import _sample_persons

    body = _Body(*standin_files)
    options = SynthOptions(seed=3)
    drawn, replayed = [], []
    for split_index, split in enumerate(SPLITS):
        for i in range(12):
            rng = np.random.default_rng([options.seed, split_index, i])
            drawn.append(_sample_persons(rng, body, options)[0].mode)
            replayed.append(study.pose_mode(options.seed, split, SPLIT_ID_OFFSET[split] + i + 1))
    assert replayed == drawn
    assert len(set(drawn)) > 1  # the check would not see a constant answer


def test_6d_output_round_trips_theta(study) -> None:
    generator = torch.Generator().manual_seed(0)
    theta = torch.randn(8, 105, generator=generator) * 0.5
    out = study.to_output(theta, "6d")
    assert out.shape == (8, study.output_size("6d"))
    torch.testing.assert_close(study.to_theta(out, "6d"), theta, atol=1e-5, rtol=0)


def test_iterative_head_starts_at_the_reference_and_feeds_back(study) -> None:
    """Untrained, the iterative head predicts the reference theta (as dlearn's head does); each
    iteration sees the previous estimate, so the output depends on the iteration count."""
    reference = torch.linspace(-1, 1, 105)
    model = study.build_model("tiny16", 32, "aa", reference, False, ief=3)
    images = torch.rand(4, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    model.eval()
    torch.testing.assert_close(model(images), reference.expand(4, -1), atol=0.05, rtol=0)
    torch.nn.init.normal_(model.head.mlp[-1].weight, std=0.1)
    three = model(images)
    model.head.iterations = 1
    assert not torch.allclose(model(images), three)


def test_facing_bin_is_the_sector_of_the_bodys_heading(study) -> None:
    """Sector 0 faces the camera (the registration's upright start), bins / 2 shows the back;
    turning the body about its vertical axis by one sector moves it one sector on."""
    from scipy.spatial.transform import Rotation

    from dlearn.registration.fit import UPRIGHT_FACING

    facing = torch.as_tensor(UPRIGHT_FACING)
    back = facing @ torch.diag(torch.tensor([-1.0, 1.0, -1.0], dtype=torch.float64))
    assert study.facing_bin(facing, 8) == 0 and study.facing_bin(back, 8) == 4
    headings = np.linspace(-np.pi, np.pi, 24, endpoint=False) + 0.01
    turned = facing @ torch.as_tensor(Rotation.from_euler("y", headings[:, None]).as_matrix())
    sectors = study.facing_bin(turned, 8)
    assert sectors.tolist() == (np.round(headings / (2 * np.pi / 8)).astype(int) % 8).tolist()
    torch.testing.assert_close(study.facing_bin(turned.reshape(-1, 9), 8), sectors)  # theta's 9 numbers
