"""Synthetic-data rendering: the rasteriser vs the former embree ray caster, and the whole
`dlearn synth` stage of this checkout vs a baseline revision, measured in the same run.

Usage: python benchmarks/bench_render.py [--images 20] [--repeats 3] [--image-size 128] [--persons 1]
       [--stage-images 400] [--baseline-rev 218f759^] [--stage-repeats 2]

1. Renderer: renders the same images of `dlearn synth` (stand-in body, the demo's options and
   noise) with each renderer (`dlearn.data.raster.RasterScene`, `RayCastScene`) through this
   checkout's pipeline, alternating them in each repeat, and reports the best repeat of each: the
   renderer alone (building the scene and every visibility query of an image: pixel centres,
   sub-pixel samples, DensePose grids (their face and value maps), dense points, keypoints) and
   the whole image (posing, shading, background, PNG, annotations). A fresh process per renderer
   and repeat (embree's idle thread would slow down what runs after it).
2. Stage (issue 20.2: target >= 10x images/s): `python -m dlearn synth` (the demo's settings: 128
   px, 1 person, 100 dense points, the default noise; one worker; --stage-images train images,
   no test split) of this checkout and of ``--baseline-rev`` (exported with `git archive`; the
   default, 218f759^, is the embree ray caster's synth, 12 images/s per worker when measured;
   16c9e52, the numpy z-buffer, was an intermediate step), alternating them, best of
   ``--stage-repeats``. Reports the rendering images/s that synth logs: all images over the time
   from the first image's task to the last record, so it includes the worker's one-off start-up
   (loading the body, numba's cache, the first calls' imports: ~0.5 s here, hence 400 images by
   default, so that it does not dominate), not the imports before it, the result files or the
   contact sheet; and the stage's wall time (with them: a fixed few seconds of imports and
   matplotlib's contact sheet). Skipped, with a note, outside a git checkout or where the revision
   is missing. OMP_NUM_THREADS=1 throughout.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import re
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from summary import record

# Measure this checkout's package, not whichever checkout the environment's editable install
# points at (another worktree, or main).
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from dlearn.body.standin import write_standin
from dlearn.data.raster import RasterScene, RayCastScene
from dlearn.data.synth import NoiseOptions, SynthOptions
from dlearn.data.synth.body import _Body
from dlearn.data.synth.image import _render_image

TARGET_RATIO = 10.0
REPO = Path(__file__).resolve().parent.parent
#: The embree ray caster's synth (the parent of the commit that introduced the z-buffer).
DEFAULT_BASELINE = "218f759^"
NOISE_ARGS = ["--noise-dense-jitter-px", "0.5", "--noise-keypoint-jitter-px", "1.0",
              "--noise-part-confusion", "0.02", "--noise-missing-keypoints", "0.02"]  # fmt: skip


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

        def grid_faces(self, *args: Any, **kwargs: Any) -> Any:
            return self._timed(super().grid_faces, *args, **kwargs)

        def grid_values(self, *args: Any, **kwargs: Any) -> Any:
            return self._timed(super().grid_values, *args, **kwargs)

        def cast(self, *args: Any, **kwargs: Any) -> Any:
            return self._timed(super().cast, *args, **kwargs)

    return Timed


def render(body: Any, options: SynthOptions, scene_type: type, images: int, out: Path) -> np.ndarray:
    """Seconds for ``images`` whole images and of them in the renderer: wall clock, then CPU
    time of this process (steadier on a busy machine)."""
    scene = timed(scene_type)
    start, cpu = time.perf_counter(), time.process_time()
    for i in range(images):
        _render_image(body, options, 0, i, out, False, scene)
    wall, cpu = time.perf_counter() - start, time.process_time() - cpu
    return np.array([wall, scene.seconds, cpu, scene.cpu_seconds])


def render_in_fresh_process(
    body_files: tuple[Path, Path], options: dict[str, Any], renderer: str, images: int, out: str
) -> np.ndarray:
    """:func:`render` in a process of its own (run by a 1-process spawn pool): once embree has
    run, its idle worker thread keeps competing for the core and halves the wall-clock rate of
    whatever runs next in that process, so the renderers must not share one."""
    torch.set_num_threads(1)
    import dlearn

    assert Path(dlearn.__file__).resolve().is_relative_to(REPO), dlearn.__file__
    body = _Body(*body_files)
    scene_type = {"RayCastScene": RayCastScene, "RasterScene": RasterScene}[renderer]
    render(body, SynthOptions.from_dict(options), scene_type, 1, Path(out))  # warm-up: imports, caches
    return render(body, SynthOptions.from_dict(options), scene_type, images, Path(out))


def export_revision(rev: str, folder: Path) -> Path | None:
    """The tree of git revision ``rev`` of this repository, exported into ``folder``; None (with a
    note) when this is no git checkout or the revision is unknown."""
    try:
        archive = subprocess.run(["git", "-C", str(REPO), "archive", rev], capture_output=True, check=True)
    except (OSError, subprocess.CalledProcessError) as error:
        print(f"stage benchmark skipped: cannot export revision {rev!r} ({error})")
        return None
    folder.mkdir(parents=True)
    subprocess.run(["tar", "-x", "-C", str(folder)], input=archive.stdout, check=True)
    return folder


def synth_stage(tree: Path, body: tuple[Path, Path], out: Path, images: int) -> tuple[float, float]:
    """(wall seconds of `python -m dlearn synth` run on ``tree``'s package, the images/s of
    rendering that it logs)."""
    env = dict(os.environ, PYTHONPATH=str(tree), OMP_NUM_THREADS="1")
    command = [sys.executable, "-m", "dlearn", "synth", "--body-model", str(body[0]), "--uv", str(body[1]),
               "--out", str(out), "--num-train", str(images), "--num-test", "0", "--workers", "1", *NOISE_ARGS]  # fmt: skip
    start = time.perf_counter()
    proc = subprocess.run(command, check=False, cwd=tree, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        raise RuntimeError(f"synth failed in {tree}:\n{proc.stderr[-2000:]}")
    rates = re.findall(r"([\d.]+) images/s", proc.stderr + proc.stdout)
    return wall, float(rates[-1]) if rates else float("nan")


def stage(args: argparse.Namespace, body: tuple[Path, Path], tmp: Path) -> None:
    """Section 2: the whole synth stage, this checkout vs ``args.baseline_rev``."""
    baseline = export_revision(args.baseline_rev, tmp / "baseline")
    if baseline is None:
        return
    trees = {f"baseline {args.baseline_rev}": baseline, "this checkout": REPO}
    best = {name: np.array([np.inf, 0.0]) for name in trees}  # wall (min), images/s (max)
    for tree in trees.values():  # warm-up: numba's compile cache, the OS file cache
        synth_stage(tree, body, tmp / "warm", 2)
    for _ in range(args.stage_repeats):
        for name, tree in trees.items():
            wall, rate = synth_stage(tree, body, tmp / "stage", args.stage_images)
            best[name] = np.array([min(best[name][0], wall), max(best[name][1], rate)])
    load = os.getloadavg()[0]
    n = args.stage_images
    print(f"\n`dlearn synth` stage: {n} images of 128 px, 1 person, one worker; best of {args.stage_repeats} "
          f"(load average {load:.1f})")  # fmt: skip
    print(
        f"{'':<26}{'rendering images/s':>20}{'ratio':>7}{'stage wall s':>14}{'stage images/s':>16}{'ratio':>7}"
    )
    old = best[f"baseline {args.baseline_rev}"]
    for name in trees:
        wall, rate = best[name]
        print(
            f"{name:<26}{rate:>20.1f}{rate / old[1]:>7.1f}{wall:>14.1f}{n / wall:>16.1f}{old[0] / wall:>7.1f}"
        )
    new = best["this checkout"]
    ratio = new[1] / old[1]
    print(f"synth rendering: {ratio:.1f}x the baseline's images/s (target >= {TARGET_RATIO:.0f}x: "
          f"{'ok' if ratio >= TARGET_RATIO else 'MISSED'}); whole stage with its fixed costs {old[0] / new[0]:.1f}x")  # fmt: skip
    record("synth stage (rendering)", f"{new[1]:,.0f} images/s (stage {n / new[0]:,.1f}/s incl. start-up)",
           f"rev {args.baseline_rev}", ratio, f">= {TARGET_RATIO:.0f}x", ratio >= TARGET_RATIO)  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--image-size", type=int, default=128)
    parser.add_argument("--persons", type=int, default=1)
    parser.add_argument("--stage-images", type=int, default=400)
    parser.add_argument("--stage-repeats", type=int, default=2)
    parser.add_argument("--baseline-rev", default=DEFAULT_BASELINE)
    args = parser.parse_args()
    torch.set_num_threads(1)

    noise = NoiseOptions(
        dense_jitter_px=0.5, keypoint_jitter_px=1.0, part_confusion=0.02, missing_keypoints=0.02
    )
    options = replace(SynthOptions(), image_size=args.image_size, persons_per_image=args.persons, noise=noise)
    baseline, new = "ray caster (embree, baseline)", "rasteriser (numba)"
    renderers = {baseline: "RayCastScene", new: "RasterScene"}
    best = {name: np.full(4, np.inf) for name in renderers}
    with tempfile.TemporaryDirectory() as tmp:
        body_files = write_standin(Path(tmp) / "standin")
        context = multiprocessing.get_context("spawn")
        for _ in range(args.repeats):
            for name, renderer in renderers.items():
                with context.Pool(1) as pool:
                    seconds = pool.apply(
                        render_in_fresh_process, (body_files, options.to_dict(), renderer, args.images, tmp)
                    )
                best[name] = np.minimum(best[name], seconds)

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
    if args.stage_images > 0:
        with tempfile.TemporaryDirectory() as tmp:
            stage(args, write_standin(Path(tmp) / "standin"), Path(tmp))


if __name__ == "__main__":
    main()
