"""The segment-scale body model against smplx (unit scales) and a naive reference (any scales)."""

from __future__ import annotations

import dataclasses
import warnings

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.spatial.transform import Rotation

from dlearn.body.io import NUM_JOINTS, BodyModelData, write_smpl_pickle
from dlearn.body.model import BodyModel

F64 = torch.float64


def naive_body(data: BodyModelData, pose: np.ndarray, scales: np.ndarray, pose_blend: bool = True):
    """The module docstring's formula, one joint and one vertex at a time.

    Args:
        pose: (23, 3) axis-angle; scales: (24, 3) diagonal of S_j.

    Returns:
        (N, 3) vertices and (24, 3) joints.
    """
    parents, rest = data.parents, data.j_regressor @ data.v_template
    rot = [np.eye(3)] + [Rotation.from_rotvec(a).as_matrix() for a in pose]

    def homogeneous(lin: np.ndarray, trans: np.ndarray) -> np.ndarray:
        out = np.eye(4)
        out[:3, :3], out[:3, 3] = lin, trans
        return out

    frames = [homogeneous(np.eye(3), rest[0])]
    for j in range(1, NUM_JOINTS):
        p = parents[j]
        frames.append(frames[p] @ homogeneous(rot[j], np.diag(scales[p]) @ (rest[j] - rest[p])))
    skin = [
        frames[j] @ homogeneous(np.diag(scales[j]), np.zeros(3)) @ homogeneous(np.eye(3), -rest[j])
        for j in range(NUM_JOINTS)
    ]
    feature = np.concatenate([(r - np.eye(3)).ravel() for r in rot[1:]])
    vertices = np.zeros_like(data.v_template)
    for i, v in enumerate(data.v_template):
        v_posed = v + data.posedirs[i] @ feature if pose_blend else v
        for j in range(NUM_JOINTS):
            vertices[i] += data.weights[i, j] * (skin[j] @ np.append(v_posed, 1.0))[:3]
    return vertices, np.stack([f[:3, 3] for f in frames])


def _pose(batch: int, seed: int, magnitude: float = 0.8) -> torch.Tensor:
    return magnitude * torch.randn(batch, 23, 3, dtype=F64, generator=torch.Generator().manual_seed(seed))


def _scales(batch: int, seed: int, shape: tuple[int, ...] = (24,)) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    return 0.6 + 0.8 * torch.rand(batch, *shape, dtype=F64, generator=gen)


@pytest.fixture(scope="module")
def model(random_model_data: BodyModelData) -> BodyModel:
    return BodyModel(random_model_data, dtype=F64)


def _smplx_reference(path, pose: torch.Tensor):
    smplx = pytest.importorskip("smplx")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "only 10 shape coefficients"
        body = smplx.SMPL(
            model_path=str(path),
            vertex_ids=dict(nose=0, reye=0, leye=0, rear=0, lear=0),
            use_hands=False,
            use_feet_keypoints=False,
            dtype=F64,
        )
    batch = pose.shape[0]
    out = body(
        betas=torch.zeros(batch, 10, dtype=F64),
        body_pose=pose.reshape(batch, -1),
        global_orient=torch.zeros(batch, 3, dtype=F64),
        transl=torch.zeros(batch, 3, dtype=F64),
    )
    return out.vertices, out.joints[:, :NUM_JOINTS]


def test_unit_scales_match_smplx_random_model(tmp_path, random_model_data: BodyModelData) -> None:
    """Non-zero random pose blend shapes, so their ordering is checked too."""
    path = write_smpl_pickle(random_model_data, tmp_path / "random.pkl")
    pose = _pose(6, seed=0)
    vertices, joints = _smplx_reference(path, pose)
    out = BodyModel.from_file(path, dtype=F64)(pose)
    torch.testing.assert_close(out.vertices, vertices, atol=1e-5, rtol=0)
    torch.testing.assert_close(out.joints, joints, atol=1e-5, rtol=0)
    # The blend shapes matter here: without them the result must differ.
    plain = BodyModel.from_file(path, use_pose_blend_shapes=False, dtype=F64)(pose)
    assert (plain.vertices - vertices).abs().max() > 1e-3


def test_unit_scales_match_smplx_standin(standin_files) -> None:
    model_path = standin_files[0]
    pose = _pose(4, seed=1, magnitude=0.5)
    vertices, joints = _smplx_reference(model_path, pose)
    out = BodyModel.from_file(model_path, dtype=F64)(pose, scales=torch.ones(4, 24, dtype=F64))
    torch.testing.assert_close(out.vertices, vertices, atol=1e-5, rtol=0)
    torch.testing.assert_close(out.joints, joints, atol=1e-5, rtol=0)


@pytest.mark.parametrize("anisotropic", [False, True])
def test_scaled_body_matches_naive_reference(
    model: BodyModel, random_model_data: BodyModelData, anisotropic: bool
) -> None:
    pose = _pose(2, seed=2)
    scales = _scales(2, seed=3, shape=(24, 3) if anisotropic else (24,))
    out = model(pose, scales)
    full_scales = scales if anisotropic else scales[..., None].expand(-1, -1, 3)
    for b in range(2):
        vertices, joints = naive_body(random_model_data, pose[b].numpy(), full_scales[b].numpy())
        np.testing.assert_allclose(out.vertices[b].numpy(), vertices, atol=1e-10)
        np.testing.assert_allclose(out.joints[b].numpy(), joints, atol=1e-10)


def test_without_pose_blend_shapes_matches_naive_reference(random_model_data: BodyModelData) -> None:
    model = BodyModel(random_model_data, use_pose_blend_shapes=False, dtype=F64)
    pose, scales = _pose(1, seed=4), _scales(1, seed=5)
    vertices, _ = naive_body(
        random_model_data, pose[0].numpy(), scales[0, :, None].expand(-1, 3).numpy(), pose_blend=False
    )
    np.testing.assert_allclose(model(pose, scales).vertices[0].numpy(), vertices, atol=1e-10)


@settings(max_examples=10, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), magnitude=st.floats(0.0, 3.0))
def test_bone_length_is_parent_scale_times_rest_length(model: BodyModel, seed: int, magnitude: float) -> None:
    pose, scales = _pose(1, seed, magnitude), _scales(1, seed + 1)
    joints = model(pose, scales).joints[0]
    parents = model.parents[1:]
    posed = (joints[1:] - joints[parents]).norm(dim=-1)
    rest = (model.rest_joints[1:] - model.rest_joints[parents]).norm(dim=-1)
    torch.testing.assert_close(posed, scales[0, parents] * rest)


@pytest.mark.parametrize("factor", [0.5, 1.7])
def test_uniform_scale_scales_the_body_about_the_root(model: BodyModel, factor: float) -> None:
    pose = _pose(3, seed=6)
    base = model(pose)
    scaled = model(pose, torch.full((3, 24), factor, dtype=F64))
    root = model.rest_joints[0]
    torch.testing.assert_close(scaled.vertices - root, factor * (base.vertices - root))
    torch.testing.assert_close(scaled.joints - root, factor * (base.joints - root))


def test_equal_anisotropic_scales_equal_isotropic(model: BodyModel) -> None:
    pose, scales = _pose(2, seed=7), _scales(2, seed=8)
    iso = model(pose, scales)
    aniso = model(pose, scales[..., None].repeat(1, 1, 3))
    torch.testing.assert_close(aniso.vertices, iso.vertices, atol=0, rtol=0)
    torch.testing.assert_close(aniso.joints, iso.joints, atol=0, rtol=0)


def test_vertex_ids_select_rows_of_the_full_mesh(model: BodyModel) -> None:
    pose, scales = _pose(3, seed=9), _scales(3, seed=10, shape=(24, 3))
    ids = torch.tensor([5, 0, 17, 17, model.num_vertices - 1])
    full = model(pose, scales)
    part = model(pose, scales, vertex_ids=ids)
    assert part.vertices.shape == (3, 5, 3)
    torch.testing.assert_close(part.vertices, full.vertices[:, ids])
    torch.testing.assert_close(part.joints, full.joints)


def test_per_sample_vertex_ids_select_each_samples_rows(model: BodyModel) -> None:
    """Registration skins each sample's own corresponded vertices: (B, K) ids."""
    pose, scales = _pose(3, seed=13), _scales(3, seed=14)
    ids = torch.tensor([[5, 0, 17], [1, 1, 2], [model.num_vertices - 1, 3, 4]])
    full = model(pose, scales)
    part = model(pose, scales, vertex_ids=ids)
    torch.testing.assert_close(part.vertices, torch.stack([full.vertices[b, ids[b]] for b in range(3)]))


def test_transforms_map_rest_joints_to_posed_joints(model: BodyModel) -> None:
    out = model(_pose(2, seed=11), _scales(2, seed=12))
    assert out.transforms.shape == (2, 24, 4, 4)
    rest = torch.cat([model.rest_joints, torch.ones(24, 1, dtype=F64)], dim=-1)
    torch.testing.assert_close((out.transforms @ rest[..., None])[..., :3, 0], out.joints)


@pytest.mark.parametrize("magnitude", [0.0, 0.7])
def test_gradients_reach_pose_and_scales(model: BodyModel, magnitude: float) -> None:
    """Also at the zero pose, where the registration starts."""
    pose = _pose(2, seed=13, magnitude=magnitude).requires_grad_()
    scales = _scales(2, seed=14).requires_grad_()
    out = model(pose, scales, vertex_ids=torch.arange(0, model.num_vertices, 3))
    target = torch.randn_like(out.vertices)
    ((out.vertices - target) ** 2).sum().add((out.joints**2).sum()).backward()
    for grad in (pose.grad, scales.grad):
        assert torch.isfinite(grad).all()
        assert grad.abs().max() > 0
    assert (pose.grad.abs().sum(-1) > 0).sum() >= 20  # nearly every joint moves something


def test_float32_defaults_and_shapes(random_model_data: BodyModelData) -> None:
    model = BodyModel(random_model_data)
    out = model(torch.zeros(2, 69))
    assert out.vertices.dtype == torch.float32 and out.vertices.shape == (2, model.num_vertices, 3)
    assert out.joints.shape == (2, 24, 3)
    torch.testing.assert_close(out.vertices, model.v_template.expand(2, -1, -1))  # zero pose = template
    torch.testing.assert_close(out.joints, model.rest_joints.expand(2, -1, -1))
    assert model.faces.shape == (2 * model.num_vertices, 3) and model.parents[0] == -1
    assert model.to(F64)(torch.zeros(1, 23, 3)).vertices.dtype == F64


def test_model_without_posedirs(random_model_data: BodyModelData) -> None:
    without = BodyModel(dataclasses.replace(random_model_data, posedirs=None), dtype=F64)
    zeros = np.zeros_like(random_model_data.posedirs)
    assert without.posedirs is None
    assert BodyModel(dataclasses.replace(random_model_data, posedirs=zeros)).posedirs is None
    disabled = BodyModel(random_model_data, use_pose_blend_shapes=False, dtype=F64)
    pose = _pose(1, seed=15)
    torch.testing.assert_close(without(pose).vertices, disabled(pose).vertices, atol=0, rtol=0)


@pytest.mark.parametrize("own_regressor", [False, True])
def test_numpy_model_matches_the_torch_model(random_model_data: BodyModelData, own_regressor: bool) -> None:
    """The synthetic data poses one body at a time with the numpy twin: the same vertices, joints
    and COCO keypoints as the torch model and :class:`CocoKeypoints` (pose blend shapes on; the
    fallback's joint keypoints, or a surface regressor), small angles (Rodrigues' series) included."""
    from dlearn.body.keypoints import coco_keypoint_model
    from dlearn.body.numpy_model import NumpyBodyModel

    data = random_model_data
    if own_regressor:
        rows = np.random.default_rng(0).random((17, data.num_vertices)) ** 4
        data = dataclasses.replace(data, keypoint_regressor=rows / rows.sum(1, keepdims=True))
    model = BodyModel(data, dtype=F64)
    keypoints = coco_keypoint_model(model, data)
    twin = NumpyBodyModel(data, keypoints.definition)
    pose, scales = _pose(4, seed=15), _scales(4, seed=16)
    pose[1] = 0.0
    pose[2, ::2] = 1e-5
    with torch.no_grad():
        out = model(pose, scales)
        want = (out.vertices.numpy(), out.joints.numpy(), keypoints(out, pose).numpy())
    for b in range(4):
        got = twin(pose[b].numpy(), scales[b].numpy())
        for value, expected in zip(got, want):
            np.testing.assert_allclose(value, expected[b], rtol=0, atol=1e-12)
