"""The body as the renderer needs it, prepared once per process: the model (posed in numpy,
:class:`~dlearn.body.numpy_model.NumpyBodyModel`), its UV charts, each face's part, chart corners
and colour region, the COCO keypoint regressor and the skinning neighbourhoods the keypoint
visibility test uses."""

from __future__ import annotations

from pathlib import Path

import numba
import numpy as np

from dlearn.body.io import NUM_JOINTS, SMPL_JOINT_NAMES, BodyModelData, load_body_model
from dlearn.body.keypoint_definition import keypoint_definition
from dlearn.body.numpy_model import NumpyBodyModel
from dlearn.data.synth.priors import _tree_neighbours
from dlearn.densepose.coco import COARSE_PART
from dlearn.densepose.uv import NUM_PARTS, face_chart_corners, load_uv_charts

_HEAD = SMPL_JOINT_NAMES.index("head")


class _Body:
    """Body model, charts and per-face attributes used to render (built once per process)."""

    def __init__(
        self, model_path: str | Path, uv_path: str | Path, keypoint_regressor: str | Path | None = None
    ):
        self.data: BodyModelData = load_body_model(model_path)
        self.charts = load_uv_charts(uv_path, num_vertices=self.data.num_vertices)
        self.faces = self.data.faces
        self.face_chart, self.face_part = face_chart_corners(self.charts, self.faces)
        definition = keypoint_definition(self.data, keypoint_regressor)
        # numpy, not the torch model: one body per call, where torch's overhead is most of the cost.
        self.model = NumpyBodyModel(self.data, definition)
        self.kp_joint = definition.joint  # (17,) -1: regressed from the surface
        self.kp_rows = definition.vertex_weights  # (17, N)
        # The keypoints' reach, over the (keypoint, vertex) pairs of non-zero weight.
        self._reach_keypoint, self._reach_vertex = np.nonzero(self.kp_rows)
        self._reach_weight = np.abs(self.kp_rows[self._reach_keypoint, self._reach_vertex])
        self._reach_total = np.abs(self.kp_rows).sum(axis=1)
        self.parents = self.data.parents
        nbrs = _tree_neighbours(self.parents)
        self.joint_ok = np.zeros((NUM_JOINTS, NUM_JOINTS), dtype=bool)  # [keypoint joint, skinned joint]
        for j in range(NUM_JOINTS):
            self.joint_ok[j, j] = True
            self.joint_ok[j, nbrs[j]] = True
        self.weights = self.data.weights
        self.face_region = self._face_regions()
        #: (F,) row of a person's colour table (appearance._person_colours) for each face.
        self.face_colour_key = self.face_region * (NUM_PARTS + 1) + self.face_part
        #: (F,) uint8 DensePose coarse part (dp_masks' index, 1..14) of each face, 0 uncharted.
        self.face_coarse = COARSE_PART[self.face_part].astype(np.uint8)

    def _face_regions(self) -> np.ndarray:
        """(F,) colour region of each face: 0 skin, 1 shirt, 2 sleeve, 3 trousers, 4 lower leg,
        5 shoes, 6 hair, 7 eyes, 8 hands."""
        rest = self.data.v_template
        centroid = rest[self.faces].mean(axis=1)
        part = self.face_part
        region = np.zeros(len(part), dtype=np.int64)
        region[np.isin(part, [1, 2, 15, 16, 17, 18])] = 1
        region[np.isin(part, [19, 20, 21, 22])] = 2
        region[np.isin(part, [7, 8, 9, 10])] = 3
        region[np.isin(part, [11, 12, 13, 14])] = 4
        region[np.isin(part, [5, 6])] = 5
        region[np.isin(part, [3, 4])] = 8
        head = np.isin(part, [23, 24])
        rel = centroid - self.data.rest_joints[_HEAD]
        hair = head & (rel[:, 1] > 0.0) & ((rel[:, 2] < -0.01) | (rel[:, 1] > 0.13))
        region[hair] = 6
        eyes = self.kp_rows[1:3] @ rest  # (2, 3) rest eye keypoints
        near_eye = np.min(np.linalg.norm(centroid[:, None, :] - eyes[None], axis=2), axis=1) < 0.012
        region[head & near_eye] = 7
        return region

    def pose(self, pose: np.ndarray, scales: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Posed (N, 3) vertices, (24, 3) joints and (17, 3) COCO keypoints in float64."""
        return self.model(pose, scales)

    def keypoint_reach(self, vertices: np.ndarray, keypoints: np.ndarray) -> np.ndarray:
        """(17,) mean distance (body units) of each keypoint's regressor vertices from it, weighted
        by |weight|: how far below the surface a regressed point may lie and still be seen."""
        return _reach_kernel(
            vertices, keypoints, self._reach_keypoint, self._reach_vertex, self._reach_weight, self._reach_total
        )


@numba.njit(cache=True, nogil=True)
def _reach_kernel(
    vertices: np.ndarray, keypoints: np.ndarray, keypoint: np.ndarray, vertex: np.ndarray, weight: np.ndarray,
    total: np.ndarray,
) -> np.ndarray:  # fmt: skip
    """(K,) ``sum_p weight[p] * |vertices[vertex[p]] - keypoints[keypoint[p]]| / total`` over the
    (keypoint, vertex) pairs p, summed in pair order with each distance's squares summed x, y, z:
    the former ``np.linalg.norm`` and ``np.bincount``'s operations (a test compares)."""
    out = np.zeros(keypoints.shape[0])
    for p in range(keypoint.shape[0]):
        k, v = keypoint[p], vertex[p]
        dx, dy, dz = vertices[v, 0] - keypoints[k, 0], vertices[v, 1] - keypoints[k, 1], vertices[v, 2] - keypoints[k, 2]
        out[k] += weight[p] * np.sqrt(dx * dx + dy * dy + dz * dz)
    return out / total


@numba.njit(inline="always")
def _chart_uv(
    chart_u: np.ndarray, chart_v: np.ndarray, face_chart: np.ndarray, f: int, l0: float, l1: float, l2: float
) -> tuple[float, float]:
    """Chart (U, V) of the point with barycentric coordinates (l0, l1, l2) on body face ``f``:
    the mix of its corners' chart coordinates, clipped to [0, 1]; (0, 0) if the face is
    uncharted. The three products are summed first + third, then the second: the order of the
    former ``np.einsum`` (the same bits)."""
    a, b, c = face_chart[f, 0], face_chart[f, 1], face_chart[f, 2]
    if a < 0 or b < 0 or c < 0:
        return 0.0, 0.0
    u = (l0 * chart_u[a] + l2 * chart_u[c]) + l1 * chart_u[b]
    v = (l0 * chart_v[a] + l2 * chart_v[c]) + l1 * chart_v[b]
    return min(max(u, 0.0), 1.0), min(max(v, 0.0), 1.0)


@numba.njit(cache=True, nogil=True)
def _uv_kernel(
    chart_u: np.ndarray, chart_v: np.ndarray, face_chart: np.ndarray, face: np.ndarray, lam: np.ndarray
) -> np.ndarray:
    """(H, 2) :func:`_chart_uv` of the hits on body faces ``face`` (H,) at barycentric ``lam`` (H, 3)."""
    out = np.empty((len(face), 2))
    for h in range(len(face)):
        out[h, 0], out[h, 1] = _chart_uv(chart_u, chart_v, face_chart, face[h], lam[h, 0], lam[h, 1], lam[h, 2])
    return out


def _uv_of(body: _Body, face: np.ndarray, lam: np.ndarray) -> np.ndarray:
    """(H, 2) chart (U, V) of hits on body faces ``face`` at barycentric ``lam`` (0 if uncharted)."""
    face = np.ascontiguousarray(face, dtype=np.int64)
    lam = np.ascontiguousarray(lam, dtype=np.float64)
    return _uv_kernel(body.charts.u, body.charts.v, body.face_chart, face, lam)
