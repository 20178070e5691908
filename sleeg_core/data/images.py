"""Reading images from disk into the one in-memory form sleeg uses: H×W×3 uint8 RGB numpy arrays.

Grayscale is replicated to three channels, alpha is dropped, 16-bit images are scaled to 8 bits;
anything else (unreadable, empty, smaller than MIN_SIDE) raises SleegError naming the file.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import torch

from sleeg_core.common.errors import SleegError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff")
# Cityscapes-style annotation files that sit beside frames: never taken as input images
LABEL_FILE_MARKERS = ("_gtFine_", "_gtCoarse_", "_labelIds", "_instanceIds", "_labelTrainIds")
MIN_SIDE = 8  # the segmentors downsample by 8; smaller images carry no usable content


def to_rgb8(image: np.ndarray, source: str = "image") -> np.ndarray:
    """Convert a decoded OpenCV image (BGR/BGRA/gray, 8 or 16 bit) to H×W×3 uint8 RGB."""
    if image.dtype == np.uint16:
        image = (image >> 8).astype(np.uint8)
    elif image.dtype != np.uint8:
        raise SleegError(f"{source}: unsupported pixel type {image.dtype} (need 8 or 16 bit)")
    if image.ndim == 2 or (image.ndim == 3 and image.shape[2] == 1):
        image = cv2.cvtColor(image.reshape(image.shape[:2]), cv2.COLOR_GRAY2RGB)
    elif image.ndim == 3 and image.shape[2] == 3:
        image = cv2.cvtColor(image, cv2.COLOR_BGR2RGB)
    elif image.ndim == 3 and image.shape[2] == 4:
        image = cv2.cvtColor(image, cv2.COLOR_BGRA2RGB)
    else:
        raise SleegError(f"{source}: unsupported image shape {image.shape}")
    if min(image.shape[:2]) < MIN_SIDE:
        raise SleegError(
            f"{source}: image is {image.shape[1]}×{image.shape[0]} pixels, "
            f"smaller than the minimum side of {MIN_SIDE}"
        )
    return np.ascontiguousarray(image)


def _decode(path: str | Path, what: str) -> tuple[Path, np.ndarray]:
    """Decode an image file as stored (no conversion); SleegError naming the file otherwise."""
    path = Path(path)
    if not path.is_file():
        raise SleegError(f"{what} not found: {path}")
    data = np.fromfile(path, dtype=np.uint8)
    decoded = cv2.imdecode(data, cv2.IMREAD_UNCHANGED) if data.size else None
    if decoded is None:
        raise SleegError(f"cannot decode {what} (corrupt or unsupported format): {path}")
    return path, decoded


def read_rgb(path: str | Path) -> np.ndarray:
    """Read an image file as H×W×3 uint8 RGB, or raise SleegError naming the file."""
    path, image = _decode(path, "image")
    return to_rgb8(image, str(path))


def read_label(path: str | Path) -> np.ndarray:
    """Read a single-channel label image (uint8 H×W) without any colour conversion."""
    path, label = _decode(path, "label image")
    if label.ndim == 3:
        if not all(np.array_equal(label[..., 0], label[..., c]) for c in (1, 2)):
            raise SleegError(f"label image {path} has colour channels: expected one channel")
        label = label[..., 0]
    if label.dtype != np.uint8:
        raise SleegError(f"label image {path} is {label.dtype}: expected 8-bit labels")
    return np.ascontiguousarray(label)


def write_rgb(path: str | Path, image: np.ndarray) -> None:
    """Write an H×W×3 uint8 RGB array to an image file (format from the suffix)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(path), cv2.cvtColor(image, cv2.COLOR_RGB2BGR)):
        raise SleegError(f"cannot write image: {path}")


def list_images(folder: str | Path, recursive: bool = True) -> list[Path]:
    """Image files under `folder` (sorted), by suffix; annotation files (LABEL_FILE_MARKERS) and
    hidden files are left out."""
    folder = Path(folder)
    if not folder.is_dir():
        raise SleegError(f"image folder not found: {folder}")
    pattern = "**/*" if recursive else "*"
    return sorted(
        p
        for p in folder.glob(pattern)
        if p.suffix.lower() in IMAGE_SUFFIXES
        and not p.name.startswith(".")
        and not any(m in p.name for m in LABEL_FILE_MARKERS)
    )


def to_batch(
    images: list[np.ndarray] | np.ndarray, device: str | torch.device = "cpu"
) -> torch.Tensor:
    """H×W×3 uint8 arrays (same size) → B×3×H×W uint8 tensor on `device`.

    The tensor keeps the arrays' H×W×3 memory order (channels-last, what the segmentors want), so
    no reordering copy is made; for CUDA the pixels go through pinned memory and the copy does
    not block the host.
    """
    arr = np.stack(images) if isinstance(images, list) else np.ascontiguousarray(images)[None]
    batch = torch.from_numpy(arr)
    device = torch.device(device)
    if device.type == "cuda":
        batch = batch.pin_memory().to(device, non_blocking=True)
    else:
        batch = batch.to(device)
    return batch.permute(0, 3, 1, 2)
