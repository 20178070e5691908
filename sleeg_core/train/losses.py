"""SLEEG's training losses on the OoD head output, as pure tensor functions.

Inputs: head output h B×2×H×W (already upsampled to the label size), class logits B×K×H×W and a
label map B×H×W (long or uint8): 0 = normal, 1 = anomaly, `IGNORE_INDEX` = ignored.
Gradients reach h only: the JEM term is always detached.

Example:
    >>> import torch
    >>> h = torch.zeros(1, 2, 1, 2, requires_grad=True)
    >>> terms = total_loss(h, torch.zeros(1, 19, 1, 2), torch.tensor([[[0, 1]]]))
    >>> round(terms.tae.item(), 4), round(terms.tore.item(), 4)
    (0.6931, 15.0)
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from sleeg_core.common.errors import SleegError
from sleeg_core.model.estimators import jem

IGNORE_INDEX = 255


@dataclass
class LossTerms:
    """total = tae + β·tore, each a scalar tensor (total carries the gradient)."""

    total: torch.Tensor
    tae: torch.Tensor
    tore: torch.Tensor

    def as_floats(self) -> dict[str, float]:
        """{"total": …, "tae": …, "tore": …} as Python floats, for logging."""
        return {"total": self.total.item(), "tae": self.tae.item(), "tore": self.tore.item()}


def tae_loss(h: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """L_a: cross-entropy of h against the labels, averaged over the batch's non-ignored pixels.

    Pixels of all images are pooled (as `F.cross_entropy(..., reduction="mean")`); with no valid
    pixel at all the loss is 0 and still part of the graph.
    """
    target = _check_labels(h, labels)
    total = F.cross_entropy(h, target, ignore_index=IGNORE_INDEX, reduction="sum")
    return total / (target != IGNORE_INDEX).sum().clamp(min=1)


def tore_loss(
    h: torch.Tensor,
    logits: torch.Tensor,
    labels: torch.Tensor,
    gamma: float = 15.0,
    dynamic: bool = True,
) -> torch.Tensor:
    """L_o: per image max(0, mean_normal(log p_t) − mean_anomaly(log p_t) + γ), mean over images.

    log p_t = h[:, 1] + JEM(logits) (JEM detached) with `dynamic`, or h[:, 1] alone for the
    static-margin ablation. Only images with both normal and anomaly pixels count; if none has
    both, the loss is 0 and still part of the graph.
    """
    labels = _check_labels(h, labels)
    log_pt = h[:, 1] + jem(logits).detach() if dynamic else h[:, 1]
    normal, anomaly = labels == 0, labels == 1
    n_normal, n_anomaly = normal.sum(dim=(1, 2)), anomaly.sum(dim=(1, 2))
    zero = log_pt.new_zeros(())
    mean_normal = torch.where(normal, log_pt, zero).sum(dim=(1, 2)) / n_normal.clamp(min=1)
    mean_anomaly = torch.where(anomaly, log_pt, zero).sum(dim=(1, 2)) / n_anomaly.clamp(min=1)
    hinge = torch.relu(mean_normal - mean_anomaly + gamma)
    counted = (n_normal > 0) & (n_anomaly > 0)
    return torch.where(counted, hinge, zero).sum() / counted.sum().clamp(min=1)


def total_loss(
    h: torch.Tensor,
    logits: torch.Tensor | None,
    labels: torch.Tensor,
    beta: float = 0.05,
    gamma: float = 15.0,
    dynamic: bool = True,
    tae_weight: float = 1.0,
) -> LossTerms:
    """L = w·L_a + β·L_o (β = 0.05 as in the authors' code; the paper does not state it).

    β = 0 (TAE alone) skips L_o and its logsumexp over the logits, which may then be None; the
    returned `tore` is NaN (not computed).
    """
    tae = tae_loss(h, labels)
    if beta == 0:
        return LossTerms(total=tae_weight * tae, tae=tae.detach(), tore=tae.new_tensor(math.nan))
    if logits is None:
        raise SleegError(f"the TORE loss (β = {beta}) needs the class logits")
    tore = tore_loss(h, logits, labels, gamma=gamma, dynamic=dynamic)
    return LossTerms(total=tae_weight * tae + beta * tore, tae=tae.detach(), tore=tore.detach())


def _check_labels(h: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Labels as long, after checking shapes and values (SleegError otherwise)."""
    if h.ndim != 4 or h.shape[1] != 2:
        raise SleegError(f"OoD head output must be B×2×H×W, got shape {tuple(h.shape)}")
    if labels.shape != (h.shape[0], *h.shape[2:]):
        raise SleegError(
            f"labels {tuple(labels.shape)} must be B×H×W matching the head output "
            f"{tuple(h.shape)} (upsample the head output to the label size first)"
        )
    if labels.dtype.is_floating_point or labels.dtype.is_complex or labels.dtype == torch.bool:
        raise SleegError(f"labels must be an integer tensor, got dtype {labels.dtype}")
    labels = labels.long()
    # the value check reads the tensor on the host: on a GPU it would stall every training step
    # (the trainer's own labels are valid by construction), so it runs where that is free
    if labels.device.type == "cpu" and _bad_values(labels).any():
        raise SleegError(f"labels must only hold 0 (normal), 1 (anomaly), {IGNORE_INDEX} (ignore)")
    return labels


def _bad_values(labels: torch.Tensor) -> torch.Tensor:
    """Where `labels` holds anything but 0, 1 or IGNORE_INDEX."""
    return (labels != 0) & (labels != 1) & (labels != IGNORE_INDEX)
