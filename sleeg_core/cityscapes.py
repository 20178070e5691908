"""The Cityscapes label space sleeg segments into: 19 train ids, their names and colours.

Train id 255 means void/ignore. `colorize` and `color_to_train_ids` convert between train-id maps
and the official colour images (e.g. `*_gtFine_color.png`).
"""

from __future__ import annotations

import cv2
import numpy as np
import torch

CITYSCAPES_CLASSES: tuple[str, ...] = (
    "road", "sidewalk", "building", "wall", "fence", "pole", "traffic light", "traffic sign",
    "vegetation", "terrain", "sky", "person", "rider", "car", "truck", "bus", "train",
    "motorcycle", "bicycle",
)  # fmt: skip

CITYSCAPES_PALETTE: tuple[tuple[int, int, int], ...] = (
    (128, 64, 128), (244, 35, 232), (70, 70, 70), (102, 102, 156), (190, 153, 153),
    (153, 153, 153), (250, 170, 30), (220, 220, 0), (107, 142, 35), (152, 251, 152),
    (70, 130, 180), (220, 20, 60), (255, 0, 0), (0, 0, 142), (0, 0, 70), (0, 60, 100),
    (0, 80, 100), (0, 0, 230), (119, 11, 32),
)  # fmt: skip

IGNORE_ID = 255
ROAD_TRAIN_ID = CITYSCAPES_CLASSES.index("road")

_LUT = np.zeros((256, 3), dtype=np.uint8)  # train id → colour; every other id stays black
_LUT[: len(CITYSCAPES_PALETTE)] = CITYSCAPES_PALETTE


def _pack(rgb: np.ndarray) -> np.ndarray:
    """…×3 uint8 colours → one int32 code per colour (0xRRGGBB)."""
    rgb = rgb.astype(np.int32)
    return (rgb[..., 0] << 16) | (rgb[..., 1] << 8) | rgb[..., 2]


_CODES = _pack(np.array(CITYSCAPES_PALETTE, dtype=np.uint8))
_CODE_ORDER = np.argsort(_CODES)
_SORTED_CODES = _CODES[_CODE_ORDER]


def colorize(train_ids: np.ndarray | torch.Tensor) -> np.ndarray:
    """H×W train ids → H×W×3 uint8 RGB in the Cityscapes palette; 255 or any unknown id → black."""
    ids = train_ids.detach().cpu().numpy() if isinstance(train_ids, torch.Tensor) else train_ids
    ids = np.asarray(ids)
    if ids.dtype != np.uint8:
        ids = np.where((ids >= 0) & (ids < len(_LUT)), ids, IGNORE_ID).astype(np.uint8)
    return cv2.LUT(cv2.merge([ids, ids, ids]), _LUT[:, None, :])  # 10× faster than _LUT[ids]


def color_to_train_ids(rgb: np.ndarray) -> np.ndarray:
    """H×W×3 uint8 RGB colour label → H×W uint8 train ids; colours outside the palette → 255.

    Cityscapes reuses some colours for classes without a train id (polegroup looks like pole,
    license plate like car): those pixels get the train class of their colour.
    """
    if rgb.ndim != 3 or rgb.shape[2] != 3:
        raise ValueError(f"colour label must be H×W×3, got shape {rgb.shape}")
    codes = _pack(rgb)
    pos = np.clip(np.searchsorted(_SORTED_CODES, codes), 0, len(_SORTED_CODES) - 1)
    found = _SORTED_CODES[pos] == codes
    return np.where(found, _CODE_ORDER[pos], IGNORE_ID).astype(np.uint8)
