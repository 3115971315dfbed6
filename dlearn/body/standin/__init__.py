r"""A procedural stand-in for SMPL, written in SMPL's own file format.

Real SMPL cannot be shipped, so the default pipeline runs on this humanoid: SMPL's 24-joint
skeleton in T-pose (metres, y up, facing +z, the person's left side at +x) wrapped in a closed,
exactly left/right symmetric surface, with smooth skinning weights, a joint regressor that
reproduces the designed joints, zero pose and shape blend shapes, and DensePose's 24 parts, each
flattened into an injective UV chart.

Construction:

1. Surface: the smooth union of capsules and ellipsoids (one or two per segment) as a signed
   distance field, sampled on the half space x >= 0 and polygonised with marching cubes; the
   half is mirrored and stitched along x = 0 (so the mesh and its vertex mirror map are exact),
   then Taubin-smoothed.
2. Parts: each face is labelled by cut planes at the joints (a limb is a tube between two cuts,
   split front/back by the plane through the bone; the torso is split by a coronal plane; the
   head by the sagittal plane), then islands and pinched vertices are cleaned up until every
   part is a topological disc.
3. UV charts: each part's disc is mapped by Tutte's uniform-weight embedding onto a circle
   (boundary by arc length), which is fold-free, and rescaled to [0, 1]^2.
4. Skinning weights: each vertex takes the joint of the nearest bone within its part, and the
   one-hot weights are diffused over the surface, so they blend across joints without leaking
   between segments that are near in space but not on the surface.
5. Joint regressor: per joint, nonnegative weights over the surface vertices around it whose
   weighted mean is the designed joint (regularised NNLS, so the weights spread out).
6. COCO keypoint regressor (key ``coco_keypoint_regressor``, see :mod:`dlearn.body.keypoints`):
   face keypoints on single vertices, each hip on a patch of :data:`~dlearn.body.standin.rig._HIP_PATCH` vertices on the
   outside of the hip at the greater trochanter (where COCO annotators click), the shoulders,
   elbows, wrists, knees and ankles on the joint regressor's rings around their joints.

DensePose part convention of this stand-in ("front" faces +z in T-pose, seen from the bone):

====  =====================  ====  =====================
part  region                 part  region
====  =====================  ====  =====================
1     torso, back            13    lower leg right, front
2     torso, front           14    lower leg left, front
3     right hand             15    upper arm left, back
4     left hand              16    upper arm right, back
5     left foot              17    upper arm left, front
6     right foot             18    upper arm right, front
7     upper leg right, back  19    lower arm left, back
8     upper leg left, back   20    lower arm right, back
9     upper leg right, front 21    lower arm left, front
10    upper leg left, front  22    lower arm right, front
11    lower leg right, back  23    head, right half (x < 0)
12    lower leg left, back   24    head, left half (x > 0)
====  =====================  ====  =====================

SMPL segments per part: torso = pelvis, spine1-3, collars; head = neck, head; upper arm =
shoulder; lower arm = elbow; hand = wrist, hand; upper leg = hip; lower leg = knee;
foot = ankle, foot.

Modules: :mod:`~dlearn.body.standin.skeleton` (the designed joints),
:mod:`~dlearn.body.standin.surface` (1), :mod:`~dlearn.body.standin.parts` (2),
:mod:`~dlearn.body.standin.charts` (3), :mod:`~dlearn.body.standin.rig` (4 to 6),
:mod:`~dlearn.body.standin.mesh` (generic triangle-mesh helpers) and
:mod:`~dlearn.body.standin.preview` (the preview figure of any body model); this package's root
assembles them (:func:`build_standin`, :func:`write_standin`).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from dlearn.body.io import NUM_POSE_BLEND, SMPL_PARENTS, BodyModelData, write_smpl_pickle
from dlearn.body.standin.charts import _uv_charts
from dlearn.body.standin.mesh import _vertex_parts
from dlearn.body.standin.parts import _face_parts
from dlearn.body.standin.preview import default_preview_pose, write_body_preview, write_standin_preview
from dlearn.body.standin.rig import (
    _joint_regressor,
    _keypoint_regressor,
    _keypoint_vertices,
    _skinning_weights,
)
from dlearn.body.standin.skeleton import rest_joints
from dlearn.body.standin.surface import _build_surface, body_sdf
from dlearn.densepose.uv import UVCharts, write_uv_charts

logger = logging.getLogger(__name__)

__all__ = [
    "StandinBody",
    "body_sdf",
    "build_standin",
    "default_preview_pose",
    "rest_joints",
    "write_body_preview",
    "write_standin",
    "write_standin_preview",
]


@dataclass(frozen=True)
class StandinBody:
    """The procedural stand-in body.

    Attributes:
        model: the SMPL-format arrays (template, faces, weights, regressor, blend shapes,
            keypoint vertices and the left/right vertex mirror map).
        face_part: (F,) int64 DensePose part 1..24 of each face of ``model.faces``.
        uv: the per-part UV charts (``UV_Processed.mat`` contents).
    """

    model: BodyModelData
    face_part: np.ndarray
    uv: UVCharts


def build_standin() -> StandinBody:
    """Build the stand-in body. Deterministic: no randomness, same arrays on every run."""
    surface = _build_surface()
    vertices, faces = surface.vertices, surface.faces
    n = len(vertices)
    face_part = _face_parts(surface)
    joints = rest_joints()
    j_regressor = _joint_regressor(vertices, joints)
    vertex_ids = _keypoint_vertices(vertices, _vertex_parts(faces, face_part, n))
    model = BodyModelData(
        v_template=vertices,
        faces=faces,
        weights=_skinning_weights(vertices, faces, face_part, joints, surface.mirror),
        parents=SMPL_PARENTS.copy(),
        j_regressor=j_regressor,
        posedirs=np.zeros((n, 3, NUM_POSE_BLEND)),
        shapedirs=np.zeros((n, 3, 10)),
        vertex_ids=vertex_ids,
        vertex_symmetry=surface.mirror,
        keypoint_regressor=_keypoint_regressor(vertices, j_regressor, vertex_ids, surface.mirror),
        source="<stand-in>",
    )
    model.validate()
    uv = _uv_charts(vertices, faces, face_part)
    logger.info(
        "stand-in body: %d vertices, %d faces, %d chart vertices", n, len(faces), uv.num_chart_vertices
    )
    return StandinBody(model=model, face_part=face_part, uv=uv)


def write_standin(out_dir: str | Path, preview: bool = False) -> tuple[Path, Path]:
    """Build the stand-in and write ``out_dir/SMPL_NEUTRAL.pkl`` and ``out_dir/UV_Processed.mat``.

    The file name lets ``smplx.create(out_dir)`` find the model.

    Args:
        out_dir: output folder (created).
        preview: also render ``out_dir/preview.png`` (rest and sample pose, coloured by part).

    Returns:
        The model and UV paths. Both files have the same bytes on every run.
    """
    out_dir = Path(out_dir)
    body = build_standin()
    model_path = write_smpl_pickle(body.model, out_dir / "SMPL_NEUTRAL.pkl")
    uv_path = write_uv_charts(body.uv, out_dir / "UV_Processed.mat")
    if preview:
        write_standin_preview(body, out_dir / "preview.png")
    return model_path, uv_path
