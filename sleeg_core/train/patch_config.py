"""How pseudo-anomaly patches are rendered: `PatchConfig`, checked when it is made."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from sleeg_core.common.config import from_dict as config_from_dict
from sleeg_core.common.errors import SleegError

SHAPES = ("convex_harris", "square", "random_hull")
AREA_SAMPLING = ("uniform", "log_uniform")
MAX_FEATHER = 16.0  # largest feather σ in pixels


@dataclass
class PatchConfig:
    """How pseudo-anomalies are rendered. Defaults are the paper's version (METHOD.md).

    The paper gives no crop size for its N = 10 patches; the default crop area U(0.01, 0.05)·H·W
    was chosen by measurement on ENet (docs/accuracy.md: +7–10 AP over U(0.005, 0.02)); the
    code's U(0.03, 0.06) covers about 20 % of a frame. The authors' code settings are
    `PatchConfig.authors_code()`.
    """

    shape: str = "convex_harris"
    n_patches: int = 10  # patches per image
    area_range: tuple[float, float] = (0.01, 0.05)  # crop area as a fraction of H·W
    area_sampling: str = "uniform"  # uniform | log_uniform (as many small crops as large)
    road_fraction: float = 0.0  # share of patches centred in the `road` region, when one is given
    aspect_range: tuple[float, float] = (0.8, 1.2)  # crop width / height, uniform
    noise_fraction: float = 0.0  # probability that a patch is filled with Gaussian noise
    bank_size: int = 30  # crops a PatchRenderer keeps from past batches
    bank_crops_per_image: int = 2  # crops each image adds to the bank after rendering
    max_corners: int = 32  # at most this many Harris corners per crop (strongest first)
    harris_k: float = 0.04  # R = det(M) − k·trace(M)²
    harris_quality: float = 0.01  # corners need R ≥ quality · the crop's largest R
    n_random_points: int = 15  # points per "random_hull" shape
    feather: float = 0.0  # σ in pixels of the blended edge of pasted regions (0: hard edge)

    def __post_init__(self) -> None:
        self.area_range = _pair(self.area_range, "area_range")
        self.aspect_range = _pair(self.aspect_range, "aspect_range")
        (area_low, area_high), (aspect_low, aspect_high) = self.area_range, self.aspect_range
        problems = [
            (self.shape not in SHAPES, f"shape must be one of {', '.join(SHAPES)}"),
            (self.n_patches < 0, "n_patches must be ≥ 0"),
            (not 0 < area_low <= area_high <= 1, "area_range must satisfy 0 < low ≤ high ≤ 1"),
            (not 0 < aspect_low <= aspect_high, "aspect_range must satisfy 0 < low ≤ high"),
            (not 0 <= self.noise_fraction <= 1, "noise_fraction must be in [0, 1]"),
            (self.area_sampling not in AREA_SAMPLING, f"area_sampling must be in {AREA_SAMPLING}"),
            (not 0 <= self.road_fraction <= 1, "road_fraction must be in [0, 1]"),
            (self.bank_size < 1, "bank_size must be ≥ 1"),
            (self.bank_crops_per_image < 0, "bank_crops_per_image must be ≥ 0"),
            (self.max_corners < 3, "max_corners must be ≥ 3"),
            (not 0 <= self.harris_quality < 1, "harris_quality must be in [0, 1)"),
            (self.n_random_points < 3, "n_random_points must be ≥ 3"),
            (not 0 <= self.feather <= MAX_FEATHER, f"feather must be in [0, {MAX_FEATHER}] px"),
        ]
        for bad, message in problems:
            if bad:
                raise SleegError(f"patch config: {message} (got {self})")

    @classmethod
    def authors_code(cls) -> PatchConfig:
        """The authors' public code: hull of 15 random points, bigger crops, 10 % noise patches."""
        return cls(shape="random_hull", area_range=(0.03, 0.06), noise_fraction=0.1)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON/YAML-friendly dict (tuples become lists)."""
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> PatchConfig:
        """Inverse of to_dict; unknown keys raise SleegError."""
        return config_from_dict(cls, data, "patches")


def _pair(value: Any, name: str) -> tuple[float, float]:
    try:
        low, high = value
        return float(low), float(high)
    except (TypeError, ValueError) as err:
        raise SleegError(f"patch config: {name} must be two numbers, got {value!r}") from err
