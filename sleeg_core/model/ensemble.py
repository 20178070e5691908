"""Ensembles of heads and segmentors as one model, from an ensemble file (ensemble_file.py).

Its 'sleeg' score is Σ w·z over all heads, the weights normalised to sum 1, each head's 'sleeg'
score s normalised by its own head file's statistics on normal training pixels,
z = (s − normal_p50) / (normal_p99 − normal_p50), so that heads of different score ranges add
up. Heads on the same segmentor (same weights and tta) share one segmentor forward per pass
(`HeadSetSegmenter`); every member runs at the same network input size and is mapped back to
the frame as `AnomalySegmenter` does. Train ids, logits and the logit baselines are the first
member's.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from sleeg_core.common.errors import ModelLoadError, SleegError
from sleeg_core.model.ensemble_file import EnsembleFile, HeadEntry
from sleeg_core.model.estimators import compute_score
from sleeg_core.model.head import OoDHead
from sleeg_core.model.headfile import HeadFile
from sleeg_core.model.inference import AnomalySegmenter, Prediction
from sleeg_core.model.shipped_heads import resolve_head
from sleeg_core.model.tta import check_tta
from sleeg_core.model.weights import named as named_weights
from sleeg_core.model.weights import resolve as resolve_weights
from sleeg_core.segmentors import Segmentor, build_segmentor
from sleeg_core.segmentors.base import SegmentorOutput, upsample_to_input

SCORE = "sleeg"  # the ensemble's score: the weighted sum of its heads' normalised 'sleeg' scores
STATS = ("normal_p50", "normal_p99")  # the head file statistics z is normalised with


@dataclass(frozen=True)
class Term:
    """How one head's 'sleeg' score enters the sum: w · (s − p50) / span."""

    lam: float
    weight: float  # normalised over the whole ensemble
    p50: float
    span: float  # normal_p99 − normal_p50 (> 0)


def z_term(score: torch.Tensor, term: Term) -> torch.Tensor:
    """One head's weighted, normalised score w · (s − p50) / span."""
    return term.weight * ((score - term.p50) / term.span)


class HeadSetSegmenter(AnomalySegmenter):
    """One segmentor with several heads, run by one segmentor forward per pass: its 'sleeg'
    score is Σ w·z of its heads (`Term`s); every other score is AnomalySegmenter's, without a
    head."""

    def __init__(
        self, segmentor: Segmentor, heads: list[OoDHead], terms: list[Term], tta: str = "none"
    ) -> None:
        super().__init__(segmentor, None, lam=terms[0].lam, tta=tta)
        self.heads = nn.ModuleList(h.eval() for h in heads)
        self.terms = tuple(terms)

    def available_scores(self) -> list[str]:
        return [*super().available_scores(), SCORE]

    def convert_networks(self, dtype: torch.dtype) -> HeadSetSegmenter:
        super().convert_networks(dtype)
        self.heads.to(dtype)
        return self

    def _score_maps(
        self, out: SegmentorOutput, x: torch.Tensor, scores: tuple[str, ...], keep_logits: bool
    ) -> tuple[dict[str, torch.Tensor], torch.Tensor | None]:
        want = SCORE in scores
        need_logits = keep_logits or (want and any(t.lam != 0 for t in self.terms))
        others = tuple(n for n in scores if n != SCORE)
        maps, logits = super()._score_maps(out, x, others, need_logits)
        if want:
            stride = self.segmentor.info.feature_stride
            total: torch.Tensor | None = None
            for head, term in zip(self.heads, self.terms, strict=True):
                h = upsample_to_input(head(out.features).float(), x.shape[-2:], stride)
                z = z_term(compute_score(SCORE, logits, h, lam=term.lam), term)
                total = z if total is None else total + z
            maps[SCORE] = total
        return {n: maps[n] for n in scores}, logits


class EnsembleSegmenter(nn.Module):
    """Members (HeadSetSegmenter) whose 'sleeg' scores add up to the ensemble's; called like
    AnomalySegmenter. `tta` sets every member's but those whose file entry fixes their own."""

    def __init__(self, members: list[HeadSetSegmenter], own_tta: list[bool]) -> None:
        super().__init__()
        self.members = nn.ModuleList(members)
        self._own_tta = tuple(own_tta)
        self.tta = "none"

    @property
    def segmentor(self) -> Segmentor:
        """The first member's segmentor (train ids, logits and logit baselines come from it)."""
        return self.members[0].segmentor

    @property
    def tta(self) -> str:
        return self._tta

    @tta.setter
    def tta(self, mode: str) -> None:
        check_tta(mode)
        self._tta = mode
        for member, own in zip(self.members, self._own_tta, strict=True):
            if not own:
                member.tta = mode

    @property
    def lam(self) -> float:
        """The first head's λ; each head keeps its own (its statistics hold for it)."""
        return self.members[0].lam

    @lam.setter
    def lam(self, value: float) -> None:
        raise SleegError(
            "an ensemble's heads keep their own λ (their score statistics hold for it); "
            "drop the λ override"
        )

    @property
    def sml_stats(self) -> tuple[torch.Tensor, torch.Tensor] | None:
        """The first member's per-class statistics for score 'sml'."""
        return self.members[0].sml_stats

    @sml_stats.setter
    def sml_stats(self, value: tuple[torch.Tensor, torch.Tensor] | None) -> None:
        self.members[0].sml_stats = value

    def available_scores(self) -> list[str]:
        return self.members[0].available_scores()

    def compile_networks(self, mode: str = "default") -> EnsembleSegmenter:
        """Each member's `compile_networks`."""
        for member in self.members:
            member.compile_networks(mode)
        return self

    def convert_networks(self, dtype: torch.dtype) -> EnsembleSegmenter:
        """Each member's `convert_networks`."""
        for member in self.members:
            member.convert_networks(dtype)
        return self

    @torch.no_grad()
    def forward(
        self,
        images: torch.Tensor,
        scores: tuple[str, ...] = (SCORE,),
        size: tuple[int, int] | None = None,
        keep_logits: bool = False,
        train_ids: bool = True,
        resize_mode: str = "stretch",
    ) -> Prediction:
        """images: B×3×H×W uint8 RGB → Prediction at H×W, as AnomalySegmenter's."""
        first = self.members[0](images, scores, size, keep_logits, train_ids, resize_mode)
        if SCORE in scores:
            for member in self.members[1:]:
                more = member(images, (SCORE,), size, False, False, resize_mode)
                first.scores[SCORE] = first.scores[SCORE] + more.scores[SCORE]
        return first


@contextmanager
def _about(spec: EnsembleFile, where: str) -> Iterator[None]:
    """Within it, any SleegError becomes a ModelLoadError (field "head") naming the ensemble
    file and `where` in it."""
    try:
        yield
    except SleegError as err:
        raise ModelLoadError("head", f"ensemble file {spec.path}, {where}: {err}") from err


def load_ensemble(
    path: Path,
    device: torch.device,
    segmentor: str | None = None,
    weights: str | Path | None = None,
) -> tuple[EnsembleSegmenter, EnsembleFile]:
    """The ensemble of the file at `path` on `device`, and the file (its `lam` set). `segmentor`
    and `weights`, when set, must name the first member's (else ModelLoadError naming them)."""
    spec = EnsembleFile.load(path)
    groups: dict[tuple[str, str | None], list[HeadEntry]] = {}
    for m in spec.members:  # members of the same weights and tta share one segmentor forward
        groups.setdefault((m.weights, m.tta), []).extend(m.heads)
    total = spec.weight_total()
    members = [
        _build_member(spec, i, w, tta, heads, total)
        for i, ((w, tta), heads) in enumerate(groups.items())
    ]
    first = spec.members[0].weights
    if segmentor and segmentor != members[0].segmentor.info.name:
        raise ModelLoadError(
            "segmentor",
            f"segmentor '{segmentor}' is not the first member's "
            f"('{members[0].segmentor.info.name}') of ensemble {path}; leave it empty",
        )
    if weights and not _same_weights(str(weights), spec.resolve(first)):
        raise ModelLoadError(
            "weights",
            f"weights '{weights}' are not the first member's ('{first}') of ensemble {path}; "
            "leave them empty or name those",
        )
    model = EnsembleSegmenter(members, [t is not None for _, t in groups])
    spec.lam = model.lam
    return model.to(device).eval(), spec


def _build_member(
    spec: EnsembleFile,
    index: int,
    weights: str,
    tta: str | None,
    heads: list[HeadEntry],
    total: float,
) -> HeadSetSegmenter:
    """One segmentor and its heads, each head checked against it and its statistics."""
    with _about(spec, f"member {index + 1} ({weights})"):
        files = [HeadFile.load(resolve_head(spec.resolve(h.head))) for h in heads]
        entry = named_weights(spec.resolve(weights))
        name = entry.segmentor if entry else files[0].segmentor
        for h, f in zip(heads, files, strict=True):
            _check_head(h.head, f, name, files[0])
        checkpoint = resolve_weights(spec.resolve(weights))
        if not checkpoint.is_file():
            raise SleegError(f"weights file not found: {checkpoint}")
        try:
            seg = build_segmentor(name, checkpoint, **files[0].segmentor_options)
        except SleegError as err:
            source = f"weights '{entry.name}'" if entry else f"head '{heads[0].head}'"
            raise SleegError(f"segmentor '{name}' (of its {source}): {err}") from err
        for h, f in zip(heads, files, strict=True):
            f.check_segmentor(seg.info.name, seg.info.feature_channels, f"head '{h.head}'")
    terms = [
        Term(
            f.lam,
            h.weight / total,
            f.score_stats["normal_p50"],
            f.score_stats["normal_p99"] - f.score_stats["normal_p50"],
        )
        for h, f in zip(heads, files, strict=True)
    ]
    return HeadSetSegmenter(seg, [f.build_head() for f in files], terms, tta or "none")


def _check_head(value: str, head: HeadFile, segmentor: str, first: HeadFile) -> None:
    """SleegError unless the head fits the member's segmentor and has the statistics z needs."""
    if head.segmentor != segmentor:
        raise SleegError(
            f"head '{value}' was trained on segmentor '{head.segmentor}', not the member's "
            f"'{segmentor}'"
        )
    if head.segmentor_options != first.segmentor_options:
        raise SleegError(
            f"head '{value}' needs segmentor options {head.segmentor_options}, the member's "
            f"first head {first.segmentor_options}: give it a member of its own"
        )
    stats = [head.score_stats.get(k, math.nan) for k in STATS]
    if not all(math.isfinite(s) for s in stats) or stats[1] <= stats[0]:
        raise SleegError(
            f"head '{value}' has no usable score_stats {'/'.join(STATS)} (got "
            f"{head.score_stats or 'none'}), which normalise its score"
        )


def _same_weights(given: str, member: str) -> bool:
    """Whether two weights values name the same checkpoint (same value, or the same file)."""
    if given == member:
        return True
    try:
        a, b = resolve_weights(given), resolve_weights(member)
        return a.is_file() and b.is_file() and a.samefile(b)
    except SleegError:
        return False
