"""The COCO keypoints of the body (a vertex regressor, HMR's cocoplus order) and the keypoint names
of DensePose-COCO / DensePose-PoseTrack files."""

from __future__ import annotations

import json
import logging
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from dlearn.body.io import BodyModelData, load_body_model, write_smpl_pickle
from dlearn.body.keypoints import (
    CocoKeypoints,
    KeypointRegressorError,
    coco_keypoint_model,
    keypoint_definition,
    load_keypoint_regressor,
)
from dlearn.body.model import BodyModel
from dlearn.densepose.coco import COCO_KEYPOINT_NAMES, AnnotationError, read_densepose_coco

# HMR's 19 cocoplus joints, as src/datasets/coco_to_tfrecords.py of akanazawa/hmr lists them.
HMR_JOINT_NAMES = [
    "R Ankle", "R Knee", "R Hip", "L Hip", "L Knee", "L Ankle", "R Wrist", "R Elbow", "R Shoulder",
    "L Shoulder", "L Elbow", "L Wrist", "Neck", "Head", "Nose", "L Eye", "R Eye", "L Ear", "R Ear",
]  # fmt: skip
# COCO's and PoseTrack 2018's person category blocks, as their annotation files carry them.
COCO_SKELETON = [[16, 14], [14, 12], [17, 15], [15, 13], [12, 13], [6, 12], [7, 13], [6, 7], [6, 8], [7, 9],
                 [8, 10], [9, 11], [2, 3], [1, 2], [1, 3], [2, 4], [3, 5], [4, 6], [5, 7]]  # fmt: skip
POSETRACK_NAMES = [
    "nose", "head_bottom", "head_top", "left_ear", "right_ear", "left_shoulder", "right_shoulder", "left_elbow",
    "right_elbow", "left_wrist", "right_wrist", "left_hip", "right_hip", "left_knee", "right_knee", "left_ankle",
    "right_ankle",
]  # fmt: skip


def _hmr_to_coco(name: str) -> str:
    side = {"L": "left", "R": "right"}
    parts = name.split()
    return f"{side[parts[0]]}_{parts[1].lower()}" if len(parts) == 2 else name.lower()


# --- the keypoint regressor --------------------------------------------------------------------


def test_a_cocoplus_regressor_maps_to_the_right_coco_slots(tmp_path: Path) -> None:
    num_vertices = 40
    cocoplus = np.zeros((19, num_vertices))
    cocoplus[np.arange(19), 2 * np.arange(19)] = 1.0  # HMR row r regresses vertex 2r
    path = tmp_path / "cocoplus.npy"
    np.save(path, cocoplus)
    coco = load_keypoint_regressor(path, num_vertices)
    assert coco.shape == (17, num_vertices)
    for k, name in enumerate(COCO_KEYPOINT_NAMES):
        hmr_row = next(r for r, hmr in enumerate(HMR_JOINT_NAMES) if _hmr_to_coco(hmr) == name)
        assert coco[k].argmax() == 2 * hmr_row, name
    # Spot checks against HMR's convert_coco2universal: COCO 12 (right hip) is its row 2.
    assert coco[COCO_KEYPOINT_NAMES.index("right_hip")].argmax() == 2 * 2
    assert coco[COCO_KEYPOINT_NAMES.index("nose")].argmax() == 2 * 14
    # A 17-row file is already in COCO's order.
    np.save(path, coco)
    np.testing.assert_array_equal(load_keypoint_regressor(path, num_vertices), coco)


@pytest.mark.parametrize(
    ("matrix", "message"),
    [
        (np.full((14, 40), 1 / 40), r"shape \(14, 40\), expected \(17, 40\) in COCO's order or \(19, 40\)"),
        (np.full((17, 39), 1 / 39), r"shape \(17, 39\)"),
        (np.full((17, 40), 1 / 80), r"row 0 sums to 0\.5"),
        (np.where(np.eye(17, 40) > 0, np.nan, 1 / 40), r"NaN or infinite"),
    ],
)
def test_a_bad_regressor_file_is_a_clear_error(tmp_path: Path, matrix: np.ndarray, message: str) -> None:
    path = tmp_path / "bad.npy"
    np.save(path, matrix)
    with pytest.raises(KeypointRegressorError, match=rf"bad\.npy: keypoint regressor.*{message}"):
        load_keypoint_regressor(path, 40)


def test_the_keypoints_are_the_regressed_posed_surface_points(random_model_data: BodyModelData) -> None:
    # Pose blend shapes and segment scales on: the transform-based keypoints equal R @ vertices.
    rng = np.random.default_rng(1)
    n = random_model_data.num_vertices
    regressor = rng.random((17, n)) * (rng.random((17, n)) < 0.2)
    regressor /= regressor.sum(1, keepdims=True)
    data = replace(random_model_data, keypoint_regressor=regressor)
    model = BodyModel(data, dtype=torch.float64)
    assert model.posedirs is not None
    keypoints = CocoKeypoints(model, keypoint_definition(data))
    pose = torch.as_tensor(rng.normal(scale=0.5, size=(4, 23, 3)))
    scales = torch.as_tensor(np.exp(rng.normal(scale=0.1, size=(4, 24))))
    out = model(pose, scales)
    expected = torch.einsum("kv,bvc->bkc", torch.as_tensor(regressor), out.vertices)
    torch.testing.assert_close(keypoints(out, pose), expected, atol=1e-12, rtol=0)


def test_without_a_regressor_the_fallback_is_joints_and_a_warning(
    random_model_data: BodyModelData, caplog: pytest.LogCaptureFixture
) -> None:
    model = BodyModel(random_model_data, dtype=torch.float64)
    with caplog.at_level(logging.WARNING):
        keypoints = coco_keypoint_model(model, random_model_data)
    assert "no COCO keypoint regressor" in caplog.text and "hips sit inside the pelvis" in caplog.text
    pose = torch.zeros(1, 23, 3)
    pose[0, 3] = torch.tensor([0.8, 0.0, 0.0])
    out = model(pose)
    kp = keypoints(out, pose)
    torch.testing.assert_close(kp[0, 11], out.joints[0, 1])  # left hip keypoint = left hip joint
    torch.testing.assert_close(kp[0, 0], out.vertices[0, random_model_data.vertex_ids["nose"]])


def test_a_given_file_wins_over_the_model_files_regressor(random_model_data: BodyModelData, tmp_path: Path) -> None:
    n = random_model_data.num_vertices
    own = np.full((17, n), 1.0 / n)
    given = np.zeros((17, n))
    given[:, 7] = 1.0
    np.save(tmp_path / "given.npy", given)
    data = replace(random_model_data, keypoint_regressor=own)
    np.testing.assert_array_equal(keypoint_definition(data).vertex_weights, own)
    np.testing.assert_array_equal(keypoint_definition(data, tmp_path / "given.npy").vertex_weights, given)


def test_the_model_file_carries_its_regressor(random_model_data: BodyModelData, tmp_path: Path) -> None:
    n = random_model_data.num_vertices
    regressor = np.zeros((17, n))
    regressor[np.arange(17), np.arange(17)] = 1.0
    path = write_smpl_pickle(replace(random_model_data, keypoint_regressor=regressor), tmp_path / "model.pkl")
    np.testing.assert_array_equal(load_body_model(path).keypoint_regressor, regressor)
    bad = replace(random_model_data, keypoint_regressor=regressor[:, :-1])
    with pytest.raises(ValueError, match=r"key 'coco_keypoint_regressor' has shape \(17, 59\), expected \(17, 60\)"):
        bad.validate()


def test_the_standin_hips_lie_outside_the_pelvis_joints(standin_files: tuple[Path, Path]) -> None:
    data = load_body_model(standin_files[0])
    assert data.keypoint_regressor is not None
    np.testing.assert_allclose(data.keypoint_regressor.sum(1), 1.0, atol=1e-9)
    rest = data.keypoint_regressor @ data.v_template
    joints = data.rest_joints
    for name, joint in (("left_hip", 1), ("right_hip", 2)):
        kp = rest[COCO_KEYPOINT_NAMES.index(name)]
        # Further from the midline than the SMPL-style hip joint, on the outside of the hip surface.
        assert abs(kp[0]) > abs(joints[joint, 0]) + 0.05, (name, kp, joints[joint])
        assert np.linalg.norm(data.v_template - kp, axis=1).min() < 0.02
        assert abs(kp[1] - joints[joint, 1]) < 0.06
    np.testing.assert_allclose(rest[11] * [-1, 1, 1], rest[12], atol=1e-9)  # mirror images
    # Face keypoints stay single vertices.
    assert ((data.keypoint_regressor[:5] > 0).sum(1) == 1).all()


def test_check_data_names_a_bad_keypoint_regressor(tmp_path: Path, standin_files: tuple[Path, Path]) -> None:
    from dlearn.check import CheckReport, check_body

    np.save(tmp_path / "kp.npy", np.full((17, 10), 0.1))
    body = {"model": str(standin_files[0]), "uv": str(standin_files[1]), "keypoint_regressor": str(tmp_path / "kp.npy")}
    report = CheckReport()
    check_body(body, report)
    assert len(report.problems) == 1, report.problems
    assert "body.keypoint_regressor" in report.problems[0] and "kp.npy" in report.problems[0]
    assert "(17, 10)" in report.problems[0]


# --- keypoint names of the annotation file ------------------------------------------------------


def _annotation_file(tmp_path: Path, names: list[str]) -> Path:
    """A one-person file whose categories block is laid out as DensePose-COCO's / PoseTrack's."""
    keypoints = []
    for k in range(17):
        keypoints += [20.0 + k, 40.0 + 2 * k, 2]
    doc = {
        "images": [{"id": 7, "file_name": "img/0007.png", "width": 200, "height": 300}],
        "annotations": [
            {
                "id": 70, "image_id": 7, "category_id": 1, "iscrowd": 0, "bbox": [10.0, 20.0, 64.0, 128.0],
                "area": 8192.0, "keypoints": keypoints, "num_keypoints": 17, "dp_x": [5.0], "dp_y": [9.0],
                "dp_I": [2.0], "dp_U": [0.5], "dp_V": [0.5],
            }
        ],
        "categories": [
            {"supercategory": "person", "id": 1, "name": "person", "keypoints": names, "skeleton": COCO_SKELETON}
        ],
    }  # fmt: skip
    path = tmp_path / "annotations.json"
    path.write_text(json.dumps(doc))
    return path


def test_densepose_coco_names_are_read_as_they_are(tmp_path: Path) -> None:
    samples, _ = read_densepose_coco(_annotation_file(tmp_path, list(COCO_KEYPOINT_NAMES)), tmp_path)
    assert samples[0].keypoints[1].tolist() == [21.0, 42.0, 2.0]


def test_posetrack_names_are_refused_as_coco(tmp_path: Path) -> None:
    path = _annotation_file(tmp_path, POSETRACK_NAMES)
    with pytest.raises(AnnotationError) as info:
        read_densepose_coco(path, tmp_path)
    message = str(info.value)
    assert str(path) in message and "category 1 ('person')" in message and "'head_bottom', 'head_top'" in message
    assert "set dataset.densepose_coco.keypoint_names: posetrack" in message
    with pytest.raises(AnnotationError, match=r"names the keypoints \['nose', 'left_eye'\]"):
        read_densepose_coco(_annotation_file(tmp_path, ["nose", "left_eye"]), tmp_path)


def test_posetrack_head_points_become_unlabelled_eyes(tmp_path: Path) -> None:
    path = _annotation_file(tmp_path, POSETRACK_NAMES)
    samples, _ = read_densepose_coco(path, tmp_path, keypoint_names="posetrack")
    kp = samples[0].keypoints
    assert kp[1:3].tolist() == [[0.0, 0.0, 0.0], [0.0, 0.0, 0.0]]  # head_bottom, head_top: not eyes
    assert kp[0].tolist() == [20.0, 40.0, 2.0] and kp[11].tolist() == [31.0, 62.0, 2.0]
    with pytest.raises(AnnotationError, match="expected posetrack's 17 in order"):
        read_densepose_coco(_annotation_file(tmp_path, list(COCO_KEYPOINT_NAMES)), tmp_path, keypoint_names="posetrack")


def test_the_crops_command_refuses_posetrack_names_in_one_line(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    from dlearn.cli import main

    path = _annotation_file(tmp_path, POSETRACK_NAMES)
    code = main(["crops", "--annotations", str(path), "--image-root", str(tmp_path), "--out", str(tmp_path / "c.zarr")])
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert code == 1 and len(errors) == 1 and errors[0].exc_info is None
    assert "head_bottom" in errors[0].getMessage() and "keypoint_names: posetrack" in errors[0].getMessage()
