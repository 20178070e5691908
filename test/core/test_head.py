"""OoD head: shapes, architecture from the config, config round trip and validation."""

import json

import pytest
import torch
from torch import nn

from sleeg_core.common.errors import SleegError
from sleeg_core.model.head import DEFAULT_WIDTH, HeadConfig, OoDHead


@pytest.mark.parametrize(("batch", "height", "width"), [(1, 1, 1), (3, 5, 7), (2, 8, 16)])
def test_output_shape(batch, height, width):
    head = OoDHead(in_channels=6, width=4).eval()
    out = head(torch.randn(batch, 6, height, width))
    assert out.shape == (batch, 2, height, width)
    assert head(torch.randn(batch, 6, height, width), size=(17, 9)).shape == (batch, 2, 17, 9)


def test_upsampling_is_bilinear_of_the_feature_resolution_output():
    head = OoDHead(in_channels=3, width=4).eval()
    features = torch.randn(2, 3, 4, 5)
    expected = nn.functional.interpolate(
        head(features), size=(32, 40), mode="bilinear", align_corners=False
    )
    torch.testing.assert_close(head(features, size=(32, 40)), expected)


def test_architecture_follows_the_config():
    head = OoDHead(in_channels=5, width=7, depth=3, dropout=0.1)
    convs = [m for m in head.modules() if isinstance(m, nn.Conv2d)]
    assert [(c.in_channels, c.out_channels, c.kernel_size) for c in convs] == [
        (5, 7, (3, 3)),
        (7, 7, (3, 3)),
        (7, 7, (3, 3)),
        (7, 2, (1, 1)),
    ]
    assert sum(isinstance(m, nn.BatchNorm2d) for m in head.modules()) == 3
    assert sum(isinstance(m, nn.ReLU) for m in head.modules()) == 3
    assert isinstance(head.dropout, nn.Dropout2d) and head.dropout.p == 0.1
    assert not any(isinstance(m, nn.Dropout2d) for m in OoDHead(5, dropout=0).modules())
    linear = OoDHead(5, depth=0)
    assert [type(m) for m in linear.modules() if not isinstance(m, nn.Sequential)] == [
        OoDHead,
        nn.Dropout2d,
        nn.Conv2d,
    ]
    assert linear.classifier.in_channels == 5


def test_defaults():
    head = OoDHead(in_channels=8)
    assert head.config == HeadConfig(in_channels=8, width=DEFAULT_WIDTH, depth=3, dropout=0.1)
    convs = [p for p in head.parameters() if p.ndim == 4]  # NHWC, like the segmentors' features
    assert convs and all(p.is_contiguous(memory_format=torch.channels_last) for p in convs)


def test_eval_is_deterministic_and_train_gets_gradients():
    torch.manual_seed(0)
    head = OoDHead(in_channels=3, width=4)
    features = torch.randn(2, 3, 5, 5)
    head.eval()
    assert torch.equal(head(features), head(features))
    head.train()
    head(features).sum().backward()
    assert all(p.grad is not None for p in head.parameters())


def test_config_round_trip_and_rebuild():
    config = HeadConfig(in_channels=16, width=32, depth=2, dropout=0.0)
    data = json.loads(json.dumps(config.to_dict()))
    assert data == {
        "in_channels": 16,
        "width": 32,
        "depth": 2,
        "dropout": 0.0,
        "branches": [],
    }
    assert HeadConfig.from_dict(data) == config
    head = OoDHead.from_config(config)
    assert head.config == config
    rebuilt = OoDHead.from_config(HeadConfig.from_dict(data))
    rebuilt.load_state_dict(head.state_dict())
    features = torch.randn(1, 16, 3, 3)
    assert torch.equal(head.eval()(features), rebuilt.eval()(features))
    assert HeadConfig.from_dict({"in_channels": 4}) == HeadConfig(4)  # head files before branches


def test_dilated_blocks_keep_the_shape_and_widen_the_receptive_field():
    dilated = OoDHead(in_channels=2, width=4, depth=3, branches=((1, 2, 4),)).eval()
    convs = [m for m in dilated.blocks if isinstance(m, nn.Conv2d)]
    assert [(c.dilation, c.padding) for c in convs] == [((d, d), (d, d)) for d in (1, 2, 4)]
    assert dilated(torch.randn(1, 2, 5, 6)).shape == (1, 2, 5, 6)

    def reach(head: OoDHead) -> int:
        """How many cells right of the centre an input impulse moves the output."""
        features = torch.ones(1, 2, 1, 41, requires_grad=True)  # positive weights: ReLUs open
        head(features)[0, 1, 0, 20].backward()
        return int(features.grad[0, :, 0].abs().sum(0).nonzero().max()) - 20

    with torch.no_grad():
        for m in dilated.modules():
            if isinstance(m, nn.Conv2d):
                m.weight.fill_(0.1)
    plain = OoDHead(in_channels=2, width=4, depth=3).eval()
    plain.load_state_dict(dilated.state_dict())  # same weights: dilation is not a parameter
    assert (reach(plain), reach(dilated)) == (3, 7)
    config = HeadConfig(in_channels=2, width=4, branches=((1, 2, 4),))
    assert HeadConfig.from_dict(json.loads(json.dumps(config.to_dict()))) == config
    assert OoDHead.from_config(config).config.branch_dilations() == ((1, 2, 4),)
    assert HeadConfig(2).branch_dilations() == ((1, 1, 1),)


def test_branches_are_single_heads_whose_outputs_are_averaged():
    torch.manual_seed(0)
    plain, wide = OoDHead(3, width=4).eval(), OoDHead(3, width=4, branches=((1, 2, 4),)).eval()
    both = OoDHead(3, width=4, branches=((1, 1, 1), (1, 2, 4))).eval()
    assert [b.config.branches for b in both.branches] == [((1, 1, 1),), ((1, 2, 4),)]
    both.branches[0].load_state_dict(plain.state_dict())  # two trained heads → one file
    both.branches[1].load_state_dict(wide.state_dict())
    features = torch.randn(2, 3, 6, 7)
    stacked = both(features, size=(12, 14), per_branch=True)
    assert stacked.shape == (2, 2, 2, 12, 14)
    torch.testing.assert_close(stacked[0], plain(features, size=(12, 14)))
    torch.testing.assert_close(stacked[1], wide(features, size=(12, 14)))
    torch.testing.assert_close(both(features), (plain(features) + wide(features)) / 2)
    assert plain(features, per_branch=True).shape == (1, 2, 2, 6, 7)
    config = HeadConfig.from_dict(json.loads(json.dumps(both.config.to_dict())))
    rebuilt = OoDHead.from_config(config).eval()
    rebuilt.load_state_dict(both.state_dict())
    assert torch.equal(rebuilt(features), both(features))


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"in_channels": 4, "colour": 1}, r"unknown config key 'head\.colour'"),
        ({"width": 4}, "config 'head' lacks 'in_channels'"),
        ({"in_channels": 0}, "in_channels ≥ 1"),
        ({"in_channels": 4, "width": 0}, "width ≥ 1"),
        ({"in_channels": 4, "depth": -1}, "depth ≥ 0"),
        ({"in_channels": 4, "width": 2.5}, "'head.width' must be int"),
        ({"in_channels": True}, "'head.in_channels' must be int"),
        ({"in_channels": 4, "dropout": 1.0}, r"dropout must be in \[0, 1\)"),
        ({"in_channels": 4, "dropout": "0.1"}, "'head.dropout' must be float"),
        ({"in_channels": 4, "branches": [[1, 2]]}, r"list 3 dilations ≥ 1 \(one per block\)"),
        ({"in_channels": 4, "branches": [[1, 1, 1], [1, 0, 2]]}, r"got \[1, 0, 2\]"),
        ({"in_channels": 4, "branches": [2]}, "'head.branches' must be a list"),
    ],
)
def test_config_errors(data, message):
    with pytest.raises(SleegError, match=message):
        HeadConfig.from_dict(data)


def test_wrong_feature_channels_is_a_clear_error():
    with pytest.raises(SleegError, match=r"B×4×h×w features, got shape \(1, 3, 2, 2\)"):
        OoDHead(in_channels=4)(torch.zeros(1, 3, 2, 2))
