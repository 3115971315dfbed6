"""Rendering one image: the IUV image and person map at the pixel centres, and the colour image,
Lambert-shaded and 2 x 2 supersampled over the textured background. Visibility is the first
surface hit of the scene (:mod:`dlearn.data.raster`: one z-buffer over the union of the persons'
meshes, so they occlude each other)."""

from __future__ import annotations

import numba
import numpy as np

from dlearn.data.raster import Hits, RasterScene, RayCastScene
from dlearn.data.synth.appearance import _background
from dlearn.data.synth.body import _Body, _uv_of
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


@numba.njit(cache=True, nogil=True)
def _hit_normals(
    normals: np.ndarray,
    faces: np.ndarray,
    person: np.ndarray,
    face: np.ndarray,
    lam: np.ndarray,
    n_vertices: int,
) -> np.ndarray:
    """(H, 3) unit normals of hits: the barycentric mix of their face's vertex normals."""
    out = np.empty((len(face), 3))
    for h in range(len(face)):
        base = person[h] * n_vertices
        a, b, c = faces[face[h], 0] + base, faces[face[h], 1] + base, faces[face[h], 2] + base
        for d in range(3):
            out[h, d] = (
                0.0 + lam[h, 0] * normals[a, d] + lam[h, 1] * normals[b, d] + lam[h, 2] * normals[c, d]
            )
        norm = np.sqrt(out[h, 0] * out[h, 0] + out[h, 1] * out[h, 1] + out[h, 2] * out[h, 2])
        norm = max(norm, 1e-12)
        for d in range(3):
            out[h, d] = out[h, d] / norm
    return out


def _shade(
    body: _Body,
    persons: list[_Person],
    hits: Hits,
    normals: np.ndarray,
    light: np.ndarray,
    ambient: float,
) -> np.ndarray:
    """(M, 3) colour of the hits (undefined for misses)."""
    colour = np.zeros((len(hits.person), 3))
    hit = hits.person >= 0
    if not hit.any():
        return colour
    person, face, lam = hits.person[hit], hits.face[hit], hits.bary[hit]
    normal = _hit_normals(normals, body.faces, person, face, lam, len(persons[0].vertices))
    lambert = np.abs(normal @ light)
    base = np.stack([p.colours for p in persons])[person, body.face_colour_key[face]]  # (K, C, 3) -> (H, 3)
    colour[hit] = base * (ambient + (1 - ambient) * lambert)[:, None]
    return colour


def _rasterise_centres(
    scene: RasterScene | RayCastScene, body: _Body, size: int
) -> tuple[np.ndarray, np.ndarray]:
    """The first hits at the pixel centres (row-major): the (size, size) person map (index of the
    person seen, -1 for the background) and the (size, size, 3) float32 IUV image (part, U, V;
    0 for the background)."""
    hit, centre_hits = scene.grid(0.5, 0.5, 1.0, 1.0, size, size)
    person_map = np.full(size * size, -1, dtype=np.int64)
    person_map[hit] = centre_hits.person
    person_map = person_map.reshape(size, size)
    iuv = np.zeros((size, size, 3), dtype=np.float32)
    if len(hit):
        flat = iuv.reshape(-1, 3)
        flat[hit, 0] = body.face_part[centre_hits.face]
        flat[hit, 1:] = _uv_of(body, centre_hits.face, centre_hits.bary)
    return person_map, iuv


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
    hit, sub = scene.grid(0.25, 0.25, 0.5, 0.5, 2 * size, 2 * size)
    colour = _shade(body, persons, sub, normals, light, ambient)
    exposure = rng.uniform(0.8, 1.15)
    noise = rng.normal(scale=0.01, size=(size * size, 3))
    return _compose(background, hit, colour, exposure, noise)


@numba.njit(cache=True, nogil=True)
def _compose(
    background: np.ndarray, hit: np.ndarray, colour: np.ndarray, exposure: float, noise: np.ndarray
) -> np.ndarray:
    """(size, size, 3) uint8 image from the (size, size, 3) background and the colours of the
    sub-pixel samples ``hit`` (indices into the (2 size, 2 size) sub-pixel lattice): per pixel
    the mean of its 4 samples ((x, y) offsets 0.25 / 0.75 summed in the order (0, 0), (1, 0),
    (0, 1), (1, 1)), times the exposure, plus the noise, clipped, to 8 bits."""
    size = background.shape[0]
    samples = np.empty((2 * size, 2 * size, 3))
    for i in range(2 * size):
        for j in range(2 * size):
            for d in range(3):
                samples[i, j, d] = background[i // 2, j // 2, d]
    for h in range(len(hit)):
        i, j = hit[h] // (2 * size), hit[h] % (2 * size)
        for d in range(3):
            samples[i, j, d] = colour[h, d]
    out = np.empty((size, size, 3), np.uint8)
    for i in range(size):
        for j in range(size):
            for d in range(3):
                total = 0.0 + samples[2 * i, 2 * j, d] + samples[2 * i, 2 * j + 1, d]
                total = total + samples[2 * i + 1, 2 * j, d] + samples[2 * i + 1, 2 * j + 1, d]
                value = total / 4.0 * exposure + noise[i * size + j, d]
                value = min(max(value, 0.0), 1.0)
                out[i, j, d] = np.uint8(value * 255 + 0.5)
    return out
