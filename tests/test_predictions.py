"""DensePose predictions (IUV + INDS PNGs, COCO keypoints) as a training dataset."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from dlearn.cli import main
from dlearn.densepose.coco import read_densepose_coco
from dlearn.densepose.predictions import (
    PredictionError,
    PredictionOptions,
    predictions_to_coco,
    read_iuv,
    spread_subset,
    write_iuv,
)

H, W = 40, 60


def _densepose_png(path: Path, array_bgr: np.ndarray) -> None:
    """What ``cv2.imwrite(path, array)`` writes: a 3-channel array is taken as B, G, R."""
    data = array_bgr[..., ::-1] if array_bgr.ndim == 3 else array_bgr
    Image.fromarray(np.ascontiguousarray(data).astype(np.uint8)).save(path, format="PNG")


def _keypoints(x0: float, y0: float, w: float, h: float, labelled: int = 17) -> list[float]:
    points = []
    for k in range(17):
        points += [x0 + w * (k + 1) / 18, y0 + h / 2, 2.0 if k < labelled else 0.0]
    return points


@pytest.fixture
def prediction_files(tmp_path: Path) -> dict[str, Path]:
    """One 60 x 40 image with two side-by-side persons and DensePose's output for it.

    Person A (left, columns 5..24) has the LOWER detection score, so DensePose numbers it 0 in
    INDS, like the background; person B (columns 30..54) is 1. A has parts 1 (rows < 20) and 2,
    B parts 3 and 4. U = column / 100, V = row / 100 everywhere on a person.
    """
    images = tmp_path / "images"
    iuv_dir = tmp_path / "iuv"
    images.mkdir()
    iuv_dir.mkdir()
    Image.fromarray(np.full((H, W, 3), 128, np.uint8)).save(images / "frame.0001.jpg", format="PNG")
    rows, cols = np.mgrid[0:H, 0:W]
    part = np.zeros((H, W), np.int64)
    inds = np.zeros((H, W), np.int64)
    a = (cols >= 5) & (cols < 25) & (rows >= 5) & (rows < 35)
    b = (cols >= 30) & (cols < 55) & (rows >= 5) & (rows < 35)
    part[a] = np.where(rows[a] < 20, 1, 2)
    part[b] = np.where(rows[b] < 20, 3, 4)
    inds[b] = 1  # A keeps 0: the lowest-scoring instance
    # DensePose's array [I, 255 U, 255 V], truncated to uint8, before cv2 writes it as BGR.
    array = np.stack([part, 255 * cols / 100, 255 * rows / 100], axis=-1) * (part > 0)[..., None]
    _densepose_png(iuv_dir / "frame_IUV.png", array.astype(np.uint8))
    _densepose_png(iuv_dir / "frame_INDS.png", inds.astype(np.uint8))
    coco = {
        "images": [{"id": 7, "file_name": "frame.0001.jpg", "height": H, "width": W}],
        "annotations": [
            {"id": 1, "image_id": 7, "category_id": 1, "bbox": [4, 4, 22, 32], "keypoints": _keypoints(4, 4, 22, 32)},
            {"id": 2, "image_id": 7, "category_id": 1, "bbox": [29, 4, 27, 32], "keypoints": _keypoints(29, 4, 27, 32)},
        ],
        "categories": [{"id": 1, "name": "person"}],
    }
    keypoints = tmp_path / "keypoints.json"
    keypoints.write_text(json.dumps(coco))
    return {"keypoints": keypoints, "iuv_dir": iuv_dir, "images": images, "tmp": tmp_path}


def _convert(files: dict[str, Path], **options) -> tuple[dict, object]:
    return predictions_to_coco(files["keypoints"], files["iuv_dir"], files["images"], PredictionOptions(**options))


def test_points_come_from_each_persons_own_instance_with_uv_scaled(prediction_files):
    dataset, report = _convert(prediction_files, points_per_person=40)
    assert report.kept == 2 and not report.skipped
    anns = {a["id"]: a for a in dataset["annotations"]}
    for ann_id, parts, columns in ((1, {1, 2}, (5, 25)), (2, {3, 4}, (30, 55))):
        ann = anns[ann_id]
        x0, y0, w, h = ann["bbox"]
        x = x0 + np.array(ann["dp_x"]) * w / 256
        y = y0 + np.array(ann["dp_y"]) * h / 256
        assert len(x) == 40
        assert set(ann["dp_I"]) == parts  # never the other person's or the background's pixels
        assert columns[0] <= x.min() and x.max() <= columns[1]
        # U, V are the stored bytes / 255 of the pixel under the point (U = column / 100).
        np.testing.assert_allclose(ann["dp_U"], np.floor(255 * (x - 0.5) / 100) / 255, atol=1e-9)
        np.testing.assert_allclose(ann["dp_V"], np.floor(255 * (y - 0.5) / 100) / 255, atol=1e-9)
        counts = np.unique(ann["dp_I"], return_counts=True)[1]
        assert counts.tolist() == [20, 20]  # spread evenly over the parts the person shows


def test_the_written_dataset_reads_as_densepose_coco_with_the_keypoint_files_ids(prediction_files, tmp_path):
    out = tmp_path / "out" / "densepose_train.json"
    argv = ["densepose-predictions", "--keypoints", str(prediction_files["keypoints"]), "--iuv-dir",
            str(prediction_files["iuv_dir"]), "--image-root", str(prediction_files["images"]), "--out", str(out)]  # fmt: skip
    assert main(argv) == 0
    samples, _ = read_densepose_coco(out, prediction_files["images"])
    assert [s.sample_id for s in samples] == ["7_1", "7_2"]
    assert all(len(s.dense_part) == 100 for s in samples)  # the default: DensePose-COCO's ~100
    first = out.read_bytes()
    assert main(argv) == 0
    assert out.read_bytes() == first  # seeded: the same subset every run
    assert main([*argv, "--seed", "1"]) == 0
    assert out.read_bytes() != first


def test_persons_without_instance_or_keypoints_are_skipped_and_counted(prediction_files):
    coco = json.loads(prediction_files["keypoints"].read_text())
    coco["annotations"][0]["keypoints"] = _keypoints(4, 4, 22, 32, labelled=2)
    coco["annotations"].append(
        {"id": 3, "image_id": 7, "category_id": 1, "bbox": [56, 36, 3, 3], "keypoints": _keypoints(56, 36, 3, 3)}
    )
    prediction_files["keypoints"].write_text(json.dumps(coco))
    dataset, report = _convert(prediction_files, min_keypoints=4)
    assert [a["id"] for a in dataset["annotations"]] == [2]
    assert report.skipped == {"too few keypoints": 1, "no IUV instance": 1}
    dataset, report = _convert(prediction_files, min_keypoints=0, min_points=700)
    assert [a["id"] for a in dataset["annotations"]] == [2]  # B shows 750 pixels, A 600
    assert report.skipped == {"too few dense points": 1, "no IUV instance": 1}


def _break(files: dict[str, Path], how: str) -> str:
    """Damage one input; returns the file the error must name."""
    iuv, inds = files["iuv_dir"] / "frame_IUV.png", files["iuv_dir"] / "frame_INDS.png"
    if how == "missing IUV":
        iuv.unlink()
        return str(iuv)
    if how == "I out of range":
        array = np.asarray(Image.open(iuv))[..., ::-1].copy()  # back to DensePose's [I, U, V]
        array[10, 10, 0] = 30
        _densepose_png(iuv, array)
        return str(iuv)
    if how == "INDS size":
        _densepose_png(inds, np.zeros((H, W + 1), np.uint8))
        return str(inds)
    if how == "image size":
        Image.fromarray(np.zeros((H + 2, W, 3), np.uint8)).save(files["images"] / "frame.0001.jpg", format="PNG")
        return str(iuv)
    if how == "IUV not RGB":
        _densepose_png(iuv, np.zeros((H, W), np.uint8))
        return str(iuv)
    raise AssertionError(how)


@pytest.mark.parametrize("how", ["missing IUV", "I out of range", "INDS size", "image size", "IUV not RGB"])
def test_bad_prediction_files_are_one_line_errors_naming_the_file(prediction_files, tmp_path, how, caplog):
    named = _break(prediction_files, how)
    with pytest.raises(PredictionError, match="frame.0001.jpg") as info:
        _convert(prediction_files)
    assert named in str(info.value)
    argv = ["densepose-predictions", "--keypoints", str(prediction_files["keypoints"]), "--iuv-dir",
            str(prediction_files["iuv_dir"]), "--image-root", str(prediction_files["images"]),
            "--out", str(tmp_path / "out.json")]  # fmt: skip
    assert main(argv) == 1
    assert named in caplog.text and "Traceback" not in caplog.text
    assert not (tmp_path / "out.json").exists()


def test_two_images_sharing_densepose_s_first_dot_name_are_refused(prediction_files):
    coco = json.loads(prediction_files["keypoints"].read_text())
    Image.open(prediction_files["images"] / "frame.0001.jpg").save(prediction_files["images"] / "frame.0002.jpg", format="PNG")
    coco["images"].append({"id": 8, "file_name": "frame.0002.jpg"})
    coco["annotations"].append({**coco["annotations"][0], "id": 9, "image_id": 8})
    prediction_files["keypoints"].write_text(json.dumps(coco))
    with pytest.raises(PredictionError, match="IUV map of both"):
        _convert(prediction_files)


def test_write_iuv_round_trips_through_the_reader(tmp_path):
    rng = np.random.default_rng(0)
    part = rng.integers(0, 25, size=(9, 11))
    uv = rng.random((9, 11, 2))
    instance = rng.integers(0, 3, size=(9, 11))
    iuv_path, inds_path = write_iuv(tmp_path / "sub" / "x", part, uv, instance)
    assert iuv_path.name == "x_IUV.png" and inds_path.name == "x_INDS.png"
    back = read_iuv(iuv_path, inds_path)
    np.testing.assert_array_equal(back.part, part)
    fg = part > 0
    assert np.abs(back.uv[fg] - uv[fg]).max() <= 1 / 255 + 1e-12
    np.testing.assert_array_equal(back.instance, np.where(fg, instance, -1))


def test_spread_subset_shares_points_evenly_over_parts():
    part = np.array([1] * 500 + [2] * 30 + [3] * 5)
    keep = spread_subset(part, 60, np.random.default_rng(0))
    assert len(set(keep.tolist())) == 60
    counts = np.bincount(part[keep]).tolist()
    # Round-robin: the 5 points of part 3 all kept, parts 1 and 2 share the other 55.
    assert counts[3] == 5 and sorted(counts[1:3]) == [27, 28]


def _config(files: dict[str, Path]) -> dict:
    block = {"train_keypoints": str(files["keypoints"]), "test_keypoints": str(files["keypoints"]),
             "iuv_dir": str(files["iuv_dir"]), "image_root": str(files["images"])}  # fmt: skip
    return {"dataset": {"kind": "densepose_predictions", "densepose_predictions": block}}


def test_check_data_passes_good_predictions(prediction_files):
    from dlearn.check import check_config

    report = check_config(_config(prediction_files))
    assert report.problems == []
    assert any("kept 2 persons" in line for line in report.checked)


@pytest.mark.parametrize("how", ["missing IUV", "I out of range", "INDS size", "image size", "IUV not RGB"])
def test_check_data_names_every_bad_prediction_file(prediction_files, how):
    from dlearn.check import check_config

    named = _break(prediction_files, how)
    report = check_config(_config(prediction_files))
    assert len(report.problems) == 2  # the same file serves both splits here: one line per split
    assert all(named in line and "frame.0001.jpg" in line for line in report.problems)


def test_check_data_names_missing_prediction_inputs(prediction_files, tmp_path):
    from dlearn.check import check_config

    config = _config(prediction_files)
    config["dataset"]["densepose_predictions"]["test_keypoints"] = str(tmp_path / "nope.json")
    config["dataset"]["densepose_predictions"]["iuv_dir"] = str(tmp_path / "no_iuv")
    report = check_config(config)
    assert report.problems == [f"dataset.densepose_predictions.iuv_dir: {tmp_path / 'no_iuv'} is not a folder"]
    config["dataset"]["densepose_predictions"]["iuv_dir"] = str(prediction_files["iuv_dir"])
    report = check_config(config)
    assert report.problems == [f"dataset.densepose_predictions.test_keypoints: {tmp_path / 'nope.json'} does not exist"]


# --- end to end on the embedded synthetic data ----------------------------------------------


@pytest.fixture(scope="module")
def two_styles(tmp_path_factory: pytest.TempPathFactory, standin_files: tuple[Path, Path]) -> dict[str, Path]:
    """Six exact synthetic persons, matched twice: from their annotated-style points (the
    generator's JSON) and from predicted-style points (its IUV PNGs through densepose-predictions)."""
    from dlearn.body.io import load_body_model
    from dlearn.cgan.evaluate import true_depths
    from dlearn.data.crops import CropOptions, make_crops
    from dlearn.data.synth import SynthOptions, synthesize
    from dlearn.densepose.match import MatchOptions, match_correspondences
    from dlearn.densepose.predictions import write_predictions_dataset

    root = tmp_path_factory.mktemp("two_styles")
    model, uv = standin_files
    synthesize(model, uv, root, SynthOptions(num_train=6, num_test=1, image_size=96, workers=1, write_iuv=True))
    annotated, predicted = root / "densepose_train.json", root / "predicted_train.json"
    write_predictions_dataset(annotated, root / "iuv", root, predicted, PredictionOptions())
    files = {"root": root, "model": model, "annotated": annotated, "predicted": predicted}
    num_vertices = load_body_model(model).num_vertices
    for style in ("annotated", "predicted"):
        crops = root / f"crops_{style}.zarr"
        make_crops(files[style], root, crops, CropOptions(image_size=32, workers=1))
        corr = root / f"corr_{style}.zarr"
        match_correspondences(files[style], crops, uv, corr, MatchOptions(), num_vertices)
        files[f"crops_{style}"], files[f"corr_{style}"] = crops, corr
    true_depths(root / "crops_annotated.zarr", root / "gt_train.zarr", root / "depths.zarr")
    files["depths"] = root / "depths.zarr"
    return files


def test_synthetic_iuv_maps_give_the_same_persons_with_points_on_their_own_pixels(two_styles):
    from dlearn.data.store import open_store, read_sample_ids

    annotated, _ = read_densepose_coco(two_styles["annotated"], two_styles["root"])
    predicted, _ = read_densepose_coco(two_styles["predicted"], two_styles["root"])
    assert [s.sample_id for s in predicted] == [s.sample_id for s in annotated]
    assert all(len(s.dense_part) == 100 for s in predicted)
    crops = {style: open_store(two_styles[f"crops_{style}"]) for style in ("annotated", "predicted")}
    assert read_sample_ids(crops["annotated"]) == read_sample_ids(crops["predicted"])
    np.testing.assert_array_equal(crops["annotated"]["image"][...], crops["predicted"]["image"][...])


@pytest.mark.slow
def test_registration_from_predicted_points_matches_annotated_points(two_styles, tmp_path):
    from dlearn.body.io import SMPL_PARENTS
    from dlearn.data.store import open_store, read_sample_ids
    from dlearn.evaluation.metrics import mpjpe_bone_scaled, pa_mpjpe
    from dlearn.registration.fit import LossWeights
    from dlearn.registration.stage import RegistrationOptions, register

    options = RegistrationOptions(steps=400, device="cpu", weights=LossWeights(scale=100.0, joint=1.0))
    errors = {}
    gt = open_store(two_styles["root"] / "gt_train.zarr")
    row = {s: i for i, s in enumerate(read_sample_ids(gt))}
    for style in ("annotated", "predicted"):
        out = tmp_path / f"reg_{style}.zarr"
        summary = register(
            two_styles[f"corr_{style}"], two_styles[f"crops_{style}"], two_styles["model"], out, options,
            depths=two_styles["depths"],
        )  # fmt: skip
        assert summary["status"]["ok"] == 6
        fitted = open_store(out)
        truth = gt["joints3d"][...][[row[s] for s in read_sample_ids(fitted)]] * 1000
        pred = fitted["joints"][...] * 1000
        errors[style] = (pa_mpjpe(pred, truth).mean(), mpjpe_bone_scaled(pred, truth, SMPL_PARENTS).mean())
    print("PA-MPJPE, bone-scaled MPJPE (mm):", errors)
    # Measured: annotated 34.3 / 54.7 mm, predicted 42.2 / 59.5 mm (pixel-centre points, U and V
    # truncated to 1/255, spread evenly over parts rather than over the visible area).
    assert errors["predicted"][0] < 50.0 and errors["predicted"][1] < 70.0, errors
    assert abs(errors["predicted"][0] - errors["annotated"][0]) < 12.0, errors
