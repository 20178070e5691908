"""YAML configs into nested dataclasses, with overrides and clear errors."""

from dataclasses import dataclass, field

import pytest

from sleeg_core.common.config import from_dict, load_config, to_dict
from sleeg_core.common.errors import SleegError


@dataclass
class Optim:
    lr: float = 0.01
    betas: tuple[float, float] = (0.9, 0.99)


@dataclass
class Source:
    path: str = ""
    every: int = 1


@dataclass
class Cfg:
    name: str = "x"
    iterations: int = 10
    optim: Optim = field(default_factory=Optim)
    sources: list[Source] = field(default_factory=list)
    device: str | None = None


def test_yaml_and_overrides(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("iterations: 5\noptim:\n  lr: 1\nsources:\n  - {path: a, every: 3}\n")
    cfg = load_config(Cfg, path, ["optim.lr=0.5", "name=run"])
    assert cfg == Cfg(name="run", iterations=5, optim=Optim(lr=0.5), sources=[Source("a", 3)])
    assert isinstance(cfg.optim.lr, float)
    assert to_dict(cfg)["optim"] == {"lr": 0.5, "betas": [0.9, 0.99]}


def test_unknown_key_is_named():
    with pytest.raises(SleegError, match=r"unknown config key 'optim\.lrr'.*lr, betas"):
        from_dict(Cfg, {"optim": {"lrr": 1}})


def test_wrong_types_are_named():
    with pytest.raises(SleegError, match="'iterations' must be int"):
        from_dict(Cfg, {"iterations": "many"})
    with pytest.raises(SleegError, match="'optim' must be a mapping"):
        from_dict(Cfg, {"optim": 3})


def test_missing_file(tmp_path):
    with pytest.raises(SleegError, match="config file not found"):
        load_config(Cfg, tmp_path / "nope.yaml")
