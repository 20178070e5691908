"""`sleeg train` that stops before writing the checkpoint of step STEP and waits to be killed.

Usage: python pause_training.py STEP MARKER [sleeg train arguments...]; under torchrun, every rank.

Each process creates MARKER.<rank> once it has stopped, and then never goes on. A test that waits
for the marker and kills the run kills it at one known point, whatever the machine's speed: every
step up to STEP trained and logged in metrics.csv, the checkpoint of STEP not written, so a resume
starts from the checkpoint before it and has to train and log the steps after that again.
"""

from __future__ import annotations

import os
import sys
import threading
from pathlib import Path

from sleeg_core.cli import main
from sleeg_core.train.trainer import Trainer


def marker_of_rank(marker: Path, rank: int) -> Path:
    """The file rank `rank` creates once it has stopped."""
    return marker.with_name(f"{marker.name}.{rank}")


def pause_before_checkpoint(step: int, marker: Path) -> None:
    """Make Trainer stop for good where it would write the checkpoint of `step`."""
    save = Trainer.save_checkpoint

    def save_or_stop(trainer: Trainer) -> Path | None:
        if trainer.step == step:
            marker_of_rank(marker, int(os.environ.get("RANK", "0"))).touch()
            threading.Event().wait()  # until killed
        return save(trainer)

    Trainer.save_checkpoint = save_or_stop


if __name__ == "__main__":
    pause_before_checkpoint(int(sys.argv[1]), Path(sys.argv[2]))
    sys.exit(main(sys.argv[3:]))
