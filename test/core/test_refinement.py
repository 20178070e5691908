"""Mask refinement: Otsu against brute force, bimodal splits, degenerate cases, warm-up switch."""

import numpy as np
import pytest
import torch

from sleeg_core.common.errors import SleegError
from sleeg_core.model.estimators import jem, sleeg_score
from sleeg_core.train.losses import IGNORE_INDEX
from sleeg_core.train.refinement import otsu_threshold, refine_labels, refinement_scores


def brute_force_within_class(values: np.ndarray, n_candidates: int) -> float:
    """The candidate minimising n0·var0 + n1·var1 (summed within-class variance), in a loop."""
    lo, hi = values.min(), values.max()
    steps = np.arange(n_candidates, dtype=np.float32) / np.float32(n_candidates)
    best, best_cost = None, np.inf
    for c in lo + (hi - lo) * steps:
        below, above = values[values <= c], values[values > c]
        if len(below) == 0 or len(above) == 0:
            continue
        cost = len(below) * below.var() + len(above) * above.var()
        if cost < best_cost:
            best, best_cost = c, cost
    return float(best)


def test_hand_computed_example():
    scores = torch.tensor([[[0.0, 0.1, 5.0, 5.2, 9.0]]])
    pasted = torch.tensor([[[True, True, True, True, False]]])
    # candidates 0, 0.208, 0.416, …: every cut between 0.1 and 5.0 gives the same split; first wins
    assert otsu_threshold(scores, pasted).item() == pytest.approx(5.2 / 25)
    assert refine_labels(scores, pasted).tolist() == [[[255, 255, 1, 1, 0]]]


@pytest.mark.parametrize("seed", range(5))
def test_between_class_form_equals_brute_force_within_class_minimum(seed):
    rng = np.random.default_rng(seed)
    n_candidates = int(rng.integers(5, 40))
    values = np.concatenate([rng.normal(0, 1, 40), rng.exponential(2, 30) + 1]).astype(np.float32)
    rng.shuffle(values)
    scores = torch.from_numpy(values).reshape(1, 7, 10)
    mask = torch.ones_like(scores, dtype=torch.bool)
    eta = otsu_threshold(scores, mask, n_candidates).item()
    assert eta == pytest.approx(brute_force_within_class(values, n_candidates), abs=1e-5)


def test_bimodal_sample_splits_between_the_modes():
    torch.manual_seed(0)
    low, high = torch.randn(200) * 0.3 - 2, torch.randn(100) * 0.3 + 4
    scores = torch.cat([low, high])[torch.randperm(300)].reshape(1, 15, 20)
    eta = otsu_threshold(scores, torch.ones_like(scores, dtype=torch.bool)).item()
    assert low.max() < eta < high.min()


def test_unpasted_pixels_do_not_influence_the_threshold():
    torch.manual_seed(1)
    scores = torch.randn(1, 8, 8)
    mask = torch.rand(1, 8, 8) < 0.5
    eta = otsu_threshold(scores, mask)
    wild = torch.where(mask, scores, torch.randn(1, 8, 8) * 1e3)
    assert torch.equal(otsu_threshold(wild, mask), eta)
    packed = scores[mask].reshape(1, 1, -1)
    assert torch.equal(otsu_threshold(packed, torch.ones_like(packed, dtype=torch.bool)), eta)


def test_batch_is_per_image():
    torch.manual_seed(2)
    scores = torch.stack([torch.randn(6, 5), torch.randn(6, 5) * 10 + 3, torch.rand(6, 5)])
    mask = torch.rand(3, 6, 5) < 0.7
    together = otsu_threshold(scores, mask)
    assert together.shape == (3,)
    for i in range(3):
        assert torch.equal(otsu_threshold(scores[i : i + 1], mask[i : i + 1]), together[i : i + 1])
        assert torch.equal(
            refine_labels(scores[i : i + 1], mask[i : i + 1]),
            refine_labels(scores, mask)[i : i + 1],
        )


def test_refine_labels_rules():
    torch.manual_seed(3)
    scores = torch.randn(3, 9, 11)
    pasted = torch.rand(3, 9, 11) < 0.4
    labels = refine_labels(scores, pasted)
    eta = otsu_threshold(scores, pasted)[:, None, None]
    assert labels.dtype == torch.long and labels.shape == scores.shape
    assert torch.equal(labels == 0, ~pasted)
    assert torch.equal(labels == 1, pasted & (scores > eta))
    assert torch.equal(labels == IGNORE_INDEX, pasted & (scores <= eta))
    assert (labels == 1).any() and (labels == IGNORE_INDEX).any()


def test_degenerate_cases():
    scores = torch.tensor([[[3.0, 3.0, 7.0]], [[1.0, 2.0, 3.0]], [[4.0, 0.0, 0.0]]])
    pasted = torch.tensor([[[True, True, False]], [[False, False, False]], [[True, False, False]]])
    eta = otsu_threshold(scores, pasted)
    assert eta.tolist() == [-float("inf")] * 3
    # all pasted scores equal → all anomaly; no pasted pixel → all normal; one pasted → anomaly
    assert refine_labels(scores, pasted).tolist() == [[[1, 1, 0]], [[0, 0, 0]], [[1, 0, 0]]]
    with pytest.raises(SleegError, match="n_candidates"):
        otsu_threshold(scores, pasted, n_candidates=0)
    with pytest.raises(SleegError, match="B×H×W"):
        otsu_threshold(scores, pasted[0])


@pytest.mark.parametrize("shape", [(1, 1, 1), (1, 4, 4), (3, 5, 13)])
def test_any_size(shape):
    scores = torch.randn(shape)
    pasted = torch.rand(shape) < 0.5
    labels = refine_labels(scores, pasted, n_candidates=3)
    assert labels.shape == shape
    assert set(labels.unique().tolist()) <= {0, 1, IGNORE_INDEX}


def test_threshold_ignores_gradients_and_keeps_dtype():
    scores = torch.randn(2, 4, 4, requires_grad=True)
    eta = otsu_threshold(scores, torch.ones(2, 4, 4, dtype=torch.bool))
    assert not eta.requires_grad and eta.dtype == torch.float32


def test_refinement_scores_warmup_and_modes():
    torch.manual_seed(4)
    logits = torch.randn(2, 5, 3, 4, requires_grad=True)
    h = torch.randn(2, 2, 3, 4, requires_grad=True)
    energy = jem(logits)
    warm = refinement_scores(h, logits, iteration=5999, warmup_iters=6000)
    after = refinement_scores(h, logits, iteration=6000, warmup_iters=6000, lam=0.3)
    torch.testing.assert_close(warm, energy)
    torch.testing.assert_close(after, sleeg_score(h, logits, lam=0.3))
    code = refinement_scores(h, logits, iteration=10**6, mode="energy")
    torch.testing.assert_close(code, energy)
    assert not (warm.requires_grad or after.requires_grad or code.requires_grad)
    with pytest.raises(SleegError, match="unknown refinement mode"):
        refinement_scores(h, logits, iteration=0, mode="jem")
