"""How the people and the background look: clothing-like colours per part group (shirt, sleeves,
trousers, shoes, skin, hair at the back of the head, dark eyes) and a random textured background
(gradient, low-frequency noise, stripes, blobs)."""

from __future__ import annotations

import colorsys
import functools
import math

import numba
import numpy as np

from dlearn.data.synth.body import _Body
from dlearn.densepose.uv import NUM_PARTS

_SKIN_TONES = np.array(
    [[0.96, 0.80, 0.69], [0.90, 0.72, 0.58], [0.78, 0.57, 0.44], [0.60, 0.42, 0.30], [0.42, 0.28, 0.20]]
)


#: The ranges of a random colour's hue, saturation and value, drawn in this order.
_HSV_LOW, _HSV_HIGH = (0.0, 0.2, 0.2), (1.0, 0.9, 0.95)


def _random_colour(rng: np.random.Generator) -> np.ndarray:
    # Three scalar draws: a call with array ranges costs twice as much (its checks).
    h, s, v = (rng.uniform(lo, hi) for lo, hi in zip(_HSV_LOW, _HSV_HIGH))
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


_BLOB_LOW = np.array([0.0, 0.0, 0.03, 0.03, 0.0, *_HSV_LOW])
_BLOB_HIGH = np.array([1.0, 1.0, 0.3, 0.3, math.pi, *_HSV_HIGH])


@functools.lru_cache(maxsize=4)
def _unit_grid(size: int) -> tuple[np.ndarray, np.ndarray]:
    """(size, size) pixel row and column over the image side: ``np.mgrid[0:size, 0:size] / size``
    (read-only; the same for every image of a size)."""
    yy, xx = np.mgrid[0:size, 0:size] / size
    yy.flags.writeable = xx.flags.writeable = False
    return yy, xx


@numba.njit(cache=True, nogil=True)
def _zoom_axis(n: int, size: int) -> tuple[np.ndarray, np.ndarray]:
    """How ``scipy.ndimage.zoom(..., order=1)`` samples an axis of n cells zoomed to ``size``:
    output position k samples input ``k * (n - 1) / (m - 1)`` (m = the zoomed side), i.e. cells
    ``start[k]`` and ``start[k] + 1`` with scipy's order-1 spline weights ``w[k] = (1 - t, 1 -
    (1 - t))``."""
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
    return start, w


@numba.njit(inline="always")
def _zoomed(
    low: np.ndarray, i0: int, wi0: float, wi1: float, j0: int, wj0: float, wj1: float, k: int
) -> float:
    """Channel k of ``scipy.ndimage.zoom(low, (size / n, size / n, 1), order=1)`` of the (n, n, C)
    ``low`` at the pixel whose row and column sample cells ``i0``, ``j0`` (and the next) with
    weights ``wi0, wi1`` and ``wj0, wj1`` (:func:`_zoom_axis`), rebuilt operation for operation
    (the same bits; a test compares): summed corner by corner, row-major, as ``value *
    weight_row * weight_column``; reads past the edge are scipy's constant 0."""
    n = low.shape[0]
    acc = 0.0
    acc += low[i0, j0, k] * wi0 * wj0
    acc += (low[i0, j0 + 1, k] if j0 + 1 < n else 0.0) * wi0 * wj1
    acc += (low[i0 + 1, j0, k] if i0 + 1 < n else 0.0) * wi1 * wj0
    acc += (low[i0 + 1, j0 + 1, k] if i0 + 1 < n and j0 + 1 < n else 0.0) * wi1 * wj1
    return acc


@numba.njit(cache=True, nogil=True)
def _background_pixels(
    yy: np.ndarray, xx: np.ndarray, cos_a: float, sin_a: float, c0: np.ndarray, c1: np.ndarray,
    low: np.ndarray, stripes: np.ndarray, stripe_factor: float, blobs: np.ndarray, blob_colours: np.ndarray,
    rng: np.random.Generator,
) -> np.ndarray:  # fmt: skip
    """The background's pixel arithmetic, one pixel at a time in the order of the former
    whole-array numpy expressions (the same float64 operations, so the same bits): gradient,
    low-frequency noise (``low`` (n, n, 3) zoomed to the image, :func:`_zoomed`), stripes
    (``stripe_factor`` < 0: none), blobs in order (rows: centre x, y, radii x, y, cos, sin of
    the rotation; colours already times 0.7), pixel noise (``rng.normal(0, 0.02)`` per value in
    C order: numba's Generator draws numpy's numbers, ~1.7x faster), clipped to [0, 1].

    A blob is tested only on the pixels of its bounding box plus a pixel: outside it a point's
    ``u^2 + v^2`` exceeds 1 by far more than rounding (``|dx| <= hx sqrt(u^2 + v^2)``)."""
    size = xx.shape[0]
    lo, hi = np.inf, -np.inf  # the ramp's range (numpy's min and max of the ramp)
    for i in range(size):
        for j in range(size):
            ramp = cos_a * xx[i, j] + sin_a * yy[i, j]
            lo, hi = min(lo, ramp), max(hi, ramp)
    span = max(hi - lo, 1e-9)
    start, w = _zoom_axis(low.shape[0], size)
    count = blobs.shape[0]
    box = np.empty((count, 4), np.int64)  # first and last row, first and last column
    for b in range(count):
        cx, cy, rx, ry, cos_r, sin_r = blobs[b, 0], blobs[b, 1], blobs[b, 2], blobs[b, 3], blobs[b, 4], blobs[b, 5]
        hx = np.sqrt((rx * cos_r) ** 2 + (ry * sin_r) ** 2)
        hy = np.sqrt((rx * sin_r) ** 2 + (ry * cos_r) ** 2)
        box[b, 0], box[b, 1] = int(np.floor((cy - hy) * size)) - 1, int(np.ceil((cy + hy) * size)) + 1
        box[b, 2], box[b, 3] = int(np.floor((cx - hx) * size)) - 1, int(np.ceil((cx + hx) * size)) + 1
    img = np.empty((size, size, 3))
    pixel = np.empty(3)
    for i in range(size):
        i0, wi0, wi1 = start[i], w[i, 0], w[i, 1]
        for j in range(size):
            j0, wj0, wj1 = start[j], w[j, 0], w[j, 1]
            r = (cos_a * xx[i, j] + sin_a * yy[i, j] - lo) / span
            striped = stripe_factor >= 0 and stripes[i, j]
            for k in range(3):
                pixel[k] = c0[k] * (1 - r) + c1[k] * r + _zoomed(low, i0, wi0, wi1, j0, wj0, wj1, k)
                if striped:
                    pixel[k] = pixel[k] * stripe_factor
            for b in range(count):
                if i < box[b, 0] or i > box[b, 1] or j < box[b, 2] or j > box[b, 3]:
                    continue
                dx, dy = xx[i, j] - blobs[b, 0], yy[i, j] - blobs[b, 1]
                u = (blobs[b, 4] * dx + blobs[b, 5] * dy) / blobs[b, 2]
                v = (-blobs[b, 5] * dx + blobs[b, 4] * dy) / blobs[b, 3]
                if u * u + v * v < 1:
                    for k in range(3):
                        pixel[k] = 0.3 * pixel[k] + blob_colours[b, k]
            for k in range(3):
                img[i, j, k] = min(max(pixel[k] + rng.normal(0.0, 0.02), 0.0), 1.0)
    return img


def _background(rng: np.random.Generator, size: int) -> np.ndarray:
    """(size, size, 3) random textured background in [0, 1]: gradient, noise, stripes, blobs.

    The random draws are made here, in a fixed order; the per-pixel work is
    :func:`_background_pixels`. Scalar trigonometry and the stripes' sine stay numpy's (the
    same values as ever)."""
    yy, xx = _unit_grid(size)
    angle = rng.uniform(0, 2 * math.pi)
    c0, c1 = _random_colour(rng), _random_colour(rng)
    cells = int(rng.integers(3, 10))
    low = rng.normal(scale=rng.uniform(0.05, 0.25), size=(cells, cells, 3))
    stripes, stripe_factor = np.zeros((1, 1), dtype=bool), -1.0
    if rng.random() < 0.5:
        theta = rng.uniform(0, math.pi)
        freq = rng.uniform(3, 20)
        phase = np.cos(theta) * xx + np.sin(theta) * yy
        stripes = np.sin(2 * math.pi * freq * phase) > rng.uniform(-0.5, 0.5)
        stripe_factor = float(rng.uniform(0.5, 0.95))
    count = int(rng.integers(2, 9))
    # Per blob, in draw order: centre x, y, radii x, y, rotation and its colour's hue, saturation,
    # value; one call draws them all (each value ``low + (high - low) * U``, as one call each).
    draws = rng.uniform(_BLOB_LOW, _BLOB_HIGH, size=(count, 8))
    blobs, blob_colours = np.empty((count, 6)), np.empty((count, 3))
    for b in range(count):
        cx, cy, rx, ry, rot, h, s, v = (float(x) for x in draws[b])
        blobs[b] = cx, cy, rx, ry, np.cos(rot), np.sin(rot)
        blob_colours[b] = 0.7 * np.array(colorsys.hsv_to_rgb(h, s, v))
    cos_a, sin_a = float(np.cos(angle)), float(np.sin(angle))
    # Last, the pixel noise, drawn by the kernel: rng.normal(scale=0.02, size=(size, size, 3)).
    return _background_pixels(yy, xx, cos_a, sin_a, c0, c1, low, stripes, stripe_factor, blobs, blob_colours, rng)
