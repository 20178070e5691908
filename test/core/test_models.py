"""Shipped heads by name, the segmentor taken from the head or the known weights, and both
through `sleeg infer` / `sleeg train` (no network: the known entry here points at a closed port)."""

import os
import shutil
import subprocess
from pathlib import Path

import cv2
import numpy as np
import pytest
from helpers.training import SMALL, make_frames

from sleeg_core.cli import main as sleeg
from sleeg_core.common.errors import SleegError
from sleeg_core.model import weights
from sleeg_core.model.headfile import HeadFile
from sleeg_core.model.shipped_heads import model_dirs, pick_segmentor, resolve_head


@pytest.fixture
def env(tmp_path, monkeypatch, tiny_model) -> Path:
    """A temp models folder holding `tiny_sleeg`, an empty cache, and a known entry `tiny_enet`
    for the tiny ENet checkpoint, available only from a temp shared folder."""
    models = tmp_path / "models"
    models.mkdir()
    shutil.copyfile(tiny_model["head"], models / "tiny_sleeg.pt")
    monkeypatch.setenv("SLEEG_MODELS", str(models))
    monkeypatch.setenv("SLEEG_CACHE", str(tmp_path / "cache"))
    shared = tmp_path / "shared"
    source = shared / "data" / "weights" / "tiny_enet" / "tiny.pth"
    source.parent.mkdir(parents=True)
    shutil.copyfile(tiny_model["weights"], source)
    monkeypatch.setenv("SLEEG_SHARED", str(shared))
    sha = weights.sha256_of(source)
    entry = weights.KnownWeights(
        "tiny_enet", "enet", "tiny.pth", "http://127.0.0.1:9/tiny.pth", sha, "test", "test"
    )
    monkeypatch.setitem(weights.KNOWN_WEIGHTS, entry.name, entry)
    return models


# ---------------------------------------------------------------- shipped heads


def test_a_head_name_is_a_file_in_the_models_folders(env):
    assert resolve_head("tiny_sleeg") == env / "tiny_sleeg.pt"
    assert model_dirs()[0] == env and model_dirs()[1] == weights.REPO / "models"


@pytest.mark.ros  # needs the colcon install (scripts/setup)
def test_sourcing_the_installed_package_puts_its_shipped_heads_first(tmp_path):
    """The package's environment hook, not sleeg_core, knows the install layout: a shell that
    sources the colcon install finds the installed heads through SLEEG_MODELS."""
    setup = weights.REPO / "install" / "setup.bash"
    if not setup.is_file():
        pytest.skip(f"no colcon install at {setup.parent}: run scripts/setup")
    env = {k: v for k, v in os.environ.items() if k != "SLEEG_MODELS"}
    env["SLEEG_MODELS"] = str(tmp_path)
    code = "from sleeg_core.model.shipped_heads import model_dirs, resolve_head; "
    code += "print(model_dirs()[0]); "
    code += "print(resolve_head('enet_cityscapes_sleeg'))"
    shell = f'set -e; source {setup}; python -c "{code}"'
    out = subprocess.run(
        ["bash", "-c", shell], env=env, capture_output=True, text=True, check=True
    ).stdout.split()
    installed = weights.REPO / "install" / "sleeg_ros" / "share" / "sleeg_ros" / "models"
    assert Path(out[0]) == installed
    assert Path(out[1]) == installed / "enet_cityscapes_sleeg.pt"


def test_paths_are_used_as_given(env, tmp_path, monkeypatch):
    assert resolve_head("runs/enet/head.pt") == Path("runs/enet/head.pt")
    assert resolve_head("head.pt") == Path("head.pt")
    monkeypatch.chdir(tmp_path)
    Path("tiny_sleeg").write_bytes(b"a file in the working directory wins")
    assert resolve_head("tiny_sleeg") == Path("tiny_sleeg")


def test_a_missing_shipped_head_is_named_with_where_it_was_looked_for(env):
    with pytest.raises(SleegError) as err:
        resolve_head("enet_nowhere_sleeg")
    message = str(err.value)
    assert message.startswith(
        "no shipped head 'enet_nowhere_sleeg': no enet_nowhere_sleeg.pt or enet_nowhere_sleeg.yaml "
        "in "
    )
    assert str(env) in message and str(weights.REPO / "models") in message
    assert "tiny_sleeg)" in message and "\n" not in message  # the heads that are there


# ---------------------------------------------------------------- which segmentor


def test_the_segmentor_comes_from_the_head_or_the_known_weights(env):
    head = HeadFile.load(env / "tiny_sleeg.pt")
    assert pick_segmentor(None, "some/file.pth", head) == "enet"
    assert pick_segmentor("", "tiny_enet", None) == "enet"
    assert pick_segmentor("enet", "tiny_enet", head) == "enet"
    with pytest.raises(SleegError, match="no segmentor: name one"):
        pick_segmentor(None, "some/file.pth", None)


def test_a_segmentor_that_disagrees_with_the_known_weights_is_refused(env):
    with pytest.raises(SleegError) as err:
        pick_segmentor("espnet", "tiny_enet", None)
    assert str(err.value) == (
        "segmentors disagree: segmentor → 'espnet', weights 'tiny_enet' → 'enet'"
    )
    head = HeadFile.load(env / "tiny_sleeg.pt")
    with pytest.raises(SleegError, match="head → 'enet'"):
        pick_segmentor("espnet", "some/file.pth", head)


# ---------------------------------------------------------------- through the CLI


def test_infer_with_known_weights_and_a_shipped_head_by_name(env, tmp_path):
    image = tmp_path / "in.png"
    cv2.imwrite(str(image), np.random.default_rng(0).integers(0, 256, (40, 64, 3), np.uint8))
    args = ["infer", "--weights", "tiny_enet", "--head", "tiny_sleeg", "--device", "cpu"]
    assert sleeg([*args, "--input", str(image), "--out", str(tmp_path / "out")]) == 0
    assert (tmp_path / "out" / "in_score.tiff").is_file()
    assert (tmp_path / "cache" / "weights" / "tiny.pth").is_file()  # registered from shared


def test_infer_with_a_mismatched_segmentor_fails_before_fetching(env, tmp_path, capsys):
    args = ["infer", "--segmentor", "espnet", "--weights", "tiny_enet", "--device", "cpu"]
    assert sleeg([*args, "--input", str(tmp_path), "--out", str(tmp_path / "out")]) == 2
    assert "segmentors disagree: segmentor → 'espnet'" in capsys.readouterr().err
    assert not (tmp_path / "cache").exists()


def test_train_with_known_weights_keeps_the_name_in_the_head_file(env, tmp_path, capsys):
    frames = make_frames(tmp_path / "frames", n=2)
    out = tmp_path / "run"
    args = ["train", "--weights", "tiny_enet", "--out", str(out), *SMALL, "--iterations", "1"]
    args += ["--images", str(frames), "--batch-size", "1", "--set", "data.workers=0"]
    assert sleeg(args) == 0
    head = HeadFile.load(out / "head.pt")
    assert head.segmentor == "enet"
    assert head.train_config["segmentor"]["weights"] == "tiny_enet"
    assert sleeg([*args, "--segmentor", "espnet"]) == 2
    assert "segmentors disagree" in capsys.readouterr().err
