"""Writing the dataset: each image's PNG (and, with ``write_iuv``, its exact IUV map as
DensePose's inference output), the split's DensePose-COCO JSON, its ground-truth store (stage
``synth``) and the contact sheet of a few samples. Every file but the images is written atomically
(a temporary sibling, then a rename)."""

from __future__ import annotations

import math
import os
import struct
import zlib
from pathlib import Path
from typing import Any

import numpy as np

from dlearn.body.io import NUM_JOINTS
from dlearn.data.store import csr_offsets, write_store
from dlearn.data.synth.options import SynthOptions
from dlearn.densepose.coco import COCO_KEYPOINT_NAMES, NUM_KEYPOINTS
from dlearn.densepose.uv import part_colours
from dlearn.outputs import atomic_file

STAGE = "synth"

#: COCO's person skeleton (1-based keypoint indices), as in person_keypoints_*.json.
COCO_SKELETON = [
    [16, 14], [14, 12], [17, 15], [15, 13], [12, 13], [6, 12], [7, 13], [6, 7], [6, 8], [7, 9],
    [8, 10], [9, 11], [2, 3], [1, 2], [1, 3], [2, 4], [3, 5], [4, 6], [5, 7],
]  # fmt: skip


def _png_bytes(image: np.ndarray) -> bytes:
    """A standard PNG file (8-bit RGB, no interlace) of the (H, W, 3) uint8 ``image``, its rows
    stored uncompressed (zlib level 0; filter type None). Any PNG reader gives back the exact
    pixels. The rendered images carry per-pixel noise, so compression buys little for its time:
    at 128 px, zlib level 1 with PNG's Sub filter took ~0.9 ms an image (files ~37 kB),
    Huffman-only coding ~0.35 ms (~34.5 kB), storing ~0.03 ms (~49 kB)."""
    height, width, channels = image.shape
    raw = np.zeros((height, width * channels + 1), dtype=np.uint8)  # column 0: filter type None
    raw[:, 1:] = np.ascontiguousarray(image, dtype=np.uint8).reshape(height, width * channels)

    def chunk(tag: bytes, data: bytes) -> list[bytes]:
        return [struct.pack(">I", len(data)), tag, data, struct.pack(">I", zlib.crc32(data, zlib.crc32(tag)))]

    header = struct.pack(
        ">IIBBBBB", width, height, 8, 2, 0, 0, 0
    )  # 8 bits, RGB, deflate, filters, no interlace
    # Joined once (the image data is not copied chunk by chunk); the CRC runs over tag and data.
    return b"".join([b"\x89PNG\r\n\x1a\n", *chunk(b"IHDR", header), *chunk(b"IDAT", zlib.compress(raw.tobytes(), 0)),
                     *chunk(b"IEND", b"")])  # fmt: skip


def _write_image_files(
    out_dir: Path,
    file_name: str,
    image_id: int,
    image: np.ndarray,
    iuv: np.ndarray | None,
    person_map: np.ndarray,
    with_iuv: bool,
) -> None:
    """Write the (H, W, 3) uint8 ``image`` to ``out_dir / file_name``; ``with_iuv``: also the
    (H, W, 3) IUV image and the (H, W) person map as DensePose's ``iuv/<image id>`` output."""
    path = out_dir / file_name
    data = _png_bytes(image)
    flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC
    try:  # fewer layers than write_bytes
        fd = os.open(path, flags, 0o644)
    except FileNotFoundError:
        # The folder is created when missing, not checked before every image (a system call each,
        # ~0.1 ms in a busy worker); no per-process memo of created folders that could go stale.
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, flags, 0o644)
    try:
        os.write(fd, data)
    finally:
        os.close(fd)
    if with_iuv:
        assert iuv is not None
        from dlearn.densepose.predictions import write_iuv

        # What DensePose would predict if it were exact: the rendered parts, charts and persons.
        write_iuv(out_dir / "iuv" / f"{image_id:07d}", iuv[..., 0].astype(np.int64), iuv[..., 1:], person_map)


def _coco_categories() -> list[dict[str, Any]]:
    return [
        {
            "id": 1,
            "name": "person",
            "supercategory": "person",
            "keypoints": list(COCO_KEYPOINT_NAMES),
            "skeleton": COCO_SKELETON,
        }
    ]


def _write_gt(path: Path, gts: list[dict[str, Any]], options: SynthOptions, split: str) -> None:
    n = len(gts)

    def stack(key: str, shape: tuple[int, ...], dtype: Any) -> np.ndarray:
        if n == 0:
            return np.zeros((0, *shape), dtype=dtype)
        return np.stack([np.asarray(g[key]) for g in gts]).astype(dtype)

    counts = [len(g["dense_face"]) for g in gts]
    arrays = {
        "image_id": stack("image_id", (), np.int64),
        "annotation_id": stack("annotation_id", (), np.int64),
        "pose": stack("pose", (NUM_JOINTS - 1, 3), np.float32),
        "scales": stack("scales", (NUM_JOINTS,), np.float32),
        "cam_rotation": stack("cam_rotation", (3, 3), np.float32),
        "cam_scale": stack("cam_scale", (), np.float32),
        "cam_translation": stack("cam_translation", (2,), np.float32),
        "joints3d": stack("joints3d", (NUM_JOINTS, 3), np.float32),
        "keypoints3d": stack("keypoints3d", (NUM_KEYPOINTS, 3), np.float32),
        "bbox": stack("bbox", (4,), np.float64),
        "yaw": stack("yaw", (), np.float32),
        "dense_offsets": csr_offsets(counts),
        "dense_face": np.concatenate([g["dense_face"] for g in gts]) if n else np.zeros(0, np.int32),
        "dense_bary": np.concatenate([g["dense_bary"] for g in gts]) if n else np.zeros((0, 3), np.float32),
    }
    attrs = {
        "split": split,
        "body_frame": "metres; y up, person faces +z, person's left = +x (SMPL)",
        "camera": "x_px = cam_scale * (cam_rotation @ X)[:2] + cam_translation; image x right, y down; "
        "depth = cam_scale * (cam_rotation @ X)[2], smaller = closer; upright facing the camera: "
        "cam_rotation = diag(1, -1, -1)",
        "units": {
            "pose": "axis-angle, radians",
            "joints3d": "m",
            "keypoints3d": "m",
            "cam_scale": "px per m",
            "cam_translation": "px",
            "bbox": "px (x0, y0, w, h)",
            "yaw": "radians, camera yaw about the body's vertical axis (0 = facing the camera)",
        },
        "dense": "CSR over samples (dense_offsets); surface point = sum_k dense_bary[:, k] * "
        "vertices[faces[dense_face, k]], in the JSON's dp point order",
        "keypoint_names": list(COCO_KEYPOINT_NAMES),
    }
    write_store(
        path,
        arrays,
        stage=STAGE,
        sample_id=[g["sample_id"] for g in gts],
        options=options.to_dict(),
        attrs=attrs,
    )


def write_contact_sheet(previews: list[dict[str, Any]], path: Path, num: int = 8) -> Path:
    """Image, IUV overlay (part colours, U contours) and keypoints with skeleton for ``num``
    previews, back views included when there are any."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    usable = [i for i, p in enumerate(previews) if p["keypoints"]]
    back = [i for i in usable if any(previews[i]["back"])]
    front = [i for i in usable if not any(previews[i]["back"])]
    picked = back[: num // 2] + front[: num - min(len(back), num // 2)]
    picked = (picked + [i for i in usable if i not in picked])[:num]
    chosen = [previews[i] for i in sorted(picked)]
    cols = 2
    rows = max(1, math.ceil(len(chosen) / cols))
    fig, axes = plt.subplots(rows, 3 * cols, figsize=(3 * cols * 2.2, rows * 2.4), dpi=100, squeeze=False)
    colours = part_colours()
    for ax in axes.ravel():
        ax.axis("off")
    for n, prev in enumerate(chosen):
        r, c = divmod(n, cols)
        img = prev["image"]
        iuv = prev["iuv"]
        ax_img, ax_iuv, ax_kp = axes[r, 3 * c], axes[r, 3 * c + 1], axes[r, 3 * c + 2]
        ax_img.imshow(img)
        if len(prev["mode"]) == 1:
            view = "back" if prev["back"][0] else "front"
            title = f"{prev['mode'][0]}, {view} (yaw {math.degrees(prev['yaw'][0]):.0f})"
        else:
            title = f"{len(prev['mode'])} persons, {sum(prev['back'])} from the back"
        ax_img.set_title(title, fontsize=7)
        part = iuv[..., 0].astype(np.int64)
        overlay = img / 255.0 * 0.35 + 0.65 * colours[part]
        overlay = np.where(part[..., None] > 0, overlay, img / 255.0 * 0.5)
        ax_iuv.imshow(overlay)
        if (part > 0).any():
            u = np.where(part > 0, iuv[..., 1], np.nan)
            ax_iuv.contour(u, levels=[0.25, 0.5, 0.75], colors="k", linewidths=0.3)
        ax_iuv.set_title("IUV (I colours, U contours)", fontsize=7)
        ax_kp.imshow(img)
        for kp in prev["keypoints"]:
            for a, b in COCO_SKELETON:
                if kp[a - 1, 2] > 0 and kp[b - 1, 2] > 0:
                    ax_kp.plot(
                        kp[[a - 1, b - 1], 0] - 0.5, kp[[a - 1, b - 1], 1] - 0.5, "-", color="w", lw=0.8
                    )
            for v, colour in ((2, "lime"), (1, "orange")):
                sel = kp[:, 2] == v
                ax_kp.scatter(kp[sel, 0] - 0.5, kp[sel, 1] - 0.5, s=6, c=colour, zorder=3)
            if kp[0, 2] > 0:
                ax_kp.scatter(kp[:1, 0] - 0.5, kp[:1, 1] - 0.5, s=14, c="red", marker="x", zorder=4)
        ax_kp.set_title("keypoints (green v=2, orange v=1, x nose)", fontsize=6)
    # Fixed margins instead of tight_layout (which measures every axis: ~1 s of a ~3 s sheet).
    fig.subplots_adjust(left=0.01, right=0.99, bottom=0.01, top=1 - 0.1 / rows, wspace=0.04, hspace=0.12)
    path = Path(path)
    with atomic_file(path) as tmp:
        fig.savefig(tmp, format="png", metadata={"Software": None}, pil_kwargs={"compress_level": 1})
    plt.close(fig)
    return path
