"""The scene priors: a random plausible pose (:func:`sample_pose`, a mix of standing, walking,
sitting-ish, arms-up and uniformly random poses within per-joint Euler limits), segment scales
(:func:`sample_scales`, log-normal, smoothed over the tree) and a camera rotation
(:func:`sample_camera`, full-range yaw, tilt and roll within +-15 degrees)."""

from __future__ import annotations

import functools
import math

import numba
import numpy as np

from dlearn.body.io import NUM_JOINTS, SMPL_JOINT_NAMES
from dlearn.body.symmetry import JOINT_FLIP

_J = {name: i for i, name in enumerate(SMPL_JOINT_NAMES)}

#: Per-joint Euler limits (radians, rotation about x, y, z in the joint's local frame; the
#: rotation is Rz Ry Rx) for the midline and the LEFT side; the right side is the mirror image
#: (x kept, y and z negated). Left arm along +x, legs along -y in the rest pose:
#: hip x < 0 swings the thigh forward, knee x > 0 bends the shin backward only, shoulder z > 0
#: raises the arm, shoulder y < 0 swings it forward, elbow y < 0 bends the forearm forward only.
_LIMITS: dict[str, tuple[tuple[float, float], tuple[float, float], tuple[float, float]]] = {
    "left_hip": ((-2.0, 0.6), (-0.6, 0.6), (-0.35, 0.9)),
    "left_knee": ((0.0, 2.4), (-0.1, 0.1), (-0.1, 0.1)),
    "left_ankle": ((-0.6, 0.6), (-0.3, 0.3), (-0.3, 0.3)),
    "left_foot": ((-0.3, 0.3), (-0.1, 0.1), (-0.1, 0.1)),
    "spine1": ((-0.3, 0.6), (-0.4, 0.4), (-0.3, 0.3)),
    "spine2": ((-0.2, 0.4), (-0.3, 0.3), (-0.2, 0.2)),
    "spine3": ((-0.2, 0.4), (-0.3, 0.3), (-0.2, 0.2)),
    "neck": ((-0.4, 0.5), (-0.7, 0.7), (-0.35, 0.35)),
    "head": ((-0.3, 0.4), (-0.4, 0.4), (-0.3, 0.3)),
    "left_collar": ((-0.2, 0.2), (-0.3, 0.3), (-0.2, 0.35)),
    "left_shoulder": ((-1.0, 1.0), (-1.5, 0.7), (-1.45, 1.3)),
    "left_elbow": ((-0.8, 0.8), (-2.5, 0.0), (-0.1, 0.1)),
    "left_wrist": ((-0.8, 0.8), (-0.4, 0.4), (-0.8, 0.8)),
    "left_hand": ((-0.2, 0.2), (-0.2, 0.2), (-0.3, 0.3)),
}

_MIDLINE = ("spine1", "spine2", "spine3", "neck", "head")
_SIDED = ("hip", "knee", "ankle", "foot", "collar", "shoulder", "elbow", "wrist", "hand")
POSE_MODES = ("standing", "walking", "sitting", "arms_up", "random")
_MODE_PROBS = np.array([0.3, 0.25, 0.15, 0.15, 0.15])

#: The 23 non-root joints in the order their angles are drawn: the midline, then the left
#: side's joints, then the right side's (the order of the former per-joint loops: a seed gives
#: the same pose).
_DRAWN = (*_MIDLINE, *(f"{side}_{joint}" for side in ("left", "right") for joint in _SIDED))
_ROW = {name: row for row, name in enumerate(_DRAWN)}
_DRAWN_JOINT = np.array([_J[name] - 1 for name in _DRAWN])  # row -> row of the (23, 3) pose
_MIRRORED = np.array([name.startswith("right_") for name in _DRAWN])
#: (23, 3) lower and upper limits of the drawn joints (the right side's in the left side's
#: convention).
_LO, _HI = np.moveaxis(np.array([_LIMITS[name if name in _LIMITS else "left_" + name.split("_", 1)[1]]
                                 for name in _DRAWN]), 2, 0)  # fmt: skip
#: The random mode's ranges: the limits, trunk and head at half range.
_MID = 0.5 * (_LO + _HI)
_ON_MIDLINE = np.isin(_DRAWN, _MIDLINE)[:, None]
_RANDOM_LO = np.where(_ON_MIDLINE, _MID + 0.5 * (_LO - _MID), _LO)
_RANDOM_HI = np.where(_ON_MIDLINE, _MID + 0.5 * (_HI - _MID), _HI)


@numba.njit(cache=True, nogil=True)
def _euler_to_rotvec(euler: np.ndarray) -> np.ndarray:
    """(N, 3) Euler angles (x, y, z), R = Rz Ry Rx -> (N, 3) axis-angle.

    ``scipy.spatial.transform.Rotation.from_euler("xyz", euler).as_rotvec()`` rebuilt operation
    for operation, scalar libm trigonometry included (the same bits; a test compares): importing
    scipy.spatial cost a worker ~0.4 s. Quaternions (x, y, z, w): the elementary rotations
    composed extrinsically, ``q = q_z (q_y q_x)``, then made canonical (w >= 0) and turned into
    ``angle / sin(angle / 2) * (x, y, z)`` (a Taylor series below 1e-3 rad)."""
    out = np.empty((euler.shape[0], 3))
    for n in range(euler.shape[0]):
        half = euler[n, 0] / 2
        r0, r1, r2, r3 = math.sin(half), 0.0, 0.0, math.cos(half)
        for axis in (1, 2):  # p * r with p the elementary quaternion (zeros included, as scipy)
            half = euler[n, axis] / 2
            p0, p1, p2, p3 = 0.0, 0.0, 0.0, math.cos(half)
            if axis == 1:
                p1 = math.sin(half)
            else:
                p2 = math.sin(half)
            c0, c1, c2 = p1 * r2 - p2 * r1, p2 * r0 - p0 * r2, p0 * r1 - p1 * r0
            r0, r1, r2, r3 = (
                p3 * r0 + r3 * p0 + c0,
                p3 * r1 + r3 * p1 + c1,
                p3 * r2 + r3 * p2 + c2,
                p3 * r3 - p0 * r0 - p1 * r1 - p2 * r2,
            )
        if r3 < 0 or (r3 == 0 and (r0 < 0 or (r0 == 0 and (r1 < 0 or (r1 == 0 and r2 < 0))))):
            r0, r1, r2, r3 = r0 * -1.0, r1 * -1.0, r2 * -1.0, r3 * -1.0
        angle = 2 * math.atan2(math.sqrt(r0 * r0 + r1 * r1 + r2 * r2), r3)
        if angle <= 1e-3:
            angle2 = angle * angle
            scale = 2 + angle2 / 12 + 7 * angle2 * angle2 / 2880
        else:
            scale = angle / math.sin(angle / 2)
        out[n, 0], out[n, 1], out[n, 2] = scale * r0, scale * r1, scale * r2
    return out


def sample_pose(rng: np.random.Generator) -> tuple[np.ndarray, str]:
    """A random plausible pose: (23, 3) axis-angle and the mode it was drawn from.

    A mode (standing, walking, sitting-ish, arms up, random within the limits) sets the main
    angles; all angles then get small Gaussian noise and are clipped to the joint limits.
    """
    mode = POSE_MODES[int(rng.choice(len(POSE_MODES), p=_MODE_PROBS))]
    # Semantic angles, rows in draw order: both sides in the left side's convention.
    ang = np.zeros((len(_DRAWN), 3))

    def both(joint: str, axis: int, lo: float, hi: float, same: bool = False) -> None:
        a = rng.uniform(lo, hi)
        ang[_ROW[f"left_{joint}"], axis] = a
        ang[_ROW[f"right_{joint}"], axis] = a if same else rng.uniform(lo, hi)

    if mode == "standing":
        both("hip", 0, -0.25, 0.15)
        both("hip", 2, -0.05, 0.25)
        both("knee", 0, 0.0, 0.35)
        both("shoulder", 2, -1.4, -0.7)
        both("shoulder", 1, -0.5, 0.4)
        both("elbow", 1, -1.0, 0.0)
    elif mode == "walking":
        a = rng.uniform(-1.0, 1.0)
        ang[_ROW["left_hip"], 0], ang[_ROW["right_hip"], 0] = -0.55 * a, 0.55 * a
        both("knee", 0, 0.05, 0.9)
        both("shoulder", 2, -1.4, -1.0)
        ang[_ROW["left_shoulder"], 1], ang[_ROW["right_shoulder"], 1] = 0.6 * a, -0.6 * a
        both("elbow", 1, -1.0, -0.1)
    elif mode == "sitting":
        both("hip", 0, -1.8, -1.1)
        both("hip", 2, -0.1, 0.4)
        both("knee", 0, 1.1, 2.0)
        ang[_ROW["spine1"], 0] = rng.uniform(0.0, 0.35)
        both("shoulder", 2, -1.4, -0.8)
        both("shoulder", 1, -1.0, 0.1)
        both("elbow", 1, -1.8, -0.2)
    elif mode == "arms_up":
        both("hip", 0, -0.3, 0.15)
        both("hip", 2, -0.05, 0.35)
        both("knee", 0, 0.0, 0.4)
        both("shoulder", 2, 0.2, 1.3)
        both("shoulder", 1, -0.9, 0.3)
        both("elbow", 1, -1.6, 0.0)
    else:  # random: uniform within the limits (trunk and head at half range)
        ang = rng.uniform(_RANDOM_LO, _RANDOM_HI)

    # One call for all rows draws the same numbers, in the same order, as one call per joint.
    noisy = np.clip(ang + rng.normal(scale=0.08, size=ang.shape), _LO, _HI)
    noisy[_MIRRORED] *= np.array([1.0, -1.0, -1.0])  # mirror across x = 0
    pose_euler = np.empty((NUM_JOINTS - 1, 3))
    pose_euler[_DRAWN_JOINT] = noisy
    return _euler_to_rotvec(pose_euler), mode


def _tree_neighbours(parents: np.ndarray) -> list[list[int]]:
    nbrs: list[list[int]] = [[] for _ in parents]
    for j in range(1, len(parents)):
        nbrs[j].append(int(parents[j]))
        nbrs[int(parents[j])].append(j)
    return nbrs


@functools.lru_cache(maxsize=8)
def _neighbour_table(parents: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray]:
    """Each joint's tree neighbours (:func:`_tree_neighbours`) as a (J, max degree) index table,
    padded with J (the index of an appended zero), and (J,) their counts."""
    nbrs = _tree_neighbours(np.asarray(parents))
    table = np.full((len(nbrs), max(map(len, nbrs))), len(nbrs))
    for j, row in enumerate(nbrs):
        table[j, : len(row)] = row
    return table, np.array([len(row) for row in nbrs])


_SMOOTHED_STD = 0.45  # std of the symmetrised, smoothed unit normal log scales (measured)


def sample_scales(rng: np.random.Generator, sigma: float, parents: np.ndarray) -> np.ndarray:
    """(24,) segment scales: log-normal per segment (std ``sigma``), mostly left/right symmetric,
    smoothed over the tree (neighbouring segments agree), times a global log-normal factor (std
    ``sigma / 2``). With ``sigma`` = 0.08 the segments spread about +-15 % (2 sigma)."""
    if sigma == 0:
        return np.ones(NUM_JOINTS)
    raw = rng.normal(size=NUM_JOINTS)
    raw = 0.7 * 0.5 * (raw + raw[JOINT_FLIP]) + 0.3 * raw  # mostly left/right symmetric
    table, count = _neighbour_table(tuple(int(p) for p in parents))
    for _ in range(2):
        # Each joint's mean over its neighbours, summed left to right as np.mean sums so few
        # numbers (padding with zeros changes no sum): the same bits as a mean per joint.
        values = np.append(raw, 0.0)[table]
        total = values[:, 0]
        for column in range(1, table.shape[1]):
            total = total + values[:, column]
        raw = 0.5 * raw + 0.5 * (total / count)
    raw = raw * (sigma / _SMOOTHED_STD)  # per-segment log std = sigma after smoothing
    global_log = rng.normal(scale=0.5 * sigma)
    return np.exp(np.clip(raw + global_log, -3 * sigma - 0.05, 3 * sigma + 0.05))


def _rot_x(a: float) -> np.ndarray:
    c, s = math.cos(a), math.sin(a)
    return np.array([[1, 0, 0], [0, c, -s], [0, s, c]])


def _rot_y(a: float) -> np.ndarray:
    c, s = math.cos(a), math.sin(a)
    return np.array([[c, 0, s], [0, 1, 0], [-s, 0, c]])


def _rot_z(a: float) -> np.ndarray:
    c, s = math.cos(a), math.sin(a)
    return np.array([[c, -s, 0], [s, c, 0], [0, 0, 1]])


#: Camera rotation of an upright person facing the camera (y down, z into the scene).
UPRIGHT_FACING = np.diag([1.0, -1.0, -1.0])


def sample_camera(rng: np.random.Generator, max_tilt: float = math.radians(15)) -> tuple[np.ndarray, float]:
    """A camera rotation: full-range yaw about the body's vertical axis, then tilt and roll
    (Gaussian, clipped to +-``max_tilt``) about the camera's x and z axes. Returns (R, yaw)."""
    yaw = float(rng.uniform(-math.pi, math.pi))
    tilt = float(np.clip(rng.normal(scale=0.5 * max_tilt), -max_tilt, max_tilt))
    roll = float(np.clip(rng.normal(scale=0.4 * max_tilt), -max_tilt, max_tilt))
    return _rot_x(tilt) @ _rot_z(roll) @ UPRIGHT_FACING @ _rot_y(yaw), yaw
