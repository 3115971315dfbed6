"""cGAN depths are used only where the cGAN is valid (issue 19, item 4).

The cGAN trains on poses with both hips and ``min_keypoints`` labelled; for any other pose the
generator's depths are centred on its own guess of the root while the registration subtracts
the body's real mid-hip. Persons cut by the image border, whose hips DensePose-COCO leaves
unlabelled (v = 0, x = y = 0), must get no depth term, and be counted.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from pycocotools import mask as mask_utils

from dlearn.body.io import load_body_model
from dlearn.cgan.train import CganOptions, predict_depths, train_cgan
from dlearn.data.crops import CropOptions, make_crops
from dlearn.data.store import open_store, read_sample_ids
from dlearn.densepose.match import MatchOptions, match_correspondences
from dlearn.registration.data import load_fit_data
from dlearn.registration.fit import RegistrationOptions
from dlearn.registration.merge import merge_registration
from dlearn.registration.stage import register

IMAGE = 160
#: A standing person's 17 COCO key points (x, y), in units of half its height, about the mid-hip.
STANDING = np.array([
    [0.0, -0.85], [-0.04, -0.9], [0.04, -0.9], [-0.08, -0.87], [0.08, -0.87],  # nose, eyes, ears
    [-0.2, -0.6], [0.2, -0.6], [-0.26, -0.3], [0.26, -0.3], [-0.28, -0.02], [0.28, -0.02],  # arms
    [-0.11, 0.0], [0.11, 0.0], [-0.12, 0.45], [0.12, 0.45], [-0.12, 0.9], [0.12, 0.9],  # legs
])  # fmt: skip
FULL, TRUNCATED, FEW = "full", "truncated", "few"
#: What each person is: 6 whole ones, 2 cut below the chest by the image's lower border (hips,
#: knees, ankles unlabelled) and 1 with both hips but only 6 labelled key points (< 8).
KINDS = [FULL] * 3 + [TRUNCATED] + [FULL] * 3 + [TRUNCATED, FEW]
OUTSIDE = [k != FULL for k in KINDS]
# No early stop (patience > steps): every fit runs all steps, so a sample's fit depends on its
# own loss only (Adam is per element, the batch loss a sum over samples).
FAST = RegistrationOptions(steps=20, patience=100, batch_size=16, chunk_size=16, device="cpu")


def _person(kind: str, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """(17, 3) image key points as COCO stores them (unlabelled: 0, 0, 0) and the (H, W) mask."""
    half = 60.0 if kind != TRUNCATED else 110.0  # a truncated person is close: only its top is in the frame
    centre = np.array([IMAGE / 2, IMAGE / 2 if kind != TRUNCATED else IMAGE + 20.0])
    xy = centre + half * (STANDING + rng.normal(scale=0.03, size=STANDING.shape))
    inside = (xy >= 0).all(1) & (xy < IMAGE).all(1)
    labelled = inside if kind != FEW else np.isin(np.arange(17), [0, 5, 6, 11, 12, 13])
    keypoints = np.zeros((17, 3))
    keypoints[labelled] = np.column_stack([xy[labelled], np.full(labelled.sum(), 2.0)])
    mask = np.zeros((IMAGE, IMAGE), np.uint8)
    x0, x1 = np.clip([xy[:, 0].min() - 5, xy[:, 0].max() + 5], 0, IMAGE).astype(int)
    y0, y1 = np.clip([xy[:, 1].min() - 10, xy[:, 1].max() + 5], 0, IMAGE).astype(int)
    mask[y0:y1, x0:x1] = 1
    return keypoints, mask


def _rle(mask: np.ndarray) -> dict:
    rle = mask_utils.encode(np.asfortranarray(mask))
    return {"size": [int(v) for v in rle["size"]], "counts": rle["counts"].decode("ascii")}


def _annotation(ann_id: int, image_id: int, keypoints: np.ndarray, mask: np.ndarray, rng: np.random.Generator) -> dict:
    """A DensePose-COCO person record: COCO's fields plus dp_* (points relative to the box on a
    256 grid, dp_masks: 14 RLEs of 256 x 256 or [])."""
    x0, y0, w, h = (float(v) for v in mask_utils.toBbox(mask_utils.encode(np.asfortranarray(mask))))
    n = 30
    part_mask = np.zeros((256, 256), np.uint8)
    part_mask[40:220, 60:200] = 1
    return {
        "id": ann_id, "image_id": image_id, "category_id": 1, "iscrowd": 0, "area": float(mask.sum()),
        "bbox": [x0, y0, w, h], "segmentation": _rle(mask),
        "keypoints": [float(v) for v in keypoints.ravel()], "num_keypoints": int((keypoints[:, 2] > 0).sum()),
        "dp_x": list(rng.uniform(0, 255, n)), "dp_y": list(rng.uniform(0, 255, n)),
        "dp_I": [float(v) for v in rng.integers(1, 25, n)], "dp_U": list(rng.uniform(0, 1, n)),
        "dp_V": list(rng.uniform(0, 1, n)), "dp_masks": [_rle(part_mask)] + [[] for _ in range(13)],
    }  # fmt: skip


@pytest.fixture(scope="module")
def stores(tmp_path_factory: pytest.TempPathFactory, standin_files: tuple[Path, Path]) -> dict[str, Path]:
    """Crops, correspondences, cGAN model and depths of a DensePose-COCO file with truncated persons."""
    root = tmp_path_factory.mktemp("depth_validity")
    model, uv = standin_files
    rng = np.random.default_rng(0)
    images, annotations = [], []
    (root / "train2014").mkdir()
    for i, kind in enumerate(KINDS):
        keypoints, mask = _person(kind, rng)
        name = f"COCO_train2014_{i + 1:012d}.jpg"
        pixels = rng.integers(0, 255, (IMAGE, IMAGE, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(root / "train2014" / name)
        images.append({"id": i + 1, "file_name": name, "height": IMAGE, "width": IMAGE})
        annotations.append(_annotation(100 + i, i + 1, keypoints, mask, rng))
    coco = {"images": images, "annotations": annotations, "categories": [{"id": 1, "name": "person", "supercategory": "person"}]}
    json_path = root / "densepose_coco_2014_train.json"
    json_path.write_text(json.dumps(coco))

    crops, corr = root / "crops_train.zarr", root / "correspondences_train.zarr"
    make_crops(json_path, root / "train2014", crops, CropOptions(image_size=32, workers=1))
    match_correspondences(json_path, crops, uv, corr, MatchOptions(), load_body_model(model).num_vertices)
    options = CganOptions(epochs=1, min_steps_per_epoch=2, batch_size=4, hidden_size=16, num_blocks=1, device="cpu")
    summary = train_cgan(crops, root / "cgan.pt", root / "cgan_ckpt", options)
    predict_depths(root / "cgan.pt", crops, root / "depths_train.zarr", device="cpu")
    return {"root": root, "model": model, "crops": crops, "corr": corr, "depths": root / "depths_train.zarr",
            "train_summary": summary}  # fmt: skip


def test_fixture_persons_are_truncated_like_densepose_coco(stores: dict) -> None:
    keypoints = open_store(stores["crops"], stage="crops")["keypoints"][...]
    hips = (keypoints[:, [11, 12], 2] > 0).all(1)
    assert list(~hips) == [k == TRUNCATED for k in KINDS]
    assert (keypoints[~hips][:, [11, 12]] == 0).all()  # COCO writes unlabelled points as 0, 0, 0


def test_cgan_predict_marks_persons_outside_its_training_criteria_invalid(stores: dict) -> None:
    store = open_store(stores["depths"], stage="cgan_predict")
    valid, depth = store["valid"][...], store["depth"][...]
    labelled = open_store(stores["crops"], stage="crops")["keypoints"][...][..., 2] > 0
    outside = np.array(OUTSIDE)
    assert not valid[outside].any() and (depth[outside] == 0).all()
    np.testing.assert_array_equal(valid[~outside], labelled[~outside])
    assert store.attrs["outside_training_criteria"] == outside.sum() == 3
    # Training skipped exactly these persons: one predicate for both.
    assert stores["train_summary"]["skipped_poses"] == 3


def test_registration_and_regressor_data_mask_their_depth_term(stores: dict) -> None:
    data = load_fit_data(stores["corr"], stores["crops"], stores["depths"])  # what both read
    assert read_sample_ids(open_store(stores["corr"])) == data.ids
    has_depth = data.depth_mask.sum(1) > 0
    np.testing.assert_array_equal(has_depth, ~np.array(OUTSIDE))


def test_truncated_persons_are_fitted_as_without_depths_and_counted(stores: dict, tmp_path: Path) -> None:
    def run(name: str, options: RegistrationOptions) -> tuple[list[dict], dict]:
        shards = [tmp_path / f"{name}_{i}.zarr" for i in range(2)]
        inputs = (stores["corr"], stores["crops"], stores["model"])
        summaries = [
            register(*inputs, path, options, depths=stores["depths"], shard=i, num_shards=2)
            for i, path in enumerate(shards)
        ]
        return summaries, merge_registration(shards, stores["corr"], tmp_path / f"{name}.zarr")

    summaries, merged = run("cgan", FAST)
    assert [s["samples_without_depth"] for s in summaries] == [1, 2]
    assert merged["samples_without_depth"] == 3
    with_depth = open_store(tmp_path / "cgan.zarr", stage="merge_registration")
    assert with_depth.attrs["samples_without_depth"] == 3
    run("none", replace(FAST, use_depth=False))
    without = open_store(tmp_path / "none.zarr", stage="merge_registration")
    outside = np.array(OUTSIDE)
    # The cGAN's depths move the fits of the persons it is valid for, and no other.
    pose, pose_none = with_depth["pose"][...], without["pose"][...]
    np.testing.assert_allclose(pose[outside], pose_none[outside], atol=1e-6)
    assert np.abs(pose[~outside] - pose_none[~outside]).max() > 1e-3
