"""The ensemble file: several segmentors, each with its heads and weights, taken as one head.

A YAML file, accepted wherever a head file is (`--head`, the node's `head`):

    kind: sleeg-ensemble
    members:                      # the first member gives train ids, logits and logit baselines
      - weights: enet_cityscapes  # a known weights name, or a checkpoint path
        heads:
          - {head: enet_cityscapes_sleeg, weight: 0.5}   # a shipped head's name, or a path
      - weights: dabnet_cityscapes
        tta: none                 # optional: none | flip | scales (default: the model's tta)
        heads:
          - {head: dabnet_cityscapes_sleeg, weight: 0.25}
          - {head: dabnet_cityscapes_sleeg_750steps, weight: 0.25}
    threshold: 0.42               # written by calibration (benchmarks/recalibrate.py)
    threshold_rule: ...
    score_stats: {normal_p50: ..., normal_p90: ..., normal_p99: ..., normal_p999: ...}
    calibration: {fpr: 0.002, frames: 64, size: [512, 1024], tta: scales}

Relative paths are relative to the ensemble file's folder. The ensemble's 'sleeg' score is
Σ w·z over all heads, the weights normalised to sum 1 and each head's score normalised by its own
head file's statistics, z = (s − normal_p50) / (normal_p99 − normal_p50)
(sleeg_core.model.ensemble). Every problem with the file is a ModelLoadError (field "head")
naming it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from sleeg_core.common.atomic import write_atomic
from sleeg_core.common.errors import ModelLoadError, SleegError
from sleeg_core.model.tta import check_tta

KIND = "sleeg-ensemble"
ENSEMBLE_SUFFIXES = (".yaml", ".yml")
# the keys each level of the file may hold
FILE_KEYS = ("kind", "members", "threshold", "threshold_rule", "score_stats", "calibration")
MEMBER_KEYS = ("weights", "heads", "tta")
HEAD_KEYS = ("head", "weight")


def is_ensemble_file(path: str | Path) -> bool:
    """Whether a head value's file is an ensemble file (by its suffix)."""
    return Path(path).suffix.lower() in ENSEMBLE_SUFFIXES


@dataclass
class HeadEntry:
    """One head of a member: a shipped head's name or a head file path, and its weight (> 0)."""

    head: str
    weight: float


@dataclass
class MemberEntry:
    """One segmentor (a known weights name or a checkpoint path) with its heads; `tta` None
    follows the model's setting."""

    weights: str
    heads: list[HeadEntry]
    tta: str | None = None


@dataclass
class EnsembleFile:
    """An ensemble of heads on one or more segmentors, and its calibrated 'sleeg' threshold.

    Offers what callers read of a HeadFile: `threshold`, `threshold_rule`, `score_stats` and
    `lam` (the first head's λ, set when the ensemble is loaded)."""

    members: list[MemberEntry]
    threshold: float = float("nan")  # calibrated default for the mask (ensemble score units)
    threshold_rule: str = ""
    score_stats: dict[str, float] = field(default_factory=dict)  # quantiles on normal pixels
    calibration: dict[str, Any] = field(default_factory=dict)  # how `threshold` was calibrated
    path: Path | None = None  # where it was read from (relative paths are relative to it)
    lam: float = float("nan")

    def resolve(self, value: str) -> str:
        """A member's weights or head value: a name (no folder, no suffix) or an absolute path as
        given, a relative path against the file's folder."""
        path = Path(value)
        if self.path is None or path.is_absolute() or (path.name == value and not path.suffix):
            return value
        return str(self.path.parent / path)

    def weight_total(self) -> float:
        """The sum of all head weights (the normaliser)."""
        return sum(h.weight for m in self.members for h in m.heads)

    def to_dict(self) -> dict[str, Any]:
        """The file's content, as written."""
        members = []
        for m in self.members:
            entry: dict[str, Any] = {"weights": m.weights}
            if m.tta is not None:
                entry["tta"] = m.tta
            entry["heads"] = [{"head": h.head, "weight": h.weight} for h in m.heads]
            members.append(entry)
        data: dict[str, Any] = {"kind": KIND, "members": members}
        if math.isfinite(self.threshold):
            data["threshold"] = float(self.threshold)
        if self.threshold_rule:
            data["threshold_rule"] = self.threshold_rule
        if self.score_stats:
            data["score_stats"] = {k: float(v) for k, v in self.score_stats.items()}
        if self.calibration:
            data["calibration"] = self.calibration
        return data

    def save(self, path: str | Path) -> Path:
        text = yaml.safe_dump(self.to_dict(), sort_keys=False, allow_unicode=True)
        return write_atomic(path, lambda f: f.write(text.encode()))

    @classmethod
    def load(cls, path: str | Path) -> EnsembleFile:
        """Read and check an ensemble file (ModelLoadError, field "head", for any fault)."""
        path = Path(path)
        if not path.is_file():
            raise ModelLoadError("head", f"ensemble file not found: {path}")
        try:
            data = yaml.safe_load(path.read_text())
        except (OSError, UnicodeDecodeError, yaml.YAMLError) as err:
            first = str(err).splitlines()[0] if str(err) else ""
            raise _bad(path, f"cannot read it as YAML: {err.__class__.__name__} {first}") from err
        try:
            return _parse(data, path)
        except SleegError as err:
            raise _bad(path, str(err)) from err


def _bad(path: Path, message: str) -> ModelLoadError:
    return ModelLoadError("head", f"ensemble file {path}: {message}")


def _parse(data: object, path: Path) -> EnsembleFile:
    """The EnsembleFile of a YAML document; SleegError for the first fault found."""
    if not isinstance(data, dict):
        raise SleegError("not a YAML mapping")
    if data.get("kind") != KIND:
        raise SleegError(f"kind is {data.get('kind')!r}, expected '{KIND}'")
    _check_keys(data, FILE_KEYS, "")
    members = data.get("members")
    if not isinstance(members, list) or not members:
        raise SleegError("'members' must be a list of at least one member")
    threshold = data.get("threshold")
    stats = data.get("score_stats") or {}
    if not isinstance(stats, dict):
        raise SleegError("'score_stats' must be a mapping of quantile name to number")
    calibration = data.get("calibration") or {}
    if not isinstance(calibration, dict):
        raise SleegError("'calibration' must be a mapping")
    return EnsembleFile(
        members=[_member(m, f"members[{i}]") for i, m in enumerate(members)],
        threshold=float("nan") if threshold is None else _number(threshold, "threshold"),
        threshold_rule=str(data.get("threshold_rule") or ""),
        score_stats={str(k): _number(v, f"score_stats.{k}") for k, v in stats.items()},
        calibration=calibration,
        path=path,
    )


def _member(data: object, where: str) -> MemberEntry:
    if not isinstance(data, dict):
        raise SleegError(f"{where} must be a mapping with 'weights' and 'heads'")
    _check_keys(data, MEMBER_KEYS, where)
    weights = data.get("weights")
    if not isinstance(weights, str) or not weights:
        raise SleegError(f"{where}.weights must be a known weights name or a checkpoint path")
    heads = data.get("heads")
    if not isinstance(heads, list) or not heads:
        raise SleegError(f"{where}.heads must be a list of at least one {{head, weight}}")
    tta = data.get("tta")
    if tta is not None:
        check_tta(str(tta))
    return MemberEntry(weights, [_head(h, f"{where}.heads[{i}]") for i, h in enumerate(heads)], tta)


def _head(data: object, where: str) -> HeadEntry:
    if not isinstance(data, dict):
        raise SleegError(f"{where} must be a mapping {{head: NAME_OR_PATH, weight: NUMBER}}")
    _check_keys(data, HEAD_KEYS, where)
    head = data.get("head")
    if not isinstance(head, str) or not head:
        raise SleegError(f"{where}.head must be a shipped head's name or a head file path")
    weight = _number(data.get("weight"), f"{where}.weight")
    if not (math.isfinite(weight) and weight > 0):
        raise SleegError(f"{where}.weight must be a finite number > 0, got {weight}")
    return HeadEntry(head, weight)


def _number(value: object, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise SleegError(f"{where} must be a number, got {value!r}")
    return float(value)


def _check_keys(data: dict[Any, Any], allowed: tuple[str, ...], where: str) -> None:
    if unknown := [str(k) for k in data if k not in allowed]:
        place = f" in {where}" if where else ""
        raise SleegError(
            f"unknown key{'s' if len(unknown) > 1 else ''} {', '.join(unknown)}{place}; "
            f"allowed: {', '.join(allowed)}"
        )
