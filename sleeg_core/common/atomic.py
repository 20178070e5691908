"""Atomic file writes: a temp file in the same folder, fsync, then rename over the target.

A crash or a full disk mid-write leaves the previous file intact.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import IO

from sleeg_core.common.errors import SleegError


def write_atomic(path: str | Path, write: Callable[[IO[bytes]], None]) -> Path:
    """Call `write(f)` on a temp file next to `path`, then atomically replace `path` with it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        Path(tmp).replace(path)
    except OSError as err:
        Path(tmp).unlink(missing_ok=True)
        raise SleegError(f"cannot write {path}: {err} (any previous version is untouched)") from err
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path
