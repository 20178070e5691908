"""`sleeg train` end to end on generated data: images, a rosbag, SIGKILL and bit-exact resume."""

import csv
import os
import signal
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from helpers.pause_training import marker_of_rank
from helpers.training import PAUSE_TRAINING, make_frames, train_args, wait_for_files
from torch._dynamo.utils import counters

from sleeg_core.cli import main as sleeg
from sleeg_core.data.images import read_rgb, to_batch
from sleeg_core.model.head import OoDHead
from sleeg_core.model.headfile import HeadFile
from sleeg_core.model.inference import AnomalySegmenter
from sleeg_core.segmentors.enet import ENetSegmentor
from sleeg_core.train.calibration import calibrate
from sleeg_core.train.config import CalibrationConfig, TrainConfig
from sleeg_core.train.metrics_log import StepStats
from sleeg_core.train.patches import PatchRenderer
from sleeg_core.train.trainer import Trainer


@pytest.fixture(scope="module")
def weights(tiny_model) -> Path:
    """A random-weight ENet checkpoint (strict-loadable like the real one)."""
    return tiny_model["weights"]


def test_train_on_images_writes_a_usable_head(tmp_path, weights):
    frames = make_frames(tmp_path / "frames")
    (frames / "broken.png").write_bytes(b"not an image")
    out = tmp_path / "run"
    args = train_args(weights, out, "--images", str(frames), "--iterations", "4")
    args += ["--batch-size", "2", "--set", "data.workers=0", "--set", "loss.beta=0.05"]
    assert sleeg(args) == 0
    head = HeadFile.load(out / "head.pt")
    assert head.segmentor == "enet" and head.feature_channels == 128
    assert np.isfinite(head.threshold)
    assert head.train_config["frames"] == 6 and head.train_config["frames_skipped"] == 1
    assert head.score_stats["normal_p50"] <= head.score_stats["normal_p999"]
    rows = (out / "metrics.csv").read_text().splitlines()
    assert rows[0].startswith("step,lr,loss") and len(rows) == 5
    with (out / "metrics.csv").open() as f:
        assert all(np.isfinite(float(r["tore"])) for r in csv.DictReader(f))  # β > 0: computed
    assert sorted(p.name for p in (out / "checkpoints").iterdir())[-1] == "step_00000004.pt"
    assert any((out / "tensorboard").iterdir())


def test_without_refinement_every_pasted_pixel_is_an_anomaly_and_tae_alone_skips_tore(
    tmp_path, weights
):
    frames = make_frames(tmp_path / "frames")
    out = tmp_path / "run"
    args = train_args(weights, out, "--images", str(frames), "--iterations", "2")
    args += ["--set", "refine.enabled=false", "--set", "data.workers=0"]
    assert sleeg(args) == 0
    with (out / "metrics.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert all(float(r["ignore_fraction"]) == 0 for r in rows)
    assert all(float(r["anomaly_fraction"]) > 0 for r in rows)
    assert all(np.isnan(float(r["tore"])) for r in rows)  # β = 0: TORE is not computed
    assert all(np.isfinite(float(r["tae"])) and float(r["tae"]) > 0 for r in rows)


def test_road_aware_log_uniform_patches_train(tmp_path, weights, monkeypatch):
    frames = make_frames(tmp_path / "frames")
    out = tmp_path / "run"
    seen = []
    render = PatchRenderer.__call__

    def spy(self, images, generator, road=None):
        seen.append(road)
        return render(self, images, generator, road)

    monkeypatch.setattr(PatchRenderer, "__call__", spy)
    args = train_args(weights, out, "--images", str(frames), "--iterations", "2")
    args += ["--set", "data.workers=0", "--set", "patches.road_fraction=0.5"]
    args += ["--set", "patches.area_sampling=log_uniform", "--batch-size", "2"]
    assert sleeg(args) == 0
    # the renderer got the segmentor's road pixels of the clean crops at every step
    assert len(seen) == 2 and all(r is not None and r.dtype == torch.bool for r in seen)
    assert seen[0].shape == (2, 64, 128)
    patches = HeadFile.load(out / "head.pt").train_config["patches"]
    assert patches["road_fraction"] == 0.5 and patches["area_sampling"] == "log_uniform"


def test_two_branch_head_trains_each_branch_and_saves_one_head(tmp_path, weights):
    frames = make_frames(tmp_path / "frames")
    out = tmp_path / "run"
    args = train_args(weights, out, "--images", str(frames), "--iterations", "3")
    args += ["--set", "data.workers=0", "--set", "loss.beta=0.05", "--batch-size", "2"]
    args += ["--set", "head.branches=[[1,1,1],[1,2,4]]", "--set", "checkpoint_every=1"]
    assert sleeg(args) == 0
    head = HeadFile.load(out / "head.pt")
    assert head.head_config.branches == ((1, 1, 1), (1, 2, 4))
    assert np.isfinite(head.threshold)
    first = torch.load(out / "checkpoints" / "step_00000001.pt", weights_only=False)["head"]
    last = head.state_dict
    for k in (0, 1):  # each branch learned (its first conv moved between steps 1 and 3)
        key = f"branches.{k}.blocks.0.weight"
        assert not torch.equal(first[key], last[key])
    built = head.build_head().eval()
    assert len(built.branches) == 2
    with (out / "metrics.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert all(np.isfinite(float(r["tae"])) and np.isfinite(float(r["tore"])) for r in rows)

    # each branch learns as a head trained alone: the first branch starts from the weights and
    # draws the dropout of a one-branch run with the same seed, and ends where that run ends
    # (without refinement, whose labels come from the averaged output, after the warm-up)
    ends = {}
    for name, branches in (("alone", "[]"), ("pair", "[[1,1,1],[1,2,4]]")):
        args = train_args(weights, tmp_path / name, "--images", str(frames), "--iterations", "3")
        args += ["--set", "data.workers=0", "--set", "loss.beta=0.05", "--batch-size", "2"]
        args += ["--set", f"head.branches={branches}", "--set", "refine.enabled=false"]
        assert sleeg(args) == 0
        ends[name] = HeadFile.load(tmp_path / name / "head.pt").state_dict
    for key, value in ends["alone"].items():
        torch.testing.assert_close(ends["pair"][f"branches.0.{key}"], value, rtol=1e-5, atol=1e-7)


def test_train_on_a_rosbag(tmp_path, weights):
    pytest.importorskip("rosbags")
    from sleeg_core.data.bags import write_image_bag

    frames = [cv2.imread(str(p))[..., ::-1] for p in sorted(make_frames(tmp_path / "f").iterdir())]
    bag = write_image_bag(tmp_path / "drive.mcap", {"/cam/image_raw": frames})
    out = tmp_path / "run"
    args = train_args(weights, out, "--bag", str(bag), "--topic", "/cam/image_raw", "--every", "2")
    assert sleeg([*args, "--iterations", "2", "--batch-size", "2"]) == 0
    assert HeadFile.load(out / "head.pt").train_config["frames"] == 3


def test_missing_topic_lists_the_bag_topics(tmp_path, weights, capsys):
    pytest.importorskip("rosbags")
    from sleeg_core.data.bags import write_image_bag

    bag = write_image_bag(tmp_path / "d.mcap", {"/cam": [np.zeros((16, 16, 3), np.uint8)]})
    args = train_args(weights, tmp_path / "run", "--bag", str(bag), "--topic", "/other")
    assert sleeg(args) == 2
    assert "has no topic '/other'; topics: /cam [sensor_msgs/msg/Image]" in capsys.readouterr().err


def test_calibration_scores_the_frames_with_its_tta(tmp_path, weights):
    frames = sorted(make_frames(tmp_path / "frames", n=3).iterdir())
    torch.manual_seed(0)
    segmentor = ENetSegmentor(weights, feature_layer="bottleneck4")
    model = AnomalySegmenter(segmentor, OoDHead(64, width=8), lam=0.0).eval()
    images = [cv2.resize(read_rgb(f), (128, 64), interpolation=cv2.INTER_AREA) for f in frames]
    thresholds = {}
    for tta in ("none", "scales"):
        threshold, stats = calibrate(model, frames, CalibrationConfig(0.05, 3, (64, 128), tta))
        assert model.tta == "none"  # the model's own setting is left as it was
        model.tta = tta
        scores = torch.cat([model(to_batch(i), scores=("sleeg",)).scores["sleeg"] for i in images])
        model.tta = "none"
        assert 0.045 <= (scores >= threshold).float().mean() <= 0.055
        assert stats["normal_p50"] == pytest.approx(scores.median().item(), abs=1e-5)
        thresholds[tta] = threshold
    assert thresholds["none"] != thresholds["scales"]


def test_bad_config_key_and_empty_folder(tmp_path, weights, capsys):
    assert sleeg([*train_args(weights, tmp_path / "r"), "--set", "optim.lrate=1"]) == 2
    assert "unknown config key 'optim.lrate'" in capsys.readouterr().err
    assert sleeg([*train_args(weights, tmp_path / "r"), "--set", "calibration.tta=zoom"]) == 2
    assert "calibration.tta: unknown tta 'zoom'" in capsys.readouterr().err
    assert not (tmp_path / "r").exists()
    (tmp_path / "empty").mkdir()
    assert sleeg(train_args(weights, tmp_path / "r", "--images", str(tmp_path / "empty"))) == 2
    assert "no images found" in capsys.readouterr().err


def test_compiled_segmentor_trains_and_a_bad_mode_stops_before_training(
    tmp_path, weights, capsys, monkeypatch
):
    """segmentor.compile_mode reaches every network's compile and training runs through the
    compiled networks. TorchDynamo traces them for real, with its "eager" backend: inductor's
    code generation (minutes on a CPU for each shape training and calibration use) and its
    numbers are test_compile's."""
    compile_module, modes = torch.nn.Module.compile, []

    def traced_only(module, *args, mode=None, **kwargs):
        modes.append(mode)
        compile_module(module, *args, backend="eager", **kwargs)

    monkeypatch.setattr(torch.nn.Module, "compile", traced_only)
    frames = make_frames(tmp_path / "frames", n=3)
    args = train_args(weights, tmp_path / "bad", "--images", str(frames), "--iterations", "2")
    assert sleeg([*args, "--set", "segmentor.compile_mode=fastest"]) == 2
    assert "unknown compile mode 'fastest'" in capsys.readouterr().err
    assert not (tmp_path / "bad" / "checkpoints").exists()
    out = tmp_path / "compiled"
    args = train_args(weights, out, "--images", str(frames), "--iterations", "2")
    args += ["--set", "segmentor.compile_mode=default", "--set", "data.workers=0"]
    # batch 2 and one calibration pass per frame: two input shapes traced, not four
    args += ["--batch-size", "2", "--set", "calibration.tta=none"]
    torch._dynamo.reset()
    counters.clear()
    assert sleeg(args) == 0
    assert np.isfinite(HeadFile.load(out / "head.pt").threshold)
    assert modes and set(modes) == {"default"}
    assert counters["stats"]["unique_graphs"] > 0  # the networks did run traced


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_a_training_step_on_the_gpu_never_waits_for_the_gpu(weights):
    """With the shipped configs' settings (AMP, TORE, no refinement) a step only queues work, so
    the GPU runs it while the next one is being prepared: any host-device sync raises."""
    cfg = TrainConfig(batch_size=2, device="cuda")
    cfg.refine.enabled, cfg.loss.beta = False, 0.05
    trainer = Trainer(cfg, ENetSegmentor(weights))
    images = torch.randint(0, 256, (2, 3, 64, 128), dtype=torch.uint8).pin_memory()
    StepStats.of(trainer.train_step(images))  # warm-up: first-use allocations and kernels
    torch.cuda.set_sync_debug_mode("error")
    try:
        values = trainer.train_step(images)
    finally:
        torch.cuda.set_sync_debug_mode("default")
    stats = StepStats.of(values)
    assert np.isfinite(stats.tae) and np.isfinite(stats.tore) and stats.anomaly_fraction > 0


def test_print_config_shows_resolved_values(tmp_path, capsys):
    assert sleeg(["train", "--print-config", "--iterations", "7", "--set", "loss.gamma=3"]) == 0
    out = capsys.readouterr().out
    assert "iterations: 7" in out and "gamma: 3.0" in out and "warmup_iters: 6000" in out


def paused_run(args: list[str], step: int, marker: Path) -> subprocess.Popen:
    """`sleeg train <args>` in a child process that stops for good before the checkpoint of
    `step` (helpers/pause_training.py)."""
    code = [sys.executable, str(PAUSE_TRAINING), str(step), str(marker), *args]
    return subprocess.Popen(code, env=dict(os.environ))


@pytest.mark.parametrize(
    "branches", ["[]", "[[1,1,1],[1,2,4]]"], ids=["one_branch", "two_branches"]
)
def test_sigkill_then_resume_matches_uninterrupted_run(tmp_path, weights, branches):
    """Killed after step 6 was trained and logged, before its checkpoint: the resume starts from
    step 4's, trains and logs 5 and 6 again, and ends with the uninterrupted run's head."""
    frames = make_frames(tmp_path / "frames")
    common = ["--images", str(frames), "--iterations", "10", "--batch-size", "2",
              "--set", "data.workers=2", "--set", f"head.branches={branches}"]  # fmt: skip
    straight = tmp_path / "straight"
    assert sleeg(train_args(weights, straight, *common)) == 0

    killed = tmp_path / "killed"
    marker = tmp_path / "stopped"
    proc = paused_run(train_args(weights, killed, *common), 6, marker)
    wait_for_files([marker_of_rank(marker, 0)], proc)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    ckpts = killed / "checkpoints"
    assert sorted(p.name for p in ckpts.iterdir())[-1] == "step_00000004.pt"
    logged = (killed / "metrics.csv").read_text().splitlines()[1:]
    assert [r.split(",")[0] for r in logged] == [str(i) for i in range(1, 7)]
    assert not (killed / "head.pt").exists()
    assert sleeg([*train_args(weights, killed, *common), "--resume"]) == 0

    a = HeadFile.load(straight / "head.pt").state_dict
    b = HeadFile.load(killed / "head.pt").state_dict
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), f"{key} differs after resume"
    rows = (killed / "metrics.csv").read_text().splitlines()
    assert [r.split(",")[0] for r in rows[1:]] == [str(i) for i in range(1, 11)]
