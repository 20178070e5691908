"""Labels: the Cityscapes label space sleeg segments into, and the anomaly labels it is judged on.

Segmentation: 19 Cityscapes train ids, their names and colours; train id 255 means void/ignore.
`colorize` and `color_to_train_ids` convert between train-id maps and the official colour images
(e.g. `*_gtFine_color.png`).

Anomaly labels: uint8 H×W, 0 normal, 1 anomaly, 255 void (`NORMAL`, `ANOMALY`, `VOID`); a
`LabelMap` maps a dataset's raw values onto them; an `AnomalySample` is one labelled image.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import torch

from sleeg_core.common.errors import SleegError

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


# ---------------------------------------------------------------- anomaly labels

NORMAL, ANOMALY, VOID = 0, 1, 255


@dataclass(frozen=True)
class AnomalySample:
    """One labelled image: RGB uint8 H×W×3 and label uint8 H×W (0 normal, 1 anomaly, 255 void)."""

    image: np.ndarray
    label: np.ndarray
    name: str
    image_path: Path
    label_path: Path


class LabelMap:
    """Raw 8-bit label value → project label (0, 1 or 255); `default` maps every other value."""

    def __init__(self, mapping: dict[int, int], default: int | None = None) -> None:
        targets = (NORMAL, ANOMALY, VOID)
        for raw, value in mapping.items():
            if not 0 <= raw <= 255 or value not in targets:
                raise SleegError(f"label map {raw}:{value}: raw in 0..255, target 0, 1 or 255")
        if default is not None and default not in targets:
            raise SleegError(f"label map *:{default}: the target must be 0, 1 or 255")
        self.mapping = dict(mapping)
        self.default = default  # None: an unmapped raw value is an error
        self._lut = np.full(256, -1 if default is None else default, dtype=np.int16)
        self._lut[list(self.mapping)] = list(self.mapping.values())

    def apply(self, raw: np.ndarray, source: str = "label") -> np.ndarray:
        """Map a uint8 raw label image, or raise SleegError naming `source` and the bad values."""
        mapped = self._lut[raw]
        unmapped = mapped < 0
        if unmapped.any():
            values = np.unique(raw[unmapped]).tolist()
            raise SleegError(
                f"{source}: raw label values {values} are not in the label map '{self}' "
                "(add them, or '*:255' to make every other value void)"
            )
        return mapped.astype(np.uint8)

    def __str__(self) -> str:
        items = [f"{k}:{v}" for k, v in sorted(self.mapping.items())]
        return ",".join(items + ([f"*:{self.default}"] if self.default is not None else []))

    def __repr__(self) -> str:
        return f"parse_label_map({str(self)!r})"


def parse_label_map(text: str) -> LabelMap:
    """Parse "raw:label,...[,*:label]" (e.g. "0:0,2:1,255:255,*:255"); labels are 0, 1 or 255."""
    mapping: dict[int, int] = {}
    default: int | None = None
    for item in filter(None, (part.strip() for part in text.split(","))):
        match = re.fullmatch(r"(\*|\d+)\s*:\s*(\d+)", item)
        if match is None:
            raise SleegError(f"label map item {item!r} is not 'raw:label' (in {text!r})")
        key, value = match.group(1), int(match.group(2))
        if key == "*":
            if default is not None:
                raise SleegError(f"label map {text!r} has two '*' items")
            default = value
        elif int(key) in mapping:
            raise SleegError(f"label map {text!r} maps raw value {key} twice")
        else:
            mapping[int(key)] = value
    if not mapping and default is None:
        raise SleegError(f"label map {text!r} is empty")
    return LabelMap(mapping, default)
