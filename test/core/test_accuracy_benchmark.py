"""benchmarks/accuracy.py (protocol v2) runs end to end for both segmentors, every training
profile in config/ parses and names the segmentor of its file name, and the GPU profiles train
the CPU recipes."""

import json
import subprocess
import sys
from pathlib import Path

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


SMOKE_SEGMENTORS = ("enet", "dabnet")


@pytest.fixture(scope="module")
def smoke_runs(tmp_path_factory) -> dict[str, tuple[int, str, Path]]:
    """`accuracy.py --smoke` for each segmentor, all started at once: each run computes on one
    torch thread (`--threads 1`), so on two or more cores they take the time of one.
    Segmentor → (exit status, the end of what it printed, its output folder)."""
    data = shared_path()  # skips with the reason when ../shared is absent
    runs = {}
    for segmentor in SMOKE_SEGMENTORS:
        folder = tmp_path_factory.mktemp(f"acc_{segmentor}")
        out, log = folder / "acc", folder / "printed.txt"
        cmd = [sys.executable, str(REPO / "benchmarks" / "accuracy.py"), "--data-root", str(data)]
        cmd += ["--out", str(out), "--segmentor", segmentor, "--smoke", "--device", "cpu"]
        with log.open("w") as printed:  # a file, not a pipe: no run waits for a reader
            proc = subprocess.Popen(cmd, stdout=printed, stderr=subprocess.STDOUT, cwd=REPO)
        runs[segmentor] = (proc, log, out)
    try:
        for proc, _, _ in runs.values():
            proc.wait(timeout=600)
        return {
            name: (proc.returncode, log.read_text()[-2000:], out)
            for name, (proc, log, out) in runs.items()
        }
    finally:
        for proc, _, _ in runs.values():
            if proc.poll() is None:
                proc.kill()


@pytest.mark.parametrize("segmentor", SMOKE_SEGMENTORS)
def test_smoke_run_trains_and_scores_all_four_sets(segmentor, smoke_runs):
    returncode, printed, out = smoke_runs[segmentor]
    assert returncode == 0, printed
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
