"""Per-pixel anomaly scores: SLEEG's estimators and the logit baselines, as pure tensor functions.

Inputs: class logits B×K×H×W and, for the SLEEG scores, the OoD head output h B×2×H×W (channel 0
normal, 1 anomaly) at the same H×W. Every score is B×H×W and HIGHER = MORE ANOMALOUS.

Example:
    >>> import torch
    >>> logits = torch.tensor([[2.0, 0.0, 0.0], [0.0, 0.0, 0.0]]).T.reshape(1, 3, 1, 2)
    >>> jem(logits)  # the uniform (second) pixel is the more anomalous one
    tensor([[[-2.2395, -1.0986]]])
    >>> compute_score("msp", logits)
    tensor([[[0.2130, 0.6667]]])
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterable

import torch

from sleeg_core.common.errors import SleegError

# ---------------------------------------------------------------- SLEEG estimators


def jem(logits: torch.Tensor) -> torch.Tensor:
    """JEM(z) = −log Σ_k exp(logits[k]), the free energy (stable for any logit magnitude).

    In-distribution pixels have a large logsumexp, so JEM is HIGH for anomalies as it stands.
    """
    return -torch.logsumexp(logits, dim=1)


def tae_log_prob(h: torch.Tensor) -> torch.Tensor:
    """TAE: log p_a(anomaly | z) = log_softmax(h)[:, 1]."""
    _check_head_output(h)
    return torch.log_softmax(h, dim=1)[:, 1]


def tore_log_lik(h: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
    """TORE: log p_t(anomaly | z) = h[:, 1] + JEM(logits) (+ a dropped constant).

    The JEM term is detached: gradients flow into the head only, never into the segmentor.
    """
    _check_head_output(h, logits)
    return h[:, 1] + jem(logits).detach()


def sleeg_score(h: torch.Tensor, logits: torch.Tensor | None, lam: float = 0.5) -> torch.Tensor:
    """The paper's test score A = log p_a(1|z) + λ·log p_t(1|z). With λ = 0 the class logits are
    not read (they may be None): no full-resolution logits, no logsumexp over K channels."""
    if lam == 0:
        return tae_log_prob(h)
    if logits is None:
        raise SleegError(f"score 'sleeg' with λ = {lam} needs the class logits")
    _check_head_output(h, logits)
    return tae_log_prob(h) + lam * tore_log_lik(h, logits)


def sleeg_score_code_variant(h: torch.Tensor, logits: torch.Tensor, w: float = 0.5) -> torch.Tensor:
    """The authors' code's score: E + w·h[:, 1] with E = 1 − logsumexp(logits).

    The code's "energy" E = 1 − logsumexp = 1 + JEM is already higher for anomalies, as is the raw
    anomaly channel h[:, 1], so the sum is used unchanged (the +1 only shifts, never reorders).
    """
    _check_head_output(h, logits)
    return 1.0 + jem(logits) + w * h[:, 1]


# ---------------------------------------------------------------- baselines on logits


def msp(logits: torch.Tensor) -> torch.Tensor:
    """1 − max softmax probability."""
    return 1.0 - torch.softmax(logits, dim=1).amax(dim=1)


def maxlogit(logits: torch.Tensor) -> torch.Tensor:
    """−max logit."""
    return -logits.amax(dim=1)


def entropy(logits: torch.Tensor) -> torch.Tensor:
    """Softmax entropy −Σ p log p (nats), from log_softmax so it stays finite."""
    log_p = torch.log_softmax(logits, dim=1)
    return -(log_p.exp() * log_p).sum(dim=1)


def sml(logits: torch.Tensor, class_mean: torch.Tensor, class_std: torch.Tensor) -> torch.Tensor:
    """Standardised max logit, negated: (mean_c − max logit) / std_c for the predicted class c.

    `class_mean`/`class_std` are K-vectors, e.g. from `SMLStatistics`.
    """
    num_classes = logits.shape[1]
    if class_mean.shape != (num_classes,) or class_std.shape != (num_classes,):
        raise SleegError(
            f"SML statistics must be {num_classes}-vectors, got mean {tuple(class_mean.shape)} "
            f"and std {tuple(class_std.shape)}"
        )
    max_logit, pred = logits.max(dim=1)
    mean = class_mean.to(logits)[pred]
    std = class_std.to(logits)[pred]
    return (mean - max_logit) / std


class SMLStatistics:
    """Streaming per-class mean/std of the max logit over the pixels predicted as that class.

    Sums are kept in float64 on the CPU (one K-vector per `update`). Population std (ddof 0).
    Classes never predicted take the global mean/std; classes with zero spread (e.g. a single
    pixel) take the global std; a global std of 0 becomes 1.

    Example:
        >>> import torch
        >>> stats = SMLStatistics(num_classes=3)
        >>> stats.update(torch.tensor([[2.0, 0.0, 0.0], [0.0, 4.0, 0.0]]).T.reshape(1, 3, 1, 2))
        >>> stats.compute()[0]
        tensor([2., 4., 3.], dtype=torch.float64)
    """

    def __init__(self, num_classes: int) -> None:
        self.num_classes = num_classes
        self.count = torch.zeros(num_classes, dtype=torch.float64)
        self.total = torch.zeros(num_classes, dtype=torch.float64)
        self.total_sq = torch.zeros(num_classes, dtype=torch.float64)

    def update(self, logits: torch.Tensor) -> None:
        """Add every pixel of a B×K×H×W logit batch."""
        if logits.ndim != 4 or logits.shape[1] != self.num_classes:
            raise SleegError(
                f"SML statistics expect B×{self.num_classes}×H×W logits, "
                f"got shape {tuple(logits.shape)}"
            )
        max_logit, pred = logits.detach().max(dim=1)
        pred, value = pred.flatten(), max_logit.flatten().double()
        k = self.num_classes
        self.count += torch.bincount(pred, minlength=k).double().cpu()
        self.total += torch.bincount(pred, weights=value, minlength=k).cpu()
        self.total_sq += torch.bincount(pred, weights=value * value, minlength=k).cpu()

    def compute(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(mean, std), two float64 K-vectors."""
        n = self.count.sum()
        if n == 0:
            raise SleegError("SML statistics are empty: no logits were added")
        global_mean = self.total.sum() / n
        global_std = (self.total_sq.sum() / n - global_mean**2).clamp(min=0).sqrt()
        if global_std == 0:
            global_std = torch.ones((), dtype=torch.float64)
        seen = self.count > 0
        count = self.count.clamp(min=1)
        mean = torch.where(seen, self.total / count, global_mean)
        std = (self.total_sq / count - (self.total / count) ** 2).clamp(min=0).sqrt()
        std = torch.where(seen & (std > 0), std, global_std)
        return mean, std


def sml_statistics(logits_batches: Iterable[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-class (mean, std) of the max logit over a stream of B×K×H×W logit batches."""
    stats: SMLStatistics | None = None
    for logits in logits_batches:
        stats = stats or SMLStatistics(logits.shape[1])
        stats.update(logits)
    if stats is None:
        raise SleegError("SML statistics are empty: no logits were added")
    return stats.compute()


# ---------------------------------------------------------------- registry by name

BASELINE_SCORES: dict[str, Callable[..., torch.Tensor]] = {
    "msp": msp,
    "maxlogit": maxlogit,
    "entropy": entropy,
    "energy": jem,  # the JEM/energy baseline: −logsumexp is already higher for anomalies
    "sml": sml,  # needs class_mean=, class_std=
}

# Scores that also need the head output; each is called as fn(h, logits, **params).
HEAD_SCORES: dict[str, Callable[..., torch.Tensor]] = {
    "sleeg": sleeg_score,  # lam=
    "sleeg_code": sleeg_score_code_variant,  # w=
    "tae": lambda h, logits: tae_log_prob(h),
    "tore": tore_log_lik,
}


def needs_logits(name: str, **params: object) -> bool:
    """Whether the named score reads the class logits ("tae" and "sleeg" with lam=0 do not)."""
    return not (name == "tae" or (name == "sleeg" and params.get("lam", 0.5) == 0))


def score_names() -> list[str]:
    """Every name `compute_score` accepts: logit baselines first, then the head scores."""
    return [*BASELINE_SCORES, *HEAD_SCORES]


def compute_score(
    name: str, logits: torch.Tensor | None, h: torch.Tensor | None = None, **params: object
) -> torch.Tensor:
    """The named B×H×W score (higher = more anomalous); SleegError on a bad name or parameters.
    `logits` may be None for the scores that do not read them (`needs_logits`).

    Example: `compute_score("sleeg", logits, h, lam=0.5)`, `compute_score("maxlogit", logits)`.
    """
    if logits is None and needs_logits(name, **params):
        raise SleegError(f"score '{name}' needs the class logits")
    if logits is not None and logits.ndim != 4:
        raise SleegError(f"logits must be B×K×H×W, got shape {tuple(logits.shape)}")
    if name in BASELINE_SCORES:
        fn, args = BASELINE_SCORES[name], (logits,)
    elif name in HEAD_SCORES:
        if h is None:
            raise SleegError(f"score '{name}' needs the OoD head output")
        fn, args = HEAD_SCORES[name], (h, logits)
    else:
        raise SleegError(f"unknown score '{name}'; choose one of: {', '.join(score_names())}")
    try:
        inspect.signature(fn).bind(*args, **params)
    except TypeError as err:
        raise SleegError(f"bad parameters {sorted(params)} for score '{name}': {err}") from None
    return fn(*args, **params)


def _check_head_output(h: torch.Tensor, logits: torch.Tensor | None = None) -> None:
    """Raise SleegError unless h is B×2×H×W (and matches the logits' B, H, W when given)."""
    if h.ndim != 4 or h.shape[1] != 2:
        raise SleegError(f"OoD head output must be B×2×H×W, got shape {tuple(h.shape)}")
    if logits is not None and (
        logits.ndim != 4 or logits.shape[0] != h.shape[0] or logits.shape[2:] != h.shape[2:]
    ):
        raise SleegError(
            f"head output {tuple(h.shape)} and logits {tuple(logits.shape)} must share B, H, W "
            "(upsample the head output to the logits' size first)"
        )
