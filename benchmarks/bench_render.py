"""Synthetic-data rendering: the numpy rasteriser vs the former embree ray caster, same run.

Usage: python benchmarks/bench_render.py [--images 20] [--repeats 3] [--image-size 128] [--persons 1]

Renders the same images of `dlearn synth` (stand-in body, the demo's options and noise) with
each renderer (`dlearn.data.raster.RasterScene`, `RayCastScene`), alternating them in each
repeat, and reports the best repeat of each: the renderer alone (building the scene and every
visibility query of an image: pixel centres, sub-pixel samples, DensePose grids, dense points,
keypoints) and the whole image (posing, shading, background, PNG, annotations). Target: the
renderer >= 10x the ray caster's images/s. One process, one torch thread (like a worker).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from summary import record

from dlearn.body.standin import write_standin
from dlearn.data import synth
from dlearn.data.raster import RasterScene, RayCastScene

TARGET_RATIO = 10.0


def timed(scene_type: type) -> type:
    """``scene_type`` whose construction and outermost queries add their seconds to ``.seconds``."""

    class Timed(scene_type):  # type: ignore[misc, valid-type]
        seconds = 0.0
        cpu_seconds = 0.0
        depth = 0

        def __init__(self, *args: Any) -> None:
            start, cpu = time.perf_counter(), time.process_time()
            super().__init__(*args)
            Timed.seconds += time.perf_counter() - start
            Timed.cpu_seconds += time.process_time() - cpu

        def _timed(self, method: Any, *args: Any, **kwargs: Any) -> Any:
            Timed.depth += 1  # the ray caster's grid calls its cast: count the outer call only
            start, cpu = time.perf_counter(), time.process_time()
            try:
                return method(*args, **kwargs)
            finally:
                Timed.depth -= 1
                if Timed.depth == 0:
                    Timed.seconds += time.perf_counter() - start
                    Timed.cpu_seconds += time.process_time() - cpu

        def grid(self, *args: Any, **kwargs: Any) -> Any:
            return self._timed(super().grid, *args, **kwargs)

        def cast(self, *args: Any, **kwargs: Any) -> Any:
            return self._timed(super().cast, *args, **kwargs)

    return Timed


def render(body: Any, options: synth.SynthOptions, scene_type: type, images: int, out: Path) -> np.ndarray:
    """Seconds for ``images`` whole images and of them in the renderer: wall clock, then CPU
    time of this process (steadier on a busy machine)."""
    scene = timed(scene_type)
    start, cpu = time.perf_counter(), time.process_time()
    for i in range(images):
        synth._render_image(body, options, 0, i, out, False, scene)
    wall, cpu = time.perf_counter() - start, time.process_time() - cpu
    return np.array([wall, scene.seconds, cpu, scene.cpu_seconds])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--image-size", type=int, default=128)
    parser.add_argument("--persons", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(1)

    noise = synth.NoiseOptions(
        dense_jitter_px=0.5, keypoint_jitter_px=1.0, part_confusion=0.02, missing_keypoints=0.02
    )
    options = replace(
        synth.SynthOptions(), image_size=args.image_size, persons_per_image=args.persons, noise=noise
    )
    baseline, new = "ray caster (embree, baseline)", "rasteriser (numpy)"
    renderers = {baseline: RayCastScene, new: RasterScene}
    best = {name: np.full(4, np.inf) for name in renderers}
    with tempfile.TemporaryDirectory() as tmp:
        body = synth._Body(*write_standin(Path(tmp) / "standin"))
        for scene_type in renderers.values():  # warm-up: imports, caches
            render(body, options, scene_type, 1, Path(tmp))
        for _ in range(args.repeats):
            for name, scene_type in renderers.items():
                best[name] = np.minimum(best[name], render(body, options, scene_type, args.images, Path(tmp)))

    n = args.images
    print(
        f"{n} images of {args.image_size} px, {args.persons} person(s) each; best of {args.repeats} repeats"
    )
    print(
        f"{'images/s':<32}{'renderer':>10}{'ratio':>7}{'whole':>9}{'ratio':>7}"
        f"{'renderer CPU':>14}{'ratio':>7}{'whole CPU':>11}{'ratio':>7}"
    )
    for name in renderers:
        rate, ratio = n / best[name], best[baseline] / best[name]
        print(f"{name:<32}{rate[1]:>10.1f}{ratio[1]:>7.1f}{rate[0]:>9.1f}{ratio[0]:>7.1f}"
              f"{rate[3]:>14.1f}{ratio[3]:>7.1f}{rate[2]:>11.1f}{ratio[2]:>7.1f}")  # fmt: skip
    ratio = best[baseline] / best[new]
    verdict = "ok" if ratio[1] >= TARGET_RATIO else "MISSED"
    print(f"renderer: {ratio[1]:.1f}x the ray caster's images/s (CPU time {ratio[3]:.1f}x; target >= "
          f"{TARGET_RATIO:.0f}x: {verdict}); whole image {ratio[0]:.1f}x (CPU {ratio[2]:.1f}x); the renderer's "
          f"share of an image: {best[baseline][1] / best[baseline][0]:.0%} -> {best[new][1] / best[new][0]:.0%}")  # fmt: skip
    record("synthetic rendering", f"{n / best[new][1]:,.0f} images/s (whole image {n / best[new][0]:,.0f})",
           "embree ray caster", ratio[1], f">= {TARGET_RATIO:.0f}x", ratio[1] >= TARGET_RATIO)  # fmt: skip


if __name__ == "__main__":
    main()
