"""Human3.6M crops frame the person like the training crops (issue 19, item 9).

SPIN's datasets/preprocess/h36m.py stores ``scale = 0.9 * max(mask box side) / 200`` (box side
= scale * 200); the crops stage frames a DensePose-COCO person with ``box_scale`` (1.2) times
the longer side of its box. The same person, framed once by each convention, must fill the same
fraction of its crop, or the regressor is evaluated on people larger than it was trained on.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw

from dlearn.data.crops import CropOptions, make_crops
from dlearn.data.h36m import SPIN_BOX_UNIT, read_spin_npz
from dlearn.data.store import open_store
from dlearn.evaluation.h36m import make_h36m_crops

IMGNAME = "images/S9_Directions_1.54138969_000001.jpg"  # SPIN's imgname layout
SIZE = 128  # crop pixels: 1 px is under 1 % of the crop


def _person_image(path: Path) -> np.ndarray:
    """A bright stick person (head, torso, legs, arms) on a dark 1000 x 1000 frame, as JPEG
    (Human3.6M's frames are ~1000 px JPEGs); returns its (H, W) bool mask."""
    image = Image.new("RGB", (1000, 1000), (30, 30, 30))
    draw = ImageDraw.Draw(image)
    draw.ellipse((470, 200, 530, 270), fill=(230, 230, 230))  # head
    draw.rectangle((455, 270, 545, 500), fill=(230, 230, 230))  # torso
    draw.rectangle((460, 500, 495, 760), fill=(230, 230, 230))  # legs
    draw.rectangle((505, 500, 540, 760), fill=(230, 230, 230))
    draw.rectangle((380, 280, 455, 305), fill=(230, 230, 230))  # arms
    draw.rectangle((545, 280, 620, 305), fill=(230, 230, 230))
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path, quality=95)
    return np.asarray(image)[..., 0] > 128


def _spin_s(n: int) -> np.ndarray:
    """S as SPIN writes it: 17 Human3.6M joints (root-centred, metres) at global_idx of 24 slots."""
    global_idx = [14, 3, 4, 5, 2, 1, 0, 16, 12, 17, 18, 9, 10, 11, 8, 7, 6]
    h36m17 = np.random.default_rng(0).normal(scale=0.3, size=(n, 17, 3))
    s = np.zeros((n, 24, 4))
    s[:, global_idx, :3], s[:, global_idx, 3] = h36m17 - h36m17[:, :1], 1.0
    return s


def _spin_npz(path: Path, mask: np.ndarray) -> Path:
    """The frame's entry as SPIN's h36m.py computes it from the person's mask."""
    ys, xs = np.where(mask)
    bbox = np.array([np.min(xs), np.min(ys), np.max(xs) + 1, np.max(ys) + 1])
    center = [(bbox[2] + bbox[0]) / 2, (bbox[3] + bbox[1]) / 2]
    scale = 0.9 * max(bbox[2] - bbox[0], bbox[3] - bbox[1]) / 200.0
    np.savez(path, imgname=[IMGNAME], center=[center], scale=[scale], S=_spin_s(1))
    return path


def _densepose_coco(path: Path, mask: np.ndarray) -> Path:
    """The same person as a DensePose-COCO annotation: bbox [x, y, w, h] tight around the mask
    (pycocotools' toBbox of its segmentation), dp_* relative to the box, 17 COCO keypoints."""
    ys, xs = np.where(mask)
    x0, y0 = float(xs.min()), float(ys.min())
    w, h = float(xs.max() + 1 - x0), float(ys.max() + 1 - y0)
    keypoints = [0.0] * 51
    for k, (x, y) in {0: (500, 235), 11: (475, 500), 12: (525, 500), 15: (477, 750), 16: (522, 750)}.items():
        keypoints[3 * k : 3 * k + 3] = [float(x), float(y), 2.0]
    doc = {
        "images": [{"id": 1, "file_name": IMGNAME, "width": 1000, "height": 1000}],
        "annotations": [{
            "id": 7, "image_id": 1, "category_id": 1, "iscrowd": 0, "area": float(mask.sum()),
            "bbox": [x0, y0, w, h], "keypoints": keypoints, "num_keypoints": 5,
            "dp_x": [128.0, 100.0], "dp_y": [60.0, 200.0], "dp_I": [2.0, 8.0], "dp_U": [0.5, 0.4], "dp_V": [0.5, 0.6],
        }],
        "categories": [{"id": 1, "name": "person", "supercategory": "person"}],
    }  # fmt: skip
    path.write_text(json.dumps(doc))
    return path


def _person_extent(crop: np.ndarray) -> tuple[float, float]:
    """(height, width) of the bright person in an (S, S, 3) crop, as fractions of the crop side."""
    rows, cols = np.where(crop[..., 0] > 128)
    return (rows.max() + 1 - rows.min()) / crop.shape[0], (cols.max() + 1 - cols.min()) / crop.shape[1]


@pytest.fixture
def person(tmp_path: Path) -> dict[str, Path]:
    mask = _person_image(tmp_path / IMGNAME)
    return {
        "root": tmp_path,
        "npz": _spin_npz(tmp_path / "h36m_valid_protocol1.npz", mask),
        "json": _densepose_coco(tmp_path / "densepose_coco_2014_minival.json", mask),
    }


def test_person_has_the_same_size_in_human36m_and_training_crops(person: dict[str, Path], tmp_path: Path) -> None:
    options = CropOptions(image_size=SIZE, workers=1)
    make_crops(person["json"], person["root"], tmp_path / "crops_train.zarr", options)
    make_h36m_crops(person["npz"], person["root"], tmp_path / "crops_h36m.zarr", options)
    train = open_store(tmp_path / "crops_train.zarr", stage="crops")
    h36m = open_store(tmp_path / "crops_h36m.zarr", stage="crops")

    train_height, train_width = _person_extent(train["image"][0])
    h36m_height, h36m_width = _person_extent(h36m["image"][0])
    # The person fills 1 / box_scale of the training crop's side (its longer box side).
    assert train_height == pytest.approx(1 / options.box_scale, abs=0.02)
    # SPIN's own box (0.9 x the person) would cut the person off at the crop border: height 1.
    assert h36m_height == pytest.approx(train_height, rel=0.03)
    assert h36m_width == pytest.approx(train_width, rel=0.03)
    np.testing.assert_allclose(h36m["box"][0], train["box"][0], rtol=0.01)


def test_person_box_undoes_spins_factor(person: dict[str, Path]) -> None:
    frames = read_spin_npz(person["npz"])
    x0, y0, w, h = frames.person_boxes[0]
    # The stick person spans 560 px vertically (200..760): SPIN stored 0.9 x that.
    assert frames.scale[0] * SPIN_BOX_UNIT == pytest.approx(0.9 * 561)
    assert (w, h) == pytest.approx((561, 561))
    assert (x0 + w / 2, y0 + h / 2) == pytest.approx(tuple(frames.center[0]))


def test_h36m_crops_command_takes_the_training_box_scale(person: dict[str, Path], tmp_path: Path) -> None:
    """The workflow passes crops.box_scale to h36m-crops, so a changed margin moves both crop sets."""
    from dlearn.cli import main

    out = tmp_path / "crops_h36m.zarr"
    argv = ["h36m-crops", "--npz", str(person["npz"]), "--image-root", str(person["root"]), "--out", str(out),
            "--image-size", "32", "--box-scale", "1.5"]  # fmt: skip
    assert main(argv) == 0
    frames = read_spin_npz(person["npz"])
    side = open_store(out, stage="crops")["box"][0, 2]
    assert side == pytest.approx(1.5 * frames.scale[0] * SPIN_BOX_UNIT / 0.9, rel=1e-5)
