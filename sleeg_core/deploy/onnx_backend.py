"""An exported graph (`sleeg export`) run by ONNX Runtime on the CPU, called like AnomalySegmenter.

The graph has a fixed input size, batch and layout and one score (its metadata says which, with
the head file's threshold and score statistics). Frames of any size are fitted to the graph's
size as `AnomalySegmenter` fits them (`resize_mode`), run in chunks of the graph's batch, and the
outputs mapped back to the frame, so a caller (the node) swaps one for the other. On the CPU the
graph runs 1.2–1.3× faster than PyTorch eager (docs/export.md).
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import torch

from sleeg_core.common.errors import SleegError
from sleeg_core.data.geometry import fit_frame, to_frame, to_input
from sleeg_core.data.labels import IGNORE_ID
from sleeg_core.deploy.onnx_export import LAYOUTS, METADATA_FORMAT
from sleeg_core.model.inference import PAD_RGB, Prediction


class OnnxSegmenter:
    """`sleeg export`'s graph on ONNX Runtime's CPU provider (`threads` 0: its default)."""

    def __init__(self, path: str | Path, threads: int = 0) -> None:
        try:
            import onnxruntime as ort
        except ImportError as err:
            raise SleegError("the ONNX backend needs onnxruntime: run scripts/setup") from err
        path = Path(path)
        if not path.is_file():
            raise SleegError(f"ONNX model not found: {path}")
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        try:
            self.session = ort.InferenceSession(str(path), options, ["CPUExecutionProvider"])
        except Exception as err:  # onnxruntime raises its own classes for a damaged file
            raise SleegError(f"{path} is not a loadable ONNX model: {err}") from err
        meta = self.session.get_modelmeta().custom_metadata_map
        if meta.get("format") != METADATA_FORMAT:
            raise SleegError(
                f"{path} is not a graph of `sleeg export` (metadata format "
                f"{meta.get('format')!r}, expected {METADATA_FORMAT!r})"
            )
        # "images uint8 RGB nchw 1x3x512x1024"
        _, _, _, layout, shape = meta["input"].split()
        dims = [int(d) for d in shape.split("x")]
        if layout not in LAYOUTS:
            raise SleegError(f"{path}: unknown input layout '{layout}'")
        self.layout = layout
        self.batch = dims[0]
        self.size = (dims[2], dims[3]) if layout == "nchw" else (dims[1], dims[2])
        self.score_name = meta["score"]
        self.segmentor_name = meta["segmentor"]
        self.threshold = float(meta.get("threshold", "nan"))
        self.score_stats = json.loads(meta["score_stats"]) if "score_stats" in meta else None
        self.outputs = [o.name for o in self.session.get_outputs()][:2]  # score, train_ids

    def available_scores(self) -> tuple[str, ...]:
        return (self.score_name,)

    def __call__(
        self,
        images: torch.Tensor,
        scores: tuple[str, ...] = (),
        size: tuple[int, int] | None = None,
        train_ids: bool = True,
        resize_mode: str = "stretch",
    ) -> Prediction:
        """images: B×3×H×W uint8 RGB (CPU) → Prediction at H×W, as AnomalySegmenter's."""
        unknown = [s for s in scores if s != self.score_name]
        if unknown:
            raise SleegError(f"this ONNX graph computes score '{self.score_name}' only: {unknown}")
        if size is not None and tuple(size) != self.size:
            raise SleegError(f"this ONNX graph runs at {self.size[0]}x{self.size[1]}, not {size}")
        fit = fit_frame(tuple(images.shape[-2:]), self.size, resize_mode)
        x = to_input(images.cpu(), fit, PAD_RGB)
        score, ids = self._run(x)
        maps = {}
        if scores:
            maps[self.score_name] = to_frame(score[:, None], fit)[:, 0]
        ids_out = (
            to_frame(ids[:, None], fit, IGNORE_ID, "nearest-exact")[:, 0] if train_ids else None
        )
        return Prediction(ids_out, maps)

    def _run(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """B×3×h×w uint8 → (score B×h×w float32, train ids B×h×w uint8), chunk by chunk."""
        n = x.shape[0]
        frames = x.permute(0, 2, 3, 1) if self.layout == "nhwc" else x
        frames = np.ascontiguousarray(frames.numpy())
        chunks = math.ceil(n / self.batch)
        padded = np.zeros((chunks * self.batch, *frames.shape[1:]), np.uint8)
        padded[:n] = frames
        score, ids = [], []
        for i in range(0, len(padded), self.batch):
            s, t = self.session.run(self.outputs, {"images": padded[i : i + self.batch]})
            score.append(s)
            ids.append(t)
        return torch.from_numpy(np.concatenate(score)[:n]), torch.from_numpy(
            np.concatenate(ids)[:n]
        )
