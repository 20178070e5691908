"""Config files that inherit (`base:`): the merge, its errors, and the shipped training profiles
resolved through their bases."""

from dataclasses import dataclass, field

import pytest
import yaml
from helpers.paths import REPO

from sleeg_core.common.config import load_config, merge, read_config_file, to_dict
from sleeg_core.common.errors import SleegError
from sleeg_core.train.config import TrainConfig


@dataclass
class Optim:
    lr: float = 0.01
    momentum: float = 0.9


@dataclass
class Cfg:
    name: str = "x"
    crop: list[int] = field(default_factory=lambda: [8, 8])
    optim: Optim = field(default_factory=Optim)


def test_merge_merges_mappings_and_replaces_lists_and_scalars():
    base = {"a": {"b": 1, "c": [1, 2, 3], "d": {"e": 1}}, "f": 1}
    override = {"a": {"c": [9], "d": {"g": 2}}, "f": {"now": "a mapping"}}
    merged = merge(base, override)
    assert merged == {"a": {"b": 1, "c": [9], "d": {"e": 1, "g": 2}}, "f": {"now": "a mapping"}}
    assert base == {"a": {"b": 1, "c": [1, 2, 3], "d": {"e": 1}}, "f": 1}  # inputs kept
    assert override == {"a": {"c": [9], "d": {"g": 2}}, "f": {"now": "a mapping"}}


def test_a_file_states_only_what_differs_from_its_bases(tmp_path):
    (tmp_path / "bases").mkdir()
    (tmp_path / "bases" / "root.yaml").write_text("name: root\ncrop: [4, 4]\noptim: {lr: 1}\n")
    (tmp_path / "bases" / "mid.yaml").write_text("base: root.yaml\noptim: {momentum: 0.5}\n")
    (tmp_path / "run.yaml").write_text("base: bases/mid.yaml\ncrop: [2, 3]\n")
    cfg = load_config(Cfg, tmp_path / "run.yaml", ["optim.lr=0.25"])
    assert cfg == Cfg(name="root", crop=[2, 3], optim=Optim(lr=0.25, momentum=0.5))
    assert "base" not in read_config_file(tmp_path / "run.yaml")


CYCLES = [["a.yaml"], ["a.yaml", "b.yaml"], ["a.yaml", "b.yaml", "c.yaml"]]  # a → … → a


@pytest.mark.parametrize("chain", CYCLES)
def test_a_cycle_of_bases_is_an_error_naming_the_files(tmp_path, chain):
    for name, base in zip(chain, [*chain[1:], chain[0]], strict=True):
        (tmp_path / name).write_text(f"base: {base}\nname: {name}\n")
    with pytest.raises(SleegError, match="bases form a cycle") as err:
        load_config(Cfg, tmp_path / chain[0])
    closing = tmp_path / chain[-1]  # the file whose base closes the cycle
    files = " → ".join(str(tmp_path / name) for name in [*chain, chain[0]])
    assert str(err.value) == f"config file {closing}: its bases form a cycle: {files}"


def test_a_missing_base_is_an_error_naming_both_files(tmp_path):
    (tmp_path / "run.yaml").write_text("base: gone.yaml\n")
    with pytest.raises(SleegError) as err:
        load_config(Cfg, tmp_path / "run.yaml")
    run, gone = tmp_path / "run.yaml", tmp_path / "gone.yaml"
    assert str(err.value) == f"config file {run}: its base {gone} is not a file"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("base: [a.yaml]\n", r"'base' must be a file path, got \['a.yaml'\]"),
        ("base: ''\n", "'base' must be a file path, got ''"),
        ("base: list.yaml\n", r"list\.yaml \(the base of .*run\.yaml\) must hold a mapping"),
        ("base: broken.yaml\n", r"broken\.yaml is not valid YAML"),
    ],
)
def test_bad_bases_are_errors_naming_the_file(tmp_path, text, message):
    (tmp_path / "list.yaml").write_text("- 1\n- 2\n")
    (tmp_path / "broken.yaml").write_text("a: [1\n")
    (tmp_path / "run.yaml").write_text(text)
    with pytest.raises(SleegError, match=message):
        load_config(Cfg, tmp_path / "run.yaml")


# the effective settings of each shipped profile, through its base: (segmentor, feature layer,
# branches, patch area range and sampling, β, λ, steps, batch, checkpoint every, loader workers)
PROFILES = {
    "train_enet_cpu": ("enet", "bottleneck4", [[1, 1, 1], [1, 2, 4]], [0.01, 0.05], "uniform",
                       0.0, 0.0, 2000, 4, 500, 1),
    "train_enet_gpu": ("enet", "bottleneck4", [[1, 1, 1], [1, 2, 4]], [0.01, 0.05], "uniform",
                       0.0, 0.0, 2000, 4, 500, 6),
    "train_dabnet_cpu": ("dabnet", "bn_prelu_3", [], [0.01, 0.15], "log_uniform",
                         0.05, 2.0, 150, 4, 50, 1),
    "train_dabnet_gpu": ("dabnet", "bn_prelu_3", [], [0.01, 0.15], "log_uniform",
                         0.05, 2.0, 150, 4, 50, 6),
}  # fmt: skip


@pytest.mark.parametrize("name", sorted(PROFILES))
def test_shipped_profiles_resolve_to_their_settings(name):
    cfg = to_dict(load_config(TrainConfig, REPO / "config" / f"{name}.yaml"))
    got = (
        cfg["segmentor"]["name"],
        cfg["segmentor"]["options"]["feature_layer"],
        cfg["head"]["branches"],
        cfg["patches"]["area_range"],
        cfg["patches"]["area_sampling"],
        cfg["loss"]["beta"],
        cfg["lam"],
        cfg["iterations"],
        cfg["batch_size"],
        cfg["checkpoint_every"],
        cfg["data"]["workers"],
    )
    assert got == PROFILES[name]
    assert cfg["data"]["augment"]["crop"] == [256, 512] and cfg["data"]["cache_mb"] == 1024
    assert cfg["head"]["width"] == 32 and cfg["calibration"]["frames"] == 64
    assert not cfg["refine"]["enabled"] and cfg["patches"]["road_fraction"] == 0.0
    assert cfg["calibration"]["fpr"] == 0.002


@pytest.mark.parametrize("segmentor", ["enet", "dabnet"])
def test_gpu_profiles_state_only_what_differs_from_the_cpu_profiles(segmentor):
    text = (REPO / "config" / f"train_{segmentor}_gpu.yaml").read_text()
    assert yaml.safe_load(text) == {"base": f"train_{segmentor}_cpu.yaml", "data": {"workers": 6}}
