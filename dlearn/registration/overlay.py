"""A picture of a registration round: the fitted meshes projected onto their crops."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from dlearn.body.camera import camera_points
from dlearn.body.model import BodyModel
from dlearn.data.store import open_store, read_sample_ids
from dlearn.densepose.uv import body_face_parts, load_uv_charts, part_colours


def write_overlay(
    registration: Path, crops: Path, body_model: Path, uv: Path, png_path: Path, num: int = 12
) -> Path:
    """Draw the first ``num`` samples: the crop, and the fitted mesh over it coloured by part.

    Faces are painted back to front by depth (camera z points away from the viewer).
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.collections import PolyCollection

    fitted = open_store(registration, required=["pose", "scales", "rotation", "cam_scale", "cam_translation"])
    crop_store = open_store(crops, stage="crops", required=["image"])
    ids = read_sample_ids(fitted)[:num]
    crop_row = {sid: i for i, sid in enumerate(read_sample_ids(crop_store))}
    model = BodyModel.from_file(body_model, dtype=torch.float64)
    faces = model.faces.numpy()
    colours = part_colours()[body_face_parts(load_uv_charts(uv, model.num_vertices), faces)]
    n = len(ids)
    f64 = {k: torch.as_tensor(np.asarray(fitted[k][:n], dtype=np.float64)) for k in fitted.array_keys() if k != "sample_id"}
    with torch.no_grad():
        vertices = model(f64["pose"], f64["scales"]).vertices
        cam = camera_points(vertices, f64["rotation"], f64["cam_scale"]).numpy()
    xy = cam[..., :2] + f64["cam_translation"].numpy()[:, None, :]
    status = np.asarray(fitted["status"][:n])
    codes = {v: k for k, v in dict(fitted.attrs.get("status_codes", {})).items()}

    cols = min(n, 6)
    rows = int(np.ceil(n / cols)) * 2
    fig, axes = plt.subplots(rows, cols, figsize=(2.0 * cols, 2.0 * rows), squeeze=False)
    for ax in axes.ravel():
        ax.set_axis_off()
    for i, sid in enumerate(ids):
        image = crop_store["image"][crop_row[sid]]
        top, bottom = axes[2 * (i // cols), i % cols], axes[2 * (i // cols) + 1, i % cols]
        for ax in (top, bottom):
            ax.imshow(image, extent=(-1, 1, 1, -1))
        order = np.argsort(-cam[i, faces, 2].mean(axis=1))  # far faces first
        polys = PolyCollection(xy[i][faces[order]], facecolors=colours[order], edgecolors="none", alpha=0.55)
        bottom.add_collection(polys)
        bottom.set_xlim(-1, 1)
        bottom.set_ylim(1, -1)
        top.set_title(f"{sid}\n{codes.get(int(status[i]), status[i])}", fontsize=7)
    fig.suptitle(f"{registration.name}: crops (top) and fitted meshes (bottom)", fontsize=9)
    fig.tight_layout()
    png_path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(png_path, dpi=100)
    plt.close(fig)
    return png_path
