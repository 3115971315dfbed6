"""How the people and the background look: clothing-like colours per part group (shirt, sleeves,
trousers, shoes, skin, hair at the back of the head, dark eyes) and a random textured background
(gradient, low-frequency noise, stripes, blobs)."""

from __future__ import annotations

import math

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


def _person_face_colours(rng: np.random.Generator, body: _Body) -> np.ndarray:
    """(F, 3) clothing-like colour of every face of one person."""
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
    return np.clip(region_colour[body.face_region] * part_tint[body.face_part], 0, 1)


def _background(rng: np.random.Generator, size: int) -> np.ndarray:
    """(size, size, 3) random textured background in [0, 1]: gradient, noise, stripes, blobs."""
    from scipy.ndimage import zoom

    yy, xx = np.mgrid[0:size, 0:size] / size
    angle = rng.uniform(0, 2 * math.pi)
    ramp = (np.cos(angle) * xx + np.sin(angle) * yy)[..., None]
    ramp = (ramp - ramp.min()) / max(np.ptp(ramp), 1e-9)
    c0, c1 = _random_colour(rng), _random_colour(rng)
    img = c0 * (1 - ramp) + c1 * ramp
    cells = int(rng.integers(3, 10))
    low = rng.normal(scale=rng.uniform(0.05, 0.25), size=(cells, cells, 3))
    img = img + zoom(low, (size / cells, size / cells, 1), order=1)[:size, :size]
    if rng.random() < 0.5:
        theta = rng.uniform(0, math.pi)
        freq = rng.uniform(3, 20)
        phase = np.cos(theta) * xx + np.sin(theta) * yy
        stripes = (np.sin(2 * math.pi * freq * phase) > rng.uniform(-0.5, 0.5))[..., None]
        img = np.where(stripes, img * rng.uniform(0.5, 0.95), img)
    for _ in range(int(rng.integers(2, 9))):
        cx, cy = rng.uniform(0, 1, size=2)
        rx, ry = rng.uniform(0.03, 0.3, size=2)
        rot = rng.uniform(0, math.pi)
        dx, dy = xx - cx, yy - cy
        u = (np.cos(rot) * dx + np.sin(rot) * dy) / rx
        v = (-np.sin(rot) * dx + np.cos(rot) * dy) / ry
        blob = (u * u + v * v < 1)[..., None]
        img = np.where(blob, 0.3 * img + 0.7 * _random_colour(rng), img)
    img = img + rng.normal(scale=0.02, size=img.shape)
    return np.clip(img, 0, 1)
