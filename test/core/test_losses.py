"""Losses: hand-computed values, the torch reference, the TORE margin, and where gradients go."""

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from sleeg_core.common.errors import SleegError
from sleeg_core.model.estimators import jem
from sleeg_core.model.head import OoDHead
from sleeg_core.train.losses import IGNORE_INDEX, LossTerms, tae_loss, tore_loss, total_loss


def pixels(*rows: list[float]) -> torch.Tensor:
    """A 1×C×1×P tensor whose pixel p has the channel values rows[p]."""
    return torch.tensor(rows).T.reshape(1, len(rows[0]), 1, len(rows))


# Pixel A: normal, h = (1, −1), logits (2, 0, 0); pixel B: anomaly, h = (0, 2), logits (0, 0, 0);
# pixel C: ignored, with values that would dominate every term if it were counted.
H = pixels([1.0, -1.0], [0.0, 2.0], [-50.0, 50.0])
LOGITS = pixels([2.0, 0.0, 0.0], [0.0, 0.0, 0.0], [0.0, 0.0, 90.0])
LABELS = torch.tensor([[[0, 1, IGNORE_INDEX]]])
LOG_PT_A = -1 - math.log(math.e**2 + 2)  # h1 + JEM = −3.239545
LOG_PT_B = 2 - math.log(3)  # 0.901388


def test_tae_hand_computed_and_matches_cross_entropy():
    # A: −log softmax(1, −1)[0] = log(1 + e^−2); B: −log softmax(0, 2)[1] = log(1 + e^−2)
    expected = math.log(1 + math.exp(-2))  # 0.126928
    assert tae_loss(H, LABELS).item() == pytest.approx(expected, rel=1e-6)
    torch.manual_seed(0)
    h = torch.randn(3, 2, 4, 5)
    labels = torch.randint(0, 2, (3, 4, 5))
    labels[0, :2] = IGNORE_INDEX
    reference = F.cross_entropy(h, labels, ignore_index=IGNORE_INDEX)
    torch.testing.assert_close(tae_loss(h, labels), reference)
    torch.testing.assert_close(tae_loss(h, labels.to(torch.uint8)), reference)


def test_tae_pools_pixels_of_the_batch():
    """Mean over all valid pixels of the batch, not a mean of per-image means."""
    h = torch.zeros(2, 2, 1, 3)
    h[0, 1] = 1.0  # image 0: one valid pixel; image 1: three
    labels = torch.tensor([[[1, 255, 255]], [[0, 0, 0]]])
    expected = (math.log(1 + math.exp(-1)) + 3 * math.log(2)) / 4
    assert tae_loss(h, labels).item() == pytest.approx(expected, rel=1e-6)


def test_tore_hand_computed_dynamic_and_static():
    expected = LOG_PT_A - LOG_PT_B + 15  # 10.859067
    assert tore_loss(H, LOGITS, LABELS).item() == pytest.approx(expected, rel=1e-6)
    static = -1.0 - 2.0 + 15  # h1 alone: 12
    assert tore_loss(H, LOGITS, LABELS, dynamic=False).item() == pytest.approx(static)
    assert tore_loss(H, LOGITS, LABELS, gamma=1.0).item() == 0.0


def test_tore_is_zero_once_the_anomaly_mean_exceeds_the_normal_mean_by_the_margin():
    gamma = 15.0
    logits = torch.zeros(1, 3, 2, 2)  # equal JEM everywhere: only h matters
    labels = torch.tensor([[[0, 0], [1, 1]]])
    for gap, expected in ((gamma + 0.5, 0.0), (gamma, 0.0), (gamma - 2.0, 2.0)):
        h = torch.zeros(1, 2, 2, 2)
        h[0, 1, 1] = gap
        h = h.requires_grad_(True)
        loss = tore_loss(h, logits, labels, gamma=gamma)
        assert loss.item() == pytest.approx(expected)
        loss.backward()
        # each mean spreads a unit gradient over its two pixels: total |grad| 2 while active
        assert h.grad.abs().sum().item() == pytest.approx(0.0 if expected == 0 else 2.0)


def test_tore_averages_only_over_images_with_both_kinds():
    h = torch.zeros(3, 2, 1, 2)
    h[0, 1] = torch.tensor([0.0, 5.0])  # image 0: normal 0, anomaly 5 → 15 − 5 = 10
    logits = torch.zeros(3, 4, 1, 2)
    labels = torch.tensor([[[0, 1]], [[0, 0]], [[1, 255]]])  # images 1 and 2 lack a kind
    assert tore_loss(h, logits, labels).item() == pytest.approx(10.0)
    labels[0, 0, 0] = 255
    h.requires_grad_(True)
    loss = tore_loss(h, logits, labels)
    assert loss.item() == 0.0 and loss.requires_grad
    loss.backward()
    assert torch.equal(h.grad, torch.zeros_like(h))


def test_dynamic_margin_uses_jem():
    """A normal pixel that the segmentor finds uncertain (high JEM) raises the normal mean."""
    h = torch.zeros(1, 2, 1, 2)
    labels = torch.tensor([[[0, 1]]])
    logits = pixels([0.0, 0.0], [10.0, 0.0])
    jem_a, jem_b = jem(logits).flatten().tolist()
    assert tore_loss(h, logits, labels).item() == pytest.approx(jem_a - jem_b + 15, rel=1e-6)
    assert tore_loss(h, logits, labels, dynamic=False).item() == pytest.approx(15.0)


def test_losses_with_no_valid_pixel_are_zero_and_differentiable():
    h = torch.randn(2, 2, 3, 3, requires_grad=True)
    labels = torch.full((2, 3, 3), IGNORE_INDEX, dtype=torch.uint8)
    terms = total_loss(h, torch.randn(2, 5, 3, 3), labels)
    assert terms.total.item() == 0.0 and terms.tae.item() == 0.0 and terms.tore.item() == 0.0
    terms.total.backward()
    assert torch.equal(h.grad, torch.zeros_like(h))


def test_total_loss_terms():
    terms = total_loss(H, LOGITS, LABELS)
    assert isinstance(terms, LossTerms)
    expected_tae = math.log(1 + math.exp(-2))
    expected_tore = LOG_PT_A - LOG_PT_B + 15
    assert terms.total.item() == pytest.approx(expected_tae + 0.05 * expected_tore, rel=1e-6)
    floats = total_loss(H, LOGITS, LABELS, beta=1.0, gamma=1.0).as_floats()
    assert floats == pytest.approx({"total": expected_tae, "tae": expected_tae, "tore": 0.0})


def test_beta_zero_skips_tore_and_needs_no_logits():
    terms = total_loss(H, None, LABELS, beta=0.0, tae_weight=2.0)
    expected_tae = math.log(1 + math.exp(-2))
    assert terms.total.item() == pytest.approx(2 * expected_tae, rel=1e-6)
    assert math.isnan(terms.tore.item())
    with pytest.raises(SleegError, match="needs the class logits"):
        total_loss(H, None, LABELS, beta=0.05)


@pytest.mark.parametrize("batch", [1, 3])
def test_gradients_reach_only_the_head(batch):
    torch.manual_seed(0)
    features_layer = nn.Conv2d(3, 4, 3, padding=1)
    classifier = nn.Conv2d(4, 5, 1)
    for p in [*features_layer.parameters(), *classifier.parameters()]:
        p.requires_grad_(False)
    head = OoDHead(4, width=6, depth=2).train()
    images = torch.randn(batch, 3, 6, 7)
    features = features_layer(images)
    logits = classifier(features)
    labels = torch.zeros(batch, 6, 7, dtype=torch.long)
    labels[:, 2:4, 2:5] = 1
    labels[:, 0, 0] = IGNORE_INDEX
    total_loss(head(features), logits, labels).total.backward()
    assert all(p.grad is None for p in [*features_layer.parameters(), *classifier.parameters()])
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in head.parameters())


def test_no_gradient_flows_into_the_logits_even_if_they_require_one():
    logits = LOGITS.clone().requires_grad_(True)
    h = H.clone().requires_grad_(True)
    total_loss(h, logits, LABELS).total.backward()
    assert logits.grad is None and h.grad is not None


def test_label_and_shape_errors():
    with pytest.raises(SleegError, match="only hold 0"):
        tae_loss(H, torch.tensor([[[0, 2, 1]]]))
    with pytest.raises(SleegError, match="integer"):
        tae_loss(H, LABELS.float())
    with pytest.raises(SleegError, match="upsample"):
        tore_loss(H, LOGITS, torch.zeros(1, 1, 2, dtype=torch.long))
    with pytest.raises(SleegError, match="B×2×H×W"):
        total_loss(torch.zeros(1, 3, 1, 3), LOGITS, LABELS)
