"""DensePose-COCO reading: coordinates, skip rules, and errors that name the annotation."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from pycocotools import mask as mask_utils

from dlearn.densepose.coco import AnnotationError, decode_dp_masks, read_densepose_coco


def _rle(mask: np.ndarray) -> dict:
    rle = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
    rle["counts"] = rle["counts"].decode("ascii")
    return rle


def _annotation(ann_id: int, **fields: object) -> dict:
    ann = {
        "id": ann_id,
        "image_id": 7,
        "category_id": 1,
        "iscrowd": 0,
        "bbox": [10.0, 20.0, 64.0, 128.0],
        "area": 64.0 * 128.0,
        "keypoints": [0.0] * 51,
        "num_keypoints": 0,
        "dp_x": [0.0, 128.0],
        "dp_y": [256.0, 64.0],
        "dp_I": [1.0, 24.0],
        "dp_U": [0.25, 1.0],
        "dp_V": [0.0, 0.5],
    }
    ann.update(fields)
    return ann


def _write(tmp_path: Path, annotations: list[dict]) -> Path:
    doc = {
        "images": [{"id": 7, "file_name": "img/0007.png", "width": 200, "height": 300}],
        "annotations": annotations,
        "categories": [{"id": 1, "name": "person"}],
    }
    path = tmp_path / "densepose_train.json"
    path.write_text(json.dumps(doc))
    return path


def test_dense_points_map_from_the_box_grid_to_image_pixels(tmp_path: Path) -> None:
    samples, report = read_densepose_coco(_write(tmp_path, [_annotation(3)]), tmp_path)
    (s,) = samples
    assert s.sample_id == "7_3" and report.kept == 1
    assert s.image_path == tmp_path / "img/0007.png"
    # x_img = x0 + dp_x * w / 256, y_img = y0 + dp_y * h / 256
    np.testing.assert_allclose(s.dense_xy, [[10.0, 148.0], [42.0, 52.0]])
    np.testing.assert_array_equal(s.dense_part, [1, 24])
    np.testing.assert_allclose(s.dense_uv, [[0.25, 0.0], [1.0, 0.5]])


def test_crowd_small_and_undensed_persons_are_skipped_and_counted(tmp_path: Path) -> None:
    plain = _annotation(2)
    for key in ("dp_x", "dp_y", "dp_I", "dp_U", "dp_V"):
        del plain[key]
    anns = [_annotation(1, iscrowd=1), plain, _annotation(3, bbox=[0, 0, 5, 8]), _annotation(4)]
    samples, report = read_densepose_coco(_write(tmp_path, anns), tmp_path, min_box_size=10)
    assert [s.annotation_id for s in samples] == [4]
    assert report.skipped == {"crowd": 1, "no dense points": 1, "small box": 1}
    kept, _ = read_densepose_coco(_write(tmp_path, anns), tmp_path, require_dense=False)
    assert [s.annotation_id for s in kept] == [2, 3, 4] and len(kept[0].dense_part) == 0


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"dp_U": [0.5]}, "different lengths"),
        ({"dp_I": [0.0, 25.0]}, "dp_I"),
        ({"dp_V": [0.0, 1.5]}, "dp_U'/'dp_V"),
        ({"keypoints": [1.0] * 50}, "keypoints"),
        ({"dp_x": ["a", 1]}, "dp_x"),
    ],
)
def test_malformed_fields_name_the_file_and_annotation(tmp_path: Path, fields: dict, message: str) -> None:
    path = _write(tmp_path, [_annotation(11, **fields)])
    with pytest.raises(AnnotationError, match=rf"densepose_train\.json: annotation 11: .*{message}"):
        read_densepose_coco(path, tmp_path)


def test_unreadable_file_is_named(tmp_path: Path) -> None:
    path = tmp_path / "broken.json"
    path.write_text("{not json")
    with pytest.raises(AnnotationError, match="broken.json"):
        read_densepose_coco(path, tmp_path)


def test_dp_masks_decode_to_a_part_map(tmp_path: Path) -> None:
    head = np.zeros((256, 256), bool)
    head[:40, 100:150] = True
    torso = np.zeros((256, 256), bool)
    torso[60:160, 80:170] = True
    masks = [_rle(torso)] + [[] for _ in range(12)] + [_rle(head)]
    samples, _ = read_densepose_coco(_write(tmp_path, [_annotation(1, dp_masks=masks)]), tmp_path)
    part_map = decode_dp_masks(samples[0])
    assert part_map[10, 120] == 14 and part_map[100, 100] == 1 and part_map[200, 10] == 0
