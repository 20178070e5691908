"""benchmarks/accuracy.py (protocol v2) runs end to end for both segmentors, every training
profile in config/ parses and names the segmentor of its file name, and the GPU profiles train
the CPU recipes."""

import json
import subprocess
import sys

import pytest
from helpers.paths import REPO, shared_path

from sleeg_core.common.config import load_config, to_dict
from sleeg_core.train.config import TrainConfig

PROFILES = sorted((REPO / "config").glob("train_*_*.yaml"))


@pytest.mark.parametrize("path", PROFILES, ids=[p.stem for p in PROFILES])
def test_training_profiles_parse_for_their_segmentor(path):
    cfg = load_config(TrainConfig, path, [])
    assert cfg.segmentor.name == path.stem.split("_")[1]
    assert not cfg.data.sources  # the benchmark sets the protocol's data


@pytest.mark.parametrize("segmentor", ["enet", "dabnet"])
def test_gpu_profile_trains_the_cpu_recipe(segmentor):
    """The GPU profile is the CPU profile's recipe with more loader workers (docs/accuracy.md,
    "GPU profile"): a recipe change made to one only would fail here."""
    cpu, gpu = (
        to_dict(load_config(TrainConfig, REPO / "config" / f"train_{segmentor}_{p}.yaml"))
        for p in ("cpu", "gpu")
    )
    assert gpu["data"]["workers"] > cpu["data"]["workers"]
    cpu["data"]["workers"] = gpu["data"]["workers"]
    assert cpu == gpu


@pytest.mark.parametrize("segmentor", ["enet", "dabnet"])
def test_smoke_run_trains_and_scores_all_four_sets(segmentor, tmp_path):
    data = shared_path()  # skips with the reason when ../shared is absent
    out = tmp_path / "acc"
    cmd = [sys.executable, str(REPO / "benchmarks" / "accuracy.py"), "--data-root", str(data)]
    cmd += ["--out", str(out), "--segmentor", segmentor, "--smoke", "--device", "cpu"]
    run = subprocess.run(cmd, capture_output=True, text=True, timeout=600, cwd=REPO)
    assert run.returncode == 0, run.stderr[-2000:]
    results = json.loads((out / "results.json").read_text())
    assert set(results["datasets"]) == {"road_anomaly", "ra21", "ro21", "fs_static"}
    assert results["protocol"]["version"] == 2 and results["protocol"]["segmentor"] == segmentor
    assert results["protocol"]["train_images"] == "cityscapes_train/images"
    for result in results["datasets"].values():
        assert {"msp", "entropy", "energy", "sml", "sleeg", "tore"} <= set(result["scores"])
    assert set(results["verdict"]) == set(results["datasets"])
    for verdict in results["verdict"].values():  # the paired shares of the image resamples
        assert 0 <= verdict["resampled_beats_ap"] <= 1
        assert 0 <= verdict["resampled_beats_fpr95"] <= 1
