"""Conventions of the real files and the paper's protocols: SPIN's Human3.6M joint layout, the
paper's bone-length scaling, positive segment scales, proper predicted rotations, and the dense
points the regressor sees.

Fixtures follow the layout the real producer writes (SPIN's datasets/preprocess/h36m.py for
the npz), not the layout dlearn writes.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from dlearn.body.io import SMPL_PARENTS
from dlearn.data.h36m import EvaluationFileError
from dlearn.errors import InputError
from dlearn.evaluation.metrics import bone_lengths, mpjpe_bone_scaled
from helpers import constant_regressor

#: SPIN's global_idx: slot of S (24) of each of the 17 Human3.6M joints (datasets/preprocess/h36m.py).
SPIN_GLOBAL_IDX = [14, 3, 4, 5, 2, 1, 0, 16, 12, 17, 18, 9, 10, 11, 8, 7, 6]


def _spin_s(h36m17: np.ndarray) -> np.ndarray:
    """(N, 17, 3) Human3.6M joints (metres) -> (N, 24, 4) as SPIN writes S: root-centred, at
    global_idx, confidence 1; slot 13 (LSP head top) and the other slots 0."""
    s = np.zeros((len(h36m17), 24, 4))
    s[:, SPIN_GLOBAL_IDX, :3] = h36m17 - h36m17[:, :1]
    s[:, SPIN_GLOBAL_IDX, 3] = 1.0
    return s


def _rewrite_npz(src: Path, dst: Path, **overrides: np.ndarray) -> Path:
    with np.load(src) as npz:
        arrays = {k: npz[k] for k in npz.files}
    arrays.update(overrides)
    np.savez(dst, **arrays)
    return dst


# --- 1. Human3.6M ground truth in SPIN's layout ---------------------------------------------


def test_spin_layout_leaves_slot_13_empty_and_every_frame_is_evaluated(h36m_set: dict) -> None:
    from dlearn.evaluation.h36m import evaluate_h36m

    with np.load(h36m_set["npz"]) as npz:
        s = npz["S"]
    assert np.all(s[:, 13, 3] == 0) and np.all(s[:, 18, 3] == 1)  # the fixture is SPIN's layout
    report = evaluate_h36m(
        0, h36m_set["pred"], h36m_set["npz"], h36m_set["regressor"], h36m_set["model"], bone_scaling="ground_truth"
    )
    metrics = report["results"]["h36m"]["convnet"]
    assert report["protocol"]["skipped_frames"] == 0 and report["protocol"]["frames"] == len(s)
    assert metrics["h36m_mpjpe"]["samples"] == len(s)
    # Exact predictions: every joint, the head (slot 18) included, is where the truth is.
    assert max(metrics["h36m_mpjpe"]["per_joint"]) < 1e-3


def test_frames_lacking_a_joint_beyond_the_allowed_fraction_are_an_error_naming_the_file(
    h36m_set: dict, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    from dlearn.evaluation.h36m import evaluate_h36m

    with np.load(h36m_set["npz"]) as npz:
        s = npz["S"].copy()
    s[0, 18, 3] = 0.0  # frame 0 has no head
    one_missing = _rewrite_npz(h36m_set["npz"], tmp_path / "h36m_valid_protocol1.npz", S=s)
    args = (0, h36m_set["pred"], one_missing, h36m_set["regressor"], h36m_set["model"])
    with pytest.raises(EvaluationFileError, match=r"h36m_valid_protocol1\.npz: 1 of 6 frames lack") as err:
        evaluate_h36m(*args)
    assert isinstance(err.value, InputError) and "max_skipped" in str(err.value)
    with caplog.at_level("INFO"):
        report = evaluate_h36m(*args, max_skipped=0.2)
    assert report["protocol"]["skipped_frames"] == 1
    assert report["results"]["h36m"]["convnet"]["h36m_pa_mpjpe"]["samples"] == 5
    assert "1 of 6 frames skipped" in caplog.text


def test_the_first_14_slots_layout_is_refused_not_evaluated_empty(h36m_set: dict, tmp_path: Path) -> None:
    """A file with the 14 LSP joints in the first slots and slot 18 empty (not SPIN's layout):
    every frame lacks the head, which used to give an empty evaluation and a successful run."""
    from dlearn.evaluation.h36m import evaluate_h36m

    with np.load(h36m_set["npz"]) as npz:
        spin = npz["S"]
    first14 = np.zeros_like(spin)
    first14[:, :14] = spin[:, [*range(13), 18]]
    path = _rewrite_npz(h36m_set["npz"], tmp_path / "first14.npz", S=first14)
    with pytest.raises(EvaluationFileError, match=r"first14\.npz: 6 of 6 frames lack"):
        evaluate_h36m(0, h36m_set["pred"], path, h36m_set["regressor"], h36m_set["model"])


def test_cli_reports_a_wrong_layout_in_one_line(h36m_set: dict, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    from dlearn.cli import main

    with np.load(h36m_set["npz"]) as npz:
        s = npz["S"].copy()
    s[:, 18, 3] = 0.0
    path = _rewrite_npz(h36m_set["npz"], tmp_path / "nohead.npz", S=s)
    code = main(["evaluate-h36m", "--round", "0", "--predictions", str(h36m_set["pred"]), "--npz", str(path),
                 "--joint-regressor", str(h36m_set["regressor"]), "--body-model", str(h36m_set["model"]),
                 "--out-json", str(tmp_path / "e.json"), "--out-csv", str(tmp_path / "e.csv")])  # fmt: skip
    errors = [r for r in caplog.records if r.levelname == "ERROR"]
    assert code == 1 and len(errors) == 1 and "nohead.npz: 6 of 6 frames lack" in errors[0].getMessage()
    assert errors[0].exc_info is None  # no traceback
    assert not (tmp_path / "e.json").exists()


# --- 2. bone-length scaling as the paper specifies -------------------------------------------


def _naive_bone_scaled(pred: np.ndarray, gt: np.ndarray, parents: np.ndarray, canonical: float, root: int) -> np.ndarray:
    """Zhou et al.'s protocol, one sample and one joint at a time: the prediction is scaled so
    its bone lengths sum to ``canonical``; the ground truth is left as it is."""
    out = np.zeros(pred.shape[:2])
    for n in range(len(pred)):
        total = sum(np.linalg.norm(pred[n, j] - pred[n, parents[j]]) for j in range(len(parents)) if parents[j] >= 0)
        scaled = pred[n] * (canonical / total)
        for j in range(pred.shape[1]):
            out[n, j] = np.linalg.norm((scaled[j] - scaled[root]) - (gt[n, j] - gt[n, root]))
    return out


def test_paper_scaling_scales_the_prediction_only_like_a_naive_implementation() -> None:
    rng = np.random.default_rng(0)
    gt = 1000.0 * rng.normal(scale=0.3, size=(4, 24, 3))
    pred = 0.7 * gt + 1000.0 * rng.normal(scale=0.02, size=gt.shape)
    canonical = 5000.0
    fast = mpjpe_bone_scaled(pred, gt, SMPL_PARENTS, canonical_bone_sum=canonical)
    np.testing.assert_allclose(fast, _naive_bone_scaled(pred, gt, SMPL_PARENTS, canonical, root=0), rtol=1e-10)
    # An exact prediction of a skeleton larger than the canonical one is not error-free: the
    # ground truth stays in millimetres.
    exact = mpjpe_bone_scaled(gt, gt, SMPL_PARENTS, canonical_bone_sum=canonical)
    factor = canonical / bone_lengths(gt, SMPL_PARENTS).sum(-1)
    expected = np.abs(1 - factor)[:, None] * np.linalg.norm(gt - gt[:, :1], axis=-1)
    np.testing.assert_allclose(exact, expected, rtol=1e-10)


def test_evaluation_scales_to_the_training_splits_mean_skeleton_and_says_so(exact_data: dict, tmp_path: Path) -> None:
    from dlearn.data.store import open_store, read_sample_ids, write_store
    from dlearn.evaluation.evaluate import evaluate_round
    from dlearn.registration.data import PARAM_KEYS

    truth = open_store(exact_data["truth"])
    arrays = {k: np.asarray(truth[k][...]) for k in (*PARAM_KEYS, "joints", "keypoints")}
    write_store(tmp_path / "p.zarr", {**arrays, "status": np.zeros(len(arrays["pose"]), np.uint8)}, stage="predict",
                sample_id=read_sample_ids(truth))  # fmt: skip
    reports = {
        mode: evaluate_round(
            0, exact_data["model"], {"train": exact_data["crops"], "test": exact_data["crops"]},
            {"train": exact_data["gt"], "test": exact_data["gt"]}, exact_data["truth"],
            {"train": tmp_path / "p.zarr", "test": tmp_path / "p.zarr"}, bone_scaling=mode,
        )
        for mode in ("canonical_average", "both_to_rest", "ground_truth")
    }
    gt = open_store(exact_data["gt"])
    row = {s: i for i, s in enumerate(read_sample_ids(gt))}
    joints = 1000.0 * np.asarray(gt["joints3d"][...])[[row[s] for s in read_sample_ids(truth)]]
    mean_sum = bone_lengths(joints, SMPL_PARENTS).sum(-1).mean()
    protocol = reports["canonical_average"]["protocol"]
    assert protocol["bone_scaling"] == "canonical_average"
    assert protocol["canonical_bone_sum_mm"]["joints24"] == pytest.approx(mean_sum, rel=1e-5)
    assert "prediction only" in protocol["mpjpe_bone_scaled"]
    # Exact predictions: zero when the truth is rescaled too, not under the paper's protocol.
    paper = reports["canonical_average"]["results"]["train"]["registration"]["mpjpe_bone_scaled"]["mean"]
    rotation = np.asarray(truth["rotation"][...], np.float64)
    camera = np.einsum("nij,nkj->nki", rotation, joints)
    expected = _naive_bone_scaled(camera, camera, SMPL_PARENTS, mean_sum, root=0).mean()
    assert paper == pytest.approx(expected, rel=1e-4) and paper > 1.0
    for mode in ("both_to_rest", "ground_truth"):
        assert reports[mode]["results"]["train"]["registration"]["mpjpe_bone_scaled"]["mean"] < 0.5, mode
    assert reports["ground_truth"]["protocol"]["canonical_bone_sum_mm"]["joints24"] is None


def test_human36m_canonical_skeleton_comes_from_the_training_npz(h36m_set: dict, tmp_path: Path) -> None:
    from dlearn.evaluation.h36m import evaluate_h36m

    # A training file as SPIN's h36m_train.npz: S in the same 24-slot layout, other keys too.
    rng = np.random.default_rng(3)
    h36m17 = rng.normal(scale=0.3, size=(10, 17, 3))
    train = tmp_path / "h36m_train.npz"
    np.savez(train, imgname=np.array([f"S1_{i}.jpg" for i in range(10)]), center=np.zeros((10, 2)),
             scale=np.ones(10), S=_spin_s(h36m17), pose=np.zeros((10, 72)), shape=np.zeros((10, 10)))  # fmt: skip
    lsp = h36m17[:, [6, 5, 4, 1, 2, 3, 16, 15, 14, 11, 12, 13, 8, 10]]  # SPIN's H36M_TO_J14
    hips = lsp[:, [2, 3]].mean(1, keepdims=True)
    tree = np.concatenate([lsp, hips], axis=1)
    parents = np.array([1, 2, 14, 14, 3, 4, 7, 8, 12, 12, 9, 10, 14, 12, -1])
    expected = 1000.0 * bone_lengths(tree, parents).sum(-1).mean()
    args = (0, h36m_set["pred"], h36m_set["npz"], h36m_set["regressor"], h36m_set["model"])
    report = evaluate_h36m(*args, train_npz=train)
    assert report["protocol"]["bone_scaling"] == "canonical_average"
    assert report["protocol"]["canonical_bone_sum_mm"] == pytest.approx(expected, rel=1e-6)
    assert "h36m_train.npz" in report["protocol"]["canonical_source"]
    fallback = evaluate_h36m(*args)
    assert "rest skeleton" in fallback["protocol"]["canonical_source"]
    assert fallback["protocol"]["canonical_bone_sum_mm"] != report["protocol"]["canonical_bone_sum_mm"]
    json.dumps(report)  # the protocol block is JSON


# --- 5. segment scales stay positive ----------------------------------------------------------


def _fit_inputs(exact_data: dict) -> tuple:
    import torch

    from dlearn.body.io import load_body_model
    from dlearn.body.keypoints import coco_keypoint_model
    from dlearn.body.model import BodyModel
    from dlearn.registration.data import fit_batch, load_fit_data, read_params
    from dlearn.registration.stage import _params_from

    data = load_fit_data(exact_data["corr"], exact_data["crops"], exact_data["depths"])
    body = load_body_model(exact_data["model"])
    model = BodyModel(body, dtype=torch.float32)
    rows = np.arange(len(data.ids))
    batch = fit_batch(data, rows, torch.device("cpu"), torch.float32)
    truth = _params_from(read_params(exact_data["truth"], data.ids), torch.device("cpu"), torch.float32)
    return model, batch, truth, coco_keypoint_model(model, body)


def test_segment_scales_stay_positive_from_an_adversarial_start(exact_data: dict) -> None:
    import torch

    from dlearn.registration.fit import LossWeights, RegistrationOptions, fit

    model, batch, truth, keypoints = _fit_inputs(exact_data)
    start = truth.detach()
    start.scales[0] = 1e-7  # collapsed segments
    start.scales[1] = -0.5  # mirrored segments (e.g. a regressor's prediction)
    start.scales[2, ::2] = -2.0
    start.scales[3] = 1e-3
    # Big gradients: data terms weighted 1000x, a large learning rate.
    options = RegistrationOptions(steps=40, patience=40, lr=0.5, device="cpu",
                                  weights=LossWeights(dense=1e6, kp=1e3, scale=10.0, joint=0.001, det=1.0))  # fmt: skip
    result = fit(model, start, batch, keypoints, options)
    scales = result.params.scales
    assert torch.isfinite(scales).all() and bool((scales > 0).all()), scales.min()
    assert torch.isfinite(result.total).all()


# --- 6. predicted rotations are proper ---------------------------------------------------------


def test_a_reflection_predicted_by_the_regressor_becomes_a_rotation(exact_data: dict, tmp_path: Path) -> None:
    from dlearn.data.store import open_store
    from dlearn.regressor.model import THETA_SIZE, THETA_SLICES
    from dlearn.regressor.train import predict

    theta = np.zeros(THETA_SIZE, np.float32)
    theta[THETA_SLICES["scales"]] = 1.0
    theta[THETA_SLICES["cam_scale"]] = 0.9
    reflection = np.diag([1.0, -1.0, 1.0])  # Gram-Schmidt keeps it: det -1
    theta[THETA_SLICES["rotation"]] = reflection.reshape(9)
    model = constant_regressor(tmp_path / "model.pt", theta)
    summary = predict(model, exact_data["crops"], exact_data["model"], tmp_path / "pred.zarr", device="cpu", batch_size=4)
    store = open_store(tmp_path / "pred.zarr", stage="predict")
    rotation = np.asarray(store["rotation"][...], np.float64)
    n = len(rotation)
    np.testing.assert_allclose(np.linalg.det(rotation), 1.0, atol=1e-6)
    # c1, c2 are Gram-Schmidt's; c3 = c1 x c2 replaces the mirrored column.
    np.testing.assert_allclose(rotation, np.broadcast_to(np.diag([1.0, -1.0, -1.0]), (n, 3, 3)), atol=1e-6)
    assert summary["reflections_corrected"] == n and store.attrs["reflections_corrected"] == n


def test_registration_counts_reflections_it_started_from(exact_data: dict, tmp_path: Path) -> None:
    from dlearn.data.store import open_store, read_sample_ids, write_store
    from dlearn.registration.data import PARAM_KEYS
    from dlearn.registration.merge import merge_registration
    from dlearn.registration.stage import RegistrationOptions, register

    truth = open_store(exact_data["truth"])
    arrays = {k: np.asarray(truth[k][...]) for k in PARAM_KEYS}
    arrays["rotation"][0] = arrays["rotation"][0] @ np.diag([1.0, 1.0, -1.0])  # an old store's reflection
    write_store(tmp_path / "old_pred.zarr", {**arrays, "status": np.zeros(len(arrays["pose"]), np.uint8)},
                stage="predict", sample_id=read_sample_ids(truth))  # fmt: skip
    options = RegistrationOptions(steps=30, patience=30, keep_best=False, device="cpu")
    shards = [tmp_path / f"shard_{i}.zarr" for i in range(2)]
    for i, shard in enumerate(shards):
        register(exact_data["corr"], exact_data["crops"], exact_data["model"], shard, options,
                 depths=exact_data["depths"], init=tmp_path / "old_pred.zarr", shard=i, num_shards=2)  # fmt: skip
    summary = merge_registration(shards, exact_data["corr"], tmp_path / "reg.zarr")
    store = open_store(tmp_path / "reg.zarr", stage="merge_registration")
    final = int((np.linalg.det(np.asarray(store["rotation"][...], np.float64)) < 0).sum())
    assert store.attrs["reflections"] == {"initial": 1, "final": final} == summary["reflections"]


# --- 7. dense points: a random subset per epoch -----------------------------------------------


def test_dense_points_are_a_random_subset_spread_over_the_parts_and_drawn_per_epoch(exact_data: dict) -> None:
    from dlearn.registration.data import FitData
    from dlearn.regressor.data import RegressorBatches

    # As DensePose predictions come: 40 points per part, parts 1..24 in order; a second
    # sample with fewer points than the cut.
    part = np.concatenate([np.repeat(np.arange(1, 25), 40), np.full(10, 3)])
    m = len(part)
    data = FitData(
        ids=["a", "b"], offsets=np.array([0, 960, m]), vertex=np.arange(m), part=part,
        point=np.stack([np.arange(m), part], axis=1).astype(np.float64),
        keypoints=np.zeros((2, 17, 3)), depth=np.zeros((2, 17)), depth_mask=np.zeros((2, 17)),
    )  # fmt: skip
    dataset = RegressorBatches(exact_data["crops"], np.array([0, 1]), np.zeros((2, 105), np.float32), data,
                               np.array([0, 1]), num_points=64, seed=7)  # fmt: skip

    def chosen(epoch: int) -> np.ndarray:
        dataset.set_epoch(epoch)
        item = dataset[np.array([0, 1])]
        assert np.array_equal(item["point"][..., 0], item["vertex"])  # points and vertices stay paired
        assert item["point_mask"][1].sum() == 10 and set(item["vertex"][1, :10]) == set(range(960, m))
        return item["vertex"][0]

    first, again, second = chosen(0), chosen(0), chosen(1)
    assert len(set(first)) == 64
    assert len(set(part[first])) >= 18  # a prefix would hold parts 1 and 2 only
    assert np.array_equal(first, again)  # deterministic given seed and epoch: a resumed run sees the same
    assert not np.array_equal(first, second)
