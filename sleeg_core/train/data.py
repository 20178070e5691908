"""Training frames: unlabeled images → deterministic random crops, as a function of (seed, step).

Every crop's randomness (which frame, scale, crop box, flip, photometric distortion) is derived
from (seed, step, slot), so a run resumed at step k sees exactly the batches an uninterrupted run
would, whatever the number of loader workers.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import torch
from torch.utils.data import Dataset, Sampler

from sleeg_core.common.errors import SleegError
from sleeg_core.data.images import read_rgb

SHARED_SLOT = 2**31 - 1  # the random stream a step's crops share (never a real slot)


@dataclass
class AugmentConfig:
    """Crop size (h, w), random rescale range, flip and photometric distortion (mmseg-style).

    `photometric_shared`: one distortion per step for every crop of the batch, so a patch pasted
    from another crop has the same brightness, contrast, saturation and hue as the scene it lands
    in (as one camera would see both); False draws one per crop.
    """

    crop: tuple[int, int] = (512, 1024)
    scale: tuple[float, float] = (0.5, 2.0)
    flip: bool = True
    photometric: bool = True
    photometric_shared: bool = False


def sample_rng(seed: int, step: int, slot: int) -> np.random.Generator:
    """The random stream of batch slot `slot` at training step `step`."""
    return np.random.default_rng([seed, step, slot])


def photometric_distortion(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Brightness ±32, contrast and saturation ×U(0.5, 1.5), hue ±18, each with probability ½."""
    img = image.astype(np.float32)
    if rng.random() < 0.5:
        img += rng.uniform(-32, 32)
    contrast_first = rng.random() < 0.5
    contrast = rng.uniform(0.5, 1.5) if rng.random() < 0.5 else None
    if contrast_first and contrast is not None:
        img *= contrast
    img = np.clip(img, 0, 255)
    saturate = rng.random() < 0.5
    shift_hue = rng.random() < 0.5
    if saturate or shift_hue:
        hsv = cv2.cvtColor(img.astype(np.uint8), cv2.COLOR_RGB2HSV).astype(np.float32)
        if saturate:
            hsv[..., 1] = np.clip(hsv[..., 1] * rng.uniform(0.5, 1.5), 0, 255)
        if shift_hue:
            hsv[..., 0] = (hsv[..., 0] + rng.integers(-18, 19) / 2) % 180
        img = cv2.cvtColor(hsv.astype(np.uint8), cv2.COLOR_HSV2RGB).astype(np.float32)
    if not contrast_first and contrast is not None:
        img *= contrast
    return np.clip(img, 0, 255).astype(np.uint8)


def random_crop(
    image: np.ndarray,
    cfg: AugmentConfig,
    rng: np.random.Generator,
    photometric_rng: np.random.Generator | None = None,
) -> np.ndarray:
    """Rescale by U(scale) (at least enough to cover the crop), crop, flip, distort (with
    `photometric_rng` when given, else `rng`).

    The crop window is chosen in the source image (crop size / scale) and only that window is
    resized: the same augmentation as resizing the whole frame first, at a fraction of the cost.
    """
    ch, cw = cfg.crop
    h, w = image.shape[:2]
    s = max(rng.uniform(*cfg.scale), ch / h, cw / w)
    sh, sw = min(h, max(1, round(ch / s))), min(w, max(1, round(cw / s)))
    y = int(rng.integers(0, h - sh + 1))
    x = int(rng.integers(0, w - sw + 1))
    interp = cv2.INTER_AREA if s < 1 else cv2.INTER_LINEAR
    image = cv2.resize(image[y : y + sh, x : x + sw], (cw, ch), interpolation=interp)
    if cfg.flip and rng.random() < 0.5:
        image = image[:, ::-1]
    if cfg.photometric:
        image = photometric_distortion(image, rng if photometric_rng is None else photometric_rng)
    return np.ascontiguousarray(image)


class StepSampler(Sampler[list[tuple[int, int, int]]]):
    """Batches of (frame index, step, slot) for steps start..total-1: epoch-wise permutations.

    With `world_size` > 1 each step draws one batch of batch_size × world_size slots and `rank`
    takes its slice: together the ranks see the crops one process with the whole batch would.
    """

    def __init__(
        self,
        n_frames: int,
        batch_size: int,
        seed: int,
        start: int,
        total: int,
        rank: int = 0,
        world_size: int = 1,
    ):
        self.n, self.b, self.seed = n_frames, batch_size * world_size, seed
        self.start, self.total = start, total
        self.slots = range(rank * batch_size, (rank + 1) * batch_size)

    def frame_index(self, step: int, slot: int) -> int:
        k = step * self.b + slot
        epoch, pos = divmod(k, self.n)
        return int(np.random.default_rng([self.seed, epoch, 7]).permutation(self.n)[pos])

    def __iter__(self) -> Iterator[list[tuple[int, int, int]]]:
        for step in range(self.start, self.total):
            yield [(self.frame_index(step, slot), step, slot) for slot in self.slots]

    def __len__(self) -> int:
        return max(0, self.total - self.start)


class CropDataset(Dataset):
    """Frames on disk → uint8 3×h×w crops; indexed by (frame index, step, slot).

    Decoded frames are kept in memory up to `cache_mb` MiB (per loader worker: each holds its
    own copy), the first ones decoded first; the rest are decoded at every use. Decoding a
    2048×1024 PNG costs ~25 ms, as much CPU as the frozen ENet spends on a 256×512 crop.
    """

    def __init__(
        self, frames: Sequence[Path], cfg: AugmentConfig, seed: int, cache_mb: float = 0.0
    ):
        if not frames:
            raise SleegError("no training frames")
        if cache_mb < 0:
            raise SleegError(f"data.cache_mb must be ≥ 0, got {cache_mb}")
        self.frames, self.cfg, self.seed = list(frames), cfg, seed
        self.cache: dict[int, np.ndarray] = {}
        self.cache_left = int(cache_mb * 2**20)  # bytes

    def __len__(self) -> int:
        return len(self.frames)

    def frame(self, index: int) -> np.ndarray:
        """The decoded frame (H×W×3 RGB, read-only when cached)."""
        if (image := self.cache.get(index)) is not None:
            return image
        image = read_rgb(self.frames[index])
        if image.nbytes <= self.cache_left:
            image.flags.writeable = False  # crops are views: nothing may write into the cache
            self.cache[index] = image
            self.cache_left -= image.nbytes
        return image

    def __getitem__(self, key: tuple[int, int, int]) -> torch.Tensor:
        index, step, slot = key
        rng = sample_rng(self.seed, step, slot)
        shared = sample_rng(self.seed, step, SHARED_SLOT) if self.cfg.photometric_shared else None
        crop = random_crop(self.frame(index), self.cfg, rng, shared)
        return torch.from_numpy(crop).permute(2, 0, 1)
