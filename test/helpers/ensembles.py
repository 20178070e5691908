"""Tiny ensemble files for the tests: random ENet heads with score statistics, on the tiny
model's random ENet weights."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
import yaml

from sleeg_core.model.head import HeadConfig, OoDHead
from sleeg_core.model.headfile import HeadFile

# (normal_p50, normal_p99) of each tiny head: different ranges, so that normalising matters
STATS = {"a": (-1.0, 0.5), "b": (-3.0, 1.0), "c": (0.2, 0.3)}


def tiny_head(folder: Path, name: str, segmentor: str = "enet", stats: bool = True) -> Path:
    """A random ENet head file `folder/<name>.pt` (seeded by its name) with score statistics
    STATS[name] (none when `stats` is false), trained on `segmentor` as its file says."""
    torch.manual_seed(sum(map(ord, name)))
    config = HeadConfig(in_channels=128, width=8, depth=1, dropout=0.0)
    head = OoDHead.from_config(config).eval()
    p50, p99 = STATS.get(name, (-1.0, 1.0))
    path = folder / f"{name}.pt"
    HeadFile(
        head_config=config,
        state_dict=head.state_dict(),
        segmentor=segmentor,
        segmentor_options={},
        feature_channels=128,
        lam=0.5 if name == "b" else 0.0,  # one head that reads the logits too
        threshold=0.0,
        threshold_rule="test",
        score_stats={"normal_p50": p50, "normal_p99": p99} if stats else {},
    ).save(path)
    return path


def member(weights: Path | str, *heads: tuple[str, float], tta: str | None = None) -> dict:
    """One member's entry: `weights` with (head, weight) pairs."""
    entry: dict[str, Any] = {"weights": str(weights)}
    if tta is not None:
        entry["tta"] = tta
    entry["heads"] = [{"head": h, "weight": w} for h, w in heads]
    return entry


def write_ensemble(path: Path, *members: dict, **extra: Any) -> Path:
    """An ensemble file of `members` (and any other top-level keys) at `path`."""
    data = {"kind": "sleeg-ensemble", "members": list(members), **extra}
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path
