"""Test-time averaging of AnomalySegmenter's scores (horizontal flip, input scales), and
`sleeg eval --tta`."""

import json

import pytest
import torch
from helpers.datasets import make_dataset

from sleeg_core.cli import main
from sleeg_core.common.errors import SleegError
from sleeg_core.data.geometry import fit_frame, to_frame, to_input
from sleeg_core.model.estimators import sml_statistics
from sleeg_core.model.head import OoDHead
from sleeg_core.model.inference import PAD_RGB, AnomalySegmenter, Prediction
from sleeg_core.model.tta import TTA_SCALES
from sleeg_core.segmentors.enet import ENetSegmentor

SCORES = ("sleeg", "tae", "tore", "msp", "maxlogit", "entropy", "energy", "sml")
TOL = {"rtol": 1e-4, "atol": 1e-4}  # a batch of 2B vs B rounds differently


@pytest.fixture(scope="module")
def model() -> AnomalySegmenter:
    torch.manual_seed(0)
    segmentor = ENetSegmentor(weights=None, feature_layer="bottleneck4")
    stats = sml_statistics([torch.randn(2, 19, 8, 8)])
    return AnomalySegmenter(segmentor, OoDHead(64, width=8), lam=0.5, sml_stats=stats).eval()


def images(b: int = 2, h: int = 45, w: int = 70) -> torch.Tensor:
    return torch.randint(0, 256, (b, 3, h, w), dtype=torch.uint8, generator=torch.Generator())


def run(model: AnomalySegmenter, tta: str, x: torch.Tensor, **kwargs: object) -> Prediction:
    model.tta = tta
    try:
        return model(x, scores=SCORES, **kwargs)
    finally:
        model.tta = "none"


def test_symmetric_image_scores_like_the_plain_run(model):
    half = images(1, 48, 32)
    x = torch.cat([half, half.flip(-1)], dim=-1)
    plain, flip = run(model, "none", x), run(model, "flip", x)
    for name in SCORES:
        # The image is its own mirror, so flip TTA is the plain score symmetrised: equal to it up
        # to how far the plain score is from symmetric (ENet's stride-2 sampling grid is not
        # mirror-equivariant), which is small except for sml (its per-class standardisation
        # jumps where the predicted class does, and a random ENet's classes are near ties).
        score = plain.scores[name]
        torch.testing.assert_close(flip.scores[name], (score + score.flip(-1)) / 2)
        torch.testing.assert_close(flip.scores[name], flip.scores[name].flip(-1))
        if name != "sml":
            torch.testing.assert_close(flip.scores[name], score, rtol=0, atol=1e-2)
    assert torch.equal(flip.train_ids, plain.train_ids)


@pytest.mark.parametrize("size", [None, (32, 48)])
def test_flip_is_the_mean_of_the_image_and_its_mirror_flipped_back(model, size):
    x = images()
    flip = run(model, "flip", x, size=size, keep_logits=True)
    plain = run(model, "none", x, size=size, keep_logits=True)
    mirror = run(model, "none", x.flip(-1), size=size)
    for name in SCORES:
        expect = (plain.scores[name] + mirror.scores[name].flip(-1)) / 2
        torch.testing.assert_close(flip.scores[name], expect, **TOL)
    assert torch.equal(flip.train_ids, plain.train_ids)
    torch.testing.assert_close(flip.logits, plain.logits)


def test_flip_tta_of_the_mirror_is_the_mirrored_flip_tta(model):
    x = images()
    flip, mirrored = run(model, "flip", x), run(model, "flip", x.flip(-1))
    for name in SCORES:
        torch.testing.assert_close(mirrored.scores[name].flip(-1), flip.scores[name], **TOL)


def scaled_mean(model: AnomalySegmenter, x: torch.Tensor) -> dict[str, torch.Tensor]:
    """Each score averaged over plain runs of `x` stretched to each of TTA_SCALES, mapped back."""
    h, w = x.shape[-2:]
    runs = [run(model, "none", x, size=(round(h * f), round(w * f))) for f in TTA_SCALES]
    return {n: sum(r.scores[n] for r in runs) / len(runs) for n in SCORES}


def test_scales_is_the_mean_over_the_input_scaled_by_each_factor(model):
    x = images(2, 48, 64)
    scales, plain = (
        run(model, "scales", x, keep_logits=True),
        run(model, "none", x, keep_logits=True),
    )
    want = scaled_mean(model, x)
    for name in SCORES:
        torch.testing.assert_close(scales.scores[name], want[name], **TOL)
    assert not torch.allclose(scales.scores["sleeg"], plain.scores["sleeg"], **TOL)
    assert torch.equal(scales.train_ids, plain.train_ids)  # ids and logits: the set size's
    torch.testing.assert_close(scales.logits, plain.logits)


def test_scales_with_a_network_size_scales_the_network_input(model):
    x, size = images(1, 45, 70), (32, 48)
    fit = fit_frame((45, 70), size, "pad")
    want = scaled_mean(model, to_input(x, fit, PAD_RGB))
    got = run(model, "scales", x, size=size, resize_mode="pad")
    for name in SCORES:
        torch.testing.assert_close(
            got.scores[name], to_frame(want[name][:, None], fit)[:, 0], **TOL
        )


def test_bad_tta_value_is_a_clear_error(model):
    with pytest.raises(SleegError, match="unknown tta 'mirror'; choose one of: none, flip, scales"):
        AnomalySegmenter(model.segmentor, tta="mirror")
    with pytest.raises(SleegError, match="unknown tta 'vflip'"):
        model.tta = "vflip"
    assert model.tta == "none"


def test_eval_command_records_the_tta(tmp_path, tmp_model_args):
    data = make_dataset(tmp_path / "data")
    out = {}
    for tta in ("none", "flip", "scales"):
        argv = ["eval", *tmp_model_args, "--dataset", f"t={data}", "--examples", "0"]
        argv += ["--scores", "entropy,sleeg", "--out", str(tmp_path / tta), "--tta", tta]
        assert main(argv) == 0
        out[tta] = json.loads((tmp_path / tta / "results.json").read_text())
    assert [out[t]["tta"] for t in out] == ["none", "flip", "scales"]
    for tta in ("flip", "scales"):
        scores = out[tta]["datasets"]["t"]["scores"]
        assert set(scores) == {"entropy", "sleeg"}
        assert scores["sleeg"] != out["none"]["datasets"]["t"]["scores"]["sleeg"]
    with pytest.raises(SystemExit):
        main(["eval", *tmp_model_args, "--dataset", f"t={data}", "--out", "x", "--tta", "up"])
