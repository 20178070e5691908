"""`AnomalySegmenter.compile_networks`: segmentor + head + scores + train ids compiled as one
function compute what the eager model does, and the outputs of a call outlive later calls (with
CUDA graphs every replay writes into the same memory, so outputs must be copied out)."""

import copy
import math

import pytest
import torch
from torch import nn
from torch._dynamo.utils import counters

from sleeg_core.data.labels import CITYSCAPES_CLASSES
from sleeg_core.model.head import OoDHead
from sleeg_core.model.inference import AnomalySegmenter
from sleeg_core.segmentors.base import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    Segmentor,
    SegmentorInfo,
    SegmentorOutput,
    normalise,
    pad_to_multiple,
)
from sleeg_core.segmentors.enet import ENetSegmentor

NO_CUDA = pytest.mark.skipif(
    not torch.cuda.is_available(), reason="needs CUDA: CUDA graphs (reduce-overhead) are CUDA-only"
)
SCORES = ("sleeg", "entropy")
TOL = {
    torch.float32: {"rtol": 1e-4, "atol": 1e-4},
    # compiled vs eager fp16 networks: the same fp16 weights, different fp16 roundings
    torch.float16: {"rtol": 1e-2, "atol": 2e-2},
}
# share of equal train ids: a random ENet's classes are near ties, so roundings flip a few (the
# compiled argmax is over the full logits, the eager one `upsampled_argmax`); bfloat16 on the
# CPU, 3 bits coarser than float16, kept 97 %
IDS_EQUAL = {torch.float32: 0.99, torch.float16: 0.95}


def images(seed: int, device: str) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (1, 3, 45, 70), dtype=torch.uint8, generator=gen).to(device)


class TinySegmentor(Segmentor):
    """A segmentor of two convolutions, built as the real ones are: normalised, padded input, a
    BatchNorm, features at stride 4 and coarse logits that are upsampled (×4) and cropped."""

    STRIDE = 4

    def __init__(self) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Conv2d(3, 16, 3, stride=self.STRIDE, padding=1), nn.BatchNorm2d(16), nn.ReLU()
        )
        self.classifier = nn.Conv2d(16, len(CITYSCAPES_CLASSES), 1)
        self.info = SegmentorInfo("tiny", CITYSCAPES_CLASSES, 16, self.STRIDE, "net", "any size")
        self.freeze()

    def networks(self) -> list[nn.Module]:
        return [self.net, self.classifier]

    def _forward(self, images: torch.Tensor) -> SegmentorOutput:
        h, w = images.shape[-2:]
        x = pad_to_multiple(normalise(images, IMAGENET_MEAN, IMAGENET_STD), self.STRIDE)
        features = self.net(x)
        coarse = self.classifier(features)
        upsampled = (self.STRIDE * coarse.shape[-2], self.STRIDE * coarse.shape[-1])
        cells = (math.ceil(h / self.STRIDE), math.ceil(w / self.STRIDE))
        return SegmentorOutput(features[..., : cells[0], : cells[1]], coarse, (h, w), upsampled)


# On the CPU, inductor compiles the "scales" case (three network passes) with TinySegmentor:
# everything compile_networks puts around the networks (head, scores, train ids, averaging) goes
# through inductor's code generation in seconds, where ENet's three passes took about a minute.
# ENet itself is traced by TorchDynamo and AOTAutograd as one graph (fullgraph) in the "flip"
# case and run by the "aot_eager" backend; the node compiles ENet with inductor
# (test/ros/test_node_process.py), and the CUDA cases compile ENet on a GPU.
TRACED_ONLY = {"cpu-default-fp32": "aot_eager"}
TINY = {"cpu-default-fp32-scales"}


@pytest.mark.compile
@pytest.mark.parametrize(
    "device, mode, dtype, tta",
    [
        pytest.param("cpu", "default", torch.float32, "flip", id="cpu-default-fp32"),
        pytest.param("cpu", "default", torch.float32, "scales", id="cpu-default-fp32-scales"),
        pytest.param(
            "cuda", "reduce-overhead", torch.float32, "flip", marks=NO_CUDA, id="cuda-graphs-fp32"
        ),
        pytest.param(
            "cuda", "reduce-overhead", torch.float16, "flip", marks=NO_CUDA, id="cuda-graphs-fp16"
        ),
        pytest.param(
            "cuda",
            "reduce-overhead",
            torch.float16,
            "scales",
            marks=NO_CUDA,
            id="cuda-graphs-fp16-scales",
        ),
    ],
)
def test_compiled_model_matches_eager_and_keeps_each_calls_outputs(
    device, mode, dtype, tta, request, monkeypatch
):
    backend = TRACED_ONLY.get(request.node.callspec.id)
    if backend is not None:
        compile_fn, traced = torch.compile, []

        def traced_only(fn, *args, mode=None, **kwargs):
            traced.append(mode)
            return compile_fn(fn, *args, backend=backend, **kwargs)

        monkeypatch.setattr(torch, "compile", traced_only)
    torch.manual_seed(0)
    if request.node.callspec.id in TINY:
        segmentor = TinySegmentor()
    else:
        segmentor = ENetSegmentor(weights=None, feature_layer="bottleneck4")
    head = OoDHead(segmentor.info.feature_channels, width=8)
    eager = AnomalySegmenter(segmentor, head, lam=0.5, tta=tta)
    eager = eager.to(device).eval().convert_networks(dtype)
    compiled = copy.deepcopy(eager).compile_networks(mode)
    # resized to the network size (pad), a TTA, logits kept: every part of the graph
    kwargs = {"scores": SCORES, "size": (32, 48), "resize_mode": "pad", "keep_logits": True}
    frames = [images(seed, device) for seed in range(3)]
    # CUDA graphs: the 1st call warms up, the 2nd records, the 3rd replays over the 2nd's memory
    counters.clear()
    preds = [compiled(x, **kwargs) for x in frames]
    assert counters["inductor"]["cudagraph_skips"] == 0  # (a CPU tensor in the graph would skip)
    for x, got in zip(frames, preds, strict=True):  # each checked after every call has run
        want = eager(x, **kwargs)
        for name in SCORES:
            assert got.scores[name].dtype == torch.float32
            torch.testing.assert_close(got.scores[name], want.scores[name], **TOL[dtype])
        torch.testing.assert_close(got.logits, want.logits, **TOL[dtype])
        assert (got.train_ids == want.train_ids).float().mean() > IDS_EQUAL[dtype]
    if backend is not None:
        assert traced == [mode]  # compile_networks did compile, with the mode asked for
