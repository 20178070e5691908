"""Frozen segmentors by name: `build_segmentor("enet", weights=...)`.

One registry used by every CLI command, the node's parameters and the benchmarks.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

from sleeg_core.common.errors import SleegError
from sleeg_core.segmentors.base import Segmentor, SegmentorInfo, SegmentorOutput

# name → ("module:Class", fixed constructor kwargs)
_REGISTRY: dict[str, tuple[str, dict[str, Any]]] = {
    "enet": ("sleeg_core.segmentors.enet:ENetSegmentor", {}),
    "espnet": ("sleeg_core.segmentors.espnet:ESPNetSegmentor", {}),
    "dabnet": ("sleeg_core.segmentors.dabnet:DABNetSegmentor", {}),
    **{
        arch: ("sleeg_core.segmentors.torchvision_models:TorchvisionSegmentor", {"arch": arch})
        for arch in (
            "deeplabv3_resnet50",
            "deeplabv3_resnet101",
            "fcn_resnet50",
            "fcn_resnet101",
            "lraspp_mobilenet_v3_large",
        )
    },
}


def segmentor_names() -> list[str]:
    """Every segmentor name `build_segmentor` accepts."""
    return list(_REGISTRY)


def build_segmentor(name: str, weights: str | Path | None, **options: Any) -> Segmentor:
    """Build the named segmentor, frozen, with weights from a local file (None: random init)."""
    if name not in _REGISTRY:
        raise SleegError(f"unknown segmentor '{name}'; choose one of: {', '.join(_REGISTRY)}")
    target, fixed = _REGISTRY[name]
    module_name, class_name = target.split(":")
    cls = getattr(importlib.import_module(module_name), class_name)
    return cls(weights=weights, **fixed, **options)


__all__ = [
    "Segmentor",
    "SegmentorInfo",
    "SegmentorOutput",
    "build_segmentor",
    "segmentor_names",
]
