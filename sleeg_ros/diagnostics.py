"""The node's /diagnostics: one status per camera, in every lifecycle state.

While active, a camera's status is the health of its input and of the inference (sleeg_ros.health)
with the frame slot's counts and the newest frame's age, and WARN for what the newest frame's
metric outputs lacked (key `geometry`: its causes, or ok; sleeg_ros.camera_geometry); in any other
state WARN naming the state, or ERROR naming the last failed transition. While a transition runs
(configure loading or compiling the model can take minutes) WARN saying what it is doing, published
by a StatusTicker thread, as the executor whose timer publishes the status waits for the
transition. A level change (or a new cause at the same level) is logged once; every status goes to
the log at DEBUG.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from diagnostic_msgs.msg import DiagnosticStatus, KeyValue
from rclpy.impl.rcutils_logger import RcutilsLogger

from sleeg_ros.cameras import Camera
from sleeg_ros.frame_slot import LatestFrames
from sleeg_ros.health import Level

# each transition in progress as /diagnostics names it: its lifecycle_msgs/State label
DOING = {
    "configure": "configuring",
    "activate": "activating",
    "deactivate": "deactivating",
    "cleanup": "cleaningup",
    "shutdown": "shuttingdown",
}


@dataclass
class NodeState:
    """What every camera's status reports of the node."""

    lifecycle: str  # the lifecycle state, as the last transition left it, or the one in progress
    failure: str | None  # the last failed transition, until one succeeds
    slots: LatestFrames | None  # while active: the frame slots (their counts)
    device: torch.device | None  # while configured
    configured: bool  # a model is loaded (thresholds are in force)
    doing: str = ""  # what a transition in progress is doing ("configuring: compiling ...")


def camera_status(
    camera: Camera, node: NodeState, now_ns: int, log: RcutilsLogger
) -> DiagnosticStatus:
    """A camera's status now; a change of level or cause is logged."""
    values: dict[str, Any] = {"lifecycle_state": node.lifecycle}
    causes: tuple[str, ...] = ()
    if node.doing:  # each step logged once
        level, message, causes = Level.WARN, node.doing, (node.doing,)
    elif node.lifecycle == "active":
        level, message, causes, health = _active(camera, node.slots, now_ns)
        values |= health
    elif node.failure is not None:
        level, message = Level.ERROR, node.failure
    else:
        level, message = Level.WARN, node.lifecycle
    if node.configured:
        values["threshold"] = camera.threshold
    values |= _gpu_memory(node.device)
    _log_change(camera, level, message, causes, log)
    log.debug(f"{camera.status_name}: " + " ".join(f"{k}={v}" for k, v in values.items()))
    return DiagnosticStatus(
        level=bytes([level]),
        name=camera.status_name,
        message=message,
        hardware_id=camera.hardware_id,
        values=[KeyValue(key=k, value=str(v)) for k, v in values.items()],
    )


def _active(
    camera: Camera, slots: LatestFrames, now_ns: int
) -> tuple[Level, str, tuple[str, ...], dict[str, Any]]:
    """Level, message, causes and values of an active camera."""
    sub = camera.subscription
    health = camera.health.report(None if sub is None else sub.get_publisher_count())
    stamp_ns = camera.last_stamp_ns
    age = math.nan if stamp_ns is None else round((now_ns - stamp_ns) / 1e9, 3)
    values = {
        "frames_in": slots.received[camera.name],
        **health.values,
        "dropped": slots.dropped[camera.name],
        "frame_age_s": age,  # now − the newest frame's header stamp
    }
    level, message, causes = health.level, health.message, health.causes
    issues = camera.geometry_issues
    if issues is not None:  # a frame's metric outputs were computed
        values["geometry"] = ", ".join(issues) or "ok"
    if issues:
        text = "; ".join(issues.values())
        message = text if level == Level.OK else f"{message}; {text}"
        level, causes = max(level, Level.WARN), (*causes, *issues)
    return level, message, causes, values


def _gpu_memory(device: torch.device | None) -> dict[str, float]:
    """PyTorch's allocated and reserved memory on a CUDA device (MiB); {} elsewhere."""
    if device is None or device.type != "cuda":
        return {}
    return {
        "gpu_memory_mb": round(torch.cuda.memory_allocated(device) / 2**20, 1),
        "gpu_memory_reserved_mb": round(torch.cuda.memory_reserved(device) / 2**20, 1),
    }


def _log_change(
    camera: Camera, level: Level, message: str, causes: tuple[str, ...], log: RcutilsLogger
) -> None:
    """Log a new level, or a new cause at the same level (one call site per severity: rclpy's
    rule)."""
    logged = (level, causes)
    if logged == camera.last_logged:
        return
    where = f"camera {camera.name}: " if camera.name else ""
    change = f"/diagnostics {level.name}: {where}{message}"
    if level == Level.OK:
        log.info(change)
    else:
        log.warning(change)
    camera.last_logged = logged


class StatusTicker:
    """Publishes the status from its own thread at once and every `period_s` while the main
    thread runs a long transition; `poke` publishes a changed status at once. A context manager:
    the thread is joined on leaving it."""

    def __init__(self, publish: Callable[[], None], period_s: float) -> None:
        self._publish, self._period_s = publish, period_s
        self._wake, self._done = threading.Event(), threading.Event()
        self._thread = threading.Thread(target=self._run, name="status", daemon=True)

    def __enter__(self) -> StatusTicker:
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._done.set()
        self._wake.set()
        self._thread.join()

    def poke(self) -> None:
        self._wake.set()

    def _run(self) -> None:
        while not self._done.is_set():
            self._publish()
            self._wake.wait(self._period_s)
            self._wake.clear()
