"""Segmentor + OoD head → segmentation and an anomaly score map: the one inference path.

Used by `sleeg infer`, `sleeg eval`, the ROS node and the benchmarks, so all of them score
identically. Higher score = more anomalous.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from sleeg_core.cityscapes import IGNORE_ID
from sleeg_core.errors import SleegError
from sleeg_core.estimators import HEAD_SCORES, compute_score, needs_logits, score_names
from sleeg_core.geometry import fit_frame, to_frame, to_input
from sleeg_core.head import OoDHead
from sleeg_core.headfile import HeadFile
from sleeg_core.models import pick_segmentor, resolve_head
from sleeg_core.segmentors import Segmentor, build_segmentor
from sleeg_core.segmentors.base import IMAGENET_MEAN, upsample_to_input
from sleeg_core.weights import resolve as resolve_weights

TTA_MODES = ("none", "flip")  # test-time augmentation of AnomalySegmenter's scores
PAD_RGB = tuple(round(255 * m) for m in IMAGENET_MEAN)  # padding: zero once normalised


def resolve_device(device: str) -> torch.device:
    """'auto' → CUDA when available, else CPU; 'cuda' without a GPU is a SleegError."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise SleegError(f"device '{device}' requested but CUDA is not available")
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
    (sleeg_core.geometry) stretches the frame to that size, pads it (aspect kept, padded with
    PAD_RGB) or crops it (aspect kept, centre window): outside a crop window each score is the
    image's lowest, train ids are 255 (ignore) and logits 0. `tta="flip"` runs each image with
    its horizontal mirror in one batch of 2B and averages every score with the mirror's, flipped
    back; train ids and logits stay the unflipped image's.
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

    @property
    def tta(self) -> str:
        """Test-time augmentation: "none", or "flip" (scores averaged with the mirror's)."""
        return self._tta

    @tta.setter
    def tta(self, mode: str) -> None:
        if mode not in TTA_MODES:
            raise SleegError(f"unknown tta '{mode}'; choose one of: {', '.join(TTA_MODES)}")
        self._tta = mode

    @classmethod
    def for_head_file(cls, segmentor: Segmentor, head_file: HeadFile | None) -> AnomalySegmenter:
        """The segmentor with the head (and λ) of a head file, or alone when there is none."""
        if head_file is None:
            return cls(segmentor)
        return cls(segmentor, head_file.build_head(), lam=head_file.lam)

    def compile_networks(self, mode: str = "default") -> AnomalySegmenter:
        """`torch.compile` the segmentor's networks and the head in place (static shapes: each new
        input size compiles again, so use it with a fixed inference size). Compilation happens
        on the first forward of each size; on 2 CPU threads ENet + head at 1024×512 then runs
        1.3× faster after ~20 s of compiling (benchmarks/README.md)."""
        self.segmentor.compile_networks(mode)
        if self.head is not None:
            self.head.compile(mode=mode, dynamic=False)
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
        flip = self.tta == "flip" and bool(scores)  # the mirror only changes scores
        out = self.segmentor(torch.cat([x, x.flip(-1)]) if flip else x)
        h = None
        if self.head is not None and any(n in HEAD_SCORES for n in scores):
            stride = self.segmentor.info.feature_stride
            h = upsample_to_input(self.head(out.features).float(), x.shape[-2:], stride)
        params = {n: self._params(n, x.device) for n in scores}
        logits = None  # full-resolution logits only for the scores (or caller) that read them
        if keep_logits or any(needs_logits(n, **params[n]) for n in scores):
            logits = out.logits.float()
        maps = {n: compute_score(n, logits, h, **params[n]) for n in scores}
        ids = out.train_ids() if train_ids else None
        if flip:  # first half: the images; second half: their mirrors, flipped back
            b = x.shape[0]
            maps = {n: (m[:b] + m[b:].flip(-1)) / 2 for n, m in maps.items()}
            ids = ids[:b] if ids is not None else None
            logits = logits[:b] if logits is not None else None
        if fit is not None:
            maps = {
                n: to_frame(m[:, None], fit)[:, 0]  # outside a crop: the lowest score
                for n, m in maps.items()
            }
            if ids is not None:
                ids = to_frame(ids[:, None], fit, IGNORE_ID, "nearest-exact")[:, 0]
            if keep_logits:
                logits = to_frame(logits, fit, 0.0)
        if not keep_logits:
            logits = None
        return Prediction(ids, maps, logits)


def load_segmenter(
    segmentor: str | None,
    weights: str | Path,
    head: str | Path | None = None,
    device: str = "auto",
) -> tuple[AnomalySegmenter, HeadFile | None]:
    """Build segmentor (+ head from its file) on `device`; checks they belong together.

    `weights` is a file or a known name, `head` a file or a shipped head's name; `segmentor`
    None takes the head's or the known weights' segmentor (sleeg_core.models, .weights)."""
    head_file = HeadFile.load(resolve_head(head)) if head else None
    options = head_file.segmentor_options if head_file else {}
    name = pick_segmentor(segmentor, weights, head_file)
    seg = build_segmentor(name, resolve_weights(weights), **options)
    if head_file is not None:
        head_file.check_segmentor(seg.info.name, seg.info.feature_channels, str(head))
    model = AnomalySegmenter.for_head_file(seg, head_file)
    return model.to(resolve_device(device)).eval(), head_file
