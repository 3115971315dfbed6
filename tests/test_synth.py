"""The synthetic DensePose-COCO generator: format, exactness of the ground truth, determinism,
noise, camera coverage and keypoint visibility."""

from __future__ import annotations

import contextlib
import io
import json
from dataclasses import replace
from pathlib import Path

import numba
import numpy as np
import pytest
import torch
import zarr
from pycocotools.coco import COCO
from scipy.spatial.transform import Rotation

from dlearn.body.io import load_body_model
from dlearn.body.model import BodyModel
from dlearn.data.store import open_store, read_sample_ids
from dlearn.data.synth import (
    COARSE_PART,
    NoiseOptions,
    SynthOptions,
    sample_camera,
    sample_pose,
    sample_scales,
    synthesize,
)
from dlearn.data.synth.appearance import _zoom_axis, _zoomed
from dlearn.densepose.coco import DP_GRID, decode_dp_masks, read_densepose_coco
from dlearn.densepose.uv import face_chart_corners, load_uv_charts

BASE = SynthOptions(num_train=6, num_test=3, image_size=96, seed=3, dense_points_per_person=60, workers=2)
NOISE = NoiseOptions(dense_jitter_px=1.5, keypoint_jitter_px=2.0, part_confusion=0.5, missing_keypoints=0.3)


@pytest.fixture(scope="module")
def runs(standin_files: tuple[Path, Path], tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Tiny datasets, generated once: the base (2 workers), the same with 1 worker, another
    seed, the base with noise, and several persons per image."""
    model, uv = standin_files
    root = tmp_path_factory.mktemp("synth")
    configs = {
        "base": BASE,
        "one_worker": replace(BASE, workers=1),
        "other_seed": replace(BASE, seed=4, workers=1),
        "noisy": replace(BASE, workers=1, noise=NOISE),
        "multi": replace(BASE, num_train=3, num_test=1, persons_per_image=3, workers=1),
    }
    out = {}
    for name, options in configs.items():
        summary = synthesize(model, uv, root / name, options)
        assert summary["images"] == {"train": options.num_train, "test": options.num_test}
        assert summary["images_per_second"] > 0
        out[name] = root / name
    return out


@pytest.fixture(scope="module")
def body(standin_files: tuple[Path, Path]) -> tuple[BodyModel, np.ndarray, np.ndarray, object]:
    model_path, uv_path = standin_files
    data = load_body_model(model_path)
    charts = load_uv_charts(uv_path)
    return BodyModel(data), data.faces, data.keypoint_regressor, charts


def _coco(path: Path) -> COCO:
    with contextlib.redirect_stdout(io.StringIO()):
        return COCO(str(path))


def _gt(root: Path, split: str) -> dict[str, np.ndarray]:
    group = open_store(root / f"gt_{split}.zarr", stage="synth")
    arrays = {name: np.asarray(group[name][...]) for name in group.array_keys()}
    arrays["sample_id"] = np.asarray(read_sample_ids(group))
    return arrays


def _project(points: np.ndarray, gt: dict[str, np.ndarray], i: int) -> np.ndarray:
    r, s, t = (gt[k][i].astype(np.float64) for k in ("cam_rotation", "cam_scale", "cam_translation"))
    return s * (points @ r.T)[:, :2] + t


def test_files_and_coco_format(runs: dict[str, Path]) -> None:
    root = runs["base"]
    assert (root / "contact_sheet.png").is_file()
    image_ids: dict[str, set[int]] = {}
    ann_ids: dict[str, set[int]] = {}
    for split in ("train", "test"):
        coco = _coco(root / f"densepose_{split}.json")
        image_ids[split] = set(coco.imgs)
        ann_ids[split] = set(coco.anns)
        assert coco.cats[1]["name"] == "person" and len(coco.cats[1]["keypoints"]) == 17
        for img in coco.imgs.values():
            assert (root / img["file_name"]).is_file()
            assert img["file_name"] == f"images/{split}/{img['id']:07d}.png"
        for ann in coco.anns.values():
            mask = coco.annToMask(ann)
            assert mask.sum() == ann["area"] > 0
            rows, cols = np.flatnonzero(mask.any(1)), np.flatnonzero(mask.any(0))
            assert ann["bbox"] == [cols[0], rows[0], cols[-1] + 1 - cols[0], rows[-1] + 1 - rows[0]]
            assert isinstance(ann["segmentation"]["counts"], str)
            assert len(ann["keypoints"]) == 51 and len(ann["dp_masks"]) == 14
            assert len(ann["dp_x"]) == BASE.dense_points_per_person
            kp = np.asarray(ann["keypoints"]).reshape(17, 3)
            assert ann["num_keypoints"] == int((kp[:, 2] > 0).sum())
            assert np.all(kp[kp[:, 2] == 0, :2] == 0)

        samples, report = read_densepose_coco(root / f"densepose_{split}.json", root)
        assert report.kept == len(coco.anns) and not report.skipped
        gt = _gt(root, split)
        assert list(gt["sample_id"]) == [s.sample_id for s in samples]
        agree = total = 0
        for sample in samples:
            coarse = decode_dp_masks(sample)  # every non-empty RLE decodes
            assert all(rle == [] or isinstance(rle["counts"], str) for rle in sample.dp_masks)
            x0, y0, w, h = sample.bbox
            col = np.clip(((sample.dense_xy[:, 0] - x0) * DP_GRID / w).astype(int), 0, DP_GRID - 1)
            row = np.clip(((sample.dense_xy[:, 1] - y0) * DP_GRID / h).astype(int), 0, DP_GRID - 1)
            agree += int((coarse[row, col] == COARSE_PART[sample.dense_part]).sum())
            total += len(sample.dense_part)
        assert agree / total > 0.97
    assert not image_ids["train"] & image_ids["test"] and not ann_ids["train"] & ann_ids["test"]


@pytest.mark.parametrize("run", ["base", "multi"])
def test_dense_points_and_keypoints_are_exact(runs: dict[str, Path], body, run: str) -> None:
    model, faces, kp_regressor, charts = body
    chart_corners, face_part = face_chart_corners(charts, faces)
    assert np.array_equal(charts.vertex[chart_corners], faces)
    root = runs[run]
    for split in ("train", "test"):
        samples, _ = read_densepose_coco(root / f"densepose_{split}.json", root)
        gt = _gt(root, split)
        with torch.no_grad():
            out = model(torch.as_tensor(gt["pose"]), torch.as_tensor(gt["scales"]))
        verts, joints = out.vertices.double().numpy(), out.joints.double().numpy()
        # The annotations' keypoints are the model's regressed surface points, not its joints.
        kp3d = np.einsum("kv,nvc->nkc", kp_regressor, verts)
        np.testing.assert_allclose(kp3d, gt["keypoints3d"], atol=1e-5)
        np.testing.assert_allclose(joints, gt["joints3d"], atol=1e-5)
        offsets = gt["dense_offsets"]
        for i, sample in enumerate(samples):
            face = gt["dense_face"][offsets[i] : offsets[i + 1]]
            bary = gt["dense_bary"][offsets[i] : offsets[i + 1]].astype(np.float64)
            assert len(face) == len(sample.dense_xy) > 0
            np.testing.assert_allclose(bary.sum(1), 1.0, atol=1e-6)
            assert bary.min() >= 0
            surface = np.einsum("pk,pkd->pd", bary, verts[i][faces[face]])
            err = np.abs(_project(surface, gt, i) - sample.dense_xy).max()
            assert err < 1e-3, f"{sample.sample_id}: dense point off by {err} px"
            assert np.array_equal(face_part[face], sample.dense_part)
            uv = np.stack(
                [
                    (bary * charts.u[chart_corners[face]]).sum(1),
                    (bary * charts.v[chart_corners[face]]).sum(1),
                ],
                1,
            )
            np.testing.assert_allclose(uv, sample.dense_uv, atol=1e-6)
            kp = sample.keypoints
            labelled = kp[:, 2] > 0
            assert labelled.sum() >= 10
            proj = _project(gt["keypoints3d"][i].astype(np.float64), gt, i)
            assert np.abs(proj[labelled] - kp[labelled, :2]).max() < 1e-3
            np.testing.assert_array_equal(gt["bbox"][i], sample.bbox)


def test_deterministic_and_seed_dependent(runs: dict[str, Path]) -> None:
    base, one, other = runs["base"], runs["one_worker"], runs["other_seed"]
    for split in ("train", "test"):
        name = f"densepose_{split}.json"
        assert (base / name).read_bytes() == (one / name).read_bytes()
        assert (base / name).read_bytes() != (other / name).read_bytes()
        a, b, c = _gt(base, split), _gt(one, split), _gt(other, split)
        assert a.keys() == b.keys()
        for key in a:
            np.testing.assert_array_equal(a[key], b[key], err_msg=key)
        assert not np.array_equal(a["pose"], c["pose"])
        for png in sorted((base / "images" / split).glob("*.png")):
            assert png.read_bytes() == (one / "images" / split / png.name).read_bytes()
    attrs = zarr.open_group(base / "gt_train.zarr", mode="r").attrs
    assert attrs["options"]["seed"] == BASE.seed and "camera" in attrs


def test_noise_does_what_it_says(runs: dict[str, Path]) -> None:
    exact, noisy = runs["base"], runs["noisy"]
    dense_shift, kp_shift, dropped, labelled, changed, points = [], [], 0, 0, 0, 0
    for split in ("train", "test"):
        a, _ = read_densepose_coco(exact / f"densepose_{split}.json", exact)
        b, _ = read_densepose_coco(noisy / f"densepose_{split}.json", noisy)
        ga, gb = _gt(exact, split), _gt(noisy, split)
        # Noise is drawn after the scene: the same bodies and the same true surface points.
        for key in ("pose", "dense_face", "dense_bary", "keypoints3d"):
            np.testing.assert_array_equal(ga[key], gb[key])
        for sa, sb in zip(a, b):
            dense_shift.append(sb.dense_xy - sa.dense_xy)
            changed += int((sa.dense_part != sb.dense_part).sum())
            points += len(sa.dense_part)
            was = sa.keypoints[:, 2] > 0
            labelled += int(was.sum())
            kept = was & (sb.keypoints[:, 2] > 0)
            dropped += int((was & (sb.keypoints[:, 2] == 0)).sum())
            assert np.all(sb.keypoints[sb.keypoints[:, 2] == 0, :2] == 0)
            kp_shift.append(sb.keypoints[kept, :2] - sa.keypoints[kept, :2])
    dense = np.concatenate(dense_shift)
    kps = np.concatenate(kp_shift)
    assert 0.7 * NOISE.dense_jitter_px < dense.std() < 1.2 * NOISE.dense_jitter_px
    assert 0.7 * NOISE.keypoint_jitter_px < kps.std() < 1.3 * NOISE.keypoint_jitter_px
    assert 0.15 < dropped / labelled < 0.45
    assert 0.01 < changed / points < 0.5  # only points near a part boundary can change


def test_camera_yaw_covers_back_views_and_stays_upright() -> None:
    rng = np.random.default_rng(0)
    rotations = np.stack([sample_camera(rng)[0] for _ in range(2000)])
    forward_z = rotations[:, 2, 2]  # camera z of the body's +z (forward) axis: > 0 = facing away
    assert 0.4 < (forward_z > 0).mean() < 0.6
    assert (forward_z > 0.9).any() and (forward_z < -0.9).any()
    up = rotations[:, :, 1]  # image of the body's up axis; image y points down
    tilt = np.degrees(np.arccos(np.clip(-up[:, 1], -1, 1)))
    assert tilt.max() < 22 and np.median(tilt) < 10
    np.testing.assert_allclose(np.linalg.det(rotations), 1.0, atol=1e-9)


def test_back_views_present_and_nose_hidden_from_behind(runs: dict[str, Path]) -> None:
    root = runs["base"]
    facing_away = facing = 0
    for split in ("train", "test"):
        samples, _ = read_densepose_coco(root / f"densepose_{split}.json", root)
        gt = _gt(root, split)
        for i, sample in enumerate(samples):
            kp3d = gt["keypoints3d"][i].astype(np.float64)
            gaze = kp3d[0] - 0.5 * (kp3d[3] + kp3d[4])  # nose minus the middle of the ears
            gaze_z = (gt["cam_rotation"][i] @ gaze)[2] / np.linalg.norm(gaze)
            nose_v = sample.keypoints[0, 2]
            if gaze_z > 0.5 and nose_v > 0:
                facing_away += 1
                assert nose_v == 1, f"{sample.sample_id}: nose seen from behind must be occluded"
            if gaze_z < -0.5 and nose_v == 2:
                facing += 1
    assert facing_away >= 1 and facing >= 1


def test_pose_prior_respects_hinge_joints() -> None:
    rng = np.random.default_rng(1)
    poses = np.stack([sample_pose(rng)[0] for _ in range(500)])
    left_knee, right_knee, left_elbow, right_elbow = poses[:, 3], poses[:, 4], poses[:, 17], poses[:, 18]
    assert left_knee[:, 0].min() > -0.2 and right_knee[:, 0].min() > -0.2  # shin bends backward only
    assert left_knee[:, 0].max() > 1.5
    assert left_elbow[:, 1].max() < 0.2 and right_elbow[:, 1].min() > -0.2  # forearm one way only
    assert np.abs(poses).max() < np.pi
    scales = np.stack([sample_scales(rng, 0.08, np.array(load_parents())) for _ in range(200)])
    assert 0.7 < scales.min() and scales.max() < 1.35 and 0.04 < np.log(scales).std() < 0.15


def load_parents() -> list[int]:
    from dlearn.body.io import SMPL_PARENTS

    return SMPL_PARENTS.tolist()


def test_multi_person_ids_and_occlusion(runs: dict[str, Path]) -> None:
    root = runs["multi"]
    coco = _coco(root / "densepose_train.json")
    per_image = [len(coco.getAnnIds(imgIds=[i])) for i in coco.imgs]
    assert max(per_image) >= 2 and max(per_image) <= 3
    # Persons of one image never share a pixel.
    for image_id in coco.imgs:
        masks = [coco.annToMask(a) for a in coco.loadAnns(coco.getAnnIds(imgIds=[image_id]))]
        assert np.sum(masks, axis=0).max() <= 1


def test_options_are_validated(standin_files: tuple[Path, Path], tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="persons_per_image"):
        synthesize(*standin_files, tmp_path, SynthOptions(persons_per_image=0))
    with pytest.raises(ValueError, match="unknown"):
        SynthOptions.from_dict({"num_train": 1, "bogus": 2})
    options = SynthOptions.from_dict({"num_train": 2, "noise": {"dense_jitter_px": 1.0}})
    assert options.noise.dense_jitter_px == 1.0
    assert SynthOptions.from_dict(json.loads(json.dumps(options.to_dict()))) == options


def test_face_chart_corners_tolerates_a_few_uncharted_faces(body) -> None:
    from dlearn.densepose.uv import UVChartError

    _, faces, _, charts = body
    corners, part = face_chart_corners(charts, faces)
    assert part.min() >= 1 and np.array_equal(charts.vertex[corners], faces)
    # Real DensePose charts leave 2 of SMPL's faces out: those get part 0, no chart corners.
    drop = np.ones(charts.num_faces, dtype=bool)
    drop[:2] = False
    fewer = replace(charts, faces=charts.faces[drop], face_part=charts.face_part[drop])
    corners2, part2 = face_chart_corners(fewer, faces)
    assert (part2 == 0).sum() == 2 and np.all(corners2[part2 == 0] == -1)
    np.testing.assert_array_equal(part2[part2 > 0], part[part2 > 0])
    drop[: charts.num_faces // 10] = False
    with pytest.raises(UVChartError, match="in no chart"):
        face_chart_corners(replace(charts, faces=charts.faces[drop], face_part=charts.face_part[drop]), faces)


# --------------------------------------------------------------------------------------------
# The numba kernels of the appearance and shading against the former numpy code (bit for bit)


def _numpy_background(rng: np.random.Generator, size: int) -> np.ndarray:
    """The former numpy/scipy background (16c9e52), the reference of the kernels."""
    import colorsys
    import math

    from scipy.ndimage import zoom

    def _random_colour(rng: np.random.Generator) -> np.ndarray:
        h, s, v = rng.uniform(0, 1), rng.uniform(0.2, 0.9), rng.uniform(0.2, 0.95)
        return np.array(colorsys.hsv_to_rgb(h, s, v))

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


@pytest.mark.parametrize("size", [64, 96, 128, 200])
def test_background_kernels_give_the_numpy_bits(size: int) -> None:
    from scipy.ndimage import zoom

    from dlearn.data.synth.appearance import _background

    for seed in range(12):
        a, b = np.random.default_rng([seed, size]), np.random.default_rng([seed, size])
        np.testing.assert_array_equal(_background(a, size), _numpy_background(b, size))
        assert a.random() == b.random()  # the same draws, in the same order
    rng = np.random.default_rng(size)
    for cells in range(3, 10):
        low = rng.normal(size=(cells, cells, 3))
        want = zoom(low, (size / cells, size / cells, 1), order=1)[:size, :size]
        np.testing.assert_array_equal(_zoom_all(low, size), want)


@numba.njit
def _zoom_all(low: np.ndarray, size: int) -> np.ndarray:
    """The background's zoom of ``low`` (n, n, C) to (size, size, C), pixel by pixel."""
    start, w = _zoom_axis(low.shape[0], size)
    out = np.empty((len(start), len(start), low.shape[2]))
    for i in range(len(start)):
        for j in range(len(start)):
            for c in range(low.shape[2]):
                out[i, j, c] = _zoomed(low, start[i], w[i, 0], w[i, 1], start[j], w[j, 0], w[j, 1], c)
    return out


def _numpy_vertex_normals(vertices: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """The former numpy vertex normals: area-weighted face normals summed by np.bincount."""
    tri = vertices[faces]
    fn = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
    corner = faces.T.ravel()
    vn = np.column_stack([np.bincount(corner, np.tile(fn[:, d], 3), len(vertices)) for d in range(3)])
    return vn / np.maximum(np.linalg.norm(vn, axis=1, keepdims=True), 1e-12)


def _numpy_uv(charts, face_chart: np.ndarray, face: np.ndarray, lam: np.ndarray) -> np.ndarray:
    """The former numpy ``_uv_of``: einsum of the barycentrics and the corners' chart coordinates."""
    chart = face_chart[face]
    charted = (chart >= 0).all(axis=1, keepdims=True)
    chart = np.maximum(chart, 0)
    u = np.einsum("hk,hk->h", lam, charts.u[chart])
    v = np.einsum("hk,hk->h", lam, charts.v[chart])
    return np.where(charted, np.clip(np.column_stack([u, v]), 0.0, 1.0), 0.0)


def _numpy_shading(scene, body, persons, light, ambient, background, exposure, noise) -> np.ndarray:
    """The former shading (16c9e52): hits of the sub-pixel lattice, interpolated vertex normals,
    Lambert, then the 2 x 2 mean over the background, exposure, noise, 8 bits. The Lambert dot
    product is summed in axis order (the former BLAS product's order is the library's)."""
    size = background.shape[0]
    index, hits = scene.grid(0.25, 0.25, 0.5, 0.5, 2 * size, 2 * size)
    vn = _numpy_vertex_normals(scene.vertices, scene.faces)
    corner = scene.faces[hits.person * scene.num_faces + hits.face]
    normal = np.einsum("hk,hkd->hd", hits.bary, vn[corner])
    normal /= np.maximum(np.linalg.norm(normal, axis=1, keepdims=True), 1e-12)
    lambert = np.abs((normal[:, 0] * light[0] + normal[:, 1] * light[1]) + normal[:, 2] * light[2])
    base = np.stack([p.colours for p in persons])[hits.person, body.face_colour_key[hits.face]]
    samples = np.repeat(np.repeat(background, 2, axis=0), 2, axis=1).reshape(-1, 3)
    samples[index] = base * (ambient + (1 - ambient) * lambert)[:, None]
    samples = samples.reshape(size, 2, size, 2, 3)
    rgb = np.zeros((size * size, 3))
    for sx, sy in ((0, 0), (1, 0), (0, 1), (1, 1)):
        rgb += samples[:, sy, :, sx].reshape(-1, 3)
    rgb = rgb / 4.0 * exposure + noise
    return (np.clip(rgb, 0, 1).reshape(size, size, 3) * 255 + 0.5).astype(np.uint8)


def test_vertex_normals_give_the_numpy_bits(standin_files: tuple[Path, Path]) -> None:
    from dlearn.data.synth.render import _vertex_normals

    data = load_body_model(standin_files[0])
    vertices = data.v_template + np.random.default_rng(4).normal(scale=0.01, size=data.v_template.shape)
    np.testing.assert_array_equal(_vertex_normals(vertices, data.faces), _numpy_vertex_normals(vertices, data.faces))


@pytest.mark.parametrize("persons", [1, 3])
def test_shading_and_iuv_kernels_give_the_numpy_bits(standin_files: tuple[Path, Path], persons: int) -> None:
    """The shaded image and the IUV image and person map of whole scenes, and chart coordinates
    of random hits, against the former numpy code."""
    from dlearn.data.raster import RasterScene
    from dlearn.data.synth.body import _Body, _uv_of
    from dlearn.data.synth.render import _rasterise_centres, _shade_kernel, _vertex_normals
    from dlearn.data.synth.scene import _sample_persons, _to_pixels

    body = _Body(*standin_files)
    size = 64
    for index in range(2):
        rng = np.random.default_rng([4, persons, index])
        people = _sample_persons(rng, body, SynthOptions(image_size=size, persons_per_image=persons))
        scene = RasterScene([_to_pixels(p.vertices, p) for p in people], body.faces)
        light = rng.normal(size=3)
        light /= np.linalg.norm(light)
        background = rng.random((size, size, 3))
        noise_rng, kernel_rng = np.random.default_rng([index, 1]), np.random.default_rng([index, 1])
        noise = noise_rng.normal(scale=0.01, size=(size * size, 3))
        got = _shade_kernel(
            scene.grid_faces(0.25, 0.25, 0.5, 0.5, 2 * size, 2 * size), scene.vertices, scene.faces,
            scene.num_faces, _vertex_normals(scene.vertices, scene.faces), np.stack([p.colours for p in people]),
            body.face_colour_key, light, 0.4, background, 1.07, kernel_rng,
        )  # fmt: skip
        np.testing.assert_array_equal(got, _numpy_shading(scene, body, people, light, 0.4, background, 1.07, noise))
        assert kernel_rng.random() == noise_rng.random()  # the kernel drew the same noise
        person_map, iuv = _rasterise_centres(scene, body, size)
        hit, hits = scene.grid(0.5, 0.5, 1.0, 1.0, size, size)
        want_map, want_iuv = np.full(size * size, -1), np.zeros((size * size, 3), np.float32)
        want_map[hit] = hits.person
        want_iuv[hit, 0] = body.face_part[hits.face]
        want_iuv[hit, 1:] = _numpy_uv(body.charts, body.face_chart, hits.face, hits.bary)
        np.testing.assert_array_equal(person_map.ravel(), want_map)
        np.testing.assert_array_equal(iuv.reshape(-1, 3), want_iuv)
        map_only, no_iuv = _rasterise_centres(scene, body, size, with_iuv=False)
        assert no_iuv is None
        np.testing.assert_array_equal(map_only, person_map)
    face = rng.integers(0, len(body.faces), 2000)
    lam = rng.dirichlet(np.ones(3), 2000)
    np.testing.assert_array_equal(_uv_of(body, face, lam), _numpy_uv(body.charts, body.face_chart, face, lam))


def test_png_writer_round_trips_through_pillow() -> None:
    import io

    from PIL import Image

    from dlearn.data.synth.write import _png_bytes

    rng = np.random.default_rng(0)
    for shape in ((1, 1, 3), (5, 7, 3), (128, 128, 3), (33, 200, 3)):
        image = rng.integers(0, 256, size=shape, dtype=np.uint8)
        decoded = Image.open(io.BytesIO(_png_bytes(image)))
        assert decoded.format == "PNG" and decoded.mode == "RGB"
        np.testing.assert_array_equal(np.asarray(decoded), image)


# --------------------------------------------------------------------------------------------
# The DensePose grid's part masks: one kernel against pycocotools and the former numpy code


def _numpy_dp_masks(scene, body, k: int, box: tuple[float, float, float, float]) -> list:
    """The former ``_dp_masks`` (grid hits, a coarse label image, one pycocotools encode of the
    stacked masks), the reference of :func:`~dlearn.data.synth.annotate._coarse_rle_strings`."""
    from pycocotools import mask as mask_utils

    x0, y0, w, h = box
    step_x, step_y = w / DP_GRID, h / DP_GRID
    hit, grid_hits = scene.grid(
        x0 + 0.5 * step_x, y0 + 0.5 * step_y, step_x, step_y, DP_GRID, DP_GRID, need_bary=False
    )
    own = grid_hits.person == k
    coarse = np.zeros(DP_GRID * DP_GRID, dtype=np.int64)
    coarse[hit[own]] = COARSE_PART[body.face_part[grid_hits.face[own]]]
    present = np.flatnonzero(np.bincount(coarse, minlength=15)[1:]) + 1
    dp_masks: list = [[] for _ in range(14)]
    if len(present):
        stacked = np.ascontiguousarray(coarse.reshape(DP_GRID, DP_GRID).T)[None] == present[:, None, None]
        rles = mask_utils.encode(stacked.view(np.uint8).transpose(2, 1, 0))
        for c, rle in zip(present, rles):
            dp_masks[c - 1] = {"size": [int(s) for s in rle["size"]], "counts": rle["counts"].decode("ascii")}
    return dp_masks


def test_coarse_rle_strings_are_pycocotools_encodings() -> None:
    """Label maps with empty, full, first- and last-position parts, single pixels and long runs."""
    from pycocotools import mask as mask_utils

    from dlearn.data.synth.annotate import _coarse_rle_strings

    rng = np.random.default_rng(0)
    n = 40
    blocky = np.repeat(rng.integers(0, 15, n * n // 37 + 1), 37)[: n * n]
    sparse = np.where(rng.random(n * n) < 0.98, 0, rng.integers(1, 15, n * n))
    for labels in (np.zeros(n * n), np.full(n * n, 3), rng.integers(0, 15, n * n), blocky, sparse):
        labels = labels.astype(np.uint8)
        strings, offsets = _coarse_rle_strings(labels, n)
        for c in range(1, 15):
            got = strings[offsets[c - 1] : offsets[c]].tobytes().decode("ascii")
            mask = labels.reshape(n, n) == c
            want = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))["counts"].decode()
            assert got == (want if mask.any() else ""), c


@pytest.mark.parametrize("persons", [1, 3])
def test_dp_masks_match_the_former_implementation(standin_files: tuple[Path, Path], persons: int) -> None:
    from dlearn.data.raster import RasterScene
    from dlearn.data.synth.annotate import _dp_masks, _person_box
    from dlearn.data.synth.body import _Body
    from dlearn.data.synth.render import _rasterise_centres
    from dlearn.data.synth.scene import _sample_persons, _to_pixels

    body = _Body(*standin_files)
    options = SynthOptions(image_size=96, persons_per_image=persons)
    for index in range(3):
        people = _sample_persons(np.random.default_rng([2, persons, index]), body, options)
        scene = RasterScene([_to_pixels(p.vertices, p) for p in people], body.faces)
        person_map, _ = _rasterise_centres(scene, body, options.image_size)
        for k in range(persons):
            if (person_map == k).sum() >= 20:
                box = _person_box(person_map == k)
                assert _dp_masks(scene, body, k, box) == _numpy_dp_masks(scene, body, k, box)


# --------------------------------------------------------------------------------------------
# The priors against their former per-joint loops (the same draws, the same bits)


def _former_sample_pose(rng: np.random.Generator) -> tuple[np.ndarray, str]:
    """The former :func:`sample_pose` (a dict of angles, a draw per joint), the reference."""
    from dlearn.data.synth.priors import (
        _J,
        _LIMITS,
        _MIDLINE,
        _MODE_PROBS,
        _SIDED,
        POSE_MODES,
    )

    mode = POSE_MODES[int(rng.choice(len(POSE_MODES), p=_MODE_PROBS))]
    ang = {name: np.zeros(3) for name in _MIDLINE}
    for side in ("left", "right"):
        for j in _SIDED:
            ang[f"{side}_{j}"] = np.zeros(3)

    def both(joint: str, axis: int, lo: float, hi: float) -> None:
        ang[f"left_{joint}"][axis] = rng.uniform(lo, hi)
        ang[f"right_{joint}"][axis] = rng.uniform(lo, hi)

    if mode == "standing":
        for args in (("hip", 0, -0.25, 0.15), ("hip", 2, -0.05, 0.25), ("knee", 0, 0.0, 0.35),
                     ("shoulder", 2, -1.4, -0.7), ("shoulder", 1, -0.5, 0.4), ("elbow", 1, -1.0, 0.0)):  # fmt: skip
            both(*args)
    elif mode == "walking":
        a = rng.uniform(-1.0, 1.0)
        ang["left_hip"][0], ang["right_hip"][0] = -0.55 * a, 0.55 * a
        both("knee", 0, 0.05, 0.9)
        both("shoulder", 2, -1.4, -1.0)
        ang["left_shoulder"][1], ang["right_shoulder"][1] = 0.6 * a, -0.6 * a
        both("elbow", 1, -1.0, -0.1)
    elif mode == "sitting":
        both("hip", 0, -1.8, -1.1)
        both("hip", 2, -0.1, 0.4)
        both("knee", 0, 1.1, 2.0)
        ang["spine1"][0] = rng.uniform(0.0, 0.35)
        for args in (("shoulder", 2, -1.4, -0.8), ("shoulder", 1, -1.0, 0.1), ("elbow", 1, -1.8, -0.2)):
            both(*args)
    elif mode == "arms_up":
        for args in (("hip", 0, -0.3, 0.15), ("hip", 2, -0.05, 0.35), ("knee", 0, 0.0, 0.4),
                     ("shoulder", 2, 0.2, 1.3), ("shoulder", 1, -0.9, 0.3), ("elbow", 1, -1.6, 0.0)):  # fmt: skip
            both(*args)
    else:
        for name, value in ang.items():
            lim = np.array(_LIMITS[name if name in _LIMITS else "left_" + name.split("_", 1)[1]])
            lo, hi = lim[:, 0], lim[:, 1]
            if name in _MIDLINE:
                mid = 0.5 * (lo + hi)
                lo, hi = mid + 0.5 * (lo - mid), mid + 0.5 * (hi - mid)
            value[:] = rng.uniform(lo, hi)
    pose_euler = np.zeros((23, 3))
    for name, value in ang.items():
        lim = np.array(_LIMITS[name if name in _LIMITS else "left_" + name.split("_", 1)[1]])
        noisy = np.clip(value + rng.normal(scale=0.08, size=3), lim[:, 0], lim[:, 1])
        if name.startswith("right_"):
            noisy = noisy * np.array([1.0, -1.0, -1.0])
        pose_euler[_J[name] - 1] = noisy
    return Rotation.from_euler("xyz", pose_euler).as_rotvec(), mode


def _former_sample_scales(rng: np.random.Generator, sigma: float, parents: np.ndarray) -> np.ndarray:
    """The former :func:`sample_scales` (np.mean per joint), the reference."""
    from dlearn.body.symmetry import JOINT_FLIP
    from dlearn.data.synth.priors import _SMOOTHED_STD, _tree_neighbours

    raw = rng.normal(size=24)
    raw = 0.7 * 0.5 * (raw + raw[JOINT_FLIP]) + 0.3 * raw
    nbrs = _tree_neighbours(parents)
    for _ in range(2):
        raw = np.array([0.5 * raw[j] + 0.5 * np.mean(raw[nbrs[j]]) for j in range(24)])
    raw = raw * (sigma / _SMOOTHED_STD)
    global_log = rng.normal(scale=0.5 * sigma)
    return np.exp(np.clip(raw + global_log, -3 * sigma - 0.05, 3 * sigma + 0.05))


def test_euler_to_rotvec_gives_scipys_bits() -> None:
    from dlearn.data.synth.priors import _euler_to_rotvec

    rng = np.random.default_rng(0)
    for scale in (3.5, 1.0, 1e-2, 1e-4, 1e-7):  # small angles: the Taylor branch
        euler = rng.uniform(-scale, scale, size=(20000, 3))
        np.testing.assert_array_equal(_euler_to_rotvec(euler), Rotation.from_euler("xyz", euler).as_rotvec())
    euler = np.array([[0.0, 0.0, 0.0], [np.pi, 0.0, 0.0], [0.0, -np.pi, 0.0], [1e-9, 0.0, -2.0]])
    np.testing.assert_array_equal(_euler_to_rotvec(euler), Rotation.from_euler("xyz", euler).as_rotvec())


def test_priors_draw_what_their_former_loops_drew() -> None:
    from dlearn.body.io import SMPL_PARENTS

    modes = set()
    for seed in range(400):
        a, b = np.random.default_rng([seed, 1]), np.random.default_rng([seed, 1])
        (pose, mode), (want, want_mode) = sample_pose(a), _former_sample_pose(b)
        assert mode == want_mode
        np.testing.assert_array_equal(pose, want)
        np.testing.assert_array_equal(sample_scales(a, 0.08, SMPL_PARENTS), _former_sample_scales(b, 0.08, SMPL_PARENTS))
        assert a.random() == b.random()  # the same draws, in the same order
        modes.add(mode)
    assert len(modes) == 5


@numba.njit
def _numba_normals(rng: np.random.Generator, scale: float, n: int) -> np.ndarray:
    out = np.empty(n)
    for i in range(n):
        out[i] = rng.normal(0.0, scale)
    return out


def test_numba_generator_draws_numpys_normals() -> None:
    """The kernels draw the pixel noise through numba's Generator, one value at a time: the same
    numbers (ziggurat tails included, ~0.7 % of draws) and the same state after as numpy's."""
    for seed in range(5):
        a, b = np.random.default_rng([seed, 9]), np.random.default_rng([seed, 9])
        np.testing.assert_array_equal(_numba_normals(a, 0.02, 200_000), b.normal(scale=0.02, size=200_000))
        assert a.random() == b.random()


def test_keypoint_reach_gives_the_numpy_bits(standin_files: tuple[Path, Path]) -> None:
    """The keypoints' reach (visibility's depth tolerance) against the former numpy expression."""
    from dlearn.body.io import SMPL_PARENTS
    from dlearn.data.synth.body import _Body

    body = _Body(*standin_files)
    rng = np.random.default_rng(3)
    for _ in range(20):
        vertices, _, keypoints = body.pose(sample_pose(rng)[0], sample_scales(rng, 0.08, SMPL_PARENTS))
        pair_k, pair_v = np.nonzero(body.kp_rows)
        dist = np.linalg.norm(vertices[pair_v] - keypoints[pair_k], axis=-1)
        weight = np.abs(body.kp_rows[pair_k, pair_v])
        want = np.bincount(pair_k, weight * dist, minlength=17) / np.abs(body.kp_rows).sum(axis=1)
        np.testing.assert_array_equal(body.keypoint_reach(vertices, keypoints), want)
