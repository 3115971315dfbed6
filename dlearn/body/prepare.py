"""The `body_model` stage: put the body model and its UV charts where the workflow reads them.

With ``standin`` the procedural humanoid is written; otherwise the user's SMPL-format model and
DensePose UV file are checked (readable, consistent shapes and vertex ids) and linked, so that
licensed files are never copied into the results.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np

from dlearn.body.io import BodyModelData, BodyModelFileError, load_body_model, write_smpl_pickle
from dlearn.body.standin import build_standin, write_body_preview
from dlearn.densepose.uv import UVChartError, UVCharts, body_face_parts, load_uv_charts, write_uv_charts
from dlearn.outputs import OutputError, atomic_file, check_file_output

log = logging.getLogger(__name__)

STANDIN = "standin"


def _link(target: Path, link: Path) -> None:
    """Point ``link`` at ``target`` atomically (replacing an older link or file, never a folder).

    Raises:
        OutputError: ``link`` is ``target`` itself (replacing it would lose the user's file and
            leave a link to itself) or a folder.
    """
    check_file_output(link)
    if Path(os.path.abspath(link)).parent.resolve() / link.name == target.resolve():
        raise OutputError(f"{link}: is the input {target} itself; give an output path of its own")
    with atomic_file(link) as tmp:
        tmp.unlink(missing_ok=True)
        os.symlink(target.resolve(), tmp)


def load_user_body(model: str, uv: str) -> tuple[BodyModelData, UVCharts, np.ndarray]:
    """Load and cross-check a user's model and UV charts: (model data, charts, part of each face).

    Both files are read even when the model is bad, so that one error lists the problems of both.

    Raises:
        ValueError: one of the two is the stand-in and the other is not.
        BodyModelFileError, UVChartError: the files are unreadable or inconsistent; the
            message names the file and key. With problems in both files, a BodyModelFileError
            whose ``problems`` lists each.
    """
    if (model == STANDIN) != (uv == STANDIN):
        raise ValueError(
            f"body.model={model!r} and body.uv={uv!r}: the stand-in model needs the stand-in UV "
            "charts and a real model needs its own UV_Processed.mat"
        )
    data: BodyModelData | None = None
    try:
        data = load_body_model(model)
    except BodyModelFileError as model_error:
        try:
            load_uv_charts(uv)  # vertex ids unchecked: the model's vertex count is unknown
        except UVChartError as uv_error:
            raise BodyModelFileError(*model_error.problems, str(uv_error)) from model_error
        raise
    charts = load_uv_charts(uv, num_vertices=data.num_vertices)
    return data, charts, body_face_parts(charts, data.faces)


def prepare_body_files(model: str, uv: str, out_model: Path, out_uv: Path, out_preview: Path) -> None:
    """Write or link the body model and UV charts, and render a preview.

    Args:
        model: ``"standin"`` or the path of an SMPL-format model (.pkl or .npz).
        uv: ``"standin"`` or the path of DensePose's UV_Processed.mat.
        out_model, out_uv: where the model and the UV file end up (files or links).
        out_preview: PNG of the body in rest and sample pose, coloured by part.

    Raises:
        ValueError: a stand-in UV file was asked for a real model (or the reverse).
        BodyModelFileError, UVChartError: the user's files are unreadable or inconsistent;
            the message names the file and key.
    """
    if model == STANDIN and uv == STANDIN:
        body = build_standin()
        write_smpl_pickle(body.model, out_model)
        write_uv_charts(body.uv, out_uv)
        data, face_part = body.model, body.face_part
        log.info("wrote the stand-in body (%d vertices) to %s and %s", data.num_vertices, out_model, out_uv)
    else:
        data, charts, face_part = load_user_body(model, uv)
        _link(Path(model), out_model)
        _link(Path(uv), out_uv)
        log.info(
            "checked %s (%d vertices) and %s (%d chart vertices); linked them to %s and %s",
            model, data.num_vertices, uv, len(charts.vertex), out_model, out_uv,
        )
    write_body_preview(data, face_part, out_preview)
    log.info("wrote the preview %s", out_preview)
