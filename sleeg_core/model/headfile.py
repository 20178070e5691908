"""The exported head file: everything inference needs, in one torch file with a format version.

Holds the head weights and config, the segmentor it was trained on (name, options, feature
channels), the score definition (λ), the score statistics on normal training pixels and a
calibrated default threshold, plus the training config for provenance.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch

from sleeg_core.common.atomic import write_atomic
from sleeg_core.common.errors import ModelLoadError
from sleeg_core.model.head import HeadConfig, OoDHead

FORMAT = "sleeg-head"
FORMAT_VERSION = 1


@dataclass
class HeadFile:
    """A trained OoD head and how to use it."""

    head_config: HeadConfig
    state_dict: dict[str, torch.Tensor]
    segmentor: str
    segmentor_options: dict[str, Any]
    feature_channels: int
    lam: float = 0.5
    threshold: float = float("nan")  # calibrated default for the mask (score units)
    threshold_rule: str = ""  # how `threshold` was chosen, e.g. "FPR 5% on normal pixels"
    score_stats: dict[str, float] = field(default_factory=dict)  # quantiles on normal pixels
    train_config: dict[str, Any] = field(default_factory=dict)

    def build_head(self) -> OoDHead:
        """The head module with its trained weights, in eval mode."""
        head = OoDHead.from_config(self.head_config)
        head.load_state_dict(self.state_dict)
        return head.eval()

    def save(self, path: str | Path) -> Path:
        payload = {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            **asdict(self),
            "head_config": self.head_config.to_dict(),
            "state_dict": {k: v.detach().cpu() for k, v in self.state_dict.items()},
        }
        return write_atomic(path, lambda f: torch.save(payload, f))

    @classmethod
    def load(cls, path: str | Path) -> HeadFile:
        """Read a head file; a ModelLoadError (field "head") naming the file for anything that is
        not one."""
        path = Path(path)
        if not path.is_file():
            raise ModelLoadError("head", f"head file not found: {path}")
        try:
            payload = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as err:  # torch raises many types for truncated / foreign files
            raise ModelLoadError(
                "head", f"cannot read head file {path}: {err.__class__.__name__}"
            ) from err
        if not isinstance(payload, dict) or payload.get("format") != FORMAT:
            raise ModelLoadError("head", f"{path} is not a sleeg head file (no '{FORMAT}' marker)")
        version = payload.get("format_version")
        if version != FORMAT_VERSION:
            raise ModelLoadError(
                "head",
                f"{path}: head file format version {version}, this sleeg reads {FORMAT_VERSION}",
            )
        fields = {k: payload[k] for k in cls.__dataclass_fields__ if k in payload}
        fields["head_config"] = HeadConfig.from_dict(payload["head_config"])
        head_file = cls(**fields)
        try:
            head_file.build_head()
        except RuntimeError as err:
            raise ModelLoadError(
                "head", f"{path}: head weights do not match its config: {err}"
            ) from err
        return head_file

    def check_segmentor(self, name: str, feature_channels: int, source: str = "head") -> None:
        """Refuse a segmentor other than the one this head was trained on."""
        if name != self.segmentor or feature_channels != self.feature_channels:
            raise ModelLoadError(
                "head",
                f"{source} was trained on segmentor '{self.segmentor}' "
                f"({self.feature_channels} feature channels), not '{name}' "
                f"({feature_channels} channels)",
            )
