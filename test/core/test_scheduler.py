"""The node's round scheduler without ROS: newest frame per camera, batches by size, one round
waiting for the publishing thread."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pytest

from sleeg_ros.scheduler import Frame, Job, Scheduler, batches


@dataclass(frozen=True)
class Msg:
    n: int  # the frame's number
    size: tuple[int, int] = (4, 6)
    wanted: bool = True
    bad: bool = False  # decode raises
    poison: bool = False  # inference raises for a batch holding it


class Stages:
    """Records what the scheduler asks of each stage; `gate` (when set) holds publishing."""

    def __init__(self) -> None:
        self.decoded: list[int] = []
        self.batches: list[list[tuple[str, int]]] = []
        self.published: list[tuple[str, int]] = []
        self.skipped: list[str] = []
        self.failed: list[tuple[str, str]] = []
        self.gate: threading.Event | None = None
        self.lock = threading.Lock()

    def decode(self, job: Job) -> None:
        msg = job.frame.msg
        with self.lock:
            self.decoded.append(msg.n)
        if msg.bad:
            raise ValueError(f"bad frame {msg.n}")
        if msg.wanted:
            job.want = {"score": True}
            job.rgb = np.zeros((*msg.size, 3), np.uint8)

    def infer(self, jobs: list[Job]) -> None:
        with self.lock:
            self.batches.append([(j.key, j.frame.msg.n) for j in jobs])
        if any(j.frame.msg.poison for j in jobs):
            raise RuntimeError("poisoned")
        for job in jobs:
            job.score = np.full(job.size, job.frame.msg.n, np.float32)

    def publish(self, job: Job) -> None:
        if self.gate is not None:
            self.gate.wait(10)
        assert job.score is not None and job.score[0, 0] == job.frame.msg.n
        with self.lock:
            self.published.append((job.key, job.frame.msg.n))

    def skip(self, job: Job) -> None:
        self.skipped.append(job.key)

    def fail(self, key: str, err: Exception) -> None:
        self.failed.append((key, str(err)))


def wait_until(predicate: Callable[[], bool], timeout: float = 10.0) -> None:
    end = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < end, "timed out"
        time.sleep(0.005)


def job(key: str, size: tuple[int, int]) -> Job:
    return Job(key, Frame(None, 0.0), 0.0, rgb=np.zeros((*size, 3), np.uint8))


def keys(groups: list[list[Job]]) -> list[list[str]]:
    return [[j.key for j in group] for group in groups]


def test_batches_group_by_frame_size_in_order_and_cut_at_max_batch() -> None:
    jobs = [job("a", (4, 6)), job("b", (8, 6)), job("c", (4, 6)), job("d", (4, 6))]
    assert keys(batches(jobs, 0)) == [["a", "c", "d"], ["b"]]
    assert keys(batches(jobs, 2)) == [["a", "c"], ["d"], ["b"]]
    assert keys(batches(jobs, 1)) == [["a"], ["c"], ["d"], ["b"]]
    assert batches([], 3) == []


def run_round(stages: Stages, msgs: dict[str, Msg], max_batch: int) -> list[tuple[str, int]]:
    """One round of `msgs` by camera: the jobs it hands to the publishing thread."""
    scheduler = Scheduler(msgs, stages, threads=1, max_batch=max_batch)
    scheduler.run_round([(k, Frame(m, time.monotonic())) for k, m in msgs.items()])
    if scheduler.outbox.empty():
        return []
    return [(j.key, j.frame.msg.n) for j in scheduler.outbox.get_nowait()]


def test_a_round_runs_one_batch_per_frame_size() -> None:
    stages = Stages()
    msgs = {"front": Msg(1), "left": Msg(2, (8, 8)), "right": Msg(3), "rear": Msg(4)}
    ready = run_round(stages, msgs, max_batch=4)
    assert stages.batches == [[("front", 1), ("right", 3), ("rear", 4)], [("left", 2)]]
    assert sorted(ready) == sorted(msgs_items(msgs))
    stages = Stages()
    run_round(stages, msgs, max_batch=2)
    assert stages.batches == [[("front", 1), ("right", 3)], [("rear", 4)], [("left", 2)]]


def msgs_items(msgs: dict[str, Msg]) -> list[tuple[str, int]]:
    return [(k, m.n) for k, m in msgs.items()]


def test_unwanted_and_bad_frames_leave_the_others_alone() -> None:
    stages = Stages()
    msgs = {"a": Msg(1), "b": Msg(2, wanted=False), "c": Msg(3, bad=True), "d": Msg(4)}
    ready = run_round(stages, msgs, max_batch=4)
    assert ready == [("a", 1), ("d", 4)]
    assert stages.batches == [[("a", 1), ("d", 4)]]  # nothing computed for b or c
    assert stages.skipped == ["b"]
    assert stages.failed == [("c", "bad frame 3")]


def test_a_failing_batch_runs_again_frame_by_frame_and_loses_only_the_failing_frame() -> None:
    stages = Stages()
    msgs = {"a": Msg(1), "b": Msg(2, poison=True), "c": Msg(3)}
    ready = run_round(stages, msgs, max_batch=3)
    assert stages.batches == [[("a", 1), ("b", 2), ("c", 3)], [("a", 1)], [("b", 2)], [("c", 3)]]
    assert ready == [("a", 1), ("c", 3)]
    assert stages.failed == [("b", "poisoned")]


def test_nothing_is_handed_over_when_no_frame_ran() -> None:
    stages = Stages()
    assert run_round(stages, {"a": Msg(1, wanted=False)}, max_batch=1) == []
    assert stages.batches == [] and stages.skipped == ["a"]


def test_a_slow_publisher_leaves_one_round_waiting_and_the_newest_frame_next() -> None:
    """Publishing holds: round 1 is being published, round 2 waits, round 3's inference waits
    to hand over; frames 4 and 5 are replaced by 6, which is the next one served."""
    stages = Stages()
    stages.gate = threading.Event()
    scheduler = Scheduler(["cam"], stages, threads=1, max_batch=1)
    scheduler.start()
    try:
        for n in (1, 2, 3):
            scheduler.put("cam", Msg(n))
            wait_until(lambda n=n: len(stages.batches) == n)
        wait_until(lambda: scheduler.outbox.full())
        for n in (4, 5, 6):
            scheduler.put("cam", Msg(n))
        time.sleep(0.3)  # the inference thread is held: nothing more is decoded
        assert stages.decoded == [1, 2, 3]
        stages.gate.set()
        wait_until(lambda: len(stages.published) == 4)
    finally:
        stages.gate.set()
        scheduler.stop()
    assert stages.published == [("cam", 1), ("cam", 2), ("cam", 3), ("cam", 6)]
    assert scheduler.slots.received == {"cam": 6}
    assert scheduler.slots.dropped == {"cam": 2}


@pytest.mark.parametrize("threads", [1, 3])
def test_every_camera_is_served_by_the_threads_and_stop_publishes_what_ran(threads: int) -> None:
    stages = Stages()
    cameras = ["front", "left", "right"]
    scheduler = Scheduler(cameras, stages, threads=threads, max_batch=1)
    scheduler.start()
    for i, camera in enumerate(cameras):
        scheduler.put(camera, Msg(i))
    wait_until(lambda: len(stages.published) == 3)
    scheduler.stop()
    assert sorted(stages.published) == [("front", 0), ("left", 1), ("right", 2)]
    assert all(len(b) == 1 for b in stages.batches)  # max_batch 1: one frame a pass
    assert {t.name for t in threading.enumerate()}.isdisjoint(
        {"sleeg-publish", *(f"sleeg-inference-{i}" for i in range(threads))}
    )
