"""Reading SPIN-style Human3.6M evaluation files (``.npz``).

SPIN (Kolotouros et al. 2019) ships its evaluation sets as ``.npz`` archives with, per frame:
``imgname`` (image path relative to the dataset folder), ``center`` (2,) the person's centre in
pixels, ``scale`` such that the person box side is ``scale * 200`` pixels, and ``S`` (J, 4) 3D
joints in metres (camera frame) with a confidence column; J = 24 in SPIN's files. dlearn reads
them for evaluation on Human3.6M (the paper's "Protocol #1": subjects S9 and S11).

SPIN's ``datasets/preprocess/h36m.py`` writes the 17 Human3.6M joints, root-centred, into the
24 slots of ``S`` at :data:`SPIN_H36M_TO_J24` with confidence 1; the other slots stay 0. Slot 13
("Top of Head (LSP)") is therefore empty and the head is slot 18: the 14 LSP joints of the
evaluation are the slots :data:`SPIN_J24_TO_LSP14` (SPIN's ``constants.J24_TO_J14``), not the
first 14.

SPIN's boxes are tighter than dlearn's training crops: its h36m.py sets ``scale = 0.9 * max(mask
box side) / 200`` (:data:`SPIN_H36M_BOX_FACTOR`), where the crops stage frames a DensePose-COCO
person with ``box_scale`` (1.2) times the longer side of its box. :attr:`SpinEvaluationSet.person_boxes`
recovers the person's box from ``center`` and ``scale`` so that Human3.6M crops can be framed
like the training crops.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from dlearn.errors import InputError

SPIN_BOX_UNIT = 200.0  # box side in pixels = scale * 200
#: SPIN's datasets/preprocess/h36m.py: box side = 0.9 x the longer side of the person's mask box.
SPIN_H36M_BOX_FACTOR = 0.9
#: Slot of ``S`` (24) of each of the 17 Human3.6M joints (SPIN's ``global_idx``).
SPIN_H36M_TO_J24 = [14, 3, 4, 5, 2, 1, 0, 16, 12, 17, 18, 9, 10, 11, 8, 7, 6]
#: Slots of ``S`` of the 14 LSP joints (SPIN's ``J24_TO_J14``): slot 13, LSP's head top, is
#: never filled from Human3.6M; the head is slot 18.
SPIN_J24_TO_LSP14 = [*range(13), 18]


class EvaluationFileError(InputError):
    """An evaluation file is unreadable or a key is missing or malformed; names the file and key."""


@dataclass(frozen=True)
class SpinEvaluationSet:
    """Frames of a SPIN-style evaluation file.

    Attributes:
        imgname: (N,) image paths relative to the dataset folder.
        center: (N, 2) person centre in pixels.
        scale: (N,) box side / 200.
        joints3d: (N, J, 3) 3D joints in metres.
        confidence: (N, J) joint confidence (0 = missing).
        source: the file, for messages.
    """

    imgname: np.ndarray
    center: np.ndarray
    scale: np.ndarray
    joints3d: np.ndarray
    confidence: np.ndarray
    source: str

    def lsp14(self) -> tuple[np.ndarray, np.ndarray]:
        """(N, 14, 3) LSP joints in metres and their (N, 14) confidences (SPIN's J24_TO_J14).

        Raises:
            EvaluationFileError: ``S`` has fewer than SPIN's 24 joints.
        """
        return lsp14_joints(self.joints3d, self.confidence, self.source)

    @property
    def boxes(self) -> np.ndarray:
        """(N, 4) person boxes x0, y0, w, h in pixels (square, side = scale * 200)."""
        side = self.scale * SPIN_BOX_UNIT
        return np.stack([self.center[:, 0] - side / 2, self.center[:, 1] - side / 2, side, side], axis=1)

    @property
    def person_boxes(self) -> np.ndarray:
        """(N, 4) the person's (mask) boxes x0, y0, w, h in pixels, as far as the file tells:
        square, side = scale * 200 / :data:`SPIN_H36M_BOX_FACTOR` (the longer side of the mask
        box; the shorter one is not stored), about ``center``."""
        side = self.scale * SPIN_BOX_UNIT / SPIN_H36M_BOX_FACTOR
        return np.stack([self.center[:, 0] - side / 2, self.center[:, 1] - side / 2, side, side], axis=1)


def read_spin_npz(path: str | Path) -> SpinEvaluationSet:
    """Read and check a SPIN-style evaluation ``.npz`` (keys imgname, center, scale, S).

    Raises:
        EvaluationFileError: missing file or key, or inconsistent shapes; names file and key.
    """
    path = Path(path)
    try:
        with np.load(path, allow_pickle=False) as npz:
            data = {k: npz[k] for k in npz.files}
    except FileNotFoundError as exc:
        raise EvaluationFileError(f"{path}: evaluation file does not exist") from exc
    except (OSError, ValueError) as exc:
        raise EvaluationFileError(f"{path}: not a readable .npz file ({exc})") from exc
    for key in ("imgname", "center", "scale", "S"):
        if key not in data:
            raise EvaluationFileError(f"{path}: key '{key}' is missing")
    n = len(data["imgname"])
    expected = {"center": (n, 2), "scale": (n,)}
    for key, shape in expected.items():
        if data[key].shape != shape:
            raise EvaluationFileError(f"{path}: key '{key}' has shape {data[key].shape}, expected {shape}")
    joints = data["S"]
    if joints.ndim != 3 or joints.shape[0] != n or joints.shape[2] != 4:
        raise EvaluationFileError(f"{path}: key 'S' has shape {joints.shape}, expected ({n}, J, 4)")
    return SpinEvaluationSet(
        imgname=data["imgname"].astype(str),
        center=data["center"].astype(np.float64),
        scale=data["scale"].astype(np.float64),
        joints3d=joints[..., :3].astype(np.float64),
        confidence=joints[..., 3].astype(np.float64),
        source=str(path),
    )


def lsp14_joints(joints3d: np.ndarray, confidence: np.ndarray, source: str) -> tuple[np.ndarray, np.ndarray]:
    """(N, 24, 3) joints and (N, 24) confidences of SPIN's layout -> the 14 LSP joints' (N, 14, 3)
    and (N, 14), at :data:`SPIN_J24_TO_LSP14`.

    Raises:
        EvaluationFileError: fewer than 24 joints (``source`` names the file).
    """
    if joints3d.shape[1] != 24:
        raise EvaluationFileError(
            f"{source}: key 'S' has {joints3d.shape[1]} joints, expected SPIN's 24 (the 17 Human3.6M joints at "
            "SPIN's global_idx, LSP joints at J24_TO_J14)"
        )
    return joints3d[:, SPIN_J24_TO_LSP14], confidence[:, SPIN_J24_TO_LSP14]


def read_spin_joints(path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """The 14 LSP joints (N, 14, 3), metres, and confidences (N, 14) of a SPIN-style npz's ``S``
    alone (SPIN's h36m_train.npz: only ``S`` is read, the other keys stay on disk).

    Raises:
        EvaluationFileError: missing file or key ``S``, or ``S`` not (N, 24, 4); names the file.
    """
    path = Path(path)
    try:
        with np.load(path, allow_pickle=False) as npz:
            if "S" not in npz.files:
                raise EvaluationFileError(f"{path}: key 'S' is missing")
            joints = npz["S"]
    except FileNotFoundError as exc:
        raise EvaluationFileError(f"{path}: file does not exist") from exc
    except (OSError, ValueError) as exc:
        raise EvaluationFileError(f"{path}: not a readable .npz file ({exc})") from exc
    if joints.ndim != 3 or joints.shape[2] != 4:
        raise EvaluationFileError(f"{path}: key 'S' has shape {joints.shape}, expected (N, 24, 4)")
    return lsp14_joints(joints[..., :3].astype(np.float64), joints[..., 3].astype(np.float64), str(path))
