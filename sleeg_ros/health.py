"""The anomaly node's health: windowed counters, percentiles and the diagnostic level.

Pure Python (no rclpy): the node reports frame events and publishes `report()` on /diagnostics
(frames received and dropped are the frame slot's counts). Time comes from an injected monotonic
clock (seconds), so tests drive it with a fake one.
"""

from __future__ import annotations

import math
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from enum import IntEnum


class Level(IntEnum):
    """diagnostic_msgs/DiagnosticStatus levels."""

    OK = 0
    WARN = 1
    ERROR = 2


LOST_FRAMES = (
    "best-effort frames larger than a publisher's shared-memory segment are lost unless it runs "
    "with config/fastdds.xml (or publishes reliable and reliable_input is true)"
)


@dataclass(frozen=True)
class Limits:
    """Thresholds of the level decision."""

    max_input_age_s: float  # ERROR when no frame arrived for this long (and before the first)
    processing_budget_ms: float  # WARN when p95 processing time is above (0: no budget)
    max_bad_frame_rate: float  # WARN when bad frames / frames taken is above this fraction
    window_s: float  # rates, percentiles and the bad-frame rate cover this window


@dataclass(frozen=True)
class Timings:
    """One processed frame's times (ms): inference, inference thread total, receipt → publish."""

    inference_ms: float
    processing_ms: float
    latency_ms: float


@dataclass(frozen=True)
class Health:
    level: Level
    message: str
    values: dict[str, float | int]
    causes: tuple[str, ...] = ()  # what the message names, as stable keys (no numbers)


def percentile(values: list[float], q: float) -> float:
    """The `q`-th percentile (0-100), linearly interpolated as numpy's default; NaN if empty."""
    if not values:
        return math.nan
    ordered = sorted(values)
    pos = (len(ordered) - 1) * q / 100
    lo = math.floor(pos)
    hi = min(lo + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (pos - lo)


class HealthMonitor:
    """Frame events in, `Health` out. Thread-safe: frames arrive on the executor thread and
    results come from the inference thread."""

    def __init__(self, limits: Limits, clock: Callable[[], float] = time.monotonic) -> None:
        self.limits = limits
        self._clock = clock
        self._lock = threading.Lock()
        self._start = clock()
        self._last_arrival: float | None = None
        self._arrivals: deque[float] = deque()
        self._processed: deque[float] = deque()
        self._bad: deque[float] = deque()
        self._timings: deque[tuple[float, Timings]] = deque()
        self._totals = {"processed": 0, "bad_frames": 0}

    def frame_arrived(self) -> None:
        """A frame came in (whether or not it is processed later)."""
        with self._lock:
            now = self._clock()
            self._last_arrival = now
            self._arrivals.append(now)
            self._trim(now)

    def frame_processed(self, timings: Timings | None = None) -> None:
        """A frame was processed; `timings` None when nothing was computed (no subscribers)."""
        with self._lock:
            now = self._clock()
            self._processed.append(now)
            if timings is not None:
                self._timings.append((now, timings))
            self._totals["processed"] += 1
            self._trim(now)

    def frame_bad(self) -> None:
        """A frame could not be processed (malformed, too large, or it failed)."""
        with self._lock:
            now = self._clock()
            self._bad.append(now)
            self._totals["bad_frames"] += 1
            self._trim(now)

    def _trim(self, now: float) -> None:
        start = now - self.limits.window_s
        for events in (self._arrivals, self._processed, self._bad):
            while events and events[0] <= start:
                events.popleft()
        while self._timings and self._timings[0][0] <= start:
            self._timings.popleft()

    def report(self, publishers: int | None = None) -> Health:
        """Level, message and values now: totals, window rates and percentiles; `publishers`,
        the publishers matched on the input (when known), names the likely cause of no input."""
        with self._lock:
            now = self._clock()
            self._trim(now)
            span = min(self.limits.window_s, now - self._start)
            taken = len(self._processed) + len(self._bad)
            times = [t for _, t in self._timings]
            values: dict[str, float | int] = {
                **self._totals,
                "fps_in": len(self._arrivals) / span if span > 0 else 0.0,
                "fps_out": len(self._processed) / span if span > 0 else 0.0,
                "bad_frame_rate": len(self._bad) / taken if taken else 0.0,
                "input_age_s": math.nan if self._last_arrival is None else now - self._last_arrival,
            }
        for name in ("inference", "processing", "latency"):
            ms = [getattr(t, f"{name}_ms") for t in times]
            values[f"{name}_ms_p50"] = percentile(ms, 50)
            values[f"{name}_ms_p95"] = percentile(ms, 95)
        if publishers is not None:
            values["publishers"] = publishers
        level, message, causes = self._decide(values, waited=now - self._start)
        rounded = {k: round(v, 3) if isinstance(v, float) else v for k, v in values.items()}
        return Health(level, message, rounded, causes)

    def _decide(
        self, values: dict[str, float | int], waited: float
    ) -> tuple[Level, str, tuple[str, ...]]:
        """The worst level of the limits crossed, every crossing in words, and their causes. A
        publisher that has matched and sent nothing for max_input_age_s since the start
        (`waited`) is named."""
        lim = self.limits
        problems: list[tuple[Level, str, str]] = []  # level, cause, text
        age = values["input_age_s"]
        publishers = values.get("publishers")
        if math.isnan(age) or age > lim.max_input_age_s:
            if math.isnan(age):
                text = "no frame received yet"
            else:
                text = f"no frame for {age:.1f} s (max_input_age_s {lim.max_input_age_s:g})"
            cause = "no_input"
            if publishers == 0:
                cause, text = "no_publisher", text + "; no publisher on the input topic"
            elif publishers and math.isnan(age) and waited > lim.max_input_age_s:
                plural = "s" * (publishers > 1)
                cause = "lost_frames"
                text += f" from {publishers} matched publisher{plural}: {LOST_FRAMES}"
            problems.append((Level.ERROR, cause, text))
        if values["bad_frame_rate"] > lim.max_bad_frame_rate:
            problems.append(
                (
                    Level.WARN,
                    "bad_frames",
                    f"{values['bad_frame_rate']:.0%} bad frames over {lim.window_s:g} s "
                    f"(max_bad_frame_rate {lim.max_bad_frame_rate:g})",
                )
            )
        p95 = values["processing_ms_p95"]
        if lim.processing_budget_ms > 0 and p95 > lim.processing_budget_ms:
            problems.append(
                (
                    Level.WARN,
                    "slow",
                    f"processing p95 {p95:.0f} ms over {lim.window_s:g} s is above "
                    f"processing_budget_ms {lim.processing_budget_ms:g}",
                )
            )
        if not problems:
            return Level.OK, "ok", ()
        level = max(level for level, _, _ in problems)
        return level, "; ".join(text for _, _, text in problems), tuple(c for _, c, _ in problems)
