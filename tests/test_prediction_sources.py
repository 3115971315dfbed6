"""Other sources of DensePose predictions and keypoints: detectron2's apply_net dump, SPIN's npz."""

from __future__ import annotations

import dataclasses
import json
import os
import sys
import types
import zipfile
from pathlib import Path
from typing import Optional

import numpy as np
import pytest
import torch
from PIL import Image

from dlearn.densepose.coco import COCO_KEYPOINT_NAMES
from dlearn.densepose.dump import DumpError, int_box, load_dump
from dlearn.densepose.predictions import (
    PredictionError,
    PredictionOptions,
    predictions_to_coco,
    read_spin_keypoints,
    write_iuv,
)

H, W = 40, 60
CHART_MODULE = "densepose.structures.chart_result"


@dataclasses.dataclass
class DensePoseChartResultWithConfidences:
    """detectron2 DensePose's class (densepose/structures/chart_result.py), same fields and order."""

    labels: torch.Tensor
    uv: torch.Tensor
    sigma_1: Optional[torch.Tensor] = None  # noqa: UP045 (the original's annotations)
    sigma_2: Optional[torch.Tensor] = None  # noqa: UP045
    kappa_u: Optional[torch.Tensor] = None  # noqa: UP045
    kappa_v: Optional[torch.Tensor] = None  # noqa: UP045
    fine_segm_confidence: Optional[torch.Tensor] = None  # noqa: UP045
    coarse_segm_confidence: Optional[torch.Tensor] = None  # noqa: UP045


@pytest.fixture
def densepose_package(monkeypatch):
    """The stand-in class importable under DensePose's module path, as pickle names it."""
    module = types.ModuleType(CHART_MODULE)
    for name in ("densepose", "densepose.structures"):
        monkeypatch.setitem(sys.modules, name, types.ModuleType(name))
    monkeypatch.setitem(sys.modules, CHART_MODULE, module)
    monkeypatch.setattr(DensePoseChartResultWithConfidences, "__module__", CHART_MODULE)
    module.DensePoseChartResultWithConfidences = DensePoseChartResultWithConfidences
    return DensePoseChartResultWithConfidences


def _scene() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Two side-by-side persons: part, uv (H, W, 2) and instance (0 = A, 1 = B) over the image."""
    rows, cols = np.mgrid[0:H, 0:W]
    part = np.zeros((H, W), np.int64)
    a = (cols >= 5) & (cols < 25) & (rows >= 5) & (rows < 35)
    b = (cols >= 30) & (cols < 55) & (rows >= 5) & (rows < 35)
    part[a] = np.where(rows[a] < 20, 1, 2)
    part[b] = np.where(rows[b] < 20, 3, 4)
    uv = np.stack([cols / 100.0, rows / 100.0], axis=-1) * (part > 0)[..., None]
    return part, uv, b.astype(np.int64)


#: The two detections in XYXY with fractional corners: make_int_box truncates to (5, 5, 20, 30)
#: and (30, 5, 25, 30), the persons' pixels exactly.
BOXES = [[5.7, 5.2, 25.9, 35.6], [30.3, 5.9, 55.4, 35.95]]


def _dump_entry(file_name: str, cls: type) -> dict:
    """What DumpAction.execute_on_outputs appends for one image of the scene."""
    part, uv, _ = _scene()
    results = []
    for box in BOXES:
        x, y, w, h = int_box(np.array(box))
        results.append(
            cls(
                labels=torch.from_numpy(part[y : y + h, x : x + w].copy()),
                uv=torch.from_numpy(np.moveaxis(uv[y : y + h, x : x + w], -1, 0).astype(np.float32).copy()),
                fine_segm_confidence=torch.rand(h, w),
            )
        )
    return {
        "file_name": file_name,
        "scores": torch.tensor([0.98, 0.91]),
        "pred_boxes_XYXY": torch.tensor(BOXES),
        "pred_densepose": results,
    }


def _keypoints(x0: float, y0: float, w: float, h: float) -> list[float]:
    return [v for k in range(17) for v in (x0 + w * (k + 1) / 18, y0 + h / 2, 2.0)]


@pytest.fixture
def scene_files(tmp_path: Path, densepose_package) -> dict[str, Path]:
    """The scene's image, COCO keypoints, IUV PNGs and an apply_net dump (torch.save, as apply_net)."""
    images = tmp_path / "images" / "S1"
    images.mkdir(parents=True)
    Image.fromarray(np.full((H, W, 3), 128, np.uint8)).save(images / "frame.0001.jpg", format="PNG")
    part, uv, instance = _scene()
    write_iuv(tmp_path / "iuv" / "S1" / "frame.0001", part, uv, instance)
    coco = {
        "images": [{"id": 7, "file_name": "S1/frame.0001.jpg"}],
        "annotations": [
            {"id": 1, "image_id": 7, "category_id": 1, "bbox": [4, 4, 22, 32], "keypoints": _keypoints(4, 4, 22, 32)},
            {"id": 2, "image_id": 7, "category_id": 1, "bbox": [29, 4, 27, 32], "keypoints": _keypoints(29, 4, 27, 32)},
        ],
        "categories": [{"id": 1, "name": "person"}],
    }
    (tmp_path / "keypoints.json").write_text(json.dumps(coco))
    dump = tmp_path / "dump.pkl"
    # apply_net records the path it was given, here relative to its working folder.
    torch.save([_dump_entry("data/images/S1/frame.0001.jpg", densepose_package)], dump)
    return {"keypoints": tmp_path / "keypoints.json", "iuv_dir": tmp_path / "iuv", "images": tmp_path / "images",
            "dump": dump, "tmp": tmp_path}  # fmt: skip


def test_dump_is_read_without_detectron2_as_apply_net_writes_it(scene_files, monkeypatch):
    with zipfile.ZipFile(scene_files["dump"]) as archive:  # torch.save's format, as apply_net writes
        assert "dump/data.pkl" in archive.namelist()
    for name in ("densepose", "densepose.structures", CHART_MODULE):
        monkeypatch.delitem(sys.modules, name)  # the reader must not need the package
    (entry,) = load_dump(scene_files["dump"])
    assert entry["file_name"] == "data/images/S1/frame.0001.jpg"
    np.testing.assert_allclose(entry["pred_boxes_XYXY"], np.float32(BOXES))
    labels = entry["pred_densepose"][1].labels
    assert labels.shape == (30, 25) and labels.dtype == np.int64 and set(np.unique(labels)) == {3, 4}


def test_dump_gives_the_same_points_as_the_iuv_maps_of_the_same_prediction(scene_files):
    files = scene_files
    options = PredictionOptions(points_per_person=50)
    from_png, report_png = predictions_to_coco(files["keypoints"], files["iuv_dir"], files["images"], options)
    from_dump, report_dump = predictions_to_coco(
        files["keypoints"], None, files["images"], options, dumps=[files["dump"]]
    )
    assert report_png.kept == report_dump.kept == 2
    assert from_dump["images"] == from_png["images"]
    for png, dump in zip(from_png["annotations"], from_dump["annotations"]):
        assert (dump["id"], dump["dp_I"], dump["dp_x"], dump["dp_y"]) == (png["id"], png["dp_I"], png["dp_x"], png["dp_y"])
        # The PNG holds 255 U truncated to an integer; the dump holds U itself.
        np.testing.assert_allclose(dump["dp_U"], png["dp_U"], atol=1 / 255)
    person_b = from_dump["annotations"][1]
    assert set(person_b["dp_I"]) == {3, 4}  # its own instance, not the neighbour's parts


def test_cli_reads_a_folder_of_dumps(scene_files):
    from dlearn.cli import main

    folder = scene_files["tmp"] / "dumps"
    folder.mkdir()
    scene_files["dump"].rename(folder / "part_000.pkl")
    out = scene_files["tmp"] / "predicted.json"
    main(["densepose-predictions", "--keypoints", str(scene_files["keypoints"]), "--dump", str(folder),
          "--image-root", str(scene_files["images"]), "--out", str(out)])  # fmt: skip
    assert len(json.loads(out.read_text())["annotations"]) == 2


class _Hostile:
    def __init__(self, target: str) -> None:
        self.target = target

    def __reduce__(self):
        return (os.makedirs, (self.target,))


def test_dump_naming_another_class_is_refused_without_running_it(tmp_path):
    marker = tmp_path / "ran"
    dump = tmp_path / "hostile.pkl"
    torch.save([{"file_name": "a.jpg", "pred_densepose": [_Hostile(str(marker))]}], dump)
    with pytest.raises(DumpError, match=rf"{dump}: refusing to unpickle (os|posix)\.makedirs"):
        load_dump(dump)
    assert not marker.exists()


def test_dump_errors_name_the_file_and_the_entry(scene_files, densepose_package, tmp_path):
    entry = _dump_entry("S1/frame.0001.jpg", densepose_package)
    entry["pred_densepose"][1].labels = entry["pred_densepose"][1].labels[:, :-3]  # not its box's size
    bad = tmp_path / "bad.pkl"
    torch.save([entry], bad)
    with pytest.raises(PredictionError, match=rf"{bad}: entry 0, instance 1: labels \(30, 22\).*box"):
        predictions_to_coco(scene_files["keypoints"], None, scene_files["images"], dumps=[bad])
    legacy = tmp_path / "legacy.pkl"
    torch.save([], legacy, _use_new_zipfile_serialization=False)
    with pytest.raises(DumpError, match=rf"{legacy}: not a torch.save zip archive"):
        load_dump(legacy)
    other = tmp_path / "other.pkl"
    torch.save([_dump_entry("elsewhere/x.jpg", densepose_package)], other)
    with pytest.raises(PredictionError, match="no dump entry has the file_name of .*frame.0001.jpg"):
        predictions_to_coco(scene_files["keypoints"], None, scene_files["images"], dumps=[other])


# SPIN's h36m_train.npz: Human3.6M's 17 joints at global_idx of the 24 ground-truth slots.
SPIN_H36M_GLOBAL_IDX = [14, 3, 4, 5, 2, 1, 0, 16, 12, 17, 18, 9, 10, 11, 8, 7, 6]


def _spin_npz(path: Path, imgnames: list[str], centers: np.ndarray, scales: np.ndarray, parts: np.ndarray) -> Path:
    np.savez(path, imgname=np.array(imgnames), center=centers, scale=scales, part=parts, S=np.zeros((len(imgnames), 24, 4)))
    return path


def test_spin_part_slots_become_coco_keypoints_and_the_others_are_dropped(tmp_path):
    # Slot j of the 24 holds x = 100 + j, y = 200 + j, as datasets/preprocess/h36m_train.py fills it.
    part = np.zeros((1, 24, 3))
    part[0, SPIN_H36M_GLOBAL_IDX, 0] = 100 + np.array(SPIN_H36M_GLOBAL_IDX)
    part[0, SPIN_H36M_GLOBAL_IDX, 1] = 200 + np.array(SPIN_H36M_GLOBAL_IDX)
    part[0, SPIN_H36M_GLOBAL_IDX, 2] = 1
    npz = _spin_npz(tmp_path / "h36m_train.npz", ["images/S1_Directions_1.54138969_000001.jpg"],
                    np.array([[500.0, 480.0]]), np.array([3.6]), part)  # fmt: skip
    (person,), report = read_spin_keypoints(npz, tmp_path)
    by_name = dict(zip(COCO_KEYPOINT_NAMES, person.keypoints))
    # SPIN slots: 0 R ankle, 2 R hip, 3 L hip, 6 R wrist, 8 R shoulder, 9 L shoulder, 11 L wrist.
    expected = {"right_ankle": 0, "right_hip": 2, "left_hip": 3, "right_wrist": 6, "right_shoulder": 8,
                "left_shoulder": 9, "left_wrist": 11}  # fmt: skip
    for name, slot in expected.items():
        assert list(by_name[name]) == [100 + slot, 200 + slot, 2.0], name
    for name in ("nose", "left_eye", "right_eye", "left_ear", "right_ear"):  # Human3.6M has no face slots
        assert by_name[name][2] == 0, name
    assert int((person.keypoints[:, 2] > 0).sum()) == 12  # neck, pelvis, spine, jaw, head dropped
    side = 3.6 * 200 / 0.9
    np.testing.assert_allclose(person.bbox, [500 - side / 2, 480 - side / 2, side, side])
    assert person.image_path == tmp_path / "images/S1_Directions_1.54138969_000001.jpg" and report.kept == 1


def test_spin_npz_keypoints_select_persons_of_predicted_maps(scene_files):
    files = scene_files
    part = np.zeros((2, 24, 3))
    for row, (x0, w) in enumerate([(4, 22), (29, 27)]):
        part[row, :, 0] = x0 + w * np.arange(1, 25) / 25
        part[row, :, 1] = 20
        part[row, SPIN_H36M_GLOBAL_IDX, 2] = 1
    # center/scale of SPIN's h36m box (0.9 x the person's longer side 30).
    npz = _spin_npz(files["tmp"] / "train.npz", ["S1/frame.0001.jpg"] * 2,
                    np.array([[15.0, 20.0], [42.5, 20.0]]), np.array([0.9 * 30 / 200] * 2), part)  # fmt: skip
    dataset, report = predictions_to_coco(npz, files["iuv_dir"], files["images"], PredictionOptions(points_per_person=40))
    assert report.kept == 2 and len(dataset["images"]) == 1
    assert [set(a["dp_I"]) for a in dataset["annotations"]] == [{1, 2}, {3, 4}]


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("part", np.zeros((1, 25, 3)), r"key 'part' has shape \(1, 25, 3\), expected \(1, 24, 3\)"),
        ("center", np.array([[np.nan, 1.0]]), "key 'center' holds a non-finite number in row 0"),
        ("imgname", np.array(["../outside.jpg"]), "row 0: image 0: file_name '../outside.jpg' leads out"),
    ],
)
def test_bad_spin_npz_names_the_file_key_and_row(tmp_path, key, value, message):
    arrays = {"imgname": np.array(["a.jpg"]), "center": np.array([[5.0, 5.0]]), "scale": np.array([0.1]),
              "part": np.ones((1, 24, 3))}  # fmt: skip
    arrays[key] = value
    npz = tmp_path / "bad.npz"
    np.savez(npz, **arrays)
    with pytest.raises(PredictionError, match=rf"{npz}: {message}"):
        read_spin_keypoints(npz, tmp_path)


# --- a mixed dataset: DensePose-COCO annotations + predicted frames ------------------------


@pytest.fixture
def mixed_files(scene_files) -> dict[str, Path]:
    """An annotated DensePose-COCO source under coco/ and the scene's predictions (dump) under images/,
    both using image id 7 and annotation ids 1, 2."""
    tmp = scene_files["tmp"]
    coco_root = tmp / "coco"
    coco_root.mkdir()
    Image.fromarray(np.full((H, W, 3), 90, np.uint8)).save(coco_root / "c.jpg", format="PNG")
    dense = {"dp_x": [10.0, 200.0], "dp_y": [30.0, 100.0], "dp_I": [1.0, 2.0], "dp_U": [0.1, 0.2], "dp_V": [0.3, 0.4]}
    annotated = {
        "images": [{"id": 7, "file_name": "c.jpg"}],
        "annotations": [{"id": 1, "image_id": 7, "category_id": 1, "bbox": [4, 4, 30, 30],
                         "keypoints": _keypoints(4, 4, 30, 30), **dense}],
        "categories": [{"id": 1, "name": "person", "keypoints": list(COCO_KEYPOINT_NAMES)}],
    }  # fmt: skip
    (tmp / "annotated.json").write_text(json.dumps(annotated))
    return {**scene_files, "annotated": tmp / "annotated.json", "coco_root": coco_root}


def test_mixed_dataset_trains_both_sources_with_ids_keeping_their_source(mixed_files):
    from dlearn.cli import main
    from dlearn.data.crops import CropOptions, make_crops
    from dlearn.data.store import open_store, read_sample_ids
    from dlearn.densepose.mix import common_root

    tmp = mixed_files["tmp"]
    predicted = tmp / "predicted.json"
    main(["densepose-predictions", "--keypoints", str(mixed_files["keypoints"]), "--dump", str(mixed_files["dump"]),
          "--image-root", str(mixed_files["images"]), "--out", str(predicted)])  # fmt: skip
    root = common_root([str(mixed_files["coco_root"]), str(mixed_files["images"])])
    assert Path(root) == tmp
    mixed = tmp / "mixed.json"
    main(["mix-datasets", "--source", "densepose_coco", str(mixed_files["annotated"]), str(mixed_files["coco_root"]), "coco",
          "--source", "densepose_predictions", str(predicted), str(mixed_files["images"]), "coco",
          "--image-root", root, "--out", str(mixed)])  # fmt: skip
    crops = tmp / "crops.zarr"
    make_crops(mixed, Path(root), crops, CropOptions(image_size=16, workers=1))
    ids = read_sample_ids(open_store(crops))
    assert sorted(ids) == ["densepose_coco-7_1", "densepose_predictions-7_1", "densepose_predictions-7_2"]
    records = json.loads(mixed.read_text())
    assert sorted(i["file_name"] for i in records["images"]) == ["coco/c.jpg", "images/S1/frame.0001.jpg"]
    assert len({a["id"] for a in records["annotations"]}) == 3  # renumbered: the sources share ids


def test_check_data_covers_both_sources_of_a_mixed_config(mixed_files, tmp_path):
    from dlearn.check import check_config

    block = {"train_keypoints": str(mixed_files["keypoints"]), "test_keypoints": str(mixed_files["keypoints"]),
             "train_dump": str(mixed_files["dump"]), "test_dump": str(tmp_path / "missing.pkl"),
             "image_root": str(mixed_files["images"])}  # fmt: skip
    coco = {"train_json": str(mixed_files["annotated"]), "test_json": str(mixed_files["annotated"]),
            "image_root": str(mixed_files["coco_root"])}  # fmt: skip
    report = check_config({"dataset": {"kind": "mixed", "densepose_coco": coco, "densepose_predictions": block}})
    assert any(str(mixed_files["annotated"]) in line for line in report.checked)
    assert any(f"+ {mixed_files['dump']}: kept 2 persons" in line for line in report.checked)
    assert report.problems == [f"{tmp_path / 'missing.pkl'}: DensePose dump does not exist"]


@pytest.mark.workflow  # runs the Snakemake command line (~11 s)
def test_dry_run_of_a_mixed_config_plans_predictions_mixing_and_crops(tmp_path):
    import subprocess

    import yaml

    repo = Path(__file__).resolve().parents[1]
    data = tmp_path / "data"
    for name in ("coco/train.json", "coco/test.json", "h36m/train.npz", "h36m/test.npz", "h36m/dump_train.pkl",
                 "h36m/dump_test.pkl"):  # fmt: skip
        (data / name).parent.mkdir(parents=True, exist_ok=True)
        (data / name).write_text("")
    config = yaml.safe_load((repo / "config.yaml").read_text())
    config["dataset"] = {
        "kind": "mixed",
        "densepose_coco": {"train_json": "data/coco/train.json", "test_json": "data/coco/test.json",
                           "image_root": "data/coco"},
        "densepose_predictions": {"train_keypoints": "data/h36m/train.npz", "test_keypoints": "data/h36m/test.npz",
                                  "train_dump": "data/h36m/dump_train.pkl", "test_dump": "data/h36m/dump_test.pkl",
                                  "image_root": "data/h36m"},
    }  # fmt: skip
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(config))
    snakemake = Path(sys.executable).parent / "snakemake"
    proc = subprocess.run([str(snakemake), "-s", str(repo / "Snakefile"), "-d", str(tmp_path), "--cores", "1", "-n", "-p"],
                          cwd=tmp_path, capture_output=True, text=True, timeout=300)  # fmt: skip
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out
    for rule in ("densepose_predictions", "mix_datasets", "crops", "match"):
        assert f"rule {rule}:" in out, rule
    assert "--dump data/h36m/dump_train.pkl" in out
    assert "--source densepose_coco data/coco/train.json data/coco coco" in out
    assert "--image-root data --out results/data/mixed_train.json" in out
    assert "--annotations results/data/mixed_train.json --image-root data " in out
