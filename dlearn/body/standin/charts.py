"""The stand-in's UV charts: each part's disc is mapped by Tutte's uniform-weight embedding onto
a circle (boundary by arc length), which is fold-free, and rescaled to [0, 1]^2."""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
import scipy.sparse.linalg as spla

from dlearn.body.standin.mesh import _boundary_loop, _euler_characteristic, _uniform_laplacian
from dlearn.densepose.uv import NUM_PARTS, UVCharts


def _tutte_disc(faces: np.ndarray, vertices: np.ndarray, loop: np.ndarray) -> np.ndarray:
    """Tutte's uniform-weight embedding of a disc patch into the unit disc.

    Args:
        faces: (F, 3) local vertex indices 0..M-1 of the patch.
        vertices: (M, 3) 3D positions (only the border's arc lengths are used).
        loop: (B,) border vertices in order.

    Returns:
        (M, 2) coordinates; the border lies on the unit circle by arc length, every interior
        vertex is the mean of its neighbours, so no triangle folds over (Tutte/Floater).
    """
    m = len(vertices)
    seg = np.linalg.norm(vertices[np.roll(loop, -1)] - vertices[loop], axis=1)
    angle = 2.0 * np.pi * np.concatenate([[0.0], np.cumsum(seg)[:-1]]) / seg.sum()
    uv = np.zeros((m, 2))
    uv[loop] = np.stack([np.cos(angle), np.sin(angle)], axis=1)
    inner = np.setdiff1d(np.arange(m), loop)
    if len(inner):
        avg = _uniform_laplacian(faces, m)
        system = sp.eye(m, format="csr") - avg
        a = system[inner][:, inner].tocsc()
        rhs = -(system[inner][:, loop] @ uv[loop])
        uv[inner] = spla.splu(a).solve(np.ascontiguousarray(rhs))
    return uv


def _uv_charts(vertices: np.ndarray, faces: np.ndarray, face_part: np.ndarray) -> UVCharts:
    """One fold-free chart per part (parts in order 1..24, chart vertices by body vertex id)."""
    chart_faces, chart_part, chart_vertex, chart_uv = [], [], [], []
    offset = 0
    for p in range(1, NUM_PARTS + 1):
        patch = faces[face_part == p]
        body_ids, local = np.unique(patch, return_inverse=True)
        local = local.reshape(-1, 3)
        if _euler_characteristic(local) != 1:
            raise RuntimeError(f"stand-in part {p} is not a topological disc")
        uv = _tutte_disc(local, vertices[body_ids], _boundary_loop(local))
        chart_faces.append(local + offset)
        chart_part.append(np.full(len(local), p))
        chart_vertex.append(body_ids)
        chart_uv.append(0.5 + 0.5 * uv)
        offset += len(body_ids)
    uv = np.clip(np.concatenate(chart_uv), 0.0, 1.0)
    return UVCharts(
        face_part=np.concatenate(chart_part).astype(np.int64),
        faces=np.concatenate(chart_faces).astype(np.int64),
        vertex=np.concatenate(chart_vertex).astype(np.int64),
        u=uv[:, 0].copy(),
        v=uv[:, 1].copy(),
    )
