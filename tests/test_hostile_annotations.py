"""Hostile DensePose-COCO inputs: each is a clear error, or a counted skip, never a silent NaN or a traceback.

Every case is a small COCO-format JSON and PNG images written here, in DensePose-COCO's layout
(one "person" category, per-person ``bbox``, 51 ``keypoints`` numbers, ``dp_*`` lists).
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from dlearn.check import check_config
from dlearn.cli import main
from dlearn.data.crops import CropOptions, make_crops
from dlearn.data.store import open_store, read_sample_ids
from dlearn.densepose.coco import AnnotationError, read_densepose_coco

SIZE = 96  # image side in pixels


def _annotation(ann_id: int, image_id: int = 1, **fields: object) -> dict:
    ann = {
        "id": ann_id,
        "image_id": image_id,
        "category_id": 1,
        "iscrowd": 0,
        "bbox": [20.0, 10.0, 40.0, 70.0],
        "area": 2800.0,
        "keypoints": [v for k in range(17) for v in (25.0 + k, 15.0 + 3 * k, 2.0)],
        "num_keypoints": 17,
        "dp_x": [10.0, 128.0, 200.0],
        "dp_y": [30.0, 128.0, 250.0],
        "dp_I": [1.0, 2.0, 15.0],
        "dp_U": [0.1, 0.5, 0.9],
        "dp_V": [0.2, 0.5, 0.8],
    }
    ann.update(fields)
    return ann


def _image(image_id: int, **fields: object) -> dict:
    entry = {"id": image_id, "file_name": f"images/{image_id:04d}.png", "width": SIZE, "height": SIZE}
    entry.update(fields)
    return entry


def _png(path: Path, seed: int = 0) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    rgb = np.random.default_rng(seed).integers(0, 256, (SIZE, SIZE, 3), dtype=np.uint8)
    Image.fromarray(rgb).save(path)


def _dataset(
    root: Path, annotations: list[dict], images: list[dict] | None = None, categories: list[dict] | None = None
) -> Path:
    """Write ``root/ann.json`` and a PNG for every relative file name; returns the JSON path."""
    images = images if images is not None else [_image(1)]
    doc = {
        "images": images,
        "annotations": annotations,
        "categories": categories or [{"id": 1, "name": "person", "supercategory": "person"}],
    }
    root.mkdir(parents=True, exist_ok=True)
    path = root / "ann.json"
    path.write_text(json.dumps(doc))  # json writes NaN and Infinity, and Python reads them back
    for image in images:
        name = image.get("file_name", "")
        if name and not Path(name).is_absolute() and ".." not in name and not (root / name).exists():
            _png(root / name, seed=int(image["id"]))
    return path


def _config(json_path: Path, root: Path, **crops: object) -> dict:
    coco = {"train_json": str(json_path), "test_json": str(json_path), "image_root": str(root)}
    return {"dataset": {"kind": "densepose_coco", "densepose_coco": coco}, "crops": crops}


def _crops_cli(json_path: Path, root: Path, out: Path, *flags: str) -> int:
    args = ["crops", "--annotations", str(json_path), "--image-root", str(root), "--out", str(out)]
    return main([*args, "--workers", "1", *flags])


def _with_keypoint(index: int, value: float) -> list[float]:
    keypoints = _annotation(0)["keypoints"]
    keypoints[index] = value
    return keypoints


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("bbox", [20.0, math.nan, 40.0, 70.0]),
        ("keypoints", _with_keypoint(3, math.nan)),
        ("keypoints", _with_keypoint(5, math.inf)),
        ("dp_x", [10.0, math.nan, 3.0]),
        ("dp_y", [10.0, 3.0, -math.inf]),
        ("dp_U", [math.nan, 0.5, 0.5]),
        ("dp_V", [0.5, math.inf, 0.5]),
    ],
)
def test_a_non_finite_number_is_refused_naming_file_annotation_and_field(tmp_path: Path, field: str, value: list) -> None:
    path = _dataset(tmp_path, [_annotation(4), _annotation(9, **{field: value})])
    with pytest.raises(AnnotationError, match=rf"ann\.json: annotation 9: field '{field}' holds (nan|inf|-inf)"):
        read_densepose_coco(path, tmp_path)


def test_one_nan_keypoint_stops_crops_and_check_data(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """The run stops at the first stage instead of training the cGAN to NaN."""
    path = _dataset(tmp_path, [_annotation(1), _annotation(2, keypoints=_with_keypoint(3, math.nan))])
    assert _crops_cli(path, tmp_path, tmp_path / "crops.zarr") == 1
    assert not (tmp_path / "crops.zarr").exists()
    assert "annotation 2: field 'keypoints' holds nan at index 3" in caplog.text
    problems = check_config(_config(path, tmp_path)).problems
    assert len(problems) == 2 and all("annotation 2" in p for p in problems), problems  # both splits


@pytest.mark.parametrize("kind", ["annotation", "image"])
def test_repeated_ids_are_errors_not_a_silently_dropped_person(tmp_path: Path, kind: str) -> None:
    if kind == "annotation":
        path = _dataset(tmp_path, [_annotation(5), _annotation(5, bbox=[50.0, 10.0, 30.0, 60.0])])
    else:
        path = _dataset(tmp_path, [_annotation(5)], [_image(1), _image(1, file_name="images/other.png")])
    repeated = 5 if kind == "annotation" else 1
    with pytest.raises(AnnotationError, match=rf"ann\.json: 1 {kind} id\(s\) appear more than once: {repeated} \(2 times\)"):
        read_densepose_coco(path, tmp_path)
    problems = check_config(_config(path, tmp_path)).problems
    assert any(f"{kind} id(s) appear more than once" in p for p in problems), problems


def test_other_categories_are_skipped_and_counted_in_the_store(tmp_path: Path) -> None:
    categories = [{"id": 1, "name": "person"}, {"id": 2, "name": "bicycle"}]
    path = _dataset(tmp_path, [_annotation(1), _annotation(2, category_id=2)], categories=categories)
    summary = make_crops(path, tmp_path, tmp_path / "crops.zarr", CropOptions(workers=1))
    assert summary["samples"] == 1 and summary["skipped"] == {"not a person": 1}
    store = open_store(tmp_path / "crops.zarr", stage="crops")
    assert read_sample_ids(store) == ["1_1"] and store.attrs["skipped"] == {"not a person": 1}


def test_empty_and_off_image_boxes_are_skipped_alike_by_crops_and_check_data(tmp_path: Path) -> None:
    annotations = [
        _annotation(1),
        _annotation(2, bbox=[20.0, 10.0, 0.0, 70.0]),
        _annotation(3, bbox=[20.0, 10.0, -5.0, 70.0]),
        _annotation(4, bbox=[500.0, 10.0, 40.0, 70.0]),  # right of the 96-pixel image
        _annotation(5, bbox=[-50.0, -80.0, 40.0, 70.0]),  # above and left of it
        _annotation(6, bbox=[80.0, 60.0, 40.0, 70.0]),  # partly inside: kept
    ]
    path = _dataset(tmp_path, annotations)
    expected = {"empty box": 2, "box off image": 2}
    summary = make_crops(path, tmp_path, tmp_path / "crops.zarr", CropOptions(workers=1))
    assert summary["skipped"] == expected
    assert read_sample_ids(open_store(tmp_path / "crops.zarr", stage="crops")) == ["1_1", "1_6"]
    report = check_config(_config(path, tmp_path))
    assert report.problems == []
    assert "kept 2 persons; skipped: 2 box off image, 2 empty box" in report.checked[-1]


@pytest.mark.parametrize(
    ("keypoints", "message"),
    [
        (_with_keypoint(0, 5000.0), r"keypoint 'nose' at \(5000, 15\) lies outside the 96 x 96 image"),
        (_with_keypoint(4, -20.0), r"keypoint 'left_eye' at \(26, -20\) lies outside"),
        (_with_keypoint(2, 3.0), "keypoint 'nose' has visibility 3, expected 0, 1 or 2"),
        (_with_keypoint(5, -1.0), "keypoint 'left_eye' has visibility -1"),
    ],
)
def test_keypoints_far_outside_the_image_or_with_a_bad_visibility_are_refused(
    tmp_path: Path, keypoints: list[float], message: str
) -> None:
    path = _dataset(tmp_path, [_annotation(7, keypoints=keypoints)])
    with pytest.raises(AnnotationError, match=message):
        make_crops(path, tmp_path, tmp_path / "crops.zarr", CropOptions(workers=1))
    problems = check_config(_config(path, tmp_path)).problems
    assert len(problems) == 2 and all("ann.json: annotation 7: keypoint" in p for p in problems), problems


def test_keypoints_just_outside_the_border_and_unlabelled_ones_are_kept(tmp_path: Path) -> None:
    keypoints = _with_keypoint(0, SIZE + 5.0)  # 5 px past the border: within the 9.6 px margin
    keypoints[3:6] = [-1000.0, 0.0, 0.0]  # unlabelled: the position is meaningless
    path = _dataset(tmp_path, [_annotation(1, keypoints=keypoints)])
    assert make_crops(path, tmp_path, tmp_path / "crops.zarr", CropOptions(workers=1))["samples"] == 1


def test_16_bit_images_are_scaled_to_8_bits_not_saturated(tmp_path: Path) -> None:
    grey = np.random.default_rng(0).integers(0, 65536, (SIZE, SIZE)).astype(np.uint16)
    deep, flat = tmp_path / "deep", tmp_path / "flat"
    (deep / "images").mkdir(parents=True)
    (flat / "images").mkdir(parents=True)
    Image.fromarray(grey).save(deep / "images/0001.png")
    assert Image.open(deep / "images/0001.png").mode in ("I;16", "I")
    Image.fromarray(np.rint(grey / 257.0).astype(np.uint8)).save(flat / "images/0001.png")
    crops = {}
    for root in (deep, flat):
        make_crops(_dataset(root, [_annotation(1)]), root, root / "crops.zarr", CropOptions(workers=1))
        crops[root] = open_store(root / "crops.zarr", stage="crops")["image"][...]
    assert crops[deep].max() < 255 and crops[deep].mean() > 60
    np.testing.assert_array_equal(crops[deep], crops[flat])


@pytest.mark.parametrize("name", ["/elsewhere/secret.png", "../outside/secret.png", "images/../../secret.png"])
def test_file_names_that_leave_the_image_root_are_refused(tmp_path: Path, name: str, caplog: pytest.LogCaptureFixture) -> None:
    root = tmp_path / "coco"
    path = _dataset(root, [_annotation(3)], [_image(1, file_name=name)])
    with pytest.raises(AnnotationError, match=rf"annotation 3: image 1: file_name '{name}' (is an absolute|leads out)"):
        read_densepose_coco(path, root)
    assert _crops_cli(path, root, tmp_path / "crops.zarr") == 1
    assert "allow-absolute-paths" in caplog.text and not (tmp_path / "crops.zarr").exists()
    assert any(name in p for p in check_config(_config(path, root)).problems)


def test_absolute_file_names_are_read_when_the_user_allows_them(tmp_path: Path) -> None:
    _png(tmp_path / "elsewhere" / "a.png")
    root = tmp_path / "coco"
    path = _dataset(root, [_annotation(3)], [_image(1, file_name=str(tmp_path / "elsewhere" / "a.png"))])
    assert _crops_cli(path, root, tmp_path / "crops.zarr", "--allow-absolute-paths") == 0
    assert read_sample_ids(open_store(tmp_path / "crops.zarr", stage="crops")) == ["1_3"]
    assert check_config(_config(path, root, allow_absolute_paths=True)).problems == []
    assert check_config(_config(path, root)).problems != []


def test_images_without_height_and_width_are_read(tmp_path: Path) -> None:
    path = _dataset(tmp_path, [_annotation(1)], [{"id": 1, "file_name": "images/0001.png"}])
    assert _crops_cli(path, tmp_path, tmp_path / "crops.zarr") == 0
    assert check_config(_config(path, tmp_path)).problems == []


def test_check_data_decodes_every_image_and_lists_every_problem(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    images = [_image(i) for i in range(1, 7)]
    annotations = [_annotation(10 + i, image_id=i) for i in range(1, 7)]
    annotations[5]["keypoints"] = _with_keypoint(3, math.nan)
    path = _dataset(tmp_path, annotations, images)
    good = (tmp_path / "images/0003.png").read_bytes()
    (tmp_path / "images/0001.png").write_bytes(b"")  # empty
    (tmp_path / "images/0002.png").write_bytes(good[: len(good) // 2])  # truncated
    (tmp_path / "images/0003.png").write_bytes(np.random.default_rng(1).bytes(4000))  # random bytes
    (tmp_path / "images/0004.png").unlink()  # missing
    _png(tmp_path / "images/0005.png")  # fine
    config = tmp_path / "config.yaml"
    config.write_text(json.dumps(_config(path, tmp_path)))
    report = check_config(config)
    text = "\n".join(report.problems)
    # Per split: four images, one NaN keypoint; the annotation file is both splits.
    assert len(report.problems) == 10, text
    for number in (1, 2, 3):
        assert f"images/000{number}.png: image of sample {number}_1{number} is unreadable" in text
    assert "images/0004.png: image of sample 4_14 does not exist" in text
    assert "annotation 16: field 'keypoints' holds nan" in text
    assert main(["check-data", "--config", str(config)]) == 1 and "10 input problems" in caplog.text

    # A decompression bomb: more than twice PIL's pixel limit (lowered here; the image is 96 x 96).
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)
    bomb = _dataset(tmp_path / "bomb", [_annotation(1)])
    assert any("decompression bomb" in p and "0001.png" in p for p in check_config(_config(bomb, bomb.parent)).problems)
    caplog.clear()
    assert _crops_cli(bomb, bomb.parent, tmp_path / "crops.zarr") == 1
    assert "image of sample 1_1 is refused as a decompression bomb" in caplog.text

