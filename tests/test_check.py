"""`dlearn check-data`: every problem of the inputs a config names, one line each, before any stage."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import yaml

from dlearn.check import check_config
from dlearn.cli import main


@pytest.fixture
def user_data(exact_data: dict, standin_files: tuple[Path, Path], tmp_path: Path) -> Path:
    """A config pointing at DensePose-COCO-format files and an SMPL-format model, as a user's."""
    root = tmp_path / "coco"
    shutil.copytree(exact_data["root"] / "images", root / "images")
    for split in ("train", "test"):
        shutil.copy(exact_data["root"] / f"densepose_{split}.json", root / f"densepose_{split}.json")
    model, uv = standin_files
    config = {
        "body": {"model": str(model), "uv": str(uv)},
        "dataset": {"kind": "densepose_coco", "densepose_coco": {
            "train_json": str(root / "densepose_train.json"), "test_json": str(root / "densepose_test.json"),
            "image_root": str(root)}},
    }  # fmt: skip
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(config))
    return tmp_path


def test_good_inputs_pass(user_data: Path) -> None:
    report = check_config(user_data / "config.yaml")
    assert report.problems == []
    assert len(report.checked) == 4  # model, UV charts, two annotation files


def test_every_problem_is_reported_with_its_file_and_record(user_data: Path, caplog: pytest.LogCaptureFixture) -> None:
    train = user_data / "coco" / "densepose_train.json"
    coco = json.loads(train.read_text())
    coco["annotations"][0]["keypoints"] = coco["annotations"][0]["keypoints"][:50]
    coco["annotations"][1]["dp_U"] = coco["annotations"][1]["dp_U"][:-1]
    train.write_text(json.dumps(coco))
    image = coco["images"][2]
    (user_data / "coco" / image["file_name"]).unlink()
    (user_data / "coco" / "densepose_test.json").unlink()
    report = check_config(user_data / "config.yaml")
    text = "\n".join(report.problems)
    assert len(report.problems) == 4, text
    assert f"annotation {coco['annotations'][0]['id']}: field 'keypoints' has 50 numbers" in text
    assert f"annotation {coco['annotations'][1]['id']}: dense fields have different lengths" in text
    assert image["file_name"] in text and "does not exist" in text
    assert "densepose_test.json: annotation file does not exist" in text
    assert main(["check-data", "--config", str(user_data / "config.yaml")]) == 1
    assert "4 input problems" in caplog.text


def test_a_uv_file_of_another_model_is_a_problem(user_data: Path, tmp_path: Path) -> None:
    from conftest import random_body_data
    from dlearn.body.io import write_smpl_pickle

    config = yaml.safe_load((user_data / "config.yaml").read_text())
    other = tmp_path / "other.pkl"
    write_smpl_pickle(random_body_data(), other)  # 60 vertices: the UV ids do not fit
    config["body"]["model"] = str(other)
    report = check_config(config)
    assert any(config["body"]["uv"] in p for p in report.problems), report.problems


@pytest.mark.slow  # check_data on real-format files, then the paper config's plan
def test_paper_config_plans_the_real_data_workflow(user_data: Path, tmp_path: Path) -> None:
    """config/paper.yaml with the user's paths: accepted by the schema, no synthetic data, the
    check first; a missing file stops the run at check_data with the file named."""
    from test_workflow import REPO, snakemake

    paper = yaml.safe_load((REPO / "config" / "paper.yaml").read_text())
    mine = yaml.safe_load((user_data / "config.yaml").read_text())
    paper["body"], paper["dataset"]["densepose_coco"] = mine["body"], mine["dataset"]["densepose_coco"]
    paper["dataset"]["kind"] = "densepose_coco"  # the DensePose-COCO part of the paper's mix only
    paper["device"] = "cpu"
    for name in ("h36m.npz", "J_regressor_h36m.npy", "h36m_train.npz"):  # a dry run only needs them to exist
        (tmp_path / name).write_bytes(b"")
    paper["evaluation"]["h36m"].update(npz=str(tmp_path / "h36m.npz"), joint_regressor=str(tmp_path / "J_regressor_h36m.npy"),
                                       train_npz=str(tmp_path / "h36m_train.npz"))  # fmt: skip
    workdir = tmp_path / "run"
    workdir.mkdir()
    (workdir / "config.yaml").write_text(yaml.safe_dump(paper))
    plan = snakemake(workdir, "-n")
    out = plan.stdout + plan.stderr
    assert "rule check_data" in out and "rule regress" in out and "rule synth" not in out
    assert "rule evaluate:" not in out  # no 3D ground truth for DensePose-COCO: Human3.6M instead
    assert "rule h36m_crops" in out and "rule evaluate_h36m" in out
    (Path(mine["dataset"]["densepose_coco"]["test_json"])).unlink()
    run = snakemake(workdir, "check_data", check=False)
    assert run.returncode != 0
    assert "densepose_test.json: annotation file does not exist" in (workdir / "logs" / "check_data.log").read_text()


@pytest.mark.slow  # a whole workflow run on real-format files
def test_paper_config_runs_end_to_end_on_real_format_files(user_data: Path, h36m_set: dict, tmp_path: Path) -> None:
    """config/paper.yaml, sizes made tiny, on files laid out like the real datasets: an SMPL-format
    pickle and UV_Processed.mat, DensePose-COCO JSON + images, a SPIN-style Human3.6M npz and a
    J_regressor_h36m.npy. Every stage runs; the evaluation is Human3.6M's."""
    import csv

    from test_workflow import REPO, snakemake

    paper = yaml.safe_load((REPO / "config" / "paper.yaml").read_text())
    mine = yaml.safe_load((user_data / "config.yaml").read_text())
    paper["body"], paper["dataset"]["densepose_coco"] = mine["body"], mine["dataset"]["densepose_coco"]
    paper["dataset"]["kind"] = "densepose_coco"  # the DensePose-COCO part of the paper's mix only
    paper["evaluation"]["h36m"] = {"npz": str(h36m_set["npz"]), "image_root": str(h36m_set["root"]),
                                   "joint_regressor": str(h36m_set["regressor"])}  # fmt: skip
    paper.update(device="cpu", iterations=1)
    paper["crops"].update(image_size=32, min_box_size=0)
    paper["cgan"].update(epochs=2, min_steps_per_epoch=20, hidden_size=64)
    paper["registration"].update(steps=60, shards=2)
    paper["regressor"].update(backbone="tiny16", head_hidden=16, pretrained="none", epochs=1, batch_size=4, workers=0)
    paper["predict"].update(workers=0)
    paper["report"].update(overlay_samples=2, meshes_per_round=1)
    for block in paper["resources"].values():  # a 2-core machine without a GPU
        block["threads"] = min(block.get("threads", 1), 2)
        if "gpu" in block:
            block["gpu"] = 0
    workdir = tmp_path / "run"
    workdir.mkdir()
    (workdir / "config.yaml").write_text(yaml.safe_dump(paper))
    snakemake(workdir)
    results = workdir / "results"
    assert not (results / "data" / "images").exists()  # nothing synthetic
    assert (results / "check_data.txt").read_text().count("ok:") == 4
    with (results / "evaluation" / "summary.csv").open() as fh:
        rows = list(csv.DictReader(fh))
    assert {(r["split"], r["source"], r["metric"]) for r in rows} == {
        ("h36m", "convnet", m) for m in ("h36m_mpjpe", "h36m_mpjpe_bone_scaled", "h36m_pa_mpjpe")
    }
    assert all(float(r["value"]) > 0 for r in rows)


def test_the_paper_configuration_is_the_papers_mix_and_passes_the_schema() -> None:
    from snakemake.utils import validate

    from test_workflow import REPO

    paper = yaml.safe_load((REPO / "config" / "paper.yaml").read_text())
    validate(paper, str(REPO / "workflow" / "schemas" / "config.schema.yaml"))
    # DensePose-COCO annotations + DensePose's predictions on Human3.6M S1, S5-S8 (paper Table 1).
    assert paper["dataset"]["kind"] == "mixed"
    assert paper["regressor"]["backbone"] == "resnet50" and paper["regressor"]["weights"]["joints"] == 0.0
