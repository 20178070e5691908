"""The heads shipped in models/: each loads by name with its known weights, and on a real
labelled set it scores anomalies better than its segmentor's entropy (metrics: models/README.md)."""

import json
import math

import pytest
from helpers.paths import REPO, shared_path

from sleeg_core.cli import main as sleeg
from sleeg_core.common.config import load_config, to_dict
from sleeg_core.model.headfile import HeadFile
from sleeg_core.model.shipped_heads import resolve_head, shipped_heads
from sleeg_core.train.config import TrainConfig

# shipped head → (its known weights, segmentor)
SHIPPED = {
    "enet_cityscapes_sleeg": ("enet_cityscapes", "enet"),  # two branches
    "dabnet_cityscapes_sleeg": ("dabnet_cityscapes", "dabnet"),  # 150 steps
    "enet_cityscapes_sleeg_1view": ("enet_cityscapes", "enet"),
    "dabnet_cityscapes_sleeg_750steps": ("dabnet_cityscapes", "dabnet"),
}


@pytest.fixture(autouse=True)
def no_override(monkeypatch, tmp_path):
    monkeypatch.delenv("SLEEG_MODELS", raising=False)  # the checkout's models/ folder
    monkeypatch.setenv("SLEEG_CACHE", str(tmp_path / "cache"))


def test_every_expected_head_is_shipped_and_records_its_training():
    assert set(SHIPPED) <= set(shipped_heads())
    for name, (_, segmentor) in SHIPPED.items():
        head = HeadFile.load(resolve_head(name))
        assert head.segmentor == segmentor
        assert math.isfinite(head.threshold)  # calibrated
        assert head.train_config["data"]["sources"][0]["path"].endswith("cityscapes_train/images")
        assert resolve_head(name).stat().st_size < 1_000_000  # a small file


@pytest.mark.parametrize("segmentor", ["enet", "dabnet"])
def test_default_head_is_its_configs_run(segmentor):
    """models/<segmentor>_cityscapes_sleeg.pt was trained by config/train_<segmentor>_cpu.yaml:
    every recipe setting the head file records equals the config's (paths and run settings
    aside), so the config reproduces the shipped head."""
    config = to_dict(load_config(TrainConfig, REPO / "config" / f"train_{segmentor}_cpu.yaml"))
    recorded = HeadFile.load(resolve_head(f"{segmentor}_cityscapes_sleeg")).train_config
    for section in ("head", "patches", "loss", "optim", "refine"):
        # a key a file written before it existed lacks has its default in both
        assert {k: config[section][k] for k in recorded[section]} == recorded[section], section
    assert recorded["data"]["augment"] == {
        k: config["data"]["augment"][k] for k in recorded["data"]["augment"]
    }
    assert recorded["segmentor"]["options"] == config["segmentor"]["options"]
    for key in ("iterations", "batch_size", "lam"):
        assert recorded[key] == config[key], key


@pytest.mark.parametrize("name", sorted(SHIPPED))
def test_shipped_head_beats_entropy_on_roadanomaly21(name, tmp_path):
    known, _ = SHIPPED[name]
    shared_path("weights", known)  # skips with the reason when ../shared is absent
    data = shared_path("anomaly", "smiyc_roadanomaly21_val")
    out = tmp_path / "eval"
    argv = ["eval", "--weights", known, "--head", name, "--dataset", f"ra21={data}"]
    argv += [
        "--scores",
        "entropy,sleeg",
        "--examples",
        "0",
        "--out",
        str(out),
    ]  # at the node's size
    assert sleeg(argv) == 0
    scores = json.loads((out / "results.json").read_text())["datasets"]["ra21"]["scores"]
    assert scores["sleeg"]["ap"] > scores["entropy"]["ap"] + 0.05
    assert scores["sleeg"]["fpr95"] < scores["entropy"]["fpr95"] - 0.2
