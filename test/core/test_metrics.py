"""Anomaly metrics: exact mode against sklearn, FPR95 rules, streaming mode against exact."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from sleeg_core.common.errors import SleegError
from sleeg_core.eval.bootstrap import ImageBootstrap, image_draws, interval
from sleeg_core.eval.metrics import (
    FPR95_RULES,
    AnomalyMetrics,
    StreamingMetrics,
    curves,
    exact_metrics,
)

sk = pytest.importorskip("sklearn.metrics", reason="scikit-learn is a test dependency")

TOL = 1e-6


def sklearn_metrics(scores: np.ndarray, labels: np.ndarray) -> dict[str, float]:
    """Reference: AP, AUROC and the FPR95 rules read off roc_curve(drop_intermediate=False)."""
    s = scores.astype(np.float64).ravel()
    y = labels.ravel()
    fpr, tpr, _ = sk.roc_curve(y, s, drop_intermediate=False)
    return {
        "ap": sk.average_precision_score(y, s),
        "auroc": sk.roc_auc_score(y, s),
        "first_ge": fpr[np.argmax(tpr >= 0.95)],
        "strict_gt": fpr[np.argmax(tpr > 0.95)],
    }


def assert_matches_sklearn(scores: np.ndarray, labels: np.ndarray) -> None:
    ref = sklearn_metrics(scores, labels)
    for rule in ("first_ge", "strict_gt"):
        m = exact_metrics(scores, labels, fpr95_rule=rule)
        assert m.ap == pytest.approx(ref["ap"], abs=TOL)
        assert m.auroc == pytest.approx(ref["auroc"], abs=TOL)
        assert m.fpr95 == pytest.approx(ref[rule], abs=TOL)
        assert m.n_pixels == labels.size
        assert m.n_anomaly == int(labels.sum())


def random_labels(rng: np.random.Generator, n: int, rate: float) -> np.ndarray:
    y = (rng.random(n) < rate).astype(np.uint8)
    y[:2] = (0, 1)  # both classes present
    return y


# ---------------------------------------------------------------- exact vs sklearn


@pytest.mark.parametrize("seed", range(8))
@pytest.mark.parametrize("dtype", [np.float64, np.float32, np.float16])
def test_exact_matches_sklearn_random(seed: int, dtype: type) -> None:
    rng = np.random.default_rng(seed)
    n = int(rng.integers(10, 20000))
    labels = random_labels(rng, n, rng.uniform(0.01, 0.6))
    scores = (rng.standard_normal(n) + 1.5 * labels).astype(dtype)  # float16: many ties
    assert_matches_sklearn(scores, labels)


@pytest.mark.parametrize("n_values", [1, 2, 3, 7, 50])
def test_exact_matches_sklearn_heavy_ties(n_values: int) -> None:
    rng = np.random.default_rng(n_values)
    labels = random_labels(rng, 5000, 0.1)
    scores = rng.integers(0, n_values, 5000) + (labels * rng.integers(0, 2, 5000))
    assert_matches_sklearn(scores.astype(np.float32), labels)


def test_all_equal_scores() -> None:
    labels = random_labels(np.random.default_rng(0), 1000, 0.3)
    m = exact_metrics(np.full(1000, 0.7), labels)
    assert m.ap == pytest.approx(labels.mean())
    assert m.auroc == 0.5
    assert m.fpr95 == 1.0
    assert_matches_sklearn(np.full(1000, 0.7), labels)


def test_single_anomaly_pixel() -> None:
    rng = np.random.default_rng(1)
    labels = np.zeros((50, 40), np.uint8)
    labels[10, 10] = 1
    scores = rng.random((50, 40)).astype(np.float32)
    assert_matches_sklearn(scores, labels)
    scores[10, 10] = 2.0  # ranked first: perfect
    m = exact_metrics(scores, labels)
    assert (m.ap, m.auroc, m.fpr95) == (1.0, 1.0, 0.0)


def test_negative_zero_ties_with_zero() -> None:
    scores = np.array([-0.0, 0.0, 0.0, -0.0, 1.0, -1.0])
    labels = np.array([1, 0, 1, 0, 1, 0])
    assert_matches_sklearn(scores, labels)


def test_void_mask_lists_and_torch_are_equivalent() -> None:
    rng = np.random.default_rng(2)
    scores = rng.standard_normal((2, 30, 40)).astype(np.float32)
    labels = random_labels(rng, scores.size, 0.2).reshape(scores.shape)
    void = rng.random(scores.shape) < 0.3
    mask = rng.random(scores.shape) < 0.8
    keep = ~void & mask
    expected = exact_metrics(scores[keep], labels[keep])
    labels_void = np.where(void, 255, labels).astype(np.uint8)
    assert exact_metrics(scores, labels_void, mask) == expected
    assert exact_metrics(list(scores), list(labels_void), list(mask)) == expected
    assert exact_metrics(torch.from_numpy(scores), torch.from_numpy(labels_void), mask) == expected


def test_exact_clear_errors() -> None:
    scores = np.array([0.1, 0.2, 0.3])
    with pytest.raises(SleegError, match="NaN"):
        exact_metrics(np.array([0.1, np.nan, 0.3]), np.array([0, 1, 0]))
    with pytest.raises(SleegError, match="no anomaly pixels"):
        exact_metrics(scores, np.array([0, 0, 255]))
    with pytest.raises(SleegError, match="no normal pixels"):
        exact_metrics(scores, np.array([1, 1, 255]))
    with pytest.raises(SleegError, match="no valid pixels"):
        exact_metrics(scores, np.array([255, 255, 255]))
    with pytest.raises(SleegError, match=r"found \[2\]"):
        exact_metrics(scores, np.array([0, 1, 2]))
    with pytest.raises(SleegError, match="shape"):
        exact_metrics(scores, np.array([0, 1]))
    with pytest.raises(SleegError, match="fpr95_rule"):
        exact_metrics(scores, np.array([0, 1, 0]), fpr95_rule="closest")


# ---------------------------------------------------------------- FPR95 rules


def test_fpr95_rules_when_tpr_hits_095_exactly() -> None:
    # 20 anomalies, 10 normals; at the top threshold TPR = 19/20 = 0.95 exactly with FPR 0
    scores = np.array([1.0] * 19 + [0.9, 0.8, 0.7] + [0.1] * 8)
    labels = np.array([1] * 19 + [0, 1, 0] + [0] * 8)
    fpr95 = {rule: exact_metrics(scores, labels, fpr95_rule=rule).fpr95 for rule in FPR95_RULES}
    assert fpr95 == {"first_ge": 0.0, "strict_gt": 0.1, "interp": 0.0}


def test_fpr95_rules_when_tpr_jumps_over_095() -> None:
    # 10 anomalies, 5 normals: ROC points (0.2, 0.9) at score 0.8, then (0.6, 1.0) at 0.5 (a tie)
    scores = np.array([0.9] * 9 + [0.8] + [0.5] * 3 + [0.1] * 2)
    labels = np.array([1] * 9 + [0] + [1, 0, 0] + [0] * 2)
    fpr95 = {rule: exact_metrics(scores, labels, fpr95_rule=rule).fpr95 for rule in FPR95_RULES}
    assert fpr95["first_ge"] == pytest.approx(0.6)
    assert fpr95["strict_gt"] == pytest.approx(0.6)
    assert fpr95["interp"] == pytest.approx(0.2 + (0.95 - 0.9) / (1.0 - 0.9) * 0.4)


@pytest.mark.parametrize("seed", range(5))
def test_fpr95_interp_lies_between_its_roc_points(seed: int) -> None:
    rng = np.random.default_rng(seed)
    labels = random_labels(rng, 3000, 0.1)
    scores = (rng.standard_normal(3000) + labels).astype(np.float16)
    fpr, tpr, _ = sk.roc_curve(labels, scores.astype(np.float64), drop_intermediate=False)
    k = int(np.argmax(tpr >= 0.95))
    interp = exact_metrics(scores, labels, fpr95_rule="interp").fpr95
    assert fpr[k - 1] - TOL <= interp <= fpr[k] + TOL


# ---------------------------------------------------------------- curves


def test_exact_curves_match_sklearn() -> None:
    rng = np.random.default_rng(3)
    labels = random_labels(rng, 4000, 0.2)
    scores = (rng.standard_normal(4000) + labels).astype(np.float16).astype(np.float32)
    c = curves(scores, labels, max_points=None)
    fpr, tpr, thr = sk.roc_curve(labels, scores, drop_intermediate=False)
    np.testing.assert_allclose(c.fpr, fpr[1:], atol=TOL)
    np.testing.assert_allclose(c.tpr, tpr[1:], atol=TOL)
    np.testing.assert_array_equal(c.thresholds, thr[1:])
    precision, recall, _ = sk.precision_recall_curve(labels, scores)
    n = precision.size - 1  # sklearn stops at full recall and appends (recall 0, precision 1)
    np.testing.assert_allclose(c.precision[:n], precision[:-1][::-1], atol=TOL)
    np.testing.assert_allclose(c.recall[:n], recall[:-1][::-1], atol=TOL)


def test_curves_are_subsampled_monotone_and_keep_the_ends() -> None:
    rng = np.random.default_rng(4)
    labels = random_labels(rng, 200_000, 0.05)
    scores = rng.standard_normal(200_000) + 2 * labels
    full = curves(scores, labels, max_points=None)
    small = curves(scores, labels, max_points=500)
    assert small.fpr.size <= 502
    assert np.all(np.diff(small.fpr) >= 0) and np.all(np.diff(small.tpr) >= 0)
    assert np.all(np.diff(small.thresholds) < 0)
    assert small.fpr[-1] == small.tpr[-1] == 1.0
    assert small.thresholds[0] == full.thresholds[0]
    acc = StreamingMetrics()
    acc.update(scores, labels)
    streamed = acc.curves(max_points=500)
    assert streamed.fpr.size <= 502
    assert np.trapezoid(streamed.tpr, streamed.fpr) == pytest.approx(
        np.trapezoid(full.tpr, full.fpr), abs=1e-3
    )


# ---------------------------------------------------------------- streaming mode


def assert_same_metrics(a: AnomalyMetrics, b: AnomalyMetrics, tol: float = TOL) -> None:
    assert a.ap == pytest.approx(b.ap, abs=tol)
    assert a.auroc == pytest.approx(b.auroc, abs=tol)
    assert a.fpr95 == pytest.approx(b.fpr95, abs=tol)
    assert (a.n_pixels, a.n_anomaly, a.fpr95_rule) == (b.n_pixels, b.n_anomaly, b.fpr95_rule)


@pytest.mark.parametrize("mantissa_bits", [10, 12])
@pytest.mark.parametrize("seed", range(4))
def test_streaming_is_exact_for_float16_scores(mantissa_bits: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    acc = StreamingMetrics(mantissa_bits)
    all_scores, all_labels = [], []
    for _ in range(5):  # several images, both signs, heavy ties, void pixels
        labels = random_labels(rng, 5000, 0.1)
        labels[rng.random(5000) < 0.1] = 255
        scores = (rng.standard_normal(5000) * 3 + labels % 2).astype(np.float16)
        acc.update(torch.from_numpy(scores), torch.from_numpy(labels))
        all_scores.append(scores)
        all_labels.append(labels)
    for rule in FPR95_RULES:
        assert_same_metrics(acc.compute(rule), exact_metrics(all_scores, all_labels, None, rule))


def test_streaming_handles_extremes_exactly() -> None:
    scores = np.array([-np.inf, -65504, -1e-7, -0.0, 0.0, 6e-8, 1.0, 65504, np.inf], np.float32)
    labels = np.array([0, 1, 0, 1, 0, 0, 1, 0, 1], np.uint8)
    acc = StreamingMetrics()
    acc.update(scores, labels)
    expected = exact_metrics(scores, labels)
    assert_same_metrics(acc.compute(), expected)
    finite = np.clip(scores, -1e30, 1e30)  # same order; sklearn rejects infinities
    assert expected.auroc == pytest.approx(sklearn_metrics(finite, labels)["auroc"], abs=TOL)
    assert expected.ap == pytest.approx(sklearn_metrics(finite, labels)["ap"], abs=TOL)
    assert acc.curves().thresholds[0] == np.inf


def test_streaming_valid_mask_and_device() -> None:
    rng = np.random.default_rng(5)
    scores = rng.standard_normal((20, 30)).astype(np.float16)
    labels = random_labels(rng, 600, 0.2).reshape(20, 30)
    mask = rng.random((20, 30)) < 0.7
    acc = StreamingMetrics()
    acc.update(scores, labels, valid_mask=mask)
    assert acc.n_pixels == int(mask.sum())
    assert_same_metrics(acc.compute(), exact_metrics(scores[mask], labels[mask]))
    if torch.cuda.is_available():
        gpu = StreamingMetrics()
        gpu.update(torch.from_numpy(scores).cuda(), torch.from_numpy(labels).cuda(), mask)
        assert_same_metrics(gpu.compute(), acc.compute())


def test_streaming_failed_update_leaves_state_unchanged() -> None:
    acc = StreamingMetrics()
    acc.update(np.array([0.1, 0.9]), np.array([0, 1]))
    before = acc.compute()
    acc.CHUNK = 2  # the bad value is in the last chunk
    with pytest.raises(SleegError, match="NaN"):
        acc.update(np.array([0.5, 0.4, 0.3, np.nan]), np.array([0, 1, 0, 0]))
    with pytest.raises(SleegError, match=r"found \[7\]"):
        acc.update(np.array([0.5, 0.4, 0.3, 0.2]), np.array([0, 1, 0, 7]))
    assert acc.compute() == before


def test_streaming_clear_errors() -> None:
    with pytest.raises(SleegError, match="update"):
        StreamingMetrics().compute()
    with pytest.raises(SleegError, match="mantissa_bits"):
        StreamingMetrics(20)
    acc = StreamingMetrics()
    acc.update(np.array([0.1, 0.2]), np.array([0, 255]))
    with pytest.raises(SleegError, match="no anomaly pixels"):
        acc.compute()
    with pytest.raises(SleegError, match="curves need both"):
        acc.curves()
    with pytest.raises(SleegError, match="shape"):
        acc.update(np.zeros((2, 3)), np.zeros((3, 2), np.uint8))


def test_streaming_state_size_is_constant() -> None:
    rng = np.random.default_rng(6)
    acc = StreamingMetrics()
    acc.update(rng.standard_normal(1000), random_labels(rng, 1000, 0.1))
    size, state = acc.state_nbytes, acc._hist
    assert size == (2 * acc.n_bins + 1) * 8 < 40 * 2**20  # 32 MiB + one dump bin
    for _ in range(30):
        acc.update(rng.standard_normal(100_000) * 100, random_labels(rng, 100_000, 0.1))
    assert acc.state_nbytes == size and acc._hist is state  # updated in place, never grown
    assert acc.n_pixels == 3_001_000


def realistic_scores(seed: int, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Float32 score maps shaped like real ones: energy-like, sigmoid probabilities, entropy."""
    rng = np.random.default_rng(seed)
    labels = (rng.random(n) < (0.02, 0.1)[seed % 2]).astype(np.uint8)
    anomaly = labels == 1
    family = seed % 3
    if family == 0:  # energy / negative max-logit: far from 0 relative to its spread
        scores = np.where(anomaly, rng.normal(-6, 2, n), rng.normal(-9, 1.5, n))
    elif family == 1:  # sigmoid of a head: piled up near 0 (normal) and 1 (anomaly)
        scores = 1 / (1 + np.exp(-np.where(anomaly, rng.normal(1, 2.5, n), rng.normal(-5, 2, n))))
    else:  # softmax entropy: most normals near 0
        scores = np.where(
            anomaly, np.minimum(rng.gamma(2, 0.6, n), np.log(19)), rng.exponential(0.1, n)
        )
    return scores.astype(np.float32), labels


def test_streaming_error_on_realistic_scores() -> None:
    """The measurement behind the error bound in the metrics docstring (there: 24 × 2M pixels,
    max |ΔAP| 7.7e-5, |ΔAUROC| 3.5e-7, |ΔFPR95| 4.7e-4); tolerances are about 4× that."""
    worst = {"ap": 0.0, "auroc": 0.0, "fpr95": 0.0}
    for seed in range(6):
        scores, labels = realistic_scores(seed, 1_000_000)
        acc = StreamingMetrics()
        for part in np.array_split(np.arange(scores.size), 4):  # four "images"
            acc.update(scores[part], labels[part])
        streamed, exact = acc.compute(), exact_metrics(scores, labels)
        for key in worst:
            worst[key] = max(worst[key], abs(getattr(streamed, key) - getattr(exact, key)))
    assert worst["ap"] < 3e-4, worst
    assert worst["auroc"] < 1.5e-6, worst
    assert worst["fpr95"] < 2e-3, worst


# ---------------------------------------------------------------- bootstrap over images


def bootstrap_images(seed: int, n: int = 12, shift: float = 2.0):
    """n images of 40×60 pixels, 10 % anomalous, anomalies `shift` higher in 2 of 3 images."""
    rng = np.random.default_rng(seed)
    for i in range(n):
        y = (rng.random((40, 60)) < 0.1).astype(np.uint8)
        y[0, :5] = 255  # void
        yield (rng.normal(0, 1, y.shape) + shift * (y == 1) * (i % 3 > 0)).astype(np.float32), y


def test_bootstrap_of_the_images_drawn_once_each_is_the_pooled_metric() -> None:
    boot, acc = ImageBootstrap(), StreamingMetrics(mantissa_bits=8)
    for scores, labels in bootstrap_images(0):
        boot.update(scores, labels)
        acc.update(scores, labels)
    full = acc.compute()
    for draw in (np.arange(12), np.random.default_rng(1).permutation(12)):
        ap, fpr95 = boot.resampled(draw[None])
        assert ap[0] == pytest.approx(full.ap, abs=1e-12)
        assert fpr95[0] == pytest.approx(full.fpr95, abs=1e-12)
    twice = np.concatenate([np.arange(12), np.arange(12)])  # every image twice: same metrics
    assert boot.resampled(twice[None])[0][0] == pytest.approx(full.ap, abs=1e-12)
    one = np.full((1, 12), 4)  # image 4 twelve times = image 4 alone
    single = StreamingMetrics(mantissa_bits=8)
    single.update(*list(bootstrap_images(0))[4])
    assert boot.resampled(one)[0][0] == pytest.approx(single.compute().ap, abs=1e-12)


def test_bootstrap_intervals_cover_the_pooled_value_and_separate_a_better_score() -> None:
    good, bad = ImageBootstrap(), ImageBootstrap()
    for (s1, y), (s2, _) in zip(bootstrap_images(0), bootstrap_images(0, shift=0.5), strict=True):
        good.update(s1, y)
        bad.update(s2, y)
    draws = image_draws(12, 300, seed=0)
    assert np.array_equal(draws, image_draws(12, 300, seed=0))  # seeded: the same draws again
    (ap_g, fpr_g), (ap_b, fpr_b) = good.resampled(draws), bad.resampled(draws)
    low, high = interval(ap_g)
    full = good.resampled(np.arange(12)[None])[0][0]
    assert low < full < high and high - low > 0.01  # the images differ, so the AP spreads
    assert np.mean(ap_g > ap_b) == 1.0 and np.mean(fpr_g < fpr_b) > 0.95


def test_bootstrap_draws_without_one_class_are_nan_and_bad_input_is_refused() -> None:
    boot = ImageBootstrap()
    boot.update(np.zeros((4, 4), np.float32), np.zeros((4, 4), np.uint8))  # no anomaly
    boot.update(np.arange(16, dtype=np.float32).reshape(4, 4), np.eye(4, dtype=np.uint8))
    ap, fpr95 = boot.resampled(np.array([[0, 0], [0, 1]]))
    assert np.isnan(ap[0]) and np.isnan(fpr95[0]) and not np.isnan(ap[1])
    assert interval(np.array([np.nan, 0.2, 0.4]), level=1.0) == (0.2, 0.4)
    for draws in (np.array([[0, 2]]), np.array([0, 1]), np.zeros((1, 0), int)):
        with pytest.raises(SleegError, match="draws"):
            boot.resampled(draws)
    with pytest.raises(SleegError, match="no images"):
        ImageBootstrap().resampled(np.zeros((1, 1), int))
    with pytest.raises(SleegError, match="labels must be"):
        boot.update(np.zeros(3), np.array([0, 1, 7]))
    assert len(boot) == 2  # the refused image was not kept
