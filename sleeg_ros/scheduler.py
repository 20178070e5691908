"""Rounds of frames over cameras and threads: newest frame per camera in, batches by frame size.

Plain Python (no rclpy): the node's subscription callbacks `put` each camera's frame into its
latest-frame slot (sleeg_ros.frame_slot); each round an inference thread takes the newest frame of
every camera that has one (with several inference threads: of the `max_batch` cameras that waited
longest), decodes them, runs the model once per group of equal frame sizes (at most `max_batch`
frames a batch) and hands the round to the publishing thread, which publishes it while the next
round runs. At most one round per inference thread waits between them: a slow publisher holds the
inference back, and frames that arrive meanwhile replace their camera's waiting one, so latency
stays bounded. What a round does with a frame is the `Stages` given: decode, infer, publish, and
what to do with a frame nobody wants or one that failed (the other frames go on).
"""

from __future__ import annotations

import logging
import math
import queue
import threading
import time
from collections.abc import Callable, Hashable, Iterable
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from sleeg_ros.frame_slot import LatestFrames

TAKE_TIMEOUT_S = 0.2  # how long an inference thread waits for a frame before checking for stop
log = logging.getLogger(__name__)


@dataclass
class Frame:
    """A received frame: the message and its arrival time."""

    msg: Any
    received: float  # time.monotonic() at arrival


@dataclass
class Job:
    """One camera's frame in a round: `decode` fills `want` (output → wanted; {}: nothing to
    compute) and `rgb` (H×W×3) when some output is wanted; `infer` fills the model outputs."""

    key: Hashable
    frame: Frame
    started: float  # time.perf_counter() at the start of the round
    want: dict[str, bool] = field(default_factory=dict)
    rgb: np.ndarray | None = None
    train_ids: np.ndarray | None = None
    score: np.ndarray | None = None
    inference_ms: float = math.nan  # of the batch it ran in

    @property
    def size(self) -> tuple[int, int]:
        """(H, W) of the decoded frame."""
        return self.rgb.shape[:2]


class Stages(Protocol):
    """What a round does with its frames (the node's part)."""

    def decode(self, job: Job) -> None:
        """Set `job.want` and, when something is wanted, `job.rgb` (raise: a bad frame)."""

    def infer(self, jobs: list[Job]) -> None:
        """One forward pass for frames of one size: fill each job's outputs."""

    def publish(self, job: Job) -> None:
        """Publish a job's outputs (on the publishing thread)."""

    def skip(self, job: Job) -> None:
        """A frame nobody wants an output of: nothing was computed."""

    def fail(self, key: Hashable, err: Exception) -> None:
        """A frame of camera `key` failed at some stage; the round goes on without it."""


def batches(jobs: Iterable[Job], max_batch: int) -> list[list[Job]]:
    """`jobs` grouped by frame size (in order of first appearance, each group in the jobs'
    order), each group cut into batches of at most `max_batch` (0: no limit)."""
    groups: dict[tuple[int, int], list[Job]] = {}
    for job in jobs:
        groups.setdefault(job.size, []).append(job)
    out = []
    for group in groups.values():
        step = max_batch if max_batch > 0 else len(group)
        out += [group[i : i + step] for i in range(0, len(group), step)]
    return out


class Scheduler:
    """The latest-frame slots of `keys`, `threads` inference threads and one publishing thread
    (see the module docstring). Each activation makes a new one, so its counts restart."""

    def __init__(
        self, keys: Iterable[Hashable], stages: Stages, threads: int = 1, max_batch: int = 1
    ) -> None:
        self.slots: LatestFrames[Hashable, Frame] = LatestFrames(keys)
        self.stages = stages
        self.threads = threads
        self.max_batch = max_batch
        self.outbox: queue.Queue[list[Job] | None] = queue.Queue(maxsize=threads)
        self._stopping = threading.Event()
        self._workers: list[threading.Thread] = []

    def put(self, key: Hashable, msg: Any) -> None:
        """A camera's new frame (from its subscription callback): never blocks."""
        self.slots.put(key, Frame(msg, time.monotonic()))

    def start(self) -> None:
        """Start the inference threads and the publishing thread."""
        self._workers = [
            threading.Thread(target=self._run, name=f"sleeg-inference-{i}", daemon=True)
            for i in range(self.threads)
        ]
        self._workers.append(
            threading.Thread(target=self._run_publisher, name="sleeg-publish", daemon=True)
        )
        for worker in self._workers:
            worker.start()

    def stop(self) -> None:
        """Join the threads: the inference threads finish their rounds, the publishing thread
        publishes what they handed over; nothing is published after this."""
        if not self._workers:
            return
        *inference, publisher = self._workers
        self._stopping.set()
        self.slots.close()
        for worker in inference:
            worker.join()
        self.outbox.put(None)
        publisher.join()
        self._workers = []

    def _run(self) -> None:
        """An inference thread: with one, each round takes every waiting camera's frame; with
        several, each takes the `max_batch` cameras that waited longest."""
        limit = 0 if self.threads == 1 else self.max_batch
        while not self._stopping.is_set():
            taken = self.slots.take_all(timeout=TAKE_TIMEOUT_S, limit=limit)
            if taken:
                self.run_round(taken)

    def _run_publisher(self) -> None:
        while (jobs := self.outbox.get()) is not None:
            for job in jobs:
                self._guarded(job.key, lambda j=job: self.stages.publish(j))

    def run_round(self, taken: list[tuple[Hashable, Frame]]) -> None:
        """Decode the frames taken, run them in batches by size and hand those that succeeded
        to the publishing thread (waiting while it still has a round per inference thread)."""
        started = time.perf_counter()
        jobs = []
        for key, frame in taken:
            job = Job(key, frame, started)
            if not self._guarded(key, lambda j=job: self.stages.decode(j)):
                continue
            if job.want:
                jobs.append(job)
            else:  # nobody listens: nothing to compute
                self.stages.skip(job)
        ready = [job for batch in batches(jobs, self.max_batch) for job in self._infer(batch)]
        if ready:
            self.outbox.put(ready)

    def _infer(self, jobs: list[Job]) -> list[Job]:
        """The jobs of one batch that ran: a failed batch runs again frame by frame, so that
        only the failing frame is lost (and named)."""
        if len(jobs) > 1:
            try:
                self.stages.infer(jobs)
                return jobs
            except Exception as err:
                log.debug("a batch of %d failed: %s", len(jobs), err)
        return [j for j in jobs if self._guarded(j.key, lambda j=j: self.stages.infer([j]))]

    def _guarded(self, key: Hashable, work: Callable[[], None]) -> bool:
        """Run `work`: False after handing its error to `stages.fail` (a frame never stops the
        threads)."""
        try:
            work()
        except Exception as err:
            self.stages.fail(key, err)
            return False
        return True
