"""Adaptive mask refinement: keep only the pasted pixels that already look anomalous.

Per image, an Otsu threshold η* splits the scores of the pasted pixels; pasted pixels scoring
above η* become anomaly (1), the other pasted pixels are ignored (`IGNORE_INDEX`), everything not
pasted is normal (0). Scores must be "higher = more anomalous" (both JEM and the SLEEG score are).

Example:
    >>> import torch
    >>> scores = torch.tensor([[[0.0, 0.1, 5.0, 5.2, 9.0]]])
    >>> pasted = torch.tensor([[[True, True, True, True, False]]])
    >>> refine_labels(scores, pasted)
    tensor([[[255, 255,   1,   1,   0]]])
"""

from __future__ import annotations

import torch

from sleeg_core.common.errors import SleegError
from sleeg_core.model.estimators import jem, sleeg_score
from sleeg_core.train.losses import IGNORE_INDEX

REFINEMENT_MODES = ("paper", "energy")


def otsu_threshold(
    scores: torch.Tensor, mask: torch.Tensor, n_candidates: int = 25
) -> torch.Tensor:
    """Per-image threshold η* (a B-vector) over the scores of the pixels where `mask` is set.

    Candidates are lo + k·(hi − lo)/n for k = 0 … n−1, lo/hi the min/max masked score (the
    authors' grid; hi itself would split nothing). η* maximises the between-class variance
    w0·w1·(μ0 − μ1)², class 0 = {s ≤ η}, class 1 = {s > η}, which is the same as minimising the
    summed within-class variance n0·var0 + n1·var1. An image whose masked scores are all equal,
    or that has no masked pixel, gets η* = −inf: every masked pixel is above it.
    Cost: one bucketize + two scatter-adds per batch, no per-candidate pass over the pixels.
    """
    if scores.ndim < 2 or mask.shape != scores.shape:
        raise SleegError(
            f"scores {tuple(scores.shape)} and mask {tuple(mask.shape)} must both be B×H×W"
        )
    if n_candidates < 1:
        raise SleegError(f"n_candidates must be ≥ 1, got {n_candidates}")
    batch = scores.shape[0]
    values = scores.detach().reshape(batch, -1)
    inside = mask.reshape(batch, -1).bool()
    lo = torch.where(inside, values, torch.inf).amin(dim=1)
    hi = torch.where(inside, values, -torch.inf).amax(dim=1)
    splittable = inside.any(dim=1) & (hi > lo)
    lo, hi = torch.where(splittable, lo, 0.0), torch.where(splittable, hi, 0.0)
    steps = torch.arange(n_candidates, device=values.device, dtype=values.dtype) / n_candidates
    candidates = (lo[:, None] + (hi - lo)[:, None] * steps).contiguous()  # B×n, ascending

    # Bin j holds the masked values in (c[j-1], c[j]]; bin n holds the rest and unmasked pixels.
    bins = torch.searchsorted(candidates, values.contiguous(), right=False)
    bins = torch.where(inside, bins, n_candidates)
    weight = inside.double()
    weighted = torch.where(inside, values.double(), 0.0)
    n_below = _bin_sums(bins, weight, n_candidates).cumsum(dim=1)  # masked count with s ≤ c[j]
    s_below = _bin_sums(bins, weighted, n_candidates).cumsum(dim=1)  # and their sum
    n_all, s_all = weight.sum(dim=1, keepdim=True), weighted.sum(dim=1, keepdim=True)
    n_above, s_above = n_all - n_below, s_all - s_below
    mean_gap = s_below / n_below.clamp(min=1) - s_above / n_above.clamp(min=1)
    between = n_below * n_above * mean_gap**2 / n_all.clamp(min=1) ** 2
    between = torch.where((n_below > 0) & (n_above > 0), between, -1.0)
    best = candidates.gather(1, between.argmax(dim=1, keepdim=True)).squeeze(1)
    return torch.where(splittable, best, -torch.inf)


def refine_labels(
    scores: torch.Tensor, pasted_mask: torch.Tensor, n_candidates: int = 25
) -> torch.Tensor:
    """Long B×H×W labels: pasted & score > η* → 1, pasted & ≤ η* → 255, not pasted → 0."""
    pasted = pasted_mask.bool()
    eta = otsu_threshold(scores, pasted, n_candidates)
    above = scores.detach() > eta.view(-1, *([1] * (scores.ndim - 1)))
    labels = torch.where(above, 1, IGNORE_INDEX)
    return torch.where(pasted, labels, 0).long()


def refinement_scores(
    h: torch.Tensor,
    logits: torch.Tensor,
    iteration: int,
    warmup_iters: int = 6000,
    lam: float = 0.5,
    mode: str = "paper",
) -> torch.Tensor:
    """The B×H×W score (no gradient, higher = more anomalous) the refinement thresholds.

    mode "paper": JEM while `iteration < warmup_iters`, then the SLEEG score A (with λ = `lam`);
    mode "energy": always JEM, as the authors' code does.
    """
    if mode not in REFINEMENT_MODES:
        raise SleegError(f"unknown refinement mode '{mode}'; choose one of {REFINEMENT_MODES}")
    with torch.no_grad():
        if mode == "energy" or iteration < warmup_iters:
            return jem(logits)
        return sleeg_score(h, logits, lam)


def _bin_sums(bins: torch.Tensor, weight: torch.Tensor, n_candidates: int) -> torch.Tensor:
    """B×n sums of `weight` per bin (the overflow bin n is dropped)."""
    sums = weight.new_zeros(bins.shape[0], n_candidates + 1).scatter_add_(1, bins, weight)
    return sums[:, :n_candidates]
