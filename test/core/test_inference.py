"""AnomalySegmenter: the one inference path (scores, train ids, resizing, what is computed)."""

import copy

import pytest
import torch

from sleeg_core.common.errors import SleegError
from sleeg_core.model.head import OoDHead
from sleeg_core.model.inference import AnomalySegmenter
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


def test_networks_converted_to_a_lower_precision_still_give_float32_scores(model):
    """`convert_networks` as half precision runs on CUDA, here in bfloat16 on the CPU: weights
    converted, scores and logits computed in float32 and close to the float32 model's."""
    low = copy.deepcopy(model).convert_networks(torch.bfloat16)
    assert {p.dtype for p in low.parameters()} == {torch.bfloat16}
    assert {p.dtype for p in model.parameters()} == {torch.float32}  # a copy was converted
    x, scores = images(), ("sleeg", "entropy", "energy")
    got = low(x, scores=scores, size=(32, 48), keep_logits=True)
    want = model(x, scores=scores, size=(32, 48), keep_logits=True)
    for name in scores:
        assert got.scores[name].dtype == torch.float32 and torch.isfinite(got.scores[name]).all()
        # bfloat16 keeps 8 significant bits; float16 (CUDA) 11
        torch.testing.assert_close(got.scores[name], want.scores[name], rtol=1e-2, atol=1e-2)
    assert got.logits.dtype == torch.float32
    torch.testing.assert_close(got.logits, want.logits, rtol=0, atol=1e-2)
    assert got.train_ids.dtype == torch.uint8 and got.train_ids.shape == want.train_ids.shape
