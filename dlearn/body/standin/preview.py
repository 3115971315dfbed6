"""Preview figures of a body model (the stand-in or a real SMPL-format model), coloured by
DensePose part: orthographic painter's-algorithm drawings in the rest pose and a sample pose."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from dlearn.body.io import NUM_JOINTS, BodyModelData
from dlearn.body.standin.skeleton import _J
from dlearn.densepose.uv import part_colours

if TYPE_CHECKING:
    from matplotlib.axes import Axes

    from dlearn.body.standin import StandinBody

#: Orthographic views: (screen right, screen up, towards the viewer).
_VIEWS: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]] = {
    "front": (np.array([1.0, 0.0, 0.0]), np.array([0.0, 1.0, 0.0]), np.array([0.0, 0.0, 1.0])),
    "side": (np.array([0.0, 0.0, -1.0]), np.array([0.0, 1.0, 0.0]), np.array([1.0, 0.0, 0.0])),  # from +x
}


def _draw_mesh(ax: Axes, vertices: np.ndarray, faces: np.ndarray, colors: np.ndarray, view: str) -> None:
    """Painter's-algorithm orthographic drawing of a closed mesh on a matplotlib axes.

    Args:
        ax: matplotlib Axes.
        vertices: (N, 3) positions.
        faces: (F, 3) outward-oriented triangles.
        colors: (F, 3) RGB in [0, 1] per face.
        view: a key of ``_VIEWS``.
    """
    from matplotlib.collections import PolyCollection

    right, up, toward = _VIEWS[view]
    tri = vertices[faces]
    normal = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
    normal /= np.maximum(np.linalg.norm(normal, axis=1, keepdims=True), 1e-15)
    facing = normal @ toward
    visible = np.flatnonzero(facing > 0.0)  # back faces of a closed mesh are always hidden
    order = visible[np.argsort(tri[visible].mean(axis=1) @ toward, kind="stable")]
    screen = np.stack([tri[order] @ right, tri[order] @ up], axis=-1)
    shade = (0.35 + 0.65 * facing[order])[:, None]
    ax.add_collection(
        PolyCollection(screen, facecolors=np.clip(colors[order] * shade, 0, 1), edgecolors="none")
    )
    ax.set_xlim(screen[..., 0].min() - 0.05, screen[..., 0].max() + 0.05)
    ax.set_ylim(screen[..., 1].min() - 0.05, screen[..., 1].max() + 0.05)
    ax.set_aspect("equal")
    ax.set_axis_off()


def default_preview_pose() -> np.ndarray:
    """(23, 3) axis-angle sample pose: arms lowered, left elbow and right knee bent."""
    pose = np.zeros((NUM_JOINTS - 1, 3))
    pose[_J["left_shoulder"] - 1] = (0.0, 0.0, -1.1)  # rotate the +x arm down towards -y
    pose[_J["right_shoulder"] - 1] = (0.0, 0.0, 1.2)
    pose[_J["left_elbow"] - 1] = (0.0, -1.3, 0.0)  # forearm forward (+z)
    pose[_J["right_elbow"] - 1] = (0.0, 0.4, 0.0)
    pose[_J["right_hip"] - 1] = (-0.7, 0.0, 0.0)  # thigh forward
    pose[_J["right_knee"] - 1] = (1.2, 0.0, 0.0)  # shin backward
    pose[_J["left_hip"] - 1] = (0.15, 0.0, 0.1)
    pose[_J["neck"] - 1] = (0.15, 0.3, 0.0)
    return pose


def write_body_preview(
    model: BodyModelData, face_part: np.ndarray, png_path: str | Path, pose: np.ndarray | None = None
) -> Path:
    """Render a body model, coloured by DensePose part, in its rest pose and in ``pose``.

    Args:
        model: the body model (the stand-in or a real SMPL-format model).
        face_part: (F,) part 1..24 of each face (:func:`dlearn.densepose.uv.body_face_parts` for a real model).
        png_path: output PNG.
        pose: (23, 3) axis-angle of joints 1..23; default :func:`default_preview_pose`.

    Returns:
        ``png_path``. Four orthographic panels: rest pose front and left side, posed front and
        left side (the person faces screen left there).
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    # The numpy twin of the body model: `dlearn body-model` starts every run, and torch's import
    # (~2.8 s) would be most of its time.
    from dlearn.body.numpy_model import NumpyBodyModel

    pose = default_preview_pose() if pose is None else np.asarray(pose, dtype=np.float64)
    posed = NumpyBodyModel(model)(pose, np.ones(NUM_JOINTS))[0]
    colors = part_colours()[face_part]
    fig, axes = plt.subplots(
        1, 4, figsize=(16, 6), dpi=80, gridspec_kw={"width_ratios": [2.0, 1.0, 1.3, 1.0]}
    )
    panels = [
        (model.v_template, "front", "rest pose, front"),
        (model.v_template, "side", "rest pose, left side"),
    ]
    panels += [(posed, "front", "sample pose, front"), (posed, "side", "sample pose, left side")]
    for ax, (verts, view, title) in zip(axes, panels):
        _draw_mesh(ax, verts, model.faces, colors, view)
        ax.set_title(title)
    fig.tight_layout()
    png_path = Path(png_path)
    png_path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(png_path, metadata={"Software": None})
    plt.close(fig)
    return png_path


def write_standin_preview(body: StandinBody, png_path: str | Path, pose: np.ndarray | None = None) -> Path:
    """Render the stand-in in T-pose and in ``pose`` (see :func:`write_body_preview`)."""
    return write_body_preview(body.model, body.face_part, png_path, pose)
