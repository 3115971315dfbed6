"""Person crops: the geometry of normalised crop coordinates, padding, and missing images."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from dlearn.data.crops import (
    CropOptions,
    ImageError,
    crop_image,
    from_crop,
    make_crops,
    square_boxes,
    to_crop,
)
from dlearn.data.store import open_store, read_sample_ids


def _gradient_image(width: int = 200, height: int = 240) -> Image.Image:
    """Red = x, green = y: every pixel says where it is."""
    x, y = np.meshgrid(np.arange(width), np.arange(height))
    rgb = np.stack([x, y, np.full_like(x, 7)], axis=-1).astype(np.uint8)
    return Image.fromarray(rgb)


def test_square_box_is_centred_with_margin() -> None:
    np.testing.assert_allclose(square_boxes(np.array([[10, 20, 40, 100]]), 1.2), [[30, 70, 120]])


def test_crop_coordinates_round_trip() -> None:
    box = np.array([30.0, 70.0, 120.0])
    pts = np.array([[0.0, 10.0], [90.0, 130.0]])
    np.testing.assert_allclose(from_crop(to_crop(pts, box), box), pts)
    np.testing.assert_allclose(to_crop(np.array([[-30.0, 10.0], [90.0, 130.0]]), box), [[-1, -1], [1, 1]])


@pytest.mark.parametrize("size", [32, 64, 100])
def test_crop_pixel_centres_sample_the_image_where_the_coordinates_say(size: int) -> None:
    box = np.array([101.5, 117.0, 150.0])
    crop = crop_image(_gradient_image(), box, size).astype(np.float64)
    centres = -1 + (2 * np.arange(size) + 1) / size  # normalised coordinate of each pixel centre
    u, v = np.meshgrid(centres, centres)
    # Image pixel (x, y) has its centre at x + 0.5: pixel value x sits at coordinate x + 0.5.
    expected = from_crop(np.stack([u, v], axis=-1), box) - 0.5
    inner = slice(2, -2)  # the resampling filter reaches beyond the crop at the border
    np.testing.assert_allclose(crop[inner, inner, 0], expected[inner, inner, 0], atol=1.0)
    np.testing.assert_allclose(crop[inner, inner, 1], expected[inner, inner, 1], atol=1.0)


def test_outside_the_image_is_black() -> None:
    crop = crop_image(_gradient_image(), np.array([0.0, 0.0, 100.0]), 50)
    assert crop[:20, :20].max() == 0 and crop[-10:, -10:, 2].min() == 7


def _dataset(tmp_path: Path, with_image: bool = True) -> Path:
    if with_image:
        (tmp_path / "img").mkdir()
        _gradient_image().save(tmp_path / "img" / "a.png")
    keypoints = [0.0] * 51
    keypoints[0:3] = [60.0, 40.0, 2.0]
    doc = {
        "images": [{"id": 1, "file_name": "img/a.png", "width": 200, "height": 240}],
        "annotations": [
            {
                "id": ann_id, "image_id": 1, "category_id": 1, "iscrowd": 0, "bbox": bbox,
                "keypoints": keypoints, "num_keypoints": 1,
                "dp_x": [128.0], "dp_y": [128.0], "dp_I": [2.0], "dp_U": [0.5], "dp_V": [0.5],
            }
            for ann_id, bbox in ((5, [40.0, 20.0, 40.0, 100.0]), (6, [100.0, 100.0, 60.0, 60.0]))
        ],
        "categories": [{"id": 1, "name": "person"}],
    }  # fmt: skip
    path = tmp_path / "densepose_train.json"
    path.write_text(json.dumps(doc))
    return path


def test_crops_store_holds_images_keypoints_and_boxes(tmp_path: Path) -> None:
    summary = make_crops(_dataset(tmp_path), tmp_path, tmp_path / "crops.zarr", CropOptions(image_size=32, workers=1))
    store = open_store(tmp_path / "crops.zarr", stage="crops", required=["image", "keypoints", "box"])
    assert summary["samples"] == 2 and read_sample_ids(store) == ["1_5", "1_6"]
    assert store["image"].shape == (2, 32, 32, 3) and store["image"].dtype == np.uint8
    box = store["box"][0]
    np.testing.assert_allclose(box, [60, 70, 120])
    np.testing.assert_allclose(store["keypoints"][0, 0], [0.0, -0.5, 2.0])  # (60, 40) in that box
    assert np.all(store["keypoints"][0, 1:] == 0)


def test_missing_image_is_an_error_naming_it_and_writes_nothing(tmp_path: Path) -> None:
    with pytest.raises(ImageError, match=r"img/a\.png.*sample 1_5"):
        make_crops(_dataset(tmp_path, with_image=False), tmp_path, tmp_path / "crops.zarr", CropOptions(workers=1))
    assert not (tmp_path / "crops.zarr").exists()
