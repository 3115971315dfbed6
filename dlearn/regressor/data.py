"""Training data of the regressor: crops, registration targets and loss targets, read in batches.

Images stay in the crops store (a paper-scale run does not fit in memory) and are read one
batch at a time by DataLoader workers. Random access to single rows of a chunked store would
decompress a whole chunk per image, so batches are drawn by :func:`epoch_batches` from a few
shuffled chunks at a time and each worker keeps the decoded chunks of the current window
(:class:`ChunkCache`): every chunk is decoded about once per epoch, and a batch still mixes
samples of ``shuffle_chunks`` chunks.

Augmentation runs on the training device, batched (:func:`augment`): a horizontal flip of half
the crops with the exact left/right swap of every target (:mod:`dlearn.body.symmetry`; needs the
body file's ``vertex_symmetry``, which the stand-in has and SMPL files do not), a random
similarity of the crop (scale and shift) applied to the image and, exactly, to every 2D target
and the camera, and per-channel colour gains.
"""

from __future__ import annotations

import os
from collections import OrderedDict
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
import zarr
from torch import Tensor

from dlearn.body.keypoints import COCO_FLIP
from dlearn.body.symmetry import mirror_pose, mirror_rotation, mirror_scales
from dlearn.data.store import open_store, read_sample_ids
from dlearn.params import THETA_SLICES
from dlearn.registration.data import FitData, padded_arrays
from dlearn.registration.fit import FitBatch
from dlearn.regressor.options import AugmentOptions


def crop_rows(crops_path: Path, ids: list[str]) -> np.ndarray:
    """Row of each sample id in the crops store (errors name the store and a missing id)."""
    crop_ids = read_sample_ids(open_store(crops_path, stage="crops", required=["image"]))
    row = {sid: i for i, sid in enumerate(crop_ids)}
    missing = [sid for sid in ids if sid not in row]
    if missing:
        raise ValueError(f"{crops_path}: {len(missing)} samples have no crop, e.g. {missing[0]}")
    return np.array([row[sid] for sid in ids], dtype=np.int64)


class ChunkCache:
    """Rows of a chunked zarr array read through the last ``capacity`` decoded chunks.

    A batch drawn from a window of ``shuffle_chunks`` chunks touches most of them; without the
    cache every batch decoded all of them again (with 64-row chunks and batches of 16 that is
    ~30x the decoding of one pass: 15 ms of the regressor's ~45 ms step at 64 px).

    Args:
        array: (N, ...) array, chunked along axis 0 only.
        capacity: decoded chunks kept (least recently used dropped first).
    """

    def __init__(self, array: zarr.Array, capacity: int):
        self.array = array
        self.chunk_rows = int(array.chunks[0])
        self.capacity = max(int(capacity), 1)
        self._chunks: OrderedDict[int, np.ndarray] = OrderedDict()

    def _chunk(self, index: int) -> np.ndarray:
        if index in self._chunks:
            self._chunks.move_to_end(index)
            return self._chunks[index]
        start = index * self.chunk_rows
        block = np.asarray(self.array[start : start + self.chunk_rows])
        self._chunks[index] = block
        if len(self._chunks) > self.capacity:
            self._chunks.popitem(last=False)
        return block

    def read(self, rows: np.ndarray) -> np.ndarray:
        """(len(rows), ...) the given rows, in that order."""
        rows = np.asarray(rows, dtype=np.int64)
        out = np.empty((len(rows), *self.array.shape[1:]), dtype=self.array.dtype)
        chunk_of = rows // self.chunk_rows
        for index in np.unique(chunk_of):
            hit = chunk_of == index
            out[hit] = self._chunk(int(index))[rows[hit] - index * self.chunk_rows]
        return out


class RegressorBatches(torch.utils.data.Dataset):
    """Index = an array of sample positions; item = that whole batch as numpy arrays.

    Args:
        crops_path: the crops store (opened lazily in each worker process: a zarr handle must
            not cross a fork).
        image_rows: (N,) crops-store row of each sample.
        targets: (N, 105) registration theta of each sample (None for prediction).
        fit_data: loss targets, rows aligned with the samples (None for prediction).
        fit_rows: (N,) row of each sample in ``fit_data``.
        num_points: dense points are padded to this many per sample; a sample with more keeps
            a random subset, drawn anew each epoch from (seed, epoch, sample) (deterministic,
            so a resumed run sees the same points; see :meth:`set_epoch`).
        seed: seed of the point subsets.
        cache_chunks: decoded image chunks each process keeps (training: 2 x ``shuffle_chunks``,
            the most a batch can span, two consecutive windows: each chunk is decoded once an epoch).
    """

    def __init__(
        self,
        crops_path: Path,
        image_rows: np.ndarray,
        targets: np.ndarray | None = None,
        fit_data: FitData | None = None,
        fit_rows: np.ndarray | None = None,
        num_points: int = 1,
        seed: int = 0,
        cache_chunks: int = 2,
    ):
        self.crops_path = Path(crops_path)
        self.image_rows = image_rows
        self.targets = targets
        self.fit_data = fit_data
        self.fit_rows = fit_rows
        self.num_points = num_points
        self.seed = seed
        self.cache_chunks = cache_chunks
        self.epoch = 0
        self._images: ChunkCache | None = None
        self._pid = -1

    def __len__(self) -> int:
        return len(self.image_rows)

    def set_epoch(self, epoch: int) -> None:
        """Draw the dense point subsets of ``epoch`` (call before the epoch's DataLoader)."""
        self.epoch = int(epoch)

    def _reader(self) -> ChunkCache:
        if self._images is None or self._pid != os.getpid():
            self._images = ChunkCache(zarr.open_group(self.crops_path, mode="r")["image"], self.cache_chunks)
            self._pid = os.getpid()
        return self._images

    def __getitem__(self, positions: np.ndarray) -> dict[str, np.ndarray]:
        positions = np.asarray(positions)
        item = {"image": self._reader().read(self.image_rows[positions]), "position": positions}
        if self.targets is not None:
            item["theta"] = self.targets[positions]
        if self.fit_data is not None and self.fit_rows is not None:
            rows = self.fit_rows[positions]
            item.update(padded_arrays(self.fit_data, rows, self.num_points, subset_key=(self.seed, self.epoch)))
        return item


def epoch_batches(
    image_rows: np.ndarray, chunk_rows: int, batch_size: int, shuffle_chunks: int, generator: torch.Generator
) -> list[np.ndarray]:
    """One epoch's batches of sample positions: chunks in random order, samples shuffled within
    windows of ``shuffle_chunks`` chunks. A last batch of one sample is dropped (batch norm)."""
    chunk_of = image_rows // chunk_rows
    chunks = np.unique(chunk_of)
    chunks = chunks[torch.randperm(len(chunks), generator=generator).numpy()]
    order = []
    for first in range(0, len(chunks), shuffle_chunks):
        window = np.flatnonzero(np.isin(chunk_of, chunks[first : first + shuffle_chunks]))
        order.append(window[torch.randperm(len(window), generator=generator).numpy()])
    positions = np.concatenate(order) if order else np.zeros(0, np.int64)
    batches = [positions[i : i + batch_size] for i in range(0, len(positions), batch_size)]
    return [b for b in batches if len(b) > 1]


def images_to_tensor(images: Tensor, device: torch.device, channels_last: bool) -> Tensor:
    """(B, S, S, 3) uint8 -> (B, 3, S, S) float in [0, 1] on ``device``."""
    x = images.to(device, non_blocking=True).permute(0, 3, 1, 2).float().div_(255.0)
    return x.contiguous(memory_format=torch.channels_last if channels_last else torch.contiguous_format)


def mirror_theta(theta: Tensor) -> Tensor:
    """(B, 105) theta -> theta of the horizontally flipped crop (see :mod:`dlearn.body.symmetry`)."""
    s = THETA_SLICES
    b = theta.shape[0]
    out = theta.clone()
    out[:, s["pose"]] = mirror_pose(theta[:, s["pose"]].reshape(b, 23, 3)).reshape(b, 69)
    out[:, s["scales"]] = mirror_scales(theta[:, s["scales"]])
    out[:, s["rotation"]] = mirror_rotation(theta[:, s["rotation"]])
    out[:, s["translation"].start] = -theta[:, s["translation"].start]
    return out


def mirror_batch(batch: FitBatch, vertex_symmetry: Tensor) -> FitBatch:
    """The loss targets of horizontally flipped crops: x negated, left/right keypoints swapped,
    every dense point matched to its vertex's mirror (``vertex_symmetry`` (V,))."""
    negate_x = batch.point.new_tensor((-1.0, 1.0))
    flip = torch.as_tensor(COCO_FLIP, device=batch.keypoints.device)
    return FitBatch(
        vertex=vertex_symmetry[batch.vertex],
        point=batch.point * negate_x,
        point_mask=batch.point_mask,
        keypoints=batch.keypoints[:, flip] * negate_x,
        keypoint_mask=batch.keypoint_mask[:, flip],
        depth=batch.depth[:, flip],
        depth_mask=batch.depth_mask[:, flip],
    )


def _select(mask: Tensor, a: Tensor, b: Tensor) -> Tensor:
    """Rows of ``a`` where ``mask`` (B,), else of ``b``."""
    return torch.where(mask.reshape(-1, *([1] * (a.dim() - 1))), a, b)


def augment(
    images: Tensor,
    theta: Tensor,
    batch: FitBatch,
    options: AugmentOptions,
    generator: torch.Generator,
    vertex_symmetry: Tensor | None = None,
) -> tuple[Tensor, Tensor, FitBatch]:
    """Random horizontal flips, similarity p -> a p + b of each crop (normalised coordinates)
    and colour gains.

    A flipped crop's targets are mirrored (:func:`mirror_theta`, :func:`mirror_batch`). The
    image is resampled; 2D points, keypoints and the camera move with it (weak perspective:
    camera scale a s, translation a t + b), depths scale by a; pose, segment scales and the
    camera rotation are unchanged by the similarity. Random numbers come from the CPU
    ``generator`` so that a run is reproducible on any device.

    Raises:
        ValueError: ``options.flip`` without a ``vertex_symmetry``.
    """
    b = images.shape[0]
    device = images.device

    def uniform(*shape: int) -> Tensor:
        return (2 * torch.rand(*shape, generator=generator) - 1).to(device)

    if options.flip:
        if vertex_symmetry is None:
            raise ValueError("flip augmentation needs the body model's vertex_symmetry")
        flip = (torch.rand(b, generator=generator) < 0.5).to(device)
        images = _select(flip, images.flip(-1), images)
        theta = _select(flip, mirror_theta(theta), theta)
        mirrored = mirror_batch(batch, vertex_symmetry)
        batch = FitBatch(**{k: _select(flip, getattr(mirrored, k), getattr(batch, k)) for k in vars(batch)})

    a = 1 + options.scale * uniform(b)
    shift = options.translation * uniform(b, 2)
    gains = 1 + options.colour * uniform(b, 3)
    # grid_sample's grid gives, per output pixel p', the input position p = (p' - b) / a.
    affine = torch.zeros(b, 2, 3, device=device)
    affine[:, 0, 0] = affine[:, 1, 1] = 1 / a
    affine[:, :, 2] = -shift / a[:, None]
    grid = F.affine_grid(affine.to(images.dtype), list(images.shape), align_corners=False)
    warped = F.grid_sample(images, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    warped = (warped * gains[:, :, None, None].to(images.dtype)).clamp_(0, 1)

    theta = theta.clone()
    cam_scale, translation = THETA_SLICES["cam_scale"], THETA_SLICES["translation"]
    theta[:, cam_scale] = theta[:, cam_scale] * a[:, None]
    theta[:, translation] = theta[:, translation] * a[:, None] + shift
    moved = FitBatch(
        vertex=batch.vertex,
        point=batch.point * a[:, None, None] + shift[:, None, :],
        point_mask=batch.point_mask,
        keypoints=batch.keypoints * a[:, None, None] + shift[:, None, :],
        keypoint_mask=batch.keypoint_mask,
        depth=batch.depth * a[:, None],
        depth_mask=batch.depth_mask,
    )
    return warped, theta, moved
