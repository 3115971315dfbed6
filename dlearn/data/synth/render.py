"""Rendering one image: the IUV image and person map at the pixel centres, and the colour image,
Lambert-shaded and 2 x 2 supersampled over the textured background. Visibility is the first
surface hit of the scene (:mod:`dlearn.data.raster`: one z-buffer over the union of the persons'
meshes, so they occlude each other)."""

from __future__ import annotations

import numba
import numpy as np

from dlearn.data.raster import RasterScene, RayCastScene, _face_barycentric, _split_face
from dlearn.data.synth.appearance import _background
from dlearn.data.synth.body import _Body, _chart_uv
from dlearn.data.synth.scene import _Person


@numba.njit(cache=True, nogil=True)
def _vertex_normals(vertices: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """(N, 3) unit vertex normals: the sum of the area-weighted normals (cross products) of the
    faces around, added corner by corner (first corners of all faces, then second, third) as
    the former ``np.cross`` and ``np.bincount`` did (the same bits)."""
    fn = np.empty((faces.shape[0], 3))
    for f in range(faces.shape[0]):
        a, b, c = faces[f, 0], faces[f, 1], faces[f, 2]
        e1x, e1y, e1z = (
            vertices[b, 0] - vertices[a, 0],
            vertices[b, 1] - vertices[a, 1],
            vertices[b, 2] - vertices[a, 2],
        )
        e2x, e2y, e2z = (
            vertices[c, 0] - vertices[a, 0],
            vertices[c, 1] - vertices[a, 1],
            vertices[c, 2] - vertices[a, 2],
        )
        fn[f, 0] = e1y * e2z - e1z * e2y
        fn[f, 1] = e1z * e2x - e1x * e2z
        fn[f, 2] = e1x * e2y - e1y * e2x
    vn = np.zeros((vertices.shape[0], 3))
    for k in range(3):
        for f in range(faces.shape[0]):
            v = faces[f, k]
            for d in range(3):
                vn[v, d] += fn[f, d]
    for v in range(vertices.shape[0]):
        norm = np.sqrt(vn[v, 0] * vn[v, 0] + vn[v, 1] * vn[v, 1] + vn[v, 2] * vn[v, 2])
        norm = max(norm, 1e-12)
        for d in range(3):
            vn[v, d] = vn[v, d] / norm
    return vn


@numba.njit(inline="always")
def _hit_normal(
    normals: np.ndarray, faces: np.ndarray, base: int, f: int, l0: float, l1: float, l2: float
) -> tuple[float, float, float]:
    """Unit normal of a hit on face ``f`` (vertex indices offset by ``base``, the person's first
    vertex) at barycentric (l0, l1, l2): the mix of its vertex normals, normalised."""
    a, b, c = faces[f, 0] + base, faces[f, 1] + base, faces[f, 2] + base
    nx = 0.0 + l0 * normals[a, 0] + l1 * normals[b, 0] + l2 * normals[c, 0]
    ny = 0.0 + l0 * normals[a, 1] + l1 * normals[b, 1] + l2 * normals[c, 1]
    nz = 0.0 + l0 * normals[a, 2] + l1 * normals[b, 2] + l2 * normals[c, 2]
    norm = max(np.sqrt(nx * nx + ny * ny + nz * nz), 1e-12)
    return nx / norm, ny / norm, nz / norm


@numba.njit(cache=True, nogil=True)
def _iuv_kernel(
    tri: np.ndarray, size: int, vertices: np.ndarray, faces: np.ndarray, num_faces: int,
    face_part: np.ndarray, chart_u: np.ndarray, chart_v: np.ndarray, face_chart: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:  # fmt: skip
    """The (size, size) person map (-1: background) and (size, size, 3) float32 IUV image (part,
    U, V; 0 for the background) of the pixel centres' first-hit global faces ``tri`` (size *
    size,): the hit's barycentrics (:func:`~dlearn.data.raster._face_barycentric`) and chart
    coordinates (:func:`~dlearn.data.synth.body._chart_uv`), as the hits and ``_uv_of`` give them."""
    person_map = np.full((size, size), -1, np.int64)
    iuv = np.zeros((size, size, 3), np.float32)
    for i in range(size):
        for j in range(size):
            g = tri[i * size + j]
            if g < 0:
                continue
            person_map[i, j], f = _split_face(g, num_faces)
            l0, l1, l2, _ = _face_barycentric(vertices, faces, g, 0.5 + j * 1.0, 0.5 + i * 1.0)
            u, v = _chart_uv(chart_u, chart_v, face_chart, f, l0, l1, l2)
            iuv[i, j, 0], iuv[i, j, 1], iuv[i, j, 2] = face_part[f], u, v
    return person_map, iuv


def _rasterise_centres(
    scene: RasterScene | RayCastScene, body: _Body, size: int, with_iuv: bool = True
) -> tuple[np.ndarray, np.ndarray | None]:
    """The first hits at the pixel centres (row-major): the (size, size) person map (index of the
    person seen, -1 for the background) and the (size, size, 3) float32 IUV image (part, U, V;
    0 for the background), or None without ``with_iuv`` (the annotations need only the map, which
    the z-buffer then writes itself)."""
    if not with_iuv:
        person = np.repeat(np.arange(len(scene.faces) // scene.num_faces), scene.num_faces)  # per global face
        return scene.grid_values(0.5, 0.5, 1.0, 1.0, size, size, person, -1).reshape(size, size), None
    tri = scene.grid_faces(0.5, 0.5, 1.0, 1.0, size, size)
    return _iuv_kernel(
        tri, size, scene.vertices, scene.faces, scene.num_faces, body.face_part, body.charts.u, body.charts.v,
        body.face_chart,
    )  # fmt: skip


def _shade_image(
    rng: np.random.Generator,
    body: _Body,
    persons: list[_Person],
    scene: RasterScene | RayCastScene,
    size: int,
) -> np.ndarray:
    """(size, size, 3) uint8 RGB: 2 x 2 supersampled Lambert shading over the textured
    background, with a random light, ambient term, exposure and pixel noise."""
    normals = _vertex_normals(scene.vertices, scene.faces)
    background = _background(rng, size)
    light = np.array([rng.uniform(-0.6, 0.6), rng.uniform(-0.8, 0.3), -1.0])
    light /= np.linalg.norm(light)
    ambient = float(rng.uniform(0.3, 0.5))
    # The sub-pixel samples (pixel + 0.25 / 0.75) of all pixels form one lattice twice as fine.
    tri = scene.grid_faces(0.25, 0.25, 0.5, 0.5, 2 * size, 2 * size)
    exposure = rng.uniform(0.8, 1.15)
    colours = np.stack([p.colours for p in persons])
    # Last, the pixel noise, drawn by the kernel: rng.normal(scale=0.01, size=(size * size, 3)).
    return _shade_kernel(
        tri, scene.vertices, scene.faces, scene.num_faces, normals, colours, body.face_colour_key, light, ambient,
        background, exposure, rng,
    )  # fmt: skip


@numba.njit(cache=True, nogil=True)
def _shade_kernel(
    tri: np.ndarray, vertices: np.ndarray, faces: np.ndarray, num_faces: int, normals: np.ndarray,
    colours: np.ndarray, colour_key: np.ndarray, light: np.ndarray, ambient: float,
    background: np.ndarray, exposure: float, rng: np.random.Generator,
) -> np.ndarray:  # fmt: skip
    """(size, size, 3) uint8 image from the first-hit global faces ``tri`` of the (2 size, 2 size)
    sub-pixel lattice (offsets 0.25 / 0.75) and the (size, size, 3) background: a sample that
    hits a person is Lambert-shaded, ``colour * (ambient + (1 - ambient) |n . light|)`` (n the
    hit's interpolated normal, ``colours`` (K, C, 3) the persons' colour tables by
    ``colour_key``), a miss takes its pixel's background; per pixel the mean of its 4 samples
    ((x, y) offsets summed in the order (0, 0), (1, 0), (0, 1), (1, 1)), times the exposure, plus
    the noise ``rng.normal(0, 0.01)`` per value in C order (numba's Generator draws numpy's
    numbers), clipped, to 8 bits."""
    size = background.shape[0]
    side = 2 * size
    n_vertices = vertices.shape[0] // colours.shape[0]
    diffuse = 1 - ambient
    samples = np.empty((4, 3))  # one pixel's samples, row-major: (0, 0), (1, 0), (0, 1), (1, 1)
    out = np.empty((size, size, 3), np.uint8)
    for i in range(size):
        for j in range(size):
            for s in range(4):
                si, sj = 2 * i + s // 2, 2 * j + s % 2
                g = tri[si * side + sj]
                if g < 0:
                    for d in range(3):
                        samples[s, d] = background[i, j, d]
                    continue
                person, f = _split_face(g, num_faces)
                l0, l1, l2, _ = _face_barycentric(vertices, faces, g, 0.25 + sj * 0.5, 0.25 + si * 0.5)
                nx, ny, nz = _hit_normal(normals, faces, person * n_vertices, f, l0, l1, l2)
                shade = ambient + diffuse * abs(nx * light[0] + ny * light[1] + nz * light[2])
                for d in range(3):
                    samples[s, d] = colours[person, colour_key[f], d] * shade
            for d in range(3):
                total = 0.0 + samples[0, d] + samples[1, d]
                total = total + samples[2, d] + samples[3, d]
                value = total / 4.0 * exposure + rng.normal(0.0, 0.01)
                value = min(max(value, 0.0), 1.0)
                out[i, j, d] = np.uint8(value * 255 + 0.5)
    return out
