"""Options of the crops stage (flags, config block ``crops``): standard library only."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class CropOptions:
    """Options of the crops stage.

    Attributes:
        image_size: side of the square crop in pixels (the regressor's input size).
        box_scale: crop side relative to the longer side of the person box (context margin).
        min_box_size: persons whose longer box side is smaller (pixels) are skipped.
        workers: processes that read and resize images.
        chunk_rows: crops per zarr chunk.
        allow_absolute_paths: accept image file_name entries that are absolute or lead out of
            the image root with '..' (refused by default: the annotation file decides which files are read).
        keypoint_names: the annotation file's keypoint naming, coco or posetrack (config
            ``dataset.densepose_coco.keypoint_names``; see :mod:`dlearn.densepose.coco`).
    """

    image_size: int = 64
    box_scale: float = 1.2
    min_box_size: float = 0.0
    workers: int = 2
    chunk_rows: int = 64
    allow_absolute_paths: bool = False
    keypoint_names: str = "coco"
