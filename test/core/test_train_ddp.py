"""`sleeg train` under torchrun: 2 real CPU processes (gloo on loopback) training one head."""

import contextlib
import csv
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from helpers.pause_training import marker_of_rank
from helpers.training import PAUSE_TRAINING, make_frames, train_args, wait_for_files

from sleeg_core.cli import main as sleeg
from sleeg_core.model.headfile import HeadFile
from sleeg_core.segmentors.enet import ENetSegmentor
from sleeg_core.train.config import TrainConfig
from sleeg_core.train.data import StepSampler
from sleeg_core.train.distributed import Distributed, session
from sleeg_core.train.patches import PatchRenderer
from sleeg_core.train.trainer import Trainer

ITERATIONS = 16
# 2 processes × batch 2, loader workers on, refinement and BatchNorm (test_train.SMALL), two
# head branches (the ENet profiles'; the 1 × 4 comparison below has one)
COMMON = ["--iterations", str(ITERATIONS), "--batch-size", "2", "--set", "data.workers=1",
          "--set", "head.branches=[[1,1,1],[1,2,4]]"]  # fmt: skip
# what a 2 × 2 run shares exactly with a 1 × 4 run: no patches (each rank pastes its own), a
# head without BatchNorm (statistics per rank) or dropout (masks per rank), no refinement
SAME_AS_ONE_PROCESS = ["--iterations", "6", "--set", "patches.n_patches=0", "--set", "head.depth=0",
                       "--set", "head.dropout=0", "--set", "refine.enabled=false",
                       "--set", "data.workers=0"]  # fmt: skip
TOLERANCE = 1e-6  # measured: ≤ 2e-8 on the weights, ≤ 1e-7 on the losses (summation order)


@pytest.fixture(scope="module")
def weights(tiny_model) -> Path:
    return tiny_model["weights"]


@pytest.fixture(scope="module")
def frames(tmp_path_factory) -> Path:
    return make_frames(tmp_path_factory.mktemp("ddp") / "frames")


def torchrun(args: list[str], script: list[str] | None = None) -> subprocess.Popen:
    """`python -m torch.distributed.run` of 2 processes `-m sleeg_core.cli <args>` (or of
    `script <args>`: a script path and its own arguments), on loopback."""
    env = dict(os.environ, OMP_NUM_THREADS="1", GLOO_SOCKET_IFNAME="lo")
    launcher = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2",
                "--rdzv-backend", "c10d", "--rdzv-endpoint", "127.0.0.1:0"]  # fmt: skip
    program = script or ["-m", "sleeg_core.cli"]
    return subprocess.Popen(
        [*launcher, *program, *args], env=env, stdout=subprocess.PIPE, text=True
    )


def finish(proc: subprocess.Popen) -> str:
    out, _ = proc.communicate(timeout=300)
    assert proc.returncode == 0, out
    return out


@pytest.fixture(scope="module")
def straight(tmp_path_factory, weights, frames) -> tuple[Path, str]:
    """An uninterrupted 2-process run, and what it printed."""
    out = tmp_path_factory.mktemp("ddp") / "straight"
    return out, finish(torchrun(train_args(weights, out, "--images", str(frames), *COMMON)))


def read_metrics(out: Path, timing: bool = True) -> list[dict[str, str]]:
    """metrics.csv rows (without the data_s and step_s columns unless `timing`)."""
    with (out / "metrics.csv").open() as f:
        rows = list(csv.DictReader(f))
    return rows if timing else [{k: v for k, v in r.items() if not k.endswith("_s")} for r in rows]


def test_two_processes_train_one_head_written_by_rank_0(straight):
    out, printed = straight
    # the effective batch is stated once, the head reported once
    stated = "distributed: world size 2 (gloo), batch 2 per process, effective batch 4"
    assert printed.count(stated) == 1 and printed.count("head written to") == 1
    head = HeadFile.load(out / "head.pt")
    config = head.train_config
    assert (config["batch_size"], config["world_size"], config["effective_batch"]) == (2, 2, 4)
    assert head.head_config.branches == ((1, 1, 1), (1, 2, 4))
    rows = read_metrics(out)
    assert [int(r["step"]) for r in rows] == list(range(1, ITERATIONS + 1))
    assert len(list((out / "tensorboard").iterdir())) == 1  # one event file: one writer
    ckpts = sorted(p.name for p in (out / "checkpoints").iterdir())
    assert ckpts == [f"step_{s:08d}.pt" for s in (12, 14, 16)]  # no stray temp files
    state = torch.load(out / "checkpoints" / ckpts[-1], weights_only=True)
    banks = [b["crops"] for b in state["rank_banks"]]  # both ranks' banks, gathered by rank 0
    assert len(banks) == 2 and len(banks[0]) == len(state["bank"]["crops"]) > 0
    assert all(map(torch.equal, banks[0], state["bank"]["crops"]))
    assert not all(map(torch.equal, banks[0], banks[1]))  # each rank pastes its own crops


def descendants(pid: int) -> list[int]:
    """The processes `pid` started, and theirs (torchrun's workers and their loader workers)."""
    tasks = Path(f"/proc/{pid}/task")
    children = [int(c) for t in tasks.iterdir() for c in (t / "children").read_text().split()]
    return [p for c in children for p in (c, *descendants(c))]


def test_killed_two_process_run_resumes_bit_exactly(tmp_path, weights, frames, straight):
    """Both ranks stopped after step 6 was trained and logged, before its checkpoint, then every
    process killed as in a crash: the resume from step 4's checkpoint ends bit-exactly like the
    uninterrupted run."""
    out = tmp_path / "killed"
    args = train_args(weights, out, "--images", str(frames), *COMMON)
    marker = tmp_path / "stopped"
    proc = torchrun(args, script=[str(PAUSE_TRAINING), "6", str(marker)])
    wait_for_files([marker_of_rank(marker, rank) for rank in (0, 1)], proc)
    for pid in [proc.pid, *descendants(proc.pid)]:  # every process of the run, as in a crash
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    proc.communicate()
    assert sorted(p.name for p in (out / "checkpoints").iterdir())[-1] == "step_00000004.pt"
    assert [int(r["step"]) for r in read_metrics(out)] == list(range(1, 7))
    assert not (out / "head.pt").exists()
    printed = finish(torchrun([*args, "--resume"]))
    assert "resumed from" in printed

    a = HeadFile.load(straight[0] / "head.pt").state_dict
    b = HeadFile.load(out / "head.pt").state_dict
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), f"{key} differs after resume"
    assert read_metrics(out, timing=False) == read_metrics(straight[0], timing=False)


def test_two_processes_at_batch_2_match_one_at_batch_4(tmp_path, weights, frames):
    one, two = tmp_path / "one", tmp_path / "two"
    assert sleeg([*train_args(weights, one, "--images", str(frames), *SAME_AS_ONE_PROCESS),
                  "--batch-size", "4"]) == 0  # fmt: skip
    finish(torchrun([*train_args(weights, two, "--images", str(frames), *SAME_AS_ONE_PROCESS),
                     "--batch-size", "2"]))  # fmt: skip
    a = HeadFile.load(one / "head.pt").state_dict
    b = HeadFile.load(two / "head.pt").state_dict
    for key in a:
        torch.testing.assert_close(b[key], a[key], rtol=0, atol=TOLERANCE)
    for r1, r2 in zip(read_metrics(one), read_metrics(two), strict=True):
        for key in ("lr", "loss", "tae", "anomaly_fraction"):
            assert float(r2[key]) == pytest.approx(float(r1[key]), rel=0, abs=TOLERANCE)


# ---------------------------------------------------------------- in-process, no process group
def test_rank_slices_of_a_step_make_up_the_whole_batch():
    whole = list(StepSampler(5, 6, seed=3, start=4, total=9))
    ranks = [list(StepSampler(5, 2, 3, 4, 9, rank=r, world_size=3)) for r in range(3)]
    assert [[k for b in batches for k in b] for batches in zip(*ranks, strict=True)] == whole


def test_rank_0_draws_as_one_process_and_other_ranks_draw_their_own(weights, monkeypatch):
    seeds = []
    render = PatchRenderer.__call__

    def spy(self, images, generator, road=None):
        seeds.append((torch.initial_seed(), generator.initial_seed()))  # dropout, patches
        return render(self, images, generator, road)

    monkeypatch.setattr(PatchRenderer, "__call__", spy)
    cfg = TrainConfig(batch_size=2, device="cpu")
    images = torch.randint(0, 256, (2, 3, 64, 128), dtype=torch.uint8)
    cpu = torch.device("cpu")
    for dist in (None, Distributed(0, 0, 2, cpu), Distributed(1, 1, 2, cpu)):
        Trainer(cfg, ENetSegmentor(weights), dist).train_step(images)
    single, rank0, rank1 = seeds
    assert rank0 == single and rank1[0] != single[0] and rank1[1] != single[1]


def test_without_torchrun_there_is_no_process_group(monkeypatch):
    monkeypatch.delenv("RANK", raising=False)
    with session("cpu") as dist:
        assert dist is None and not torch.distributed.is_initialized()
