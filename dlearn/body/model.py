r"""The segment-scale body model of the paper (section 3): SMPL's template and skinning, no shape
blend shapes, one scale per body segment.

Notation: template vertices v_i, rest joints J = J_regressor v (betas = 0), skinning weights
w_ij, parents p(j), pose a (23 axis-angle vectors, one per non-root joint) with R_j = exp(a_j)
and R_0 = I (the camera rotation carries the global orientation), scales S_j = diag(s_j) with
s_j a scalar or a 3-vector (anisotropic).

1. Pose blend shapes (smplx's convention): v^P_i = v_i + sum_k P_ik f_k with the 207 pose
   features f = vec(R_j - I) for j = 1..23 (joint-major, then row, then column).
2. Scaled kinematic chain: segment j scales about its own joint, and the offset from a joint
   to its child scales with the parent segment, so the skeleton stays connected:
       G'_0 = [I | J_0],    G'_j = G'_p(j) [R_j | S_p(j) (J_j - J_p(j))].
   Posed joint j is the translation of G'_j.
3. Skinning with T_j = G'_j diag(S_j, 1) [I | -J_j] (the paper's T^j = A^j S^j):
       v'_i = sum_j w_ij T_j v^P_i = sum_j w_ij (G'_j (S_j (v^P_i - J_j))).

With all s_j = 1 this is exactly SMPL/smplx LBS at betas = 0 and zero global orientation and
translation. With all s_j = c the body scales by c about the root joint J_0.

When only some vertices are needed (``vertex_ids``), the template, weight and pose blend
shape rows of those vertices are gathered before step 1, so the cost is O(len(vertex_ids)),
not O(N).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from dlearn.body.io import NUM_JOINTS, BodyModelData, load_body_model
from dlearn.body.rotations import axis_angle_to_matrix


@dataclass
class BodyModelOutput:
    """Result of :meth:`BodyModel.forward`.

    Attributes:
        vertices: (B, N, 3), or (B, K, 3) for K requested ``vertex_ids``, in their order.
        joints: (B, 24, 3) posed joint locations.
        transforms: (B, 24, 4, 4) skinning transforms T_j (v' = sum_j w_ij T_j v^P).
    """

    vertices: Tensor
    joints: Tensor
    transforms: Tensor


@dataclass
class VertexSelection:
    """Rows of the model's per-vertex arrays for some vertices (:meth:`BodyModel.select`).

    Attributes:
        template: (3, K), or (B, 3, K) per sample.
        weights: (24, K), or (B, 24, K).
        posedirs: (207, 3, K), or (207, 3, B, K), or None.
        per_sample: whether the rows differ per sample.
    """

    template: Tensor
    weights: Tensor
    posedirs: Tensor | None
    per_sample: bool


def _chain_levels(parents: np.ndarray) -> list[np.ndarray]:
    """Joints grouped by depth in the tree; all joints of one level are posed in one matmul."""
    depth = np.zeros(len(parents), dtype=np.int64)
    for j in range(1, len(parents)):
        depth[j] = depth[parents[j]] + 1
    return [np.flatnonzero(depth == d) for d in range(depth.max() + 1)]


class BodyModel(nn.Module):
    """Differentiable segment-scale body model X(S, a) (see the module docstring for the formula).

    Args:
        data: the model arrays (template, weights, regressor, tree, pose blend shapes).
        use_pose_blend_shapes: add the pose blend shapes (ignored when ``data`` has none, or
            only zeros; ``posedirs`` is None then).
        dtype: floating point type of the buffers and outputs.
    """

    faces: Tensor  # (F, 3)
    parents: Tensor  # (24,), -1 for the root
    v_template: Tensor  # (N, 3)
    weights: Tensor  # (N, 24)
    rest_joints: Tensor  # (24, 3)
    posedirs: Tensor | None  # (207, 3, N), vertex index last (see __init__)

    def __init__(
        self, data: BodyModelData, use_pose_blend_shapes: bool = True, dtype: torch.dtype = torch.float32
    ):
        super().__init__()
        data.validate()
        self.register_buffer("faces", torch.as_tensor(data.faces, dtype=torch.long))
        self.register_buffer("parents", torch.as_tensor(data.parents, dtype=torch.long))
        self.register_buffer("v_template", torch.as_tensor(data.v_template, dtype=dtype))
        self.register_buffer("weights", torch.as_tensor(data.weights, dtype=dtype))
        self.register_buffer("rest_joints", torch.as_tensor(data.rest_joints, dtype=dtype))
        # Per-vertex work runs coordinate-major, vertex index last: the blended transforms are
        # then one (12, 24) x (24, N) product per body and their application runs over contiguous
        # rows (several times faster on CPU than (N, 3)-major with tiny per-vertex matmuls).
        self.register_buffer("_template_cm", self.v_template.T.contiguous(), persistent=False)
        self.register_buffer("_weights_cm", self.weights.T.contiguous(), persistent=False)
        # Files without pose blend shapes store zeros (SMPL format needs the key): skip the
        # 207-wide product for them.
        use_posedirs = use_pose_blend_shapes and data.posedirs is not None and bool(np.any(data.posedirs))
        posedirs = (
            torch.as_tensor(data.posedirs, dtype=dtype).permute(2, 1, 0).contiguous()
            if use_posedirs
            else None
        )
        self.register_buffer("posedirs", posedirs)

        parents = data.parents
        rest = data.rest_joints
        rest_offsets = np.zeros_like(rest)
        rest_offsets[0] = rest[0]
        rest_offsets[1:] = rest[1:] - rest[parents[1:]]
        self.register_buffer("rest_offsets", torch.as_tensor(rest_offsets, dtype=dtype), persistent=False)

        # Level-by-level evaluation of the chain: for level d, its joints, the positions of their
        # parents within level d - 1 and their parents' joint indices (the scales' rows); a final
        # permutation restores joint order.
        levels = _chain_levels(parents)
        self._levels = [torch.as_tensor(lv) for lv in levels]
        position = np.empty(len(parents), dtype=np.int64)
        for lv in levels:
            position[lv] = np.arange(len(lv))
        self._parent_positions = [torch.as_tensor(position[parents[lv]]) for lv in levels[1:]]
        self._level_parents = [torch.as_tensor(parents[lv]) for lv in levels[1:]]
        self._joint_order = torch.as_tensor(np.argsort(np.concatenate(levels)))

    @classmethod
    def from_file(cls, path: str | Path, **kwargs: Any) -> BodyModel:
        """Load an SMPL-format ``.pkl``/``.npz`` (see :func:`dlearn.body.io.load_body_model`)."""
        return cls(load_body_model(path), **kwargs)

    @property
    def num_vertices(self) -> int:
        return int(self.v_template.shape[0])

    @property
    def dtype(self) -> torch.dtype:
        """Floating point type of the buffers (follows ``module.to(dtype)``)."""
        return self.v_template.dtype

    def _apply(self, fn: Any, *args: Any, **kwargs: Any) -> BodyModel:
        # Keep the chain's index tensors on the buffers' device (module.to() moves only buffers).
        super()._apply(fn, *args, **kwargs)
        device = self.v_template.device
        self._levels = [t.to(device) for t in self._levels]
        self._parent_positions = [t.to(device) for t in self._parent_positions]
        self._level_parents = [t.to(device) for t in self._level_parents]
        self._joint_order = self._joint_order.to(device)
        return self

    def _global_frames(self, rotations: Tensor, scales: Tensor) -> tuple[Tensor, Tensor]:
        """Rotations and translations of G'_j for all joints.

        Args:
            rotations: (B, 24, 3, 3) local rotations R_j (R_0 = I).
            scales: (B, 24, 3) diagonal of S_j.

        Returns:
            (B, 24, 3, 3) global rotations and (B, 24, 3) translations (= posed joints).
        """
        # index_select rather than x[:, idx]: its backward is an index_add, several times
        # faster on CPU than the accumulating index_put of advanced indexing.
        batch = rotations.shape[0]
        root = self._levels[0]
        level_rot = [rotations.index_select(1, root)]
        level_trans = [self.rest_offsets[root].expand(batch, -1, -1)]
        for lv, ppos, parent in zip(self._levels[1:], self._parent_positions, self._level_parents):
            parent_rot = level_rot[-1].index_select(1, ppos)
            parent_trans = level_trans[-1].index_select(1, ppos)
            # S_p(j) (J_j - J_p(j)), expressed in the parent's frame, then moved by G'_p(j).
            offset = scales.index_select(1, parent) * self.rest_offsets[lv]
            level_rot.append(parent_rot @ rotations.index_select(1, lv))
            level_trans.append((parent_rot @ offset[..., None])[..., 0] + parent_trans)
        order = self._joint_order
        return (
            torch.cat(level_rot, dim=1).index_select(1, order),
            torch.cat(level_trans, dim=1).index_select(1, order),
        )

    def select(self, vertex_ids: Tensor | None) -> VertexSelection:
        """Gather the template, weight and pose blend shape rows of ``vertex_ids`` (see forward)."""
        if vertex_ids is None:
            return VertexSelection(self._template_cm, self._weights_cm, self.posedirs, per_sample=False)
        posedirs = None if self.posedirs is None else self.posedirs[..., vertex_ids]
        if vertex_ids.dim() == 2:
            # (3, B, K) -> (B, 3, K) and (24, B, K) -> (B, 24, K): the matmuls batch over B.
            template = self._template_cm[:, vertex_ids].permute(1, 0, 2)
            weights = self._weights_cm[:, vertex_ids].permute(1, 0, 2)
            return VertexSelection(template, weights, posedirs, per_sample=True)
        return VertexSelection(self._template_cm[:, vertex_ids], self._weights_cm[:, vertex_ids], posedirs, False)

    def forward(
        self,
        pose: Tensor,
        scales: Tensor | None = None,
        vertex_ids: Tensor | VertexSelection | None = None,
    ) -> BodyModelOutput:
        """Pose and scale the body.

        Args:
            pose: (B, 23, 3) axis-angle rotations of the non-root joints (or (B, 69)).
            scales: (B, 24) isotropic or (B, 24, 3) anisotropic segment scales; None = all ones.
            vertex_ids: (K,) long indices of the vertices to evaluate, or (B, K) a list per
                sample (registration: each sample's corresponded vertices), or their
                :meth:`select` result, computed once when the same vertices are evaluated at
                every optimisation step; None = the whole mesh.

        Returns:
            :class:`BodyModelOutput` with vertices (B, N or K, 3), joints (B, 24, 3) and
            skinning transforms (B, 24, 4, 4).
        """
        batch = pose.shape[0]
        pose = pose.reshape(batch, NUM_JOINTS - 1, 3).to(self.dtype)
        if scales is None:
            scales = torch.ones(batch, NUM_JOINTS, 3, dtype=self.dtype, device=pose.device)
        elif scales.dim() == 2:
            scales = scales[..., None].expand(-1, -1, 3)
        scales = scales.to(self.dtype)

        local_rot = axis_angle_to_matrix(pose)
        eye = torch.eye(3, dtype=self.dtype, device=pose.device).expand(batch, 1, 3, 3)
        rotations = torch.cat([eye, local_rot], dim=1)
        global_rot, joints = self._global_frames(rotations, scales)

        # T_j = [A_j | b_j] with A_j = Rglob_j S_j and b_j = joint_j - A_j J_j.
        lin = global_rot * scales[:, :, None, :]
        trans = joints - (lin @ self.rest_joints[..., None])[..., 0]

        selection = vertex_ids if isinstance(vertex_ids, VertexSelection) else self.select(vertex_ids)
        template, weights, posedirs = selection.template, selection.weights, selection.posedirs
        per_sample = selection.per_sample

        verts = template.expand(batch, -1, -1)  # (B, 3, K)
        if posedirs is not None:
            pose_feature = (local_rot - torch.eye(3, dtype=self.dtype, device=pose.device)).reshape(batch, -1)
            if per_sample:  # posedirs (207, 3, B, K)
                verts = verts + torch.einsum("bf,fcbk->bck", pose_feature, posedirs)
            else:
                verts = verts + (pose_feature @ posedirs.reshape(posedirs.shape[0], -1)).reshape(batch, 3, -1)

        # Blend the 3x4 transforms per vertex, then apply them to (x, y, z, 1).
        transforms = torch.cat([lin, trans[..., None]], dim=-1)
        blended = (transforms.reshape(batch, NUM_JOINTS, 12).transpose(1, 2) @ weights).reshape(
            batch, 3, 4, -1
        )
        # unbind, not blended[:, :, c]: each slice's backward would zero-fill a whole copy.
        rot_x, rot_y, rot_z, shift = blended.unbind(2)
        x, y, z = verts[:, None, 0], verts[:, None, 1], verts[:, None, 2]
        vertices = rot_x * x + rot_y * y + rot_z * z + shift

        bottom = torch.tensor([0.0, 0.0, 0.0, 1.0], dtype=self.dtype, device=pose.device)
        transforms = torch.cat([transforms, bottom.expand(batch, NUM_JOINTS, 1, 4)], dim=-2)
        return BodyModelOutput(
            vertices=vertices.transpose(1, 2).contiguous(), joints=joints, transforms=transforms
        )
