"""sleeg_core: SLEEG anomaly segmentation in plain PyTorch (no ROS).

Layers, each importing only those below it: `common` → `data` → `segmentors` → `model` →
`train`, `eval`, `deploy` → `cli`. The names below are the public API; they import lazily, so
`import sleeg_core` stays cheap (no PyTorch until one is used).

>>> from sleeg_core import load_segmenter  # doctest: +SKIP
>>> model = load_segmenter("enet_cityscapes", head="enet_cityscapes_sleeg")  # doctest: +SKIP
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

# public name → module that defines it
_EXPORTS: dict[str, str] = {
    "SleegError": "sleeg_core.common.errors",
    "AnomalySample": "sleeg_core.data.labels",
    "open_dataset": "sleeg_core.data.datasets",
    "read_rgb": "sleeg_core.data.images",
    "Segmentor": "sleeg_core.segmentors",
    "build_segmentor": "sleeg_core.segmentors",
    "segmentor_names": "sleeg_core.segmentors",
    "HeadConfig": "sleeg_core.model.head",
    "OoDHead": "sleeg_core.model.head",
    "HeadFile": "sleeg_core.model.headfile",
    "AnomalySegmenter": "sleeg_core.model.inference",
    "Prediction": "sleeg_core.model.inference",
    "load_segmenter": "sleeg_core.model.inference",
    "TrainConfig": "sleeg_core.train.config",
    "Trainer": "sleeg_core.train.trainer",
    "evaluate_dataset": "sleeg_core.eval.evaluation",
    "export_onnx": "sleeg_core.deploy.onnx_export",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'sleeg_core' has no attribute {name!r}")
    value = getattr(import_module(_EXPORTS[name]), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])
