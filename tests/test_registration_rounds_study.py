"""experiments/registration_rounds_study.py: its "truth" start is the true parameters in the
registration store's camera layout, and a fit started there with the true depths stays there
(the study's bound rows rest on both)."""

from __future__ import annotations

import importlib.util
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from dlearn.evaluation.body_points import PoseComputer

SCRIPT = Path(__file__).resolve().parents[1] / "experiments" / "registration_rounds_study.py"


@pytest.fixture(scope="module")
def study():
    spec = importlib.util.spec_from_file_location("registration_rounds_study", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    yield module
    del sys.modules[spec.name]


@pytest.fixture
def results(exact_data: dict, tmp_path: Path) -> Path:
    """exact_data laid out as a workflow results folder (the paths the study reads)."""
    root = tmp_path / "results"
    (root / "data").mkdir(parents=True)
    (root / "body").mkdir()
    (root / "data/crops_train.zarr").symlink_to(exact_data["crops"])
    (root / "data/gt_train.zarr").symlink_to(exact_data["gt"])
    (root / "correspondences_train.zarr").symlink_to(exact_data["corr"])
    (root / "body/model.pkl").symlink_to(exact_data["model"])
    return root


def test_truth_start_is_the_true_parameters_in_crop_coordinates(study, results, exact_data, tmp_path) -> None:
    from dlearn.data.store import open_store, read_sample_ids
    from dlearn.params import PARAM_KEYS

    start = open_store(study.write_truth_start(results, tmp_path / "truth.zarr"))
    truth = open_store(exact_data["truth"])  # built independently by the fixture
    assert read_sample_ids(start) == read_sample_ids(truth)
    for key in PARAM_KEYS:
        np.testing.assert_allclose(start[key][...], truth[key][...], rtol=0, atol=1e-5, err_msg=key)


def test_fit_from_the_truth_with_true_depths_stays_near_it(study, results, exact_data, tmp_path) -> None:
    start = study.write_truth_start(results, tmp_path / "truth.zarr")
    options = replace(study.LATER, steps=60)
    poses = PoseComputer(exact_data["model"])
    pa, losses, _ = study.register_and_score(
        results, tmp_path / "fit.zarr", options, poses, depths=exact_data["depths"], init=start
    )
    assert pa.shape == (6, 24) and losses.shape == (6, 5)
    # Exact annotations and depths: the truth is (nearly) the objective's optimum.
    assert pa.mean() < 15.0
    from_tpose, _, _ = study.register_and_score(
        results, tmp_path / "fit_tpose.zarr", options, poses, depths=exact_data["depths"]
    )
    assert pa.mean() < from_tpose.mean()  # the check can fail: a T-pose start after 60 steps is worse
