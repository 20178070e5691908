"""Reading checkpoint files (sleeg_core.common.state_dicts): the forms public releases use, and one
clear error, naming the file, for anything else."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from sleeg_core.common.errors import SleegError
from sleeg_core.common.state_dicts import load_state_dict_file, load_strict
from sleeg_core.segmentors.espnet import ESPNet


def test_corrupt_file(tmp_path: Path) -> None:
    path = tmp_path / "garbage.pth"
    path.write_bytes(b"not a checkpoint at all")
    with pytest.raises(SleegError, match=r"cannot read weights file .*garbage\.pth"):
        load_state_dict_file(path)


@pytest.mark.parametrize("content", [[1, 2], torch.zeros(3), {"state_dict": {"a": 1}}, {}])
def test_not_a_state_dict(tmp_path: Path, content: object) -> None:
    path = tmp_path / "odd.pth"
    torch.save(content, path)
    with pytest.raises(SleegError, match=r"odd\.pth"):
        load_state_dict_file(path)


def test_checkpoint_forms(tmp_path: Path) -> None:
    """`state_dict` entry, explicit key, `module.` prefix, denormals flushed to 0."""
    weights = {"module.w": torch.tensor([1.0, 1e-40]), "module.n": torch.tensor(3)}
    torch.save({"state_dict": weights, "ema": {"w": torch.ones(1)}, "epoch": 3}, tmp_path / "c.pt")
    loaded = load_state_dict_file(tmp_path / "c.pt")
    assert set(loaded) == {"w", "n"}
    assert loaded["w"].tolist() == [1.0, 0.0] and loaded["n"].item() == 3
    assert load_state_dict_file(tmp_path / "c.pt", key="ema")["w"].tolist() == [1.0]
    with pytest.raises(SleegError, match="no entry 'model'"):
        load_state_dict_file(tmp_path / "c.pt", key="model")


def test_old_checkpoints_without_batch_counters_load() -> None:
    """Files from PyTorch < 0.4.1 (like ESPNet's) have no BatchNorm `num_batches_tracked`: every
    weight they hold is loaded and the counters start at 0."""
    torch.manual_seed(0)
    full = ESPNet().state_dict()
    state = {k: v for k, v in full.items() if not k.endswith("num_batches_tracked")}
    assert len(state) < len(full)  # the case under test: the file lacks the counters
    torch.manual_seed(1)
    model = ESPNet()
    load_strict(model, state, "old.pth")
    loaded = model.state_dict()
    assert all(torch.equal(loaded[k], v) for k, v in state.items())
    counters = [v for k, v in loaded.items() if k.endswith("num_batches_tracked")]
    assert counters and all(c.item() == 0 for c in counters)
