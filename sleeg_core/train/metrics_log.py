"""The figures of each training step and their log: metrics.csv and TensorBoard scalars."""

from __future__ import annotations

import csv
import math
from dataclasses import dataclass
from pathlib import Path

import torch
from torch.utils.tensorboard import SummaryWriter


@dataclass
class StepStats:
    """The figures of one training step."""

    loss: float
    tae: float
    tore: float
    anomaly_fraction: float  # refined anomaly pixels / all pixels
    ignore_fraction: float

    @classmethod
    def of(cls, values: torch.Tensor) -> StepStats:
        """The figures of a `Trainer.train_step` tensor (waits for that step to finish)."""
        return cls(*values.tolist())


class MetricsLog:
    """Scalars per step into metrics.csv (truncated to `start` on resume) and TensorBoard."""

    COLUMNS = (
        "step",
        "lr",
        "loss",
        "tae",
        "tore",
        "anomaly_fraction",
        "ignore_fraction",
        "data_s",
        "step_s",
    )

    def __init__(self, out: Path, start: int):
        path = out / "metrics.csv"
        rows = []
        if path.is_file() and start > 0:
            with path.open() as f:
                rows = [r for r in csv.DictReader(f) if int(r["step"]) <= start]
        self.file = path.open("w", newline="")
        self.writer = csv.DictWriter(self.file, fieldnames=self.COLUMNS)
        self.writer.writeheader()
        self.writer.writerows(rows)
        self.tb = SummaryWriter(str(out / "tensorboard"), purge_step=start + 1)

    def add(self, step: int, lr: float, s: StepStats, data_s: float, step_s: float) -> None:
        row = {
            "step": step,
            "lr": lr,
            "loss": s.loss,
            "tae": s.tae,
            "tore": s.tore,
            "anomaly_fraction": s.anomaly_fraction,
            "ignore_fraction": s.ignore_fraction,
            "data_s": data_s,
            "step_s": step_s,
        }
        self.writer.writerow(row)
        self.file.flush()
        for key in self.COLUMNS[1:]:
            if not math.isnan(row[key]):  # TORE with β = 0 is not computed
                self.tb.add_scalar(f"train/{key}", row[key], step)

    def close(self) -> None:
        self.file.close()
        self.tb.close()
