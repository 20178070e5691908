"""AnomalySegmenter: the one inference path (scores, train ids, resizing, what is computed)."""

import pytest
import torch

from sleeg_core.errors import SleegError
from sleeg_core.head import OoDHead
from sleeg_core.inference import AnomalySegmenter
from sleeg_core.segmentors.enet import ENetSegmentor


@pytest.fixture(scope="module")
def model() -> AnomalySegmenter:
    torch.manual_seed(0)
    segmentor = ENetSegmentor(weights=None, feature_layer="bottleneck4")
    return AnomalySegmenter(segmentor, OoDHead(64, width=8), lam=0.0).eval()


def images(b: int = 2, h: int = 45, w: int = 70) -> torch.Tensor:
    return torch.randint(0, 256, (b, 3, h, w), dtype=torch.uint8, generator=torch.Generator())


def test_outputs_at_input_size_with_and_without_resizing(model):
    x = images()
    for size in (None, (32, 48)):
        pred = model(x, scores=("sleeg", "entropy"), size=size, keep_logits=True)
        assert pred.train_ids.shape == (2, 45, 70) and pred.train_ids.dtype == torch.uint8
        assert pred.logits.shape == (2, 19, 45, 70)
        assert all(m.shape == (2, 45, 70) and torch.isfinite(m).all() for m in pred.scores.values())
    pred = model(x, keep_logits=True)
    assert torch.equal(pred.train_ids, pred.logits.argmax(1).to(torch.uint8))


def test_only_what_is_asked_for(model):
    x = images()
    full = model(x, scores=("sleeg",))
    lean = model(x, scores=("sleeg",), train_ids=False)
    assert lean.train_ids is None and lean.logits is None and full.logits is None
    assert torch.equal(lean.scores["sleeg"], full.scores["sleeg"])
    ids_only = model(x, scores=())
    assert ids_only.scores == {} and torch.equal(ids_only.train_ids, full.train_ids)


def test_lambda_zero_sleeg_is_tae_and_lambda_half_adds_tore(model):
    x = images(1)
    pred = model(x, scores=("sleeg", "tae", "tore"))
    assert torch.equal(pred.scores["sleeg"], pred.scores["tae"])
    half = AnomalySegmenter(model.segmentor, model.head, lam=0.5)(x, scores=("sleeg",))
    expect = pred.scores["tae"] + 0.5 * pred.scores["tore"]
    torch.testing.assert_close(half.scores["sleeg"], expect)


def test_available_scores_and_bad_compile_mode(model):
    assert "sleeg" in model.available_scores()
    assert "sleeg" not in AnomalySegmenter(model.segmentor).available_scores()
    with pytest.raises(SleegError, match="unknown compile mode 'fast'"):
        model.compile_networks("fast")
