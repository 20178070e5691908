"""Model loading fails with a ModelLoadError whose `field` names the input at fault."""

from __future__ import annotations

import pickle
from pathlib import Path

import pytest
import torch

from sleeg_core.common.errors import MODEL_FIELDS, ModelLoadError, SleegError
from sleeg_core.model.headfile import HeadFile
from sleeg_core.model.inference import load_segmenter, resolve_device


def load(tiny_model: dict[str, Path], **changes) -> None:
    args = {
        "segmentor": "enet",
        "weights": tiny_model["weights"],
        "head": tiny_model["head"],
        "device": "cpu",
    }
    load_segmenter(**(args | changes))


def other_head(tiny_model: dict[str, Path], path: Path, **changes) -> Path:
    """The tiny head file with some fields changed, saved at `path`."""
    head_file = HeadFile.load(tiny_model["head"])
    for name, value in changes.items():
        setattr(head_file, name, value)
    return head_file.save(path)


def test_the_tiny_model_loads(tiny_model) -> None:
    model, head_file = load_segmenter("enet", tiny_model["weights"], tiny_model["head"], "cpu")
    assert head_file is not None and "sleeg" in model.available_scores()


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"head": "/nowhere/head.pt"}, "head file not found: /nowhere/head.pt"),
        ({"head": "enet_nowhere_sleeg"}, "no shipped head 'enet_nowhere_sleeg'"),
        ({"segmentor": "espnet"}, "segmentors disagree: segmentor → 'espnet', head → 'enet'"),
        (
            {"segmentor": "segformer", "head": None},
            "unknown segmentor 'segformer'; choose one of: ",
        ),
        ({"weights": "/nowhere/enet.pth"}, "file not found: /nowhere/enet.pth"),
        ({"device": "toaster"}, "device 'toaster' is not one of auto, cpu, cuda, cuda:N"),
        ({"device": "mps"}, "device 'mps' is not one of auto, cpu, cuda, cuda:N"),
    ],
)
def test_each_failure_names_its_field(tiny_model, changes, message) -> None:
    with pytest.raises(ModelLoadError) as caught:
        load(tiny_model, **changes)
    assert caught.value.field == next(iter(changes)), caught.value
    assert message in str(caught.value)


def test_a_file_that_is_no_head_file_is_the_heads_fault(tiny_model, tmp_path) -> None:
    torch.save({"something": 1}, tmp_path / "other.pt")
    with pytest.raises(ModelLoadError, match="is not a sleeg head file") as caught:
        load(tiny_model, head=tmp_path / "other.pt")
    assert caught.value.field == "head"


def test_a_head_trained_on_other_features_is_the_heads_fault(tiny_model, tmp_path) -> None:
    path = other_head(tiny_model, tmp_path / "head.pt", feature_channels=64)
    with pytest.raises(ModelLoadError, match=f"{path} was trained on segmentor") as caught:
        load(tiny_model, head=path)
    assert caught.value.field == "head"


def test_a_checkpoint_the_segmentor_cannot_load_is_the_weights_fault(tiny_model, tmp_path):
    (tmp_path / "broken.pth").write_bytes(b"not a checkpoint")
    with pytest.raises(ModelLoadError) as caught:
        load(tiny_model, weights=tmp_path / "broken.pth")
    assert caught.value.field == "weights"


@pytest.mark.skipif(torch.cuda.is_available(), reason="CUDA is available here")
def test_cuda_without_a_gpu_is_the_devices_fault() -> None:
    with pytest.raises(ModelLoadError, match="CUDA is not available") as caught:
        resolve_device("cuda")
    assert caught.value.field == "device"


def test_an_unknown_compile_mode_is_the_compile_modes_fault(tiny_model) -> None:
    model, _ = load_segmenter("enet", tiny_model["weights"], tiny_model["head"], "cpu")
    with pytest.raises(ModelLoadError, match="unknown compile mode 'fastest'") as caught:
        model.compile_networks("fastest")
    assert caught.value.field == "compile_mode"


def test_the_error_is_a_sleeg_error_and_crosses_processes_whole() -> None:
    err = ModelLoadError("weights", "file not found: x.pth")
    assert isinstance(err, SleegError)
    copy = pickle.loads(pickle.dumps(err))
    assert (copy.field, str(copy)) == ("weights", "file not found: x.pth")
    assert set(MODEL_FIELDS) == {"weights", "head", "segmentor", "device", "compile_mode"}
    with pytest.raises(ValueError, match="unknown model field 'colour'"):
        ModelLoadError("colour", "?")
