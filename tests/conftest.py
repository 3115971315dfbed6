"""Shared fixtures: the procedural stand-in body on disk, and small random SMPL-format models."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pytest

from dlearn.body.io import NUM_JOINTS, NUM_POSE_BLEND, SMPL_PARENTS, BodyModelData

if TYPE_CHECKING:
    from dlearn.body.standin import StandinBody


def random_body_data(num_vertices: int = 60, seed: int = 0, posedirs_scale: float = 0.02) -> BodyModelData:
    """A random SMPL-format model: SMPL's tree, sparse-ish skinning weights, non-zero pose blend shapes.

    Vertices cluster around their dominant joint so that posed bodies look body-like enough for
    the geometric properties to be non-trivial; the arrays are otherwise arbitrary.
    """
    rng = np.random.default_rng(seed)
    joints = np.zeros((NUM_JOINTS, 3))
    for j in range(1, NUM_JOINTS):
        joints[j] = joints[SMPL_PARENTS[j]] + rng.normal(scale=0.15, size=3)
    owner = np.concatenate([np.arange(NUM_JOINTS), rng.integers(0, NUM_JOINTS, num_vertices - NUM_JOINTS)])
    v_template = joints[owner] + rng.normal(scale=0.05, size=(num_vertices, 3))
    weights = rng.random((num_vertices, NUM_JOINTS)) ** 8  # a few joints dominate each vertex
    weights[np.arange(num_vertices), owner] += 1.0
    weights /= weights.sum(1, keepdims=True)
    j_regressor = np.zeros((NUM_JOINTS, num_vertices))
    j_regressor[np.arange(NUM_JOINTS), np.arange(NUM_JOINTS)] = 1.0  # vertex j sits near joint j
    j_regressor += (
        0.1 * rng.random((NUM_JOINTS, num_vertices)) * (owner[None, :] == np.arange(NUM_JOINTS)[:, None])
    )
    j_regressor /= j_regressor.sum(1, keepdims=True)
    return BodyModelData(
        v_template=v_template,
        faces=rng.integers(0, num_vertices, size=(2 * num_vertices, 3)),
        weights=weights,
        parents=SMPL_PARENTS.copy(),
        j_regressor=j_regressor,
        posedirs=posedirs_scale * rng.normal(size=(num_vertices, 3, NUM_POSE_BLEND)),
        vertex_ids={"nose": 0, "reye": 1, "leye": 2, "rear": 3, "lear": 4},
    )


@pytest.fixture(scope="session")
def random_model_data() -> BodyModelData:
    return random_body_data()


@pytest.fixture(scope="session")
def standin_body() -> StandinBody:
    """The procedural stand-in body, built once per session (about 1.5 s a build)."""
    from dlearn.body.standin import build_standin

    return build_standin()


@pytest.fixture
def prebuilt_standin(monkeypatch: pytest.MonkeyPatch, standin_body: StandinBody) -> StandinBody:
    """Make ``write_standin`` and ``dlearn make-body`` write the session's stand-in instead of
    building another: for tests of what is written where, not of the build."""
    monkeypatch.setattr("dlearn.body.standin.build_standin", lambda: standin_body)
    return standin_body


@pytest.fixture(scope="session")
def standin_files(tmp_path_factory: pytest.TempPathFactory, standin_body: StandinBody) -> tuple[Path, Path]:
    """(model .pkl, UV .mat) of the procedural stand-in body, written once per session."""
    from dlearn.body.standin import write_standin

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr("dlearn.body.standin.build_standin", lambda: standin_body)
        return write_standin(tmp_path_factory.mktemp("standin"))


@pytest.fixture(scope="session")
def exact_data(tmp_path_factory: pytest.TempPathFactory, standin_files: tuple[Path, Path]) -> dict[str, Path]:
    """Six exact synthetic persons, their crops, correspondences, true depths and the true
    parameters as a registration store (``truth``)."""
    from dlearn.body.io import load_body_model
    from dlearn.cgan.evaluate import true_depths
    from dlearn.data.crops import CropOptions, make_crops
    from dlearn.data.store import open_store, read_sample_ids, write_store
    from dlearn.data.synth import SynthOptions, synthesize
    from dlearn.densepose.match import MatchOptions, match_correspondences
    from helpers import with_body_points

    root = tmp_path_factory.mktemp("exact")
    model, uv = standin_files
    synthesize(model, uv, root, SynthOptions(num_train=6, num_test=1, image_size=96, workers=1))
    make_crops(root / "densepose_train.json", root, root / "crops.zarr", CropOptions(image_size=32, workers=1))
    match_correspondences(
        root / "densepose_train.json", root / "crops.zarr", uv, root / "corr.zarr", MatchOptions(),
        load_body_model(model).num_vertices,
    )  # fmt: skip
    crops, gt = open_store(root / "crops.zarr"), open_store(root / "gt_train.zarr")
    ids = read_sample_ids(crops)
    row = {s: i for i, s in enumerate(read_sample_ids(gt))}
    idx = [row[s] for s in ids]
    box = crops["box"][...]
    half = box[:, 2] / 2
    rotation = gt["cam_rotation"][...][idx]
    scale = gt["cam_scale"][...][idx] / half
    true_depths(root / "crops.zarr", root / "gt_train.zarr", root / "depths.zarr")
    truth = {
        "pose": gt["pose"][...][idx],
        "scales": gt["scales"][...][idx],
        "rotation": rotation,
        "cam_scale": scale,
        "cam_translation": (gt["cam_translation"][...][idx] - box[:, :2]) / half[:, None],
    }
    truth = with_body_points(truth, model)  # the registration store's layout
    truth["status"] = np.zeros(len(ids), np.uint8)
    write_store(root / "truth.zarr", truth, stage="merge_registration", sample_id=ids)
    return {"root": root, "model": model, "corr": root / "corr.zarr", "crops": root / "crops.zarr",
            "depths": root / "depths.zarr", "truth": root / "truth.zarr", "gt": root / "gt_train.zarr"}  # fmt: skip


@pytest.fixture
def h36m_set(exact_data: dict, tmp_path: Path) -> dict[str, Path]:
    """The exact synthetic persons laid out as a SPIN-style Human3.6M evaluation set: npz with
    boxes and 3D joints from a 17-joint regressor, the regressor .npy, and predictions equal to
    the truth (sample ids h36m_i in the npz's order)."""
    import json

    import torch

    from dlearn.body.io import load_body_model
    from dlearn.data.store import open_store, read_sample_ids, write_store
    from dlearn.evaluation.body_points import PoseComputer
    from dlearn.registration.data import PARAM_KEYS

    crops = open_store(exact_data["crops"])
    ids = read_sample_ids(crops)
    coco = json.loads((exact_data["root"] / "densepose_train.json").read_text())
    file_name = {img["id"]: img["file_name"] for img in coco["images"]}
    n_vertices = load_body_model(exact_data["model"]).num_vertices
    regressor = np.zeros((17, n_vertices))
    regressor[np.arange(17), np.random.default_rng(1).choice(n_vertices, 17, replace=False)] = 1.0
    np.save(tmp_path / "J_regressor_h36m.npy", regressor)
    truth = {k: np.asarray(open_store(exact_data["truth"])[k][...]) for k in PARAM_KEYS}
    poses = PoseComputer(exact_data["model"])
    with torch.no_grad():
        h36m17 = poses.regressed_joints(truth, regressor)
    # SPIN's layout (datasets/preprocess/h36m.py): the 17 joints, root-centred, at its global_idx,
    # confidence 1; slot 13 (LSP head top) stays empty, the head is slot 18.
    global_idx = [14, 3, 4, 5, 2, 1, 0, 16, 12, 17, 18, 9, 10, 11, 8, 7, 6]
    s = np.zeros((len(ids), 24, 4))
    s[:, global_idx, :3], s[:, global_idx, 3] = h36m17 - h36m17[:, :1], 1.0
    box = np.asarray(crops["box"][...], np.float64)
    np.savez(tmp_path / "h36m.npz", imgname=np.array([file_name[int(i.split("_")[0])] for i in ids]),
             center=box[:, :2], scale=box[:, 2] / 200.0, S=s)  # fmt: skip
    write_store(tmp_path / "pred.zarr", {**truth, "status": np.zeros(len(ids), np.uint8)}, stage="predict",
                sample_id=[f"h36m_{i}" for i in range(len(ids))])  # fmt: skip
    return {"npz": tmp_path / "h36m.npz", "regressor": tmp_path / "J_regressor_h36m.npy", "pred": tmp_path / "pred.zarr",
            "root": exact_data["root"], "model": exact_data["model"]}  # fmt: skip
