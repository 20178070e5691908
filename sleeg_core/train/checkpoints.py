"""Training checkpoints on disk: where they go, writing them atomically (keeping the newest few)
and reading them back with their format checked. What a checkpoint holds is `Trainer`'s."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from sleeg_core.common.atomic import write_atomic
from sleeg_core.common.errors import SleegError

CHECKPOINT_FORMAT = "sleeg-train-checkpoint"


def checkpoint_path(out: Path, step: int) -> Path:
    """The checkpoint of `step` in run folder `out`."""
    return out / "checkpoints" / f"step_{step:08d}.pt"


def write_checkpoint(out: Path, step: int, state: dict[str, Any], keep: int) -> Path:
    """Write `state` (its format added) as the checkpoint of `step`; delete all but the newest
    `keep` checkpoints of the run."""
    state = {"format": CHECKPOINT_FORMAT, **state}
    path = write_atomic(checkpoint_path(out, step), lambda f: torch.save(state, f))
    old = sorted(path.parent.glob("step_*.pt"))[:-keep]
    for stale in old:
        stale.unlink(missing_ok=True)
    return path


def read_checkpoint(path: Path, device: torch.device) -> dict[str, Any]:
    """The state of a checkpoint file, tensors on `device`; SleegError when it is not one."""
    try:
        state = torch.load(path, map_location=device, weights_only=True)
    except Exception as err:
        raise SleegError(f"cannot read checkpoint {path}: {err.__class__.__name__}") from err
    if not isinstance(state, dict) or state.get("format") != CHECKPOINT_FORMAT:
        raise SleegError(f"{path} is not a sleeg training checkpoint")
    return state


def latest_checkpoint(out: Path) -> Path | None:
    """The newest checkpoint of run folder `out`, None when it has none."""
    found = sorted((out / "checkpoints").glob("step_*.pt"))
    return found[-1] if found else None
