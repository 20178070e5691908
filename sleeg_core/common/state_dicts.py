"""Reading weight files into modules, with one clear SleegError for every way that can fail.

`load_state_dict_file` reads a plain state dict or a training checkpoint (`{'state_dict': ...}`
or `{'model': ...}`) without executing pickled code (`weights_only=True`); `load_strict` loads it
with every key and shape checked, and says what does not fit instead of printing PyTorch's wall
of keys.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import torch
from torch import nn

from sleeg_core.common.errors import SleegError

SHOWN_KEYS = 3  # how many example keys an error message lists per kind of mismatch
# entries of a training checkpoint that hold the state dict, tried in order
WRAPPER_KEYS = ("state_dict", "model")


def load_state_dict_file(path: str | Path, *, key: str | None = None) -> dict[str, torch.Tensor]:
    """Read a state dict (name → tensor) from a torch file on the CPU.

    `key` picks an entry of a checkpoint dict; by default the first of `ck['state_dict']` and
    `ck['model']` that is a dict is used, else the file itself. A DataParallel `module.` prefix is
    stripped. Denormal floats (below the smallest normal number, e.g. weights of dead channels
    decayed towards zero) are set to 0: they change nothing measurable but make CPU convolutions
    up to ~7× slower (ESPNet's weights).
    """
    path = Path(path)
    if not path.is_file():
        raise SleegError(f"weights file not found: {path}")
    try:
        ck = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:
        raise SleegError(
            f"cannot read weights file {path}: not a loadable PyTorch file "
            f"(truncated, corrupt or not a tensor checkpoint): {type(e).__name__}: {e}"
        ) from e
    if not isinstance(ck, dict):
        raise SleegError(f"weights file {path} holds a {type(ck).__name__}, not a state dict")
    if key is not None:
        if key not in ck:
            raise SleegError(f"weights file {path} has no entry '{key}' (has: {_names(ck)})")
        ck = ck[key]
    else:
        ck = next((ck[k] for k in WRAPPER_KEYS if isinstance(ck.get(k), dict)), ck)
    if not isinstance(ck, dict) or not ck:
        raise SleegError(f"weights file {path}: the state dict is empty or not a dict")
    bad = [k for k, v in ck.items() if not isinstance(k, str) or not isinstance(v, torch.Tensor)]
    if bad:
        raise SleegError(
            f"weights file {path} is not a state dict: {len(bad)} entries are not "
            f"name → tensor (e.g. {_names(bad)}; top-level entries: {_names(ck)})"
        )
    return {k.removeprefix("module."): _flush_denormals(v) for k, v in ck.items()}


def load_strict(module: nn.Module, state_dict: dict[str, torch.Tensor], source: str) -> None:
    """Load `state_dict` into `module` with every key and shape matching, else one SleegError.

    The message names `source` (the file), counts missing and unexpected keys with a few examples,
    and lists shape mismatches, e.g. `classifier.weight: checkpoint (20, 16, 1, 1) vs model
    (19, 16, 1, 1)`.
    """
    own = module.state_dict()
    # files saved before PyTorch 0.4.1 lack BatchNorm's batch counter: load_state_dict sets it to 0
    missing = [k for k in own if k not in state_dict and not k.endswith(".num_batches_tracked")]
    unexpected = [k for k in state_dict if k not in own]
    mismatched = [
        (k, tuple(state_dict[k].shape), tuple(own[k].shape))
        for k in own
        if k in state_dict and state_dict[k].shape != own[k].shape
    ]
    if not (missing or unexpected or mismatched):
        try:
            module.load_state_dict(state_dict, strict=True)
        except RuntimeError as e:
            raise SleegError(
                f"weights file {source} does not fit {type(module).__name__}: {e}"
            ) from e
        return
    parts = []
    if missing:
        parts.append(f"{len(missing)} missing keys (e.g. {_names(missing)})")
    if unexpected:
        parts.append(f"{len(unexpected)} unexpected keys (e.g. {_names(unexpected)})")
    if mismatched:
        shown = "; ".join(
            f"{k}: checkpoint {c} vs model {m}" for k, c, m in mismatched[:SHOWN_KEYS]
        )
        more = f" (+{len(mismatched) - SHOWN_KEYS} more)" if len(mismatched) > SHOWN_KEYS else ""
        parts.append(f"{len(mismatched)} shape mismatches: {shown}{more}{_hint(mismatched)}")
    raise SleegError(
        f"weights file {source} does not fit {type(module).__name__}: " + ", ".join(parts)
    )


def _names(keys: Iterable[object]) -> str:
    """The first few of `keys`, comma separated."""
    keys = list(keys)
    more = ", …" if len(keys) > SHOWN_KEYS else ""
    return ", ".join(str(k) for k in keys[:SHOWN_KEYS]) + more


def _hint(mismatched: list[tuple[str, tuple[int, ...], tuple[int, ...]]]) -> str:
    """A guess at the cause when every mismatch is the same size change in the output dim."""
    if not all(len(c) == len(m) > 0 and c[1:] == m[1:] for _, c, m in mismatched):
        return ""
    sizes = {(c[0], m[0]) for _, c, m in mismatched}
    if len(sizes) != 1:
        return ""
    ck_n, model_n = sizes.pop()
    return f" — checkpoint has {ck_n} outputs where the model has {model_n}: wrong class count?"


def _flush_denormals(t: torch.Tensor) -> torch.Tensor:
    """`t` with every denormal (nonzero, below the smallest normal float) set to 0."""
    if not t.is_floating_point():
        return t
    return torch.where(t.abs() < torch.finfo(t.dtype).tiny, torch.zeros_like(t), t)
