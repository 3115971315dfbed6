"""Pictures of fits: body meshes (registrations, predictions) projected onto their crops."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from dlearn.body.io import NUM_JOINTS, load_body_model
from dlearn.body.numpy_model import NumpyBodyModel
from dlearn.data.store import open_store, read_aligned, read_sample_ids
from dlearn.densepose.uv import body_face_parts, load_uv_charts, part_colours
from dlearn.plots import pyplot, save_figure

_PARAMS = ("pose", "scales", "rotation", "cam_scale", "cam_translation")


def write_overlay(
    stores: Sequence[tuple[str, Path]], crops: Path, body_model: Path, uv: Path, png_path: Path, num: int = 12
) -> Path:
    """Draw the first ``num`` samples of the first store: the crop, then the mesh of every store
    (label, registration or prediction store) over it, coloured by body part.

    Faces are painted back to front by depth (camera z points away from the viewer). The bodies
    are posed in numpy (a dozen of them: importing torch would cost more than posing them).
    """
    from matplotlib.collections import PolyCollection

    plt = pyplot()

    groups = [(label, open_store(path, required=[*_PARAMS, "status"])) for label, path in stores]
    crop_store = open_store(crops, stage="crops", required=["image"])
    ids = read_sample_ids(groups[0][1])[:num]
    crop_row = {sid: i for i, sid in enumerate(read_sample_ids(crop_store))}
    data = load_body_model(body_model)
    model = NumpyBodyModel(data)
    faces = np.asarray(data.faces)
    colours = part_colours()[body_face_parts(load_uv_charts(uv, data.num_vertices), faces)]
    projected = []
    for (label, group), (_, path) in zip(groups, stores):
        arrays = read_aligned(group, ids, (*_PARAMS, "status"), path)
        f64 = {k: np.asarray(arrays[k], dtype=np.float64) for k in _PARAMS}
        pose = f64["pose"].reshape(len(ids), NUM_JOINTS - 1, 3)
        vertices = np.stack([model(p, s)[0] for p, s in zip(pose, f64["scales"])])
        # dlearn.body.camera.camera_points: s R X, the first two coordinates the image axes.
        rotation = f64["rotation"].reshape(-1, 3, 3)
        cam = f64["cam_scale"].reshape(-1, 1, 1) * (vertices @ rotation.transpose(0, 2, 1))
        xy = cam[..., :2] + f64["cam_translation"][:, None, :]
        codes = {v: k for k, v in dict(group.attrs.get("status_codes", {})).items()}
        status = [codes.get(int(s), str(s)) for s in arrays["status"]]
        projected.append((label, cam, xy, status))

    n = len(ids)
    panels = 1 + len(stores)
    per_row = max(1, 6 // panels)
    rows = int(np.ceil(n / per_row))
    fig, axes = plt.subplots(rows, per_row * panels, figsize=(1.9 * per_row * panels, 2.1 * rows), squeeze=False)
    for ax in axes.ravel():
        ax.set_axis_off()
    for i, sid in enumerate(ids):
        image = crop_store["image"][crop_row[sid]]
        row, first = i // per_row, (i % per_row) * panels
        axes[row, first].imshow(image, extent=(-1, 1, 1, -1))
        axes[row, first].set_title(sid, fontsize=7)
        for j, (label, cam, xy, status) in enumerate(projected, start=1):
            ax = axes[row, first + j]
            ax.imshow(image, extent=(-1, 1, 1, -1))
            order = np.argsort(-cam[i, faces, 2].mean(axis=1))  # far faces first
            ax.add_collection(
                PolyCollection(xy[i][faces[order]], facecolors=colours[order], edgecolors="none", alpha=0.55)
            )
            ax.set_xlim(-1, 1)
            ax.set_ylim(1, -1)
            ax.set_title(f"{label}\n{status[i]}", fontsize=7)
    labels = ", ".join(label for label, _ in stores)
    fig.suptitle(f"crops and fitted meshes ({labels})", fontsize=9)
    return save_figure(fig, png_path, dpi=100)
