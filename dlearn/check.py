"""`dlearn check-data`: check every input a config names before any stage runs.

Body model and UV charts (keys, shapes, vertex ids in range, one chart per part), and for
DensePose-COCO data every annotation file (COCO structure, unique image and annotation ids,
per-annotation fields: finite numbers, box, 51 keypoint numbers with visibility 0..2, equal-length
dp_* arrays with values in range, file names inside the image root) and every image it
references, decoded in full (missing, empty, truncated, corrupt files and decompression bombs),
with the rules the crops stage applies given the image's size (boxes off the image are counted,
keypoints far outside it are problems). Each problem is one line naming the file and the
record; nothing stops at the first.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from dlearn.body.prepare import STANDIN

log = logging.getLogger(__name__)

SPLITS = ("train", "test")


@dataclass
class CheckReport:
    problems: list[str] = field(default_factory=list)
    checked: list[str] = field(default_factory=list)

    def summary(self) -> str:
        return f"{len(self.checked)} inputs checked, {len(self.problems)} problems"


def check_body(body: dict[str, Any], report: CheckReport) -> None:
    from dlearn.body.io import BodyModelFileError
    from dlearn.body.keypoint_definition import KeypointRegressorError, keypoint_definition
    from dlearn.body.prepare import load_user_body

    model, uv = str(body.get("model", STANDIN)), str(body.get("uv", STANDIN))
    regressor = body.get("keypoint_regressor", "none")
    if model == STANDIN and uv == STANDIN:
        report.checked.append("body: the stand-in (built by the workflow)")
        return
    try:
        data, charts, _ = load_user_body(model, uv)
        keypoint_definition(data, None if regressor == "none" else regressor)
    except BodyModelFileError as exc:  # every problem of both files, one line each
        report.problems.extend(exc.problems)
        return
    except KeypointRegressorError as exc:
        report.problems.append(f"body.keypoint_regressor: {exc}")
        return
    except (OSError, ValueError, KeyError) as exc:
        report.problems.append(str(exc))
        return
    report.checked.append(f"{model}: {data.num_vertices} vertices")
    report.checked.append(f"{uv}: {len(charts.vertex)} chart vertices")


def check_annotations(
    json_path: Path,
    image_root: Path,
    report: CheckReport,
    allow_absolute_paths: bool = False,
    keypoint_names: str = "coco",
) -> None:
    """Every annotation of one file and every image its persons use, as the crops stage reads them."""
    from dlearn.data.crops import ImageError, image_size
    from dlearn.densepose.coco import apply_image_rules, read_densepose_coco

    if not json_path.is_file():
        report.problems.append(f"{json_path}: annotation file does not exist")
        return
    problems: list[str] = []
    try:
        samples, read = read_densepose_coco(
            json_path,
            image_root,
            allow_absolute_paths=allow_absolute_paths,
            problems=problems,
            keypoint_names=keypoint_names,
        )
    except ValueError as exc:
        report.problems.append(str(exc))
        return
    users: dict[Path, list[str]] = {}
    for sample in samples:
        users.setdefault(sample.image_path, []).append(sample.sample_id)
    sizes: dict[Path, tuple[int, int]] = {}
    for path, ids in users.items():
        owner = ", ".join(ids[:3]) + (f" and {len(ids) - 3} more" if len(ids) > 3 else "")
        try:
            sizes[path] = image_size(path, owner, decode=True)
        except ImageError as exc:
            problems.append(f"{json_path}: {exc}")
    kept = apply_image_rules(samples, sizes, read, json_path, problems=problems)
    report.problems.extend(problems)
    report.checked.append(f"{json_path}: {read.summary()}; {len({s.image_path for s in kept})} images")


def check_config(config: Path | dict[str, Any]) -> CheckReport:
    """Check the inputs named by a workflow config (a file, or its parsed blocks)."""
    report = CheckReport()
    if not isinstance(config, dict):
        try:
            config = yaml.safe_load(Path(config).read_text()) or {}
        except (OSError, yaml.YAMLError) as exc:
            report.problems.append(f"{config}: unreadable config ({exc})")
            return report
    check_body(config.get("body", {}), report)
    dataset = config.get("dataset", {})
    allow_absolute_paths = bool((config.get("crops") or {}).get("allow_absolute_paths", False))
    kind = dataset.get("kind", "synthetic")
    if kind in ("densepose_coco", "mixed"):
        coco = dataset.get("densepose_coco", {})
        root = Path(coco.get("image_root", ""))
        if not root.is_dir():
            report.problems.append(f"dataset.densepose_coco.image_root: {root} is not a folder")
        for split in SPLITS:
            check_annotations(
                Path(coco.get(f"{split}_json", "")), root, report, allow_absolute_paths,
                str(coco.get("keypoint_names", "coco")),
            )  # fmt: skip
    if kind in ("densepose_predictions", "mixed"):
        check_predictions(dataset.get("densepose_predictions", {}), report, allow_absolute_paths)
    if kind == "synthetic":
        report.checked.append("dataset: synthetic (generated by the workflow)")
    return report


def check_predictions(block: dict[str, Any], report: CheckReport, allow_absolute_paths: bool = False) -> None:
    """DensePose predictions: each split's keypoint file, the IUV/INDS maps of its images (present,
    8-bit, I in 0..24, sizes equal to each other and to the image) and the images, decoded."""
    from dlearn.data.crops import ImageError, image_size
    from dlearn.densepose.predictions import PredictionOptions, dump_files, predictions_to_coco

    key = "dataset.densepose_predictions"
    with_dumps = "iuv_dir" not in block and ("train_dump" in block or "test_dump" in block)
    folders = {name: Path(block.get(name, "")) for name in ("image_root",) + (() if with_dumps else ("iuv_dir",))}
    for name, folder in folders.items():
        if not folder.is_dir():
            report.problems.append(f"{key}.{name}: {folder} is not a folder")
    if not all(folder.is_dir() for folder in folders.values()):
        return
    fields = {f: block[f] for f in ("points_per_person", "min_points", "min_keypoints", "seed") if f in block}
    for split in SPLITS:
        path = Path(block.get(f"{split}_keypoints", ""))
        if not path.is_file():
            report.problems.append(f"{key}.{split}_keypoints: {path} does not exist")
            continue
        problems: list[str] = []
        try:
            dumps = dump_files(block.get(f"{split}_dump", "")) if with_dumps else None
            source = ", ".join(map(str, dumps)) if dumps is not None else str(folders["iuv_dir"])
            dataset, read = predictions_to_coco(
                path, folders.get("iuv_dir"), folders["image_root"], PredictionOptions(**fields),
                allow_absolute_paths=allow_absolute_paths, problems=problems, dumps=dumps,
            )  # fmt: skip
        except ValueError as exc:
            report.problems.append(str(exc))
            continue
        for image in dataset["images"]:
            try:
                image_size(folders["image_root"] / image["file_name"], f"image {image['id']}", decode=True)
            except ImageError as exc:
                problems.append(f"{path}: {exc}")
        report.problems.extend(problems)
        report.checked.append(f"{path} + {source}: {read.summary()}; {len(dataset['images'])} images")
