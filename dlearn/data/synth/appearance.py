"""How the people and the background look: clothing-like colours per part group (shirt, sleeves,
trousers, shoes, skin, hair at the back of the head, dark eyes) and a random textured background
(gradient, low-frequency noise, stripes, blobs)."""

from __future__ import annotations

import functools
import math

import numba
import numpy as np

from dlearn.data.synth.body import _Body
from dlearn.densepose.uv import NUM_PARTS

_SKIN_TONES = np.array(
    [[0.96, 0.80, 0.69], [0.90, 0.72, 0.58], [0.78, 0.57, 0.44], [0.60, 0.42, 0.30], [0.42, 0.28, 0.20]]
)


def _random_colour(rng: np.random.Generator) -> np.ndarray:
    import colorsys

    h, s, v = rng.uniform(0, 1), rng.uniform(0.2, 0.9), rng.uniform(0.2, 0.95)
    return np.array(colorsys.hsv_to_rgb(h, s, v))


def _person_colours(rng: np.random.Generator, body: _Body) -> np.ndarray:
    """(9 * (NUM_PARTS + 1), 3) clothing-like colours of one person, one per colour region and
    part: face f's colour is row ``body.face_colour_key[f]`` (region * (NUM_PARTS + 1) + part).
    A table rather than a colour per face: the shading looks up only the faces it sees."""
    skin = np.clip(_SKIN_TONES[rng.integers(len(_SKIN_TONES))] * rng.uniform(0.9, 1.1), 0, 1)
    shirt, trousers = _random_colour(rng), _random_colour(rng)
    shoes = _random_colour(rng) * rng.uniform(0.3, 0.8)
    hair = np.array([0.1, 0.07, 0.04]) + rng.uniform(0, 0.5) * np.array([0.9, 0.6, 0.3]) * rng.uniform(0.2, 1)
    long_sleeves, long_trousers = rng.random() < 0.5, rng.random() < 0.75
    region_colour = np.array(
        [
            skin,
            shirt,
            shirt if long_sleeves else skin,
            trousers,
            trousers if long_trousers else skin,
            shoes,
            hair,
            np.array([0.08, 0.08, 0.1]),
            skin,
        ]
    )
    part_tint = rng.uniform(0.88, 1.12, size=(NUM_PARTS + 1, 1))  # parts differ slightly (seams)
    return np.clip(region_colour[:, None, :] * part_tint[None], 0, 1).reshape(-1, 3)


@functools.lru_cache(maxsize=4)
def _unit_grid(size: int) -> tuple[np.ndarray, np.ndarray]:
    """(size, size) pixel row and column over the image side: ``np.mgrid[0:size, 0:size] / size``
    (read-only; the same for every image of a size)."""
    yy, xx = np.mgrid[0:size, 0:size] / size
    yy.flags.writeable = xx.flags.writeable = False
    return yy, xx


@numba.njit(cache=True, nogil=True)
def _background_pixels(
    yy: np.ndarray, xx: np.ndarray, cos_a: float, sin_a: float, c0: np.ndarray, c1: np.ndarray,
    low: np.ndarray, stripes: np.ndarray, stripe_factor: float, blobs: np.ndarray, blob_colours: np.ndarray,
) -> np.ndarray:  # fmt: skip
    """The background's pixel arithmetic, per pixel in the order of the former whole-array numpy
    expressions (the same float64 operations, so the same bits): gradient, low-frequency noise,
    stripes (``stripe_factor`` < 0: none), blobs (rows: centre x, y, radii x, y, cos, sin of the
    rotation; colours already times 0.7)."""
    size = xx.shape[0]
    ramp = np.empty((size, size))
    for i in range(size):
        for j in range(size):
            ramp[i, j] = cos_a * xx[i, j] + sin_a * yy[i, j]
    lo, hi = ramp.min(), ramp.max()
    span = max(hi - lo, 1e-9)
    img = np.empty((size, size, 3))
    for i in range(size):
        for j in range(size):
            r = (ramp[i, j] - lo) / span
            for k in range(3):
                img[i, j, k] = c0[k] * (1 - r) + c1[k] * r + low[i, j, k]
    if stripe_factor >= 0:
        for i in range(size):
            for j in range(size):
                if stripes[i, j]:
                    for k in range(3):
                        img[i, j, k] = img[i, j, k] * stripe_factor
    for b in range(blobs.shape[0]):
        cx, cy, rx, ry = blobs[b, 0], blobs[b, 1], blobs[b, 2], blobs[b, 3]
        cos_r, sin_r = blobs[b, 4], blobs[b, 5]
        for i in range(size):
            for j in range(size):
                dx, dy = xx[i, j] - cx, yy[i, j] - cy
                u = (cos_r * dx + sin_r * dy) / rx
                v = (-sin_r * dx + cos_r * dy) / ry
                if u * u + v * v < 1:
                    for k in range(3):
                        img[i, j, k] = 0.3 * img[i, j, k] + blob_colours[b, k]
    return img


@numba.njit(cache=True, nogil=True)
def _zoom_linear(low: np.ndarray, size: int) -> np.ndarray:
    """``scipy.ndimage.zoom(low, (size / n, size / n, 1), order=1)[:size, :size]`` of an (n, n, C)
    array, rebuilt operation for operation (the same bits, ~10x faster than scipy's general
    n-D code; a test compares the two): output position k samples input ``k * (n - 1) / (m - 1)``
    (m = the zoomed side) with scipy's order-1 spline weights ``1 - t`` and ``1 - (1 - t)``,
    summed corner by corner as ``value * weight_row * weight_column``; reads past the edge are
    scipy's constant 0."""
    n = low.shape[0]
    out_n = int(np.round(n * (size / n)))
    z = (n - 1) / (out_n - 1) if out_n > 1 else 1.0
    m = min(out_n, size)
    start = np.empty(m, np.int64)
    w = np.empty((m, 2))
    for k in range(m):
        cc = k * z
        s = np.floor(cc)
        start[k] = int(s)
        w[k, 0] = 1.0 - (cc - s)
        w[k, 1] = 1.0 - w[k, 0]
    out = np.empty((m, m, low.shape[2]))
    for i in range(m):
        for j in range(m):
            for c in range(low.shape[2]):
                acc = 0.0
                for a in range(2):
                    ii = start[i] + a
                    for b in range(2):
                        jj = start[j] + b
                        value = low[ii, jj, c] if ii < n and jj < n else 0.0
                        acc += value * w[i, a] * w[j, b]
                out[i, j, c] = acc
    return out


def _background(rng: np.random.Generator, size: int) -> np.ndarray:
    """(size, size, 3) random textured background in [0, 1]: gradient, noise, stripes, blobs.

    The random draws are made here, in a fixed order; the per-pixel work is :func:`_zoom_linear`
    and :func:`_background_pixels`. Scalar trigonometry and the stripes' sine stay numpy's (the
    same values as ever)."""
    yy, xx = _unit_grid(size)
    angle = rng.uniform(0, 2 * math.pi)
    c0, c1 = _random_colour(rng), _random_colour(rng)
    cells = int(rng.integers(3, 10))
    low = rng.normal(scale=rng.uniform(0.05, 0.25), size=(cells, cells, 3))
    low = _zoom_linear(low, size)  # scipy.ndimage.zoom(low, (size / cells, size / cells, 1), order=1)
    stripes, stripe_factor = np.zeros((1, 1), dtype=bool), -1.0
    if rng.random() < 0.5:
        theta = rng.uniform(0, math.pi)
        freq = rng.uniform(3, 20)
        phase = np.cos(theta) * xx + np.sin(theta) * yy
        stripes = np.sin(2 * math.pi * freq * phase) > rng.uniform(-0.5, 0.5)
        stripe_factor = float(rng.uniform(0.5, 0.95))
    count = int(rng.integers(2, 9))
    blobs, blob_colours = np.empty((count, 6)), np.empty((count, 3))
    for b in range(count):
        cx, cy = rng.uniform(0, 1, size=2)
        rx, ry = rng.uniform(0.03, 0.3, size=2)
        rot = rng.uniform(0, math.pi)
        blobs[b] = cx, cy, rx, ry, np.cos(rot), np.sin(rot)
        blob_colours[b] = 0.7 * _random_colour(rng)
    cos_a, sin_a = float(np.cos(angle)), float(np.sin(angle))
    img = _background_pixels(yy, xx, cos_a, sin_a, c0, c1, low, stripes, stripe_factor, blobs, blob_colours)
    img = img + rng.normal(scale=0.02, size=img.shape)
    return np.clip(img, 0, 1)
