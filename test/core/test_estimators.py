"""Scores: hand-computed values, torch references, stability, SML statistics and the registry."""

import math

import numpy as np
import pytest
import torch

from sleeg_core.common.errors import SleegError
from sleeg_core.model.estimators import (
    BASELINE_SCORES,
    HEAD_SCORES,
    SMLStatistics,
    compute_score,
    entropy,
    jem,
    maxlogit,
    msp,
    needs_logits,
    sleeg_score,
    sleeg_score_code_variant,
    sml,
    sml_statistics,
    tae_log_prob,
    tore_log_lik,
)


def pixels(*rows: list[float]) -> torch.Tensor:
    """A 1×C×1×P tensor whose pixel p has the channel values rows[p]."""
    return torch.tensor(rows).T.reshape(1, len(rows[0]), 1, len(rows))


# Pixel A is confident (class 0), pixel B uniform: B must score as the more anomalous one.
LOGITS = pixels([2.0, 0.0, 0.0], [0.0, 0.0, 0.0])
H = pixels([1.0, -1.0], [0.0, 2.0])
LSE_A = math.log(math.e**2 + 2)  # 2.239545
LSE_B = math.log(3)  # 1.098612
TAE_A = -1 - math.log(math.e + math.exp(-1))  # −2.126928
TAE_B = 2 - math.log(1 + math.e**2)  # −0.126928


def close(actual: torch.Tensor, expected: list[float]) -> None:
    torch.testing.assert_close(actual.flatten(), torch.tensor(expected), atol=1e-5, rtol=1e-5)


def test_hand_computed_two_pixel_three_class_example():
    close(jem(LOGITS), [-2.239545, -1.098612])
    close(msp(LOGITS), [1 - math.e**2 / (math.e**2 + 2), 2 / 3])  # 0.213014, 0.666667
    close(maxlogit(LOGITS), [-2.0, 0.0])
    p = math.e**2 / (math.e**2 + 2)
    q = 1 / (math.e**2 + 2)
    close(entropy(LOGITS), [-(p * math.log(p) + 2 * q * math.log(q)), math.log(3)])  # 0.665573
    close(tae_log_prob(H), [-2.126928, -0.126928])
    close(tore_log_lik(H, LOGITS), [-1 - LSE_A, 2 - LSE_B])  # −3.239545, 0.901388
    close(sleeg_score(H, LOGITS), [TAE_A + 0.5 * (-1 - LSE_A), TAE_B + 0.5 * (2 - LSE_B)])
    close(sleeg_score(H, LOGITS, lam=0.0), [TAE_A, TAE_B])
    # code variant: 1 − logsumexp + w·h1
    close(sleeg_score_code_variant(H, LOGITS), [1 - LSE_A - 0.5, 1 - LSE_B + 1.0])
    close(sleeg_score_code_variant(H, LOGITS, w=0.3), [1 - LSE_A - 0.3, 1 - LSE_B + 0.6])


def test_every_score_ranks_the_uniform_pixel_above_the_confident_one():
    mean, std = torch.tensor([1.0, 1.0, 1.0]), torch.tensor([1.0, 1.0, 1.0])
    for name in BASELINE_SCORES:
        params = {"class_mean": mean, "class_std": std} if name == "sml" else {}
        score = compute_score(name, LOGITS, **params).flatten()
        assert score[1] > score[0], name
    for name in HEAD_SCORES:
        score = compute_score(name, LOGITS, H).flatten()
        assert score[1] > score[0], name


def test_against_torch_references():
    torch.manual_seed(0)
    logits = torch.randn(3, 5, 4, 6) * 3
    per_pixel = logits.permute(0, 2, 3, 1)
    torch.testing.assert_close(
        entropy(logits), torch.distributions.Categorical(logits=per_pixel).entropy()
    )
    torch.testing.assert_close(msp(logits), 1 - torch.softmax(logits, 1).max(1).values)
    naive = -logits.double().exp().sum(1).log()
    torch.testing.assert_close(jem(logits).double(), naive, atol=1e-5, rtol=1e-6)
    h = torch.randn(3, 2, 4, 6)
    torch.testing.assert_close(tae_log_prob(h), torch.softmax(h, 1)[:, 1].log())


def test_stable_for_huge_logits():
    logits = pixels([1e4, 0.0, 0.0], [1e4, 1e4, -1e4])
    close(jem(logits), [-1e4, -(1e4 + math.log(2))])
    for fn in (msp, entropy, maxlogit):
        assert torch.isfinite(fn(logits)).all()
    close(msp(logits), [0.0, 0.5])
    close(entropy(logits), [0.0, math.log(2)])
    h = pixels([1e4, -1e4], [0.0, 0.0])
    assert torch.isfinite(sleeg_score(h, logits)).all()


def test_tore_detaches_jem():
    logits = LOGITS.clone().requires_grad_(True)
    h = H.clone().requires_grad_(True)
    tore_log_lik(h, logits).sum().backward()
    assert logits.grad is None
    close(h.grad[:, 1], [1.0, 1.0])
    close(h.grad[:, 0], [0.0, 0.0])


@pytest.mark.parametrize("shape", [(1, 1, 1), (3, 5, 7), (2, 16, 3)])
def test_shapes_for_any_batch_and_size(shape):
    b, height, width = shape
    logits, h = torch.randn(b, 4, height, width), torch.randn(b, 2, height, width)
    mean, std = torch.zeros(4), torch.ones(4)
    for name in BASELINE_SCORES:
        params = {"class_mean": mean, "class_std": std} if name == "sml" else {}
        assert compute_score(name, logits, **params).shape == shape
    for name in HEAD_SCORES:
        assert compute_score(name, logits, h).shape == shape


def test_sml_hand_computed():
    logits = pixels([2.0, 0.0, 0.0], [0.0, 4.0, 1.0], [0.0, 0.0, 3.0])
    mean, std = torch.tensor([1.0, 2.0, 3.0]), torch.tensor([1.0, 4.0, 0.5])
    close(sml(logits, mean, std), [(1 - 2) / 1, (2 - 4) / 4, (3 - 3) / 0.5])  # −1, −0.5, 0
    with pytest.raises(SleegError, match="3-vectors"):
        sml(logits, torch.zeros(2), torch.ones(2))


def test_sml_statistics_stream_matches_numpy_and_falls_back_to_global():
    torch.manual_seed(1)
    logits = torch.randn(3, 4, 5, 6)
    logits[:, 2:] -= 100  # class 3 is never predicted, class 2 exactly once:
    logits[0, 2, 0, 0] = 50
    stream = SMLStatistics(num_classes=4)
    for batch in logits.split(1):
        stream.update(batch)
    mean, std = stream.compute()
    also_mean, also_std = sml_statistics(iter(logits.split(2)))
    torch.testing.assert_close((mean, std), (also_mean, also_std))

    max_logit, pred = (t.flatten().double().numpy() for t in logits.max(1))
    for c in (0, 1):
        np.testing.assert_allclose(mean[c], max_logit[pred == c].mean(), rtol=1e-12)
        np.testing.assert_allclose(std[c], max_logit[pred == c].std(), rtol=1e-10)
    assert mean[2] == 50 and np.isclose(std[2], max_logit.std())
    assert np.isclose(mean[3], max_logit.mean()) and np.isclose(std[3], max_logit.std())
    assert mean.dtype == std.dtype == torch.float64


def test_sml_statistics_errors():
    with pytest.raises(SleegError, match="empty"):
        sml_statistics([])
    with pytest.raises(SleegError, match="empty"):
        SMLStatistics(3).compute()
    with pytest.raises(SleegError, match="B×3×H×W"):
        SMLStatistics(3).update(torch.zeros(1, 4, 2, 2))


def test_compute_score_registry_and_errors():
    assert compute_score("sleeg", LOGITS, H, lam=0.3).equal(sleeg_score(H, LOGITS, lam=0.3))
    assert compute_score("sleeg_code", LOGITS, H, w=0.3).equal(
        sleeg_score_code_variant(H, LOGITS, w=0.3)
    )
    assert compute_score("energy", LOGITS).equal(jem(LOGITS))
    with pytest.raises(SleegError, match=r"unknown score 'nope'.*msp"):
        compute_score("nope", LOGITS)
    with pytest.raises(SleegError, match="needs the OoD head output"):
        compute_score("sleeg", LOGITS)
    with pytest.raises(SleegError, match="bad parameters"):
        compute_score("msp", LOGITS, lam=0.5)
    with pytest.raises(SleegError, match="bad parameters"):
        compute_score("sml", LOGITS)
    with pytest.raises(SleegError, match="B×2×H×W"):
        compute_score("sleeg", LOGITS, torch.zeros(1, 3, 1, 2))
    with pytest.raises(SleegError, match="share B, H, W"):
        compute_score("tore", LOGITS, torch.zeros(1, 2, 2, 2))
    with pytest.raises(SleegError, match="B×K×H×W"):
        compute_score("msp", LOGITS[0])


def test_which_scores_read_the_logits():
    assert not needs_logits("tae") and not needs_logits("sleeg", lam=0.0)
    assert needs_logits("sleeg") and needs_logits("sleeg", lam=0.5) and needs_logits("tore")
    assert all(needs_logits(name) for name in ("msp", "maxlogit", "entropy", "energy", "sml"))
    for name in ("msp", "tore"):
        with pytest.raises(SleegError, match=f"score '{name}' needs the class logits"):
            compute_score(name, None, torch.zeros(1, 2, 1, 2))
    with pytest.raises(SleegError, match="needs the class logits"):
        sleeg_score(torch.zeros(1, 2, 1, 2), None, lam=0.5)


def test_sleeg_score_with_lambda_zero_is_tae_exactly():
    h, logits = torch.randn(2, 2, 5, 7), torch.randn(2, 19, 5, 7)
    assert torch.equal(sleeg_score(h, logits, lam=0.0), tae_log_prob(h))
    assert torch.equal(compute_score("sleeg", None, h, lam=0.0), tae_log_prob(h))  # no logits
    assert torch.equal(compute_score("tae", None, h), tae_log_prob(h))
    expect = tae_log_prob(h) + 0.5 * tore_log_lik(h, logits)
    assert torch.allclose(sleeg_score(h, logits, lam=0.5), expect)
