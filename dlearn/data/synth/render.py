"""Rendering one image: the IUV image and person map at the pixel centres, and the colour image,
Lambert-shaded and 2 x 2 supersampled over the textured background. Visibility is the first
surface hit of the scene (:mod:`dlearn.data.raster`: one z-buffer over the union of the persons'
meshes, so they occlude each other)."""

from __future__ import annotations

import numpy as np

from dlearn.data.raster import Hits, RasterScene, RayCastScene
from dlearn.data.synth.appearance import _background
from dlearn.data.synth.body import _Body, _uv_of
from dlearn.data.synth.scene import _Person


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
    n_vertices = len(persons[0].vertices)
    corners = body.faces[face] + (person * n_vertices)[:, None]
    normal = np.einsum("hk,hkd->hd", lam, normals[corners])
    normal /= np.maximum(np.linalg.norm(normal, axis=1, keepdims=True), 1e-12)
    lambert = np.abs(normal @ light)
    base = np.stack([p.colours for p in persons])[person, face]  # (K, F, 3) -> (H, 3)
    colour[hit] = base * (ambient + (1 - ambient) * lambert)[:, None]
    return colour


def _vertex_normals(vertices: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """(N, 3) unit vertex normals: the sum of the area-weighted normals of the faces around."""
    tri = vertices[faces]
    fn = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
    # One bincount per coordinate over the corners (first corners of all faces, then second,
    # third) adds in the order np.add.at per corner would, several times faster.
    corner = faces.T.ravel()
    vn = np.column_stack([np.bincount(corner, np.tile(fn[:, d], 3), len(vertices)) for d in range(3)])
    return vn / np.maximum(np.linalg.norm(vn, axis=1, keepdims=True), 1e-12)


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
    samples = np.repeat(np.repeat(background, 2, axis=0), 2, axis=1).reshape(-1, 3)
    samples[hit] = _shade(body, persons, sub, normals, light, ambient)
    samples = samples.reshape(size, 2, size, 2, 3)
    rgb = np.zeros((size * size, 3))
    for sx, sy in ((0, 0), (1, 0), (0, 1), (1, 1)):  # (x, y) offsets 0.25 / 0.75, summed in order
        rgb += samples[:, sy, :, sx].reshape(-1, 3)
    rgb = rgb / 4.0 * rng.uniform(0.8, 1.15) + rng.normal(scale=0.01, size=rgb.shape)
    return (np.clip(rgb, 0, 1).reshape(size, size, 3) * 255 + 0.5).astype(np.uint8)
