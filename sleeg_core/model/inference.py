"""Segmentor + OoD head → segmentation and an anomaly score map: the one inference path.

Used by `sleeg infer`, `sleeg eval`, the ROS node and the benchmarks, so all of them score
identically. Higher score = more anomalous.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING

import torch
from torch import nn

from sleeg_core.common.choices import check_device
from sleeg_core.common.errors import ModelLoadError, SleegError
from sleeg_core.data.geometry import fit_frame, to_frame, to_input
from sleeg_core.data.labels import IGNORE_ID
from sleeg_core.model.ensemble_file import EnsembleFile, is_ensemble_file
from sleeg_core.model.estimators import HEAD_SCORES, compute_score, needs_logits, score_names
from sleeg_core.model.head import OoDHead
from sleeg_core.model.headfile import HeadFile
from sleeg_core.model.shipped_heads import pick_segmentor, resolve_head
from sleeg_core.model.tta import TTA_SCALES, check_tta
from sleeg_core.model.weights import KNOWN_WEIGHTS
from sleeg_core.model.weights import resolve as resolve_weights
from sleeg_core.segmentors import Segmentor, build_segmentor
from sleeg_core.segmentors.base import (
    CUDA_GRAPH_MODES,
    IMAGENET_MEAN,
    SegmentorOutput,
    check_compile_mode,
    upsample_to_input,
)

if TYPE_CHECKING:
    from sleeg_core.model.ensemble import EnsembleSegmenter

PAD_RGB = tuple(round(255 * m) for m in IMAGENET_MEAN)  # padding: zero once normalised
# AnomalySegmenter._compute's (train ids, scores by name, logits) at the network's input size
Outputs = tuple[torch.Tensor | None, dict[str, torch.Tensor], torch.Tensor | None]


def resolve_device(device: str) -> torch.device:
    """'auto' → CUDA when available, else CPU; 'cuda' without a GPU (or a string that is none of
    DEVICE_FORMS) is a ModelLoadError (field "device")."""
    try:
        check_device(device)
    except SleegError as err:
        raise ModelLoadError("device", str(err)) from err
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ModelLoadError("device", f"device '{device}' requested but CUDA is not available")
    return dev


@dataclass
class Prediction:
    """train_ids: B×H×W uint8 (None when not asked for); scores: name → B×H×W float32;
    logits: B×K×H×W (None unless asked for)."""

    train_ids: torch.Tensor | None
    scores: dict[str, torch.Tensor]
    logits: torch.Tensor | None = None


class AnomalySegmenter(nn.Module):
    """A frozen segmentor with an optional trained head; scores chosen by name.

    `size=(H, W)` runs the network at that resolution and maps every output back to the input's
    size, pixel-aligned (scores bilinearly, train ids by nearest neighbour); `resize_mode`
    (sleeg_core.data.geometry) stretches the frame to that size, pads it (aspect kept, padded with
    PAD_RGB) or crops it (aspect kept, centre window): outside a crop window each score is the
    image's lowest, train ids are 255 (ignore) and logits 0. `tta="flip"` runs each image with
    its horizontal mirror in one batch of 2B and averages every score with the mirror's, flipped
    back; `tta="scales"` runs the network input again at each smaller factor of TTA_SCALES and
    averages every score over the scales, upsampled back (1.81× the pixels of one pass). Train
    ids and logits stay those of the unflipped image at the set size.
    """

    def __init__(
        self,
        segmentor: Segmentor,
        head: OoDHead | None = None,
        lam: float = 0.5,
        sml_stats: tuple[torch.Tensor, torch.Tensor] | None = None,
        tta: str = "none",
    ) -> None:
        super().__init__()
        self.segmentor = segmentor
        self.head = head.eval() if head is not None else None
        self.lam = lam
        self.sml_stats = sml_stats
        self.tta = tta
        self._compiled: Callable[..., Outputs] | None = None  # set by compile_networks
        self._compile_mode = ""

    @property
    def tta(self) -> str:
        """Test-time augmentation: "none", "flip" (scores averaged with the mirror's) or
        "scales" (scores averaged over the input scaled by TTA_SCALES)."""
        return self._tta

    @tta.setter
    def tta(self, mode: str) -> None:
        check_tta(mode)
        self._tta = mode

    @classmethod
    def for_head_file(cls, segmentor: Segmentor, head_file: HeadFile | None) -> AnomalySegmenter:
        """The segmentor with the head (and λ) of a head file, or alone when there is none."""
        if head_file is None:
            return cls(segmentor)
        return cls(segmentor, head_file.build_head(), lam=head_file.lam)

    def compile_networks(self, mode: str = "default") -> AnomalySegmenter:
        """`torch.compile` segmentor, head, scores and train ids as one function (`_compute`:
        all of `forward` but the resizing to and from a frame's size), for static shapes: each
        new network input size or set of outputs asked for compiles again on its first call, so
        use it with a fixed inference size (~20 s of compiling for ENet + head on 2 CPU threads,
        benchmarks/README.md). In a CUDA-graph mode (CUDA_GRAPH_MODES) that part of a call is
        one graph replay and its outputs are cloned, since the next replay overwrites the
        graph's memory. ModelLoadError (field "compile_mode") for a mode not in COMPILE_MODES."""
        with loading("compile_mode"):
            check_compile_mode(mode)
        # unbound: a deep copy of the model runs (and compiles) its own copy, not this one
        self._compiled = torch.compile(
            type(self)._compute, mode=mode, dynamic=False, fullgraph=True
        )
        self._compile_mode = mode
        return self

    def convert_networks(self, dtype: torch.dtype) -> AnomalySegmenter:
        """Run the segmentor's networks and the head in `dtype` (torch.float16: half precision on
        CUDA; the node and benchmarks leave the CPU in float32), once, before `compile_networks`:
        their weights are converted in place and each network casts its floating-point input to
        `dtype` (inputs stay channels-last). The class logits and the head output are cast back
        to float32 before any score, so scores and train ids are float32 as ever."""
        for net in self.segmentor.networks():
            net.to(dtype).register_forward_pre_hook(partial(_cast_inputs, dtype=dtype))
        if self.head is not None:
            self.head.to(dtype)
        return self

    def available_scores(self) -> list[str]:
        names = [n for n in score_names() if self.head is not None or n not in HEAD_SCORES]
        return [n for n in names if n != "sml" or self.sml_stats is not None]

    def _params(self, name: str, device: torch.device) -> dict[str, object]:
        if name == "sleeg":
            return {"lam": self.lam}
        if name == "sml":
            if self.sml_stats is None:
                raise SleegError("score 'sml' needs per-class statistics (see sleeg eval)")
            mean, std = self.sml_stats
            return {"class_mean": mean.to(device), "class_std": std.to(device)}
        return {}

    @torch.no_grad()
    def forward(
        self,
        images: torch.Tensor,
        scores: tuple[str, ...] = ("sleeg",),
        size: tuple[int, int] | None = None,
        keep_logits: bool = False,
        train_ids: bool = True,
        resize_mode: str = "stretch",
    ) -> Prediction:
        """images: B×3×H×W uint8 RGB → Prediction at H×W (only the parts asked for)."""
        in_hw = tuple(images.shape[-2:])
        x, fit = images, None
        if size is not None and tuple(size) != in_hw:
            fit = fit_frame(in_hw, tuple(size), resize_mode)
            x = to_input(images, fit, PAD_RGB)
        ids, maps, logits = self._run(x, tuple(scores), keep_logits, train_ids)
        if fit is not None:
            maps = {
                n: to_frame(m[:, None], fit)[:, 0]  # outside a crop: the lowest score
                for n, m in maps.items()
            }
            if ids is not None:
                ids = to_frame(ids[:, None], fit, IGNORE_ID, "nearest-exact")[:, 0]
            if logits is not None:
                logits = to_frame(logits, fit, 0.0)
        return Prediction(ids, maps, logits)

    def _run(
        self, x: torch.Tensor, scores: tuple[str, ...], keep_logits: bool, train_ids: bool
    ) -> Outputs:
        """`_compute`, compiled once `compile_networks` was called."""
        if self._compiled is None:
            return self._compute(x, scores, keep_logits, train_ids)
        ids, maps, logits = self._compiled(self, x, scores, keep_logits, train_ids)
        if self._compile_mode in CUDA_GRAPH_MODES:  # the next replay overwrites them
            ids, logits = (t.clone() if t is not None else None for t in (ids, logits))
            maps = {n: m.clone() for n, m in maps.items()}
        return ids, maps, logits

    def _compute(
        self, x: torch.Tensor, scores: tuple[str, ...], keep_logits: bool, train_ids: bool
    ) -> Outputs:
        """(train ids, scores, logits if kept) of network inputs `x`: the part of `forward` that
        `compile_networks` compiles (all of it but the resizing to and from the frame's size)."""
        flip = self.tta == "flip" and bool(scores)  # the mirror only changes scores
        ids, maps, logits = self._pass(
            torch.cat([x, x.flip(-1)]) if flip else x, scores, keep_logits, train_ids
        )
        if flip:  # first half: the images; second half: their mirrors, flipped back
            b = x.shape[0]
            maps = {n: (m[:b] + m[b:].flip(-1)) / 2 for n, m in maps.items()}
            ids = ids[:b] if ids is not None else None
            logits = logits[:b] if logits is not None else None
        if self.tta == "scales" and scores:
            h, w = (int(n) for n in x.shape[-2:])  # (ints when traced for ONNX, too)
            for factor in TTA_SCALES[1:]:
                fit = fit_frame(
                    (h, w), (max(1, round(h * factor)), max(1, round(w * factor))), "stretch"
                )
                small = self._pass(to_input(x, fit, PAD_RGB), scores, False, False)[1]
                maps = {n: m + to_frame(small[n][:, None], fit)[:, 0] for n, m in maps.items()}
            maps = {n: m / len(TTA_SCALES) for n, m in maps.items()}
        return ids, maps, logits if keep_logits else None

    def _pass(
        self, x: torch.Tensor, scores: tuple[str, ...], keep_logits: bool, train_ids: bool
    ) -> Outputs:
        """One pass of the networks over `x`: (train ids, scores, logits) at its size."""
        out = self.segmentor(x)
        out.coarse_logits = out.coarse_logits.float()  # whatever dtype the networks run in
        maps, logits = self._score_maps(out, x, scores, keep_logits)
        ids = out.train_ids() if train_ids else None
        return ids, maps, logits

    def _score_maps(
        self, out: SegmentorOutput, x: torch.Tensor, scores: tuple[str, ...], keep_logits: bool
    ) -> tuple[dict[str, torch.Tensor], torch.Tensor | None]:
        """The scores of one segmentor output for network inputs `x`, and the full-resolution
        logits when they were computed (for the scores, or kept)."""
        h = None
        if self.head is not None and any(n in HEAD_SCORES for n in scores):
            stride = self.segmentor.info.feature_stride
            h = upsample_to_input(self.head(out.features).float(), x.shape[-2:], stride)
        params = {n: self._params(n, x.device) for n in scores}
        logits = None  # full-resolution logits only for the scores (or caller) that read them
        if keep_logits or any(needs_logits(n, **params[n]) for n in scores):
            logits = out.logits
        return {n: compute_score(n, logits, h, **params[n]) for n in scores}, logits


def _cast_inputs(
    module: nn.Module, args: tuple[object, ...], dtype: torch.dtype
) -> tuple[object, ...]:
    """Forward pre-hook: the module's floating-point tensor arguments in `dtype`."""
    return tuple(
        a.to(dtype) if isinstance(a, torch.Tensor) and a.is_floating_point() else a for a in args
    )


@contextmanager
def loading(field: str) -> Iterator[None]:
    """Within it, a SleegError that is no ModelLoadError yet becomes one for `field`."""
    try:
        yield
    except ModelLoadError:
        raise
    except SleegError as err:
        raise ModelLoadError(field, str(err)) from err


def load_segmenter(
    segmentor: str | None,
    weights: str | Path | None,
    head: str | Path | None = None,
    device: str = "auto",
) -> tuple[AnomalySegmenter | EnsembleSegmenter, HeadFile | EnsembleFile | None]:
    """Build segmentor (+ head from its file) on `device`; checks they belong together.

    `weights` is a file or a known name, `head` a file or a shipped head's name; `segmentor`
    None takes the head's or the known weights' segmentor (sleeg_core.model.shipped_heads,
    sleeg_core.model.weights). A `head` that is an ensemble file (sleeg_core.model.ensemble_file)
    gives its EnsembleSegmenter and the file; `segmentor` and `weights` are then empty or name
    its first member's. Every failure is a ModelLoadError whose `field` names the input at
    fault: "head", "segmentor", "weights" or "device".

    >>> load_segmenter("enet", "/nowhere/enet.pth", device="cpu")
    Traceback (most recent call last):
    sleeg_core.common.errors.ModelLoadError: file not found: /nowhere/enet.pth
    """
    head_file, head_path = None, None
    if head:
        with loading("head"):
            head_path = resolve_head(head)
        if is_ensemble_file(head_path):
            from sleeg_core.model.ensemble import load_ensemble  # it builds on this module

            return load_ensemble(head_path, resolve_device(device), segmentor, weights)
        with loading("head"):
            head_file = HeadFile.load(head_path)
    if not weights:
        raise ModelLoadError(
            "weights",
            "no weights: give a segmentor checkpoint file or a known name "
            f"({', '.join(KNOWN_WEIGHTS)})",
        )
    name = pick_segmentor(segmentor, weights, head_file)
    weights_path = resolve_weights(weights)
    if not weights_path.is_file():
        raise ModelLoadError("weights", f"file not found: {weights}")
    with loading("weights"):
        seg = build_segmentor(
            name, weights_path, **(head_file.segmentor_options if head_file else {})
        )
    if head_file is not None:
        head_file.check_segmentor(seg.info.name, seg.info.feature_channels, str(head_path))
    model = AnomalySegmenter.for_head_file(seg, head_file)
    return model.to(resolve_device(device)).eval(), head_file
