"""Segmentor + OoD head + score + train ids as one ONNX graph for a fixed input size.

The graph is `AnomalySegmenter` itself (the one inference path), traced at B×H×W with the
TorchScript-based `torch.onnx.export` (opset ≥ 17), with export-only changes:

- train ids are the plain argmax of the full-resolution logits (`AnomalySegmenter` resizes only
  the pixels near class borders with indexing ONNX cannot express; equal up to float near-ties);
- 2×2 max-pools that return indices and their max-unpools (ENet) become `_WindowMaxPool` /
  `_WindowMaxUnpool`, which give identical outputs with ops that ONNX Runtime and TensorRT run;
  one-parameter PReLUs (ENet) become the equal LeakyReLUs, which ONNX Runtime runs faster.

Input `images`: uint8 RGB, B×3×H×W ("nchw") or B×H×W×3 ("nhwc"). Outputs: `score` float32
B×H×W (higher = more anomalous), `train_ids` uint8 B×H×W and, for a head file's "sleeg" score
with a calibrated threshold, `mask` uint8 B×H×W (1 where score ≥ threshold). The head file's
threshold, score statistics and λ and the model's provenance go into the ONNX metadata_props
(`METADATA_FORMAT`); docs/export.md shows how to read them and build a TensorRT engine.
"""

from __future__ import annotations

import copy
import io
import json
import math
import warnings
from pathlib import Path

import torch
from torch import nn

from sleeg_core.common.atomic import write_atomic
from sleeg_core.common.errors import SleegError
from sleeg_core.data.images import MIN_SIDE
from sleeg_core.model.headfile import HeadFile
from sleeg_core.model.inference import AnomalySegmenter

METADATA_FORMAT = "sleeg-onnx-1"  # metadata_props["format"]: bump when the keys change
LAYOUTS = ("nchw", "nhwc")
MIN_OPSET = 17


class _WindowMaxPool(nn.Module):
    """nn.MaxPool2d(2, 2, return_indices=True) with, in place of flat indices, the position of
    each window's first maximum in row-major order (0 top-left … 3 bottom-right): the pixel
    PyTorch's indices point at."""

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h, w = x.shape[-2] // 2 * 2, x.shape[-1] // 2 * 2
        windows = [x[..., i:h:2, j:w:2] for i in (0, 1) for j in (0, 1)]
        values, positions = torch.stack(windows, dim=-1).max(dim=-1)
        return values, positions


class _WindowMaxUnpool(nn.Module):
    """nn.MaxUnpool2d(2, 2) for `_WindowMaxPool`'s positions: each value back at its window's
    pixel, zeros elsewhere."""

    def forward(
        self,
        x: torch.Tensor,
        positions: torch.Tensor,
        output_size: tuple[int, ...] | None = None,
    ) -> torch.Tensor:
        parts = [torch.where(positions == k, x, 0.0) for k in range(4)]
        top = torch.stack(parts[:2], dim=-1).flatten(-2)  # B×C×h×2w
        bottom = torch.stack(parts[2:], dim=-1).flatten(-2)
        out = torch.stack([top, bottom], dim=-2).flatten(-3, -2)  # B×C×2h×2w
        if output_size is not None and tuple(output_size[-2:]) != tuple(out.shape[-2:]):
            raise SleegError(
                f"export supports max-unpooling to exactly twice the size, not "
                f"{tuple(x.shape[-2:])} → {tuple(output_size[-2:])}"
            )
        return out


def _is_2x2(module: nn.MaxPool2d | nn.MaxUnpool2d) -> bool:
    """Kernel 2, stride 2, no padding; for a max-pool also no dilation and floor mode."""

    def pair(value: int | tuple[int, ...]) -> tuple[int, ...]:
        return (value, value) if isinstance(value, int) else tuple(value)

    plain = pair(module.kernel_size) == pair(module.stride) == (2, 2)
    plain = plain and pair(module.padding) == (0, 0)
    if isinstance(module, nn.MaxPool2d):
        return plain and pair(module.dilation) == (1, 1) and not module.ceil_mode
    return plain


def export_friendly(model: AnomalySegmenter) -> AnomalySegmenter:
    """A copy of `model` with the same outputs whose max-pools with indices and max-unpools are
    the window versions above (SleegError for any that is not 2×2 with stride 2), and whose
    one-parameter PReLUs are LeakyReLUs of that slope (ONNX Runtime fuses those into the
    convolutions: ENet + head at 1024×512 runs ~25 % faster)."""
    model = copy.deepcopy(model).eval()
    children = [(p, n, c) for p in model.modules() for n, c in p.named_children()]
    for parent, name, child in children:
        indexed_pool = isinstance(child, nn.MaxPool2d) and child.return_indices
        if isinstance(child, nn.PReLU) and child.num_parameters == 1:
            setattr(parent, name, nn.LeakyReLU(child.weight.item()))
        elif indexed_pool or isinstance(child, nn.MaxUnpool2d):
            if not _is_2x2(child):
                raise SleegError(f"cannot export {name}: only 2×2 stride-2 (un)pooling exports")
            setattr(parent, name, _WindowMaxPool() if indexed_pool else _WindowMaxUnpool())
    return model


class ExportGraph(nn.Module):
    """images → (score, train_ids[, mask]): the module that is traced (module docstring)."""

    def __init__(
        self,
        model: AnomalySegmenter,
        score: str,
        threshold: float | None = None,
        layout: str = "nchw",
    ) -> None:
        super().__init__()
        self.model = export_friendly(model)
        self.score = score
        self.threshold = threshold
        self.layout = layout
        self.eval()  # torch.onnx.export restores this mode afterwards

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, ...]:
        if self.layout == "nhwc":
            images = images.permute(0, 3, 1, 2)
        pred = self.model(images, scores=(self.score,), keep_logits=True, train_ids=False)
        score = pred.scores[self.score].float()
        train_ids = pred.logits.argmax(dim=1).to(torch.uint8)
        if self.threshold is None:
            return score, train_ids
        return score, train_ids, (score >= self.threshold).to(torch.uint8)


def parse_size(text: str) -> tuple[int, int]:
    """'512x1024' → (512, 1024) as H×W; SleegError unless both sides are integers ≥ MIN_SIDE."""
    parts = text.lower().replace("×", "x").split("x")
    if len(parts) != 2 or not all(p.strip().isdigit() for p in parts):
        raise SleegError(f"bad size '{text}': give it as HxW, e.g. 512x1024")
    h, w = (int(p) for p in parts)
    if min(h, w) < MIN_SIDE:
        raise SleegError(f"bad size '{text}': both sides must be at least {MIN_SIDE} pixels")
    return h, w


def export_onnx(
    model: AnomalySegmenter,
    head_file: HeadFile | None,
    path: str | Path,
    size: tuple[int, int],
    score: str | None = None,
    batch: int = 1,
    layout: str = "nchw",
    opset: int = MIN_OPSET,
    provenance: dict[str, str] | None = None,
) -> Path:
    """Write `model` as an ONNX graph for uint8 images of `batch`×`size` to `path` (atomically).

    score: "sleeg" with a head, else "entropy", when None. `provenance` (e.g. the weights and
    head file names) is added to the metadata as given. SleegError for a bad size, batch,
    layout, opset or a score the model cannot compute, or for an ensemble.
    """
    if not isinstance(model, AnomalySegmenter):
        raise SleegError(
            "an ensemble (head: an ensemble file) is not exported to ONNX: its members are "
            "separate networks; export one head with its own weights, or run the ensemble in "
            "PyTorch"
        )
    try:
        import onnx
    except ImportError as err:
        raise SleegError("export needs onnx: run scripts/setup or pip install '.[export]'") from err
    h, w = parse_size(f"{size[0]}x{size[1]}")
    if batch < 1:
        raise SleegError(f"batch must be at least 1, got {batch}")
    if layout not in LAYOUTS:
        raise SleegError(f"unknown layout '{layout}'; choose one of: {', '.join(LAYOUTS)}")
    if opset < MIN_OPSET:
        raise SleegError(f"opset {opset} is too old: the export needs opset ≥ {MIN_OPSET}")
    if model.tta != "none":
        raise SleegError(
            f"tta '{model.tta}' is not exported (the graph runs one pass): set the model's tta "
            "to 'none'"
        )
    score = score or ("sleeg" if model.head is not None else "entropy")
    if score not in model.available_scores():
        raise SleegError(
            f"score '{score}' is not available for this model; choose one of: "
            f"{', '.join(model.available_scores())}"
        )
    threshold = None
    if score == "sleeg" and head_file is not None and math.isfinite(head_file.threshold):
        threshold = head_file.threshold
    graph = ExportGraph(model, score, threshold, layout)
    device = next(model.parameters()).device
    shape = (batch, 3, h, w) if layout == "nchw" else (batch, h, w, 3)
    outputs = ["score", "train_ids"] + (["mask"] if threshold is not None else [])
    buffer = io.BytesIO()
    with warnings.catch_warnings():  # shape arithmetic traced as constants: intended (fixed size)
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.onnx.export(
            graph,
            (torch.zeros(shape, dtype=torch.uint8, device=device),),
            buffer,
            dynamo=False,
            opset_version=opset,
            input_names=["images"],
            output_names=outputs,
        )
    proto = onnx.load_from_string(buffer.getvalue())
    metadata = _metadata(model, head_file, score, threshold, shape, layout, outputs)
    for key, value in {**metadata, **(provenance or {})}.items():
        proto.metadata_props.add(key=key, value=value)
    onnx.checker.check_model(proto)
    return write_atomic(path, lambda f: f.write(proto.SerializeToString()))


def _metadata(
    model: AnomalySegmenter,
    head_file: HeadFile | None,
    score: str,
    threshold: float | None,
    shape: tuple[int, ...],
    layout: str,
    outputs: list[str],
) -> dict[str, str]:
    """metadata_props as strings (JSON for structured values)."""
    info = model.segmentor.info
    meta = {
        "format": METADATA_FORMAT,
        "segmentor": info.name,
        "feature_layer": info.feature_layer,
        "class_names": json.dumps(list(info.class_names)),
        "input": f"images uint8 RGB {layout} {'x'.join(map(str, shape))}",
        "outputs": ",".join(outputs),
        "score": score,
        "higher_is_anomalous": "true",
    }
    if score == "sleeg":
        meta["lam"] = repr(model.lam)
    if head_file is not None:
        meta["segmentor_options"] = json.dumps(head_file.segmentor_options, sort_keys=True)
        meta["head_config"] = json.dumps(head_file.head_config.to_dict(), sort_keys=True)
    if head_file is not None and score == "sleeg":  # both in "sleeg" score units
        meta["threshold"] = repr(head_file.threshold)
        meta["threshold_rule"] = head_file.threshold_rule
        meta["score_stats"] = json.dumps(head_file.score_stats, sort_keys=True)
    if threshold is not None:
        meta["mask"] = f"score >= {threshold!r}"
    return meta
