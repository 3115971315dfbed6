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
#: The meshes are rasterised at this multiple of the crop's resolution.
RENDER_SCALE = 3
#: Opacity of the part-coloured mesh over the crop.
MESH_ALPHA = 0.55


def write_overlay(
    stores: Sequence[tuple[str, Path]], crops: Path, body_model: Path, uv: Path, png_path: Path, num: int = 12
) -> Path:
    """Draw the first ``num`` samples of the first store: the crop, then the mesh of every store
    (label, registration or prediction store) over it, coloured by body part.

    Each mesh is rasterised by the synthetic data's z-buffer (:class:`dlearn.data.raster.RasterScene`,
    nearest face per pixel; camera z points away from the viewer) at ``RENDER_SCALE`` times the
    crop's resolution and blended over the crop: one image per panel, where drawing ~10^4
    polygons per mesh with matplotlib cost ~0.3 s a panel. The bodies are posed in numpy (a
    dozen of them: importing torch would cost more than posing them).
    """
    from dlearn.data.raster import RasterScene

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
    face_ids = np.arange(len(faces), dtype=np.int64)
    for i, sid in enumerate(ids):
        image = np.asarray(crop_store["image"][crop_row[sid]])
        row, first = i // per_row, (i % per_row) * panels
        axes[row, first].imshow(image, extent=(-1, 1, 1, -1))
        axes[row, first].set_title(sid, fontsize=7)
        side = image.shape[0] * RENDER_SCALE
        background = np.repeat(np.repeat(image.astype(np.float64) / 255.0, RENDER_SCALE, 0), RENDER_SCALE, 1)
        for j, (label, cam, xy, status) in enumerate(projected, start=1):
            # Normalised crop coordinates [-1, 1] (x right, y down) -> pixels of the render.
            pixels = np.concatenate([(xy[i] + 1.0) * (side / 2.0), cam[i, :, 2:]], axis=1)
            face = RasterScene([pixels], faces).grid_values(0.5, 0.5, 1.0, 1.0, side, side, face_ids, -1)
            face = face.reshape(side, side)
            blended = background.copy()
            hit = face >= 0
            blended[hit] = (1 - MESH_ALPHA) * blended[hit] + MESH_ALPHA * colours[face[hit], :3]
            ax = axes[row, first + j]
            ax.imshow(blended, extent=(-1, 1, 1, -1))
            ax.set_title(f"{label}\n{status[i]}", fontsize=7)
    labels = ", ".join(label for label, _ in stores)
    fig.suptitle(f"crops and fitted meshes ({labels})", fontsize=9)
    return save_figure(fig, png_path, dpi=100)
