"""Several DensePose-COCO sources as one training set (``dataset.kind: mixed``).

The paper trains "Ours (DensePose)" on DensePose-COCO's annotations together with DensePose's
predictions on Human3.6M's training frames. Each source is a DensePose-COCO file (the user's, or
what the ``densepose_predictions`` stage wrote) with its own image root; :func:`mix_datasets`
concatenates them into one file that crops and match read like any other:

* ids are renumbered (sources may share image and annotation ids), and every annotation keeps
  its source in ``dlearn_sample_id`` = ``"{source}-{image_id}_{annotation_id}"`` (the source's
  own ids), which :func:`dlearn.densepose.coco.read_densepose_coco` takes as the sample id;
* ``file_name`` entries become relative to the sources' common image root (:func:`common_root`);
* keypoints are COCO's 17: a ``posetrack``-named source's head points are dropped (v = 0) as
  its own reader would.

This module imports nothing heavy at its top: the workflow's Snakefile uses :func:`common_root`.
"""

from __future__ import annotations

import json
import os
from pathlib import Path, PurePath
from typing import Any

#: Separator between a sample id's source and the source's own id.
SOURCE_SEPARATOR = "-"


def common_root(roots: list[str]) -> str:
    """The deepest folder that holds every image root (absolute when any root is, or they differ)."""
    if all(not os.path.isabs(r) for r in roots):
        normal = [os.path.normpath(r) for r in roots]
        if not any(n.split(os.sep)[0] == os.pardir for n in normal):
            return os.path.commonpath(normal) or "."
    return os.path.commonpath([os.path.abspath(r) for r in roots])


def mix_datasets(sources: list[tuple[str, Path, Path, str]], out: Path, image_root: Path) -> dict[str, Any]:
    """Write the concatenation of DensePose-COCO files (see the module docstring).

    Args:
        sources: (name, DensePose-COCO file, its image root, its keypoint naming) per source.
        out: the mixed file.
        image_root: the folder the mixed ``file_name`` entries are relative to (a common
            ancestor of the sources' roots, :func:`common_root`).

    Returns:
        Persons and images per source.

    Raises:
        AnnotationError: a source is not a readable COCO file or names other keypoints (names
            the file); two sources share a name.
    """
    from dlearn.densepose.coco import (
        COCO_KEYPOINT_NAMES,
        COCO_PERSON_ID,
        UNLABELLED_SLOTS,
        AnnotationError,
        _duplicate_ids,
        _person_categories,
        check_keypoint_names,
    )
    from dlearn.outputs import write_json

    names = [s[0] for s in sources]
    if len(set(names)) != len(names):
        raise AnnotationError(f"mixed dataset: source names repeat ({', '.join(names)})")
    images: list[dict[str, Any]] = []
    annotations: list[dict[str, Any]] = []
    summary: dict[str, Any] = {}
    for name, path, root, naming in sources:
        try:
            dataset = json.loads(Path(path).read_text())
            source_images, source_annotations = dataset["images"], dataset["annotations"]
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise AnnotationError(f"{path}: not a readable COCO annotation file ({type(exc).__name__}: {exc})") from exc
        duplicates = _duplicate_ids(dataset, Path(path))
        if duplicates:
            raise AnnotationError(duplicates[0])
        check_keypoint_names(dataset, Path(path), naming)
        persons = _person_categories(dataset)
        new_image: dict[Any, int] = {}
        for image in source_images:
            file_name = image.get("file_name")
            if isinstance(file_name, str) and file_name and not PurePath(file_name).is_absolute():
                file_name = os.path.relpath(os.path.normpath(os.path.join(root, file_name)), image_root)
            new_image[image.get("id")] = len(images) + 1
            images.append({**image, "id": len(images) + 1, "file_name": file_name})
        kept = 0
        for ann in source_annotations:
            if ann.get("category_id", COCO_PERSON_ID) not in persons:
                continue
            record = {**ann, "id": len(annotations) + 1, "category_id": 1,
                      "image_id": new_image.get(ann.get("image_id"), ann.get("image_id")),
                      "dlearn_sample_id": f"{name}{SOURCE_SEPARATOR}{ann.get('image_id')}_{ann.get('id')}"}  # fmt: skip
            if UNLABELLED_SLOTS[naming] and isinstance(ann.get("keypoints"), list) and len(ann["keypoints"]) == 51:
                keypoints = list(ann["keypoints"])
                for k in UNLABELLED_SLOTS[naming]:
                    keypoints[3 * k : 3 * k + 3] = [0, 0, 0]
                record["keypoints"] = keypoints
            annotations.append(record)
            kept += 1
        summary[name] = {"persons": kept, "images": len(source_images)}
    mixed = {
        "info": {"description": f"dlearn: mixed dataset of {', '.join(names)}"},
        "images": images,
        "annotations": annotations,
        "categories": [{"id": 1, "name": "person", "supercategory": "person", "keypoints": list(COCO_KEYPOINT_NAMES)}],
    }
    write_json(out, mixed)
    return summary
