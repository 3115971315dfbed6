"""Regressor: data order, exact augmentation, loss, training, resume, weights files, predictions."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
import torchvision

from dlearn.body.keypoints import COCO_FLIP
from dlearn.cli import main
from dlearn.data.store import open_store, read_sample_ids, write_store
from dlearn.registration.data import PARAM_KEYS, read_params
from dlearn.registration.fit import FitBatch
from dlearn.registration.stage import STATUS, RegistrationOptions, register
from dlearn.regressor import train as regressor_train
from dlearn.regressor.data import AugmentOptions, ChunkCache, augment, epoch_batches, mirror_theta
from dlearn.regressor.model import Regressor, RegressorSpec, WeightsError, load_backbone_weights
from dlearn.regressor.train import RegressorOptions, predict, regressor_loss, train_regressor
from helpers import killed_on_call

TINY = RegressorOptions(
    backbone="tiny16", head_hidden=32, epochs=2, batch_size=3, lr=1e-3, workers=0, device="cpu",
    augment=AugmentOptions(scale=0.1, translation=0.1, colour=0.1),
)  # fmt: skip


def test_epoch_batches_visit_every_sample_once_from_few_chunks() -> None:
    rows = np.arange(100)
    batches = epoch_batches(rows, chunk_rows=10, batch_size=8, shuffle_chunks=2, generator=torch.Generator().manual_seed(0))
    seen = np.concatenate(batches)
    # 100 = 12 x 8 + 4: every sample once (the last batch has 4 > 1 samples).
    assert sorted(seen.tolist()) == list(range(100))
    # A batch reads at most the chunks of two consecutive windows, not all ten chunks.
    assert max(len(np.unique(b // 10)) for b in batches) <= 2 * 2
    again = epoch_batches(rows, 10, 8, 2, torch.Generator().manual_seed(0))
    assert all(np.array_equal(a, b) for a, b in zip(batches, again))


def test_an_epoch_decodes_each_image_chunk_once(tmp_path: Path) -> None:
    images = np.arange(100 * 2 * 2 * 3, dtype=np.uint8).reshape(100, 2, 2, 3)
    write_store(tmp_path / "crops.zarr", {"image": images}, stage="crops", sample_id=[str(i) for i in range(100)],
                chunk_rows=10)  # fmt: skip
    array = open_store(tmp_path / "crops.zarr", stage="crops")["image"]
    cache = ChunkCache(array, capacity=2 * 2)
    decoded = []
    read_chunk = cache._chunk
    cache._chunk = lambda index: (decoded.append(index) if index not in cache._chunks else None) or read_chunk(index)
    batches = epoch_batches(np.arange(100), 10, 8, 2, torch.Generator().manual_seed(0))
    for rows in batches:
        assert np.array_equal(cache.read(rows), images[rows])  # rows in the batch's order
    assert sorted(decoded) == list(range(10))


@pytest.mark.parametrize("flip", [False, True])
def test_augmentation_moves_targets_exactly_with_the_image(flip: bool) -> None:
    size, b = 64, 8
    point = torch.tensor([[0.3, -0.2]])
    # A bright blob centred on `point` (normalised crop coordinates, pixel centres).
    centres = (torch.arange(size) + 0.5) / size * 2 - 1
    yy, xx = torch.meshgrid(centres, centres, indexing="ij")
    image = torch.exp(-((xx - point[0, 0]) ** 2 + (yy - point[0, 1]) ** 2) / 0.005).expand(b, 3, size, size)
    # Keypoint k sits at `point` + k * 0.01 in x, so a left/right swap is visible.
    keypoints = point[:, None] + torch.stack([0.01 * torch.arange(17.0), torch.zeros(17)], 1)
    batch = FitBatch(
        vertex=torch.zeros(b, 1, dtype=torch.long), point=point[:, None].expand(b, 1, 2).clone(),
        point_mask=torch.ones(b, 1), keypoints=keypoints.expand(b, 17, 2).clone(),
        keypoint_mask=torch.ones(b, 17), depth=torch.arange(17.0).expand(b, 17).clone(), depth_mask=torch.ones(b, 17),
    )  # fmt: skip
    theta = torch.randn(b, 105, generator=torch.Generator().manual_seed(0))
    theta[:, 102], theta[:, 103:105] = 0.9, torch.tensor([0.05, -0.1])
    opts = AugmentOptions(scale=0.3, translation=0.3, colour=0.0, flip=flip)
    symmetry = torch.tensor([0])
    warped, new_theta, moved = augment(image.clone(), theta, batch, opts, torch.Generator().manual_seed(3), symmetry)
    # The blob's intensity-weighted centre is where the augmented target says.
    w = warped[:, 0]
    centre = torch.stack([(w * xx).sum((1, 2)) / w.sum((1, 2)), (w * yy).sum((1, 2)) / w.sum((1, 2))], 1)
    assert torch.allclose(centre, moved.point[:, 0], atol=0.02)
    # Depth k is k (times the zoom a), so a swapped pair shows which crops were flipped.
    flipped = moved.depth[:, 1] > moved.depth[:, 2]
    assert flipped.any() == flip and (~flipped).any()
    source = torch.where(flipped[:, None], torch.as_tensor(COCO_FLIP), torch.arange(17)).float()
    a = moved.depth[:, 3] / source[:, 3]
    torch.testing.assert_close(moved.depth, a[:, None] * source)
    sign = torch.stack([torch.where(flipped, -1.0, 1.0), torch.ones(b)], 1)
    # Keypoints keep their offsets from the point, mirrored and zoomed, swapped left/right.
    offsets = moved.keypoints - moved.point
    torch.testing.assert_close(offsets[..., 0], (a * sign[:, 0])[:, None] * 0.01 * source)
    assert float(offsets[..., 1].abs().max()) < 1e-6
    # The camera follows the points (weak perspective: x = s * X + t moves like the image).
    shift = moved.point[:, 0] - a[:, None] * sign * point[0]
    torch.testing.assert_close(new_theta[:, 102], 0.9 * a)
    torch.testing.assert_close(new_theta[:, 103:105], a[:, None] * sign * theta[:, 103:105] + shift)
    torch.testing.assert_close(new_theta[:, :102], torch.where(flipped[:, None], mirror_theta(theta), theta)[:, :102])


def test_flipped_targets_describe_the_flipped_crop(exact_data: dict) -> None:
    from dlearn.body.io import load_body_model
    from dlearn.body.keypoints import coco_keypoint_model
    from dlearn.body.model import BodyModel
    from dlearn.registration.data import fit_batch, load_fit_data
    from dlearn.registration.fit import data_terms, evaluated_vertices
    from dlearn.regressor.data import mirror_batch, mirror_theta
    from dlearn.regressor.model import params_from_theta, theta_from_arrays

    data = load_fit_data(exact_data["corr"], exact_data["crops"], exact_data["depths"])
    truth = torch.as_tensor(theta_from_arrays(read_params(exact_data["truth"], data.ids)))
    body_data = load_body_model(exact_data["model"])
    body = BodyModel(body_data)
    keypoints = coco_keypoint_model(body, body_data)
    batch = fit_batch(data, np.arange(len(data.ids)), torch.device("cpu"), torch.float32)
    mirrored = mirror_batch(batch, torch.as_tensor(body_data.vertex_symmetry))

    def terms(theta: torch.Tensor, b: FitBatch) -> dict[str, torch.Tensor]:
        return data_terms(body, params_from_theta(theta), b, evaluated_vertices(body, b), keypoints)[0]

    exact, flipped = terms(truth, batch), terms(mirror_theta(truth), mirrored)
    assert float(flipped["dense"].max()) < 1e-4 and float(flipped["kp"].max()) < 1e-3
    for name in ("dense", "kp"):
        torch.testing.assert_close(flipped[name], exact[name], atol=1e-5, rtol=1e-3)
    # Not a symmetry of the loss: the unmirrored parameters do not fit the mirrored targets.
    assert float(terms(truth, mirrored)["dense"].min()) > 100 * float(exact["dense"].max())


def test_flip_needs_a_vertex_symmetry(exact_data: dict, registration_with_a_failure: Path, tmp_path: Path) -> None:
    from dlearn.body.io import load_body_model, write_smpl_pickle

    data = load_body_model(exact_data["model"])
    no_symmetry = write_smpl_pickle(replace(data, vertex_symmetry=None), tmp_path / "model.pkl")
    options = replace(TINY, augment=AugmentOptions(flip=True))
    with pytest.raises(ValueError, match=r"model\.pkl: regressor\.augment\.flip needs"):
        _train({**exact_data, "model": no_symmetry}, registration_with_a_failure, tmp_path, options)


def _loss_inputs(exact_data: dict) -> tuple:
    """(body, keypoints, theta, target, batch): the true bodies as targets, predictions near them."""
    from dlearn.body.io import load_body_model
    from dlearn.body.keypoints import coco_keypoint_model
    from dlearn.body.model import BodyModel
    from dlearn.registration.data import fit_batch, load_fit_data
    from dlearn.regressor.model import theta_from_arrays

    data = load_fit_data(exact_data["corr"], exact_data["crops"], exact_data["depths"])
    truth = theta_from_arrays(read_params(exact_data["truth"], data.ids))
    body_data = load_body_model(exact_data["model"])
    body = BodyModel(body_data)
    keypoints = coco_keypoint_model(body, body_data)
    batch = fit_batch(data, np.arange(len(data.ids)), torch.device("cpu"), torch.float32)
    target = torch.as_tensor(truth)
    theta = target + 0.05 * torch.randn(target.shape, generator=torch.Generator().manual_seed(0))
    return body, keypoints, theta, target, batch


def test_regressor_loss_is_eq5_with_the_registration_terms(exact_data: dict) -> None:
    from dlearn.registration.fit import data_terms, evaluated_vertices
    from dlearn.regressor.model import params_from_theta

    body, keypoints, theta, target, batch = _loss_inputs(exact_data)
    weights = replace(TINY.weights, joints=5.0)
    total, terms = regressor_loss(body, keypoints, theta, target, batch, weights)
    expected, _ = data_terms(body, params_from_theta(theta), batch, evaluated_vertices(body, batch), keypoints)
    smooth = F.smooth_l1_loss(theta, target, reduction="none").sum(1)
    assert torch.allclose(terms["theta"], smooth)
    assert torch.allclose(terms["dense"], expected["dense"])
    # The 3D joint term: mean distance of the root-relative joints of both bodies (metres).
    predicted, registered = params_from_theta(theta), params_from_theta(target)
    j_pred = body(predicted.pose, predicted.scales).joints
    j_reg = body(registered.pose, registered.scales).joints
    joints = ((j_pred - j_pred[:, :1]) - (j_reg - j_reg[:, :1])).norm(dim=-1).mean(-1)
    assert torch.allclose(terms["joints"], joints, atol=1e-6) and float(joints.min()) > 0.005
    manual = (
        weights.theta * smooth + weights.dense * expected["dense"] + weights.kp * expected["kp"] + weights.joints * joints
    ).mean()
    assert torch.allclose(total, manual)
    # Only the prediction is pulled: the registration's body is a constant target.
    theta.requires_grad_(True)
    target.requires_grad_(True)
    regressor_loss(body, keypoints, theta, target, batch, weights)[1]["joints"].sum().backward()
    assert theta.grad is not None and float(theta.grad.abs().sum()) > 0 and target.grad is None
    # At the true parameters the data terms are (nearly) zero: exact correspondences.
    _, at_truth = regressor_loss(body, keypoints, target.detach(), target.detach(), batch, weights)
    assert float(at_truth["dense"].max()) < 1e-4 and float(at_truth["theta"].max()) == 0.0
    assert float(at_truth["joints"].max()) < 1e-6


def test_a_joints_weight_of_0_skips_the_targets_body(exact_data: dict, monkeypatch: pytest.MonkeyPatch) -> None:
    """The targets' body is posed for the joint term only: at weight 0 (the paper's) that forward
    is skipped and the loss is the one the term, multiplied by 0, used to leave."""
    from dlearn.registration.fit import data_terms, evaluated_vertices
    from dlearn.regressor.model import params_from_theta

    body, keypoints, theta, target, batch = _loss_inputs(exact_data)
    target_pose = params_from_theta(target).pose
    calls = {"body": 0, "targets": 0}
    forward = type(body).forward

    def counting(self, pose, *args, **kwargs):
        calls["body"] += 1
        calls["targets"] += int(pose.shape == target_pose.shape and torch.equal(pose, target_pose))
        return forward(self, pose, *args, **kwargs)

    monkeypatch.setattr(type(body), "forward", counting)
    weights = replace(TINY.weights, joints=0.0)
    total, terms = regressor_loss(body, keypoints, theta, target, batch, weights)
    assert calls == {"body": 1, "targets": 0} and "joints" not in terms
    # What the loss was with the term computed and weighted by 0.
    expected, pred = data_terms(body, params_from_theta(theta), batch, evaluated_vertices(body, batch), keypoints)
    goal = params_from_theta(target)
    j_reg = body(goal.pose, goal.scales).joints
    joints = ((pred.joints - pred.joints[:, :1]) - (j_reg - j_reg[:, :1])).norm(dim=-1).mean(-1)
    smooth = F.smooth_l1_loss(theta, target, reduction="none").sum(1)
    before = (
        weights.theta * smooth + weights.dense * expected["dense"] + weights.kp * expected["kp"] + weights.joints * joints
    ).mean()
    assert torch.equal(total, before)
    # A weight that is not 0 poses the targets once more.
    calls.update(body=0, targets=0)
    regressor_loss(body, keypoints, theta, target, batch, replace(weights, joints=5.0))
    assert calls == {"body": 2, "targets": 1}


def _rotation_reference(nine: np.ndarray) -> np.ndarray:
    """(B, 9) row-major -> (B, 3, 3) by QR with a positive diagonal (= Gram-Schmidt of the
    columns), the third column replaced by the cross product of the first two: a proper rotation."""
    out = []
    for m in nine.reshape(-1, 3, 3):
        q, r = np.linalg.qr(m)
        q = q * np.sign(np.diag(r))
        q[:, 2] = np.cross(q[:, 0], q[:, 1])
        out.append(q)
    return np.stack(out)


def test_the_camera_joints_term_measures_the_joints_in_the_cameras_orientation(exact_data: dict) -> None:
    """camera_joints: the root-relative joints of each body turned by its own camera rotation; a
    camera turned by 30 deg with the pose exact costs it what the turn moves the joints, and
    nothing to the body-frame joint term."""
    from scipy.spatial.transform import Rotation

    from dlearn.params import THETA_SLICES
    from dlearn.regressor.model import params_from_theta

    body, keypoints, theta, target, batch = _loss_inputs(exact_data)
    weights = replace(TINY.weights, joints=5.0, camera_joints=3.0)
    total, terms = regressor_loss(body, keypoints, theta, target, batch, weights)
    predicted, registered = params_from_theta(theta), params_from_theta(target)
    j_pred = body(predicted.pose, predicted.scales).joints.double().numpy()
    j_reg = body(registered.pose, registered.scales).joints.double().numpy()
    r_pred = _rotation_reference(theta[:, THETA_SLICES["rotation"]].double().numpy())
    r_reg = _rotation_reference(target[:, THETA_SLICES["rotation"]].double().numpy())
    turned_pred = np.einsum("bij,bkj->bki", r_pred, j_pred - j_pred[:, :1])
    turned_reg = np.einsum("bij,bkj->bki", r_reg, j_reg - j_reg[:, :1])
    expected = np.linalg.norm(turned_pred - turned_reg, axis=-1).mean(-1)
    np.testing.assert_allclose(terms["camera_joints"].numpy(), expected, atol=2e-6)
    smooth = F.smooth_l1_loss(theta, target, reduction="none").sum(1)
    manual = (
        smooth + weights.dense * terms["dense"] + weights.kp * terms["kp"]
        + weights.joints * terms["joints"] + weights.camera_joints * terms["camera_joints"]
    ).mean()  # fmt: skip
    assert torch.allclose(total, manual)

    # The exact pose seen through a camera turned by 30 deg about its vertical axis.
    turned = target.clone()
    turn = Rotation.from_euler("y", 30, degrees=True).as_matrix()
    rotations = target[:, THETA_SLICES["rotation"]].double().numpy().reshape(-1, 3, 3)
    turned[:, THETA_SLICES["rotation"]] = torch.as_tensor((turn @ rotations).reshape(-1, 9), dtype=turned.dtype)
    _, off = regressor_loss(body, keypoints, turned, target, batch, weights)
    assert float(off["joints"].max()) < 1e-6
    moved = np.linalg.norm(np.einsum("ij,bkj->bki", turn - np.eye(3), turned_reg), axis=-1).mean(-1)
    np.testing.assert_allclose(off["camera_joints"].numpy(), moved, atol=2e-6)
    assert float(moved.min()) > 0.05  # metres: the turn is seen
    # At weight 0 (the default, and the paper's) there is no such term.
    assert "camera_joints" not in regressor_loss(body, keypoints, theta, target, batch, TINY.weights)[1]


@pytest.fixture(scope="module")
def registration_with_a_failure(exact_data: dict, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The true parameters as round 0's registration, with one sample flagged non-finite."""
    truth = open_store(exact_data["truth"])
    arrays = {k: np.asarray(truth[k][...]) for k in (*PARAM_KEYS, "status")}
    arrays["status"][1] = STATUS["non_finite"]
    path = tmp_path_factory.mktemp("reg") / "registration.zarr"
    write_store(path, arrays, stage="merge_registration", sample_id=read_sample_ids(truth))
    return path


def _train(data: dict, registration: Path, out: Path, options: RegressorOptions, **kw: object) -> dict:
    return train_regressor(
        data["crops"], data["corr"], registration, data["model"], out / "model.pt", out / "ckpt", options,
        depths=data["depths"], **kw,
    )  # fmt: skip


@pytest.mark.slow  # 20 epochs of training
def test_training_reduces_the_loss_and_excludes_failed_registrations(
    exact_data: dict, registration_with_a_failure: Path, tmp_path: Path
) -> None:
    options = replace(TINY, epochs=20, lr=2e-3, lr_schedule="cosine", augment=AugmentOptions(0, 0, 0))
    summary = _train(exact_data, registration_with_a_failure, tmp_path, options)
    curve = summary["curve"]
    assert summary["samples"] == 5 and summary["excluded"] == {"non_finite": 1}
    assert curve[-1]["total"] < 0.7 * curve[0]["total"]
    saved = torch.load(tmp_path / "model.pt", weights_only=True)
    assert saved["options"]["epochs"] == 20 and len(saved["curve"]) == 20
    assert not (tmp_path / "ckpt").exists()  # checkpoints are removed once the model is written


@pytest.mark.slow  # training run twice, one killed
def test_a_killed_training_resumes_to_the_same_weights(
    exact_data: dict, registration_with_a_failure: Path, tmp_path: Path
) -> None:
    _train(exact_data, registration_with_a_failure, tmp_path / "straight", TINY)
    with killed_on_call(regressor_train, "epoch_batches", 2):  # in epoch 2
        _train(exact_data, registration_with_a_failure, tmp_path / "resumed", TINY)
    assert (tmp_path / "resumed" / "ckpt" / regressor_train.CHECKPOINT_NAME).exists()
    summary = _train(exact_data, registration_with_a_failure, tmp_path / "resumed", TINY)
    assert len(summary["curve"]) == 2
    a = torch.load(tmp_path / "straight" / "model.pt", weights_only=True)["state_dict"]
    b = torch.load(tmp_path / "resumed" / "model.pt", weights_only=True)["state_dict"]
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_a_missing_weights_file_is_an_error_naming_it(
    exact_data: dict, registration_with_a_failure: Path, tmp_path: Path
) -> None:
    with pytest.raises(WeightsError, match="nowhere/resnet18.pth"):
        options = replace(TINY, pretrained=str(tmp_path / "nowhere/resnet18.pth"))
        _train(exact_data, registration_with_a_failure, tmp_path, options)
    assert not (tmp_path / "model.pt").exists()


def test_the_small_convnet_predicts_theta_from_a_crop_and_has_no_pretrained_weights(tmp_path: Path) -> None:
    reference = torch.linspace(-1, 1, 105)
    model = Regressor(RegressorSpec("tiny16", 32), reference).eval()
    assert sum(p.numel() for p in model.backbone.parameters()) < 400_000  # ResNet18's: 11.2 M
    with torch.no_grad():
        theta = model(torch.rand(4, 3, 64, 64))
    # Untrained, it predicts (close to) the reference theta: a plausible body and camera.
    assert theta.shape == (4, 105) and float((theta - reference).abs().max()) < 0.05
    with pytest.raises(WeightsError, match="tiny16 backbone has no pretrained weights"):
        load_backbone_weights(model, tmp_path / "resnet18.pth")
    # tiny32: the same network at twice the width (4x the parameters of the widened layers).
    wide = Regressor(RegressorSpec("tiny32", 32), reference).eval()
    assert wide.backbone.out_features == 256 and 1_000_000 < sum(p.numel() for p in wide.backbone.parameters()) < 1_600_000
    with torch.no_grad():
        assert wide(torch.rand(2, 3, 48, 48)).shape == (2, 105)


def test_torchvision_weights_load_into_the_backbone(tmp_path: Path) -> None:
    source = torchvision.models.resnet18(weights=None)
    path = tmp_path / "resnet18.pth"
    torch.save(source.state_dict(), path)
    model = Regressor(RegressorSpec("resnet18", 16))
    load_backbone_weights(model, path)
    assert torch.equal(model.backbone.conv1.weight, source.conv1.weight)
    torch.save(torchvision.models.resnet34(weights=None).state_dict(), tmp_path / "resnet34.pth")
    with pytest.raises(WeightsError, match="does not fit resnet18"):
        load_backbone_weights(model, tmp_path / "resnet34.pth")


def test_predictions_initialise_the_next_registration(
    exact_data: dict, registration_with_a_failure: Path, tmp_path: Path
) -> None:
    _train(exact_data, registration_with_a_failure, tmp_path, TINY)
    pred = tmp_path / "predictions_train.zarr"
    summary = predict(tmp_path / "model.pt", exact_data["crops"], exact_data["model"], pred, device="cpu", batch_size=4)
    ids = read_sample_ids(open_store(exact_data["crops"]))
    assert summary["samples"] == len(ids) and read_sample_ids(open_store(pred, stage="predict")) == ids
    rotation = open_store(pred)["rotation"][...]
    assert np.allclose(np.einsum("nji,njk->nik", rotation, rotation), np.eye(3), atol=1e-5)
    # Round k+1 starts from these parameters: a registration of one tiny step stays on them.
    options = RegistrationOptions(steps=1, lr=1e-9, batch_size=8, keep_best=False, device="cpu")
    register(exact_data["corr"], exact_data["crops"], exact_data["model"], tmp_path / "reg.zarr", options, init=pred)
    start, fitted = read_params(pred, ids), read_params(tmp_path / "reg.zarr", ids)
    for key in ("pose", "scales", "cam_scale", "cam_translation"):
        assert np.allclose(start[key], fitted[key], atol=1e-5), key
    # The store says where its fits started (evaluation reports the share kept from there).
    assert open_store(tmp_path / "reg.zarr").attrs["start"] == str(pred)


def test_cli_regress_reports_a_missing_weights_file(
    exact_data: dict, registration_with_a_failure: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    code = main([
        "regress", "--crops", str(exact_data["crops"]), "--correspondences", str(exact_data["corr"]),
        "--registration", str(registration_with_a_failure), "--body-model", str(exact_data["model"]),
        "--out", str(tmp_path / "model.pt"), "--checkpoint-dir", str(tmp_path / "ckpt"),
        "--backbone", "resnet18", "--pretrained", str(tmp_path / "imagenet.pth"), "--device", "cpu",
    ])  # fmt: skip
    assert code == 1
    assert "imagenet.pth" in caplog.text and "does not exist" in caplog.text
