"""The settings of a training run (`sleeg train --config`, config/train_*.yaml), as nested
dataclasses read by `sleeg_core.common.config.load_config`."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sleeg_core.model.head import DEFAULT_WIDTH
from sleeg_core.model.tta import NODE_TTA
from sleeg_core.train.data import AugmentConfig
from sleeg_core.train.patch_config import PatchConfig
from sleeg_core.train.sources import SourceConfig


@dataclass
class SegmentorConfig:
    """The frozen segmentor: its name, weights and options."""

    name: str = "enet"
    weights: str = ""
    options: dict[str, Any] = field(default_factory=dict)  # e.g. feature_layer, logits_source
    # torch.compile the frozen networks ("" off; segmentors.base.COMPILE_MODES): the crop size
    # is fixed, so they compile once (plus once for the calibration size at the end)
    compile_mode: str = ""


@dataclass
class HeadSection:
    """The OoD head's shape (the feature channels come from the segmentor)."""

    width: int = DEFAULT_WIDTH
    depth: int = 3
    dropout: float = 0.1
    # per branch, the dilation of each block; [] → one branch of dilation 1 (the paper's)
    branches: list[list[int]] = field(default_factory=list)


@dataclass
class DataConfig:
    """Where the training frames come from and how they are loaded and augmented."""

    sources: list[SourceConfig] = field(default_factory=list)
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    workers: int = 2
    cache_mb: float = 0.0  # decoded frames kept in memory, per loader worker (0: none)


@dataclass
class LossConfig:
    """The weights of the TAE and TORE terms of the loss."""

    tae_weight: float = 1.0  # 0 trains TORE alone
    # TORE weight (authors' code: 0.05); 0 trains TAE alone, which scored higher AP on both
    # evaluation sets with ENet, whose JEM is below chance (docs/accuracy.md)
    beta: float = 0.0
    gamma: float = 15.0
    dynamic_margin: bool = True  # False: the static-margin ablation (no JEM in log p_t)


@dataclass
class RefineConfig:
    """Refinement of the pasted labels (which pasted pixels count as anomalies)."""

    # False: every pasted pixel is an anomaly. Off by default: on ENet the JEM that splits the
    # patches is at or below chance, so the split ignores an arbitrary half of each patch, and
    # turning it off scored higher on both evaluation sets (docs/accuracy.md).
    enabled: bool = False
    mode: str = "paper"  # paper: JEM during warm-up, then A | energy: always JEM (authors' code)
    warmup_iters: int = 6000
    n_candidates: int = 25


@dataclass
class OptimConfig:
    """SGD with momentum and a poly learning-rate schedule."""

    lr: float = 0.01
    momentum: float = 0.9
    weight_decay: float = 5e-4
    poly_power: float = 0.9


@dataclass
class CalibrationConfig:
    """How the head file's default threshold is chosen after training."""

    # default threshold: this share of normal training pixels above it. 0.2 %: the ENet head's
    # mask flags 0.6 % of Fishyscapes Static's normal pixels at 54 % pixel precision (5 %: 8.9 %
    # at 12 %), docs/accuracy.md "The mask"
    fpr: float = 0.002
    frames: int = 64  # un-augmented training frames scored for the statistics (a 0.2 % tail
    # needs many: 8 frames put the ENet head's at -0.80, 64 at -0.60)
    size: tuple[int, int] = (512, 1024)  # (h, w) they are resized to
    tta: str = NODE_TTA  # the test-time averaging they are scored with: the node's default


@dataclass
class TrainConfig:
    """Everything one training run reads: `sleeg train` settings."""

    segmentor: SegmentorConfig = field(default_factory=SegmentorConfig)
    head: HeadSection = field(default_factory=HeadSection)
    data: DataConfig = field(default_factory=DataConfig)
    patches: PatchConfig = field(default_factory=PatchConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    refine: RefineConfig = field(default_factory=RefineConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    calibration: CalibrationConfig = field(default_factory=CalibrationConfig)
    # λ of the score A = log p_a + λ·log p_t (paper: 0.5). 0 = TAE alone: on ENet every λ > 0
    # lowered AP on both evaluation sets, as JEM is below chance there (docs/accuracy.md).
    lam: float = 0.0
    iterations: int = 40000
    batch_size: int = 8
    seed: int = 0
    device: str = "auto"
    amp: bool = True  # mixed precision on CUDA (ignored on CPU)
    checkpoint_every: int = 500
    keep_checkpoints: int = 3
    log_every: int = 10
    out: str = "runs/sleeg"
