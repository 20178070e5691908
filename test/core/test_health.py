"""The node's health logic (sleeg_ros.health) on a fake clock: no ROS, no threads."""

import ast
import math

import numpy as np
import pytest
from helpers.paths import REPO

from sleeg_ros.health import HealthMonitor, Level, Limits, Timings, percentile

LIMITS = Limits(
    max_input_age_s=1.0, processing_budget_ms=100.0, max_bad_frame_rate=0.2, window_s=5.0
)
FAST = Timings(inference_ms=20.0, processing_ms=30.0, latency_ms=35.0)


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def monitor(clock) -> HealthMonitor:
    return HealthMonitor(LIMITS, clock)


def stream(monitor: HealthMonitor, clock: FakeClock, seconds: float, fps: float = 10.0,
           timings: Timings = FAST, bad_every: int = 0) -> None:  # fmt: skip
    """Frames at `fps` for `seconds`, each processed (every `bad_every`-th one bad)."""
    for i in range(round(seconds * fps)):
        clock.now += 1 / fps
        monitor.frame_arrived()
        if bad_every and i % bad_every == 0:
            monitor.frame_bad()
        else:
            monitor.frame_processed(timings)


def test_error_before_the_first_frame(monitor, clock):
    health = monitor.report()
    assert health.level == Level.ERROR and health.message == "no frame received yet"
    assert math.isnan(health.values["input_age_s"]) and health.values["processed"] == 0
    clock.now += 60
    assert monitor.report().level == Level.ERROR


def test_no_input_names_a_missing_or_silent_publisher(monitor, clock):
    assert monitor.report().message == "no frame received yet"  # publishers unknown
    assert monitor.report().causes == ("no_input",)
    none = monitor.report(publishers=0)
    assert none.message == "no frame received yet; no publisher on the input topic"
    assert none.values["publishers"] == 0 and none.causes == ("no_publisher",)
    assert monitor.report(publishers=1).message == "no frame received yet"  # it may start soon
    clock.now += 1.1  # max_input_age_s: matched, yet nothing came
    silent = monitor.report(publishers=2)
    assert silent.level == Level.ERROR
    assert silent.message.startswith("no frame received yet from 2 matched publishers: ")
    assert "config/fastdds.xml" in silent.message and "reliable_input" in silent.message
    assert silent.causes == ("lost_frames",)
    stream(monitor, clock, 1.0)
    assert monitor.report(publishers=1).message == "ok"
    assert monitor.report(publishers=1).causes == ()
    clock.now += 2.0  # frames came before: a stalled camera, not lost frames
    stale = monitor.report(publishers=1)
    assert stale.message == "no frame for 2.0 s (max_input_age_s 1)"
    gone = monitor.report(publishers=0)
    assert gone.message == "no frame for 2.0 s (max_input_age_s 1); no publisher on the input topic"


def test_ok_while_frames_flow_with_rates_and_percentiles(monitor, clock):
    stream(monitor, clock, 3.0)
    health = monitor.report()
    assert (health.level, health.message) == (Level.OK, "ok")
    v = health.values
    assert (v["processed"], v["bad_frames"]) == (30, 0)
    assert v["fps_in"] == pytest.approx(10.0, abs=0.5) and v["fps_out"] == v["fps_in"]
    assert v["inference_ms_p50"] == 20.0 and v["processing_ms_p95"] == 30.0
    assert v["latency_ms_p50"] == v["latency_ms_p95"] == 35.0 and v["bad_frame_rate"] == 0.0


def test_error_on_stale_input_then_recovery(monitor, clock):
    stream(monitor, clock, 1.0)
    clock.now += 0.9
    assert monitor.report().level == Level.OK
    clock.now += 0.2
    health = monitor.report()
    assert health.level == Level.ERROR
    assert health.message == "no frame for 1.1 s (max_input_age_s 1)"
    assert health.values["input_age_s"] == pytest.approx(1.1)
    stream(monitor, clock, 0.1)
    assert monitor.report().level == Level.OK


def test_warn_on_bad_frame_rate_then_ok_after_the_window(monitor, clock):
    stream(monitor, clock, 2.0, bad_every=10)  # 10 %: under the limit
    assert monitor.report().level == Level.OK
    stream(monitor, clock, 1.0, bad_every=1)  # a burst: 2 + 10 bad of 30 frames in the window
    health = monitor.report()
    assert health.level == Level.WARN and health.values["bad_frame_rate"] == pytest.approx(0.4)
    assert health.message == "40% bad frames over 5 s (max_bad_frame_rate 0.2)"
    assert health.values["bad_frames"] == 12
    stream(monitor, clock, 2.0)  # the burst is still inside the window: 12 of 50
    assert monitor.report().level == Level.WARN
    stream(monitor, clock, 3.5)
    health = monitor.report()
    assert (health.level, health.values["bad_frame_rate"]) == (Level.OK, 0.0)
    assert health.values["bad_frames"] == 12  # totals stay


def test_bad_frames_alone_warn_and_keep_the_input_fresh(monitor, clock):
    stream(monitor, clock, 0.5, bad_every=1)
    health = monitor.report()
    assert health.level == Level.WARN and health.values["bad_frame_rate"] == 1.0


def test_warn_over_the_processing_budget_then_recovery(monitor, clock):
    slow = Timings(inference_ms=140.0, processing_ms=150.0, latency_ms=160.0)
    stream(monitor, clock, 2.0)
    stream(monitor, clock, 0.2, timings=slow)  # 2 of 22: the p95 is slow
    health = monitor.report()
    assert health.level == Level.WARN
    assert health.message.startswith("processing p95 ")
    assert health.message.endswith(" ms over 5 s is above processing_budget_ms 100")
    assert health.values["processing_ms_p50"] == 30.0 and health.values["processing_ms_p95"] > 100
    stream(monitor, clock, 5.5)  # the slow frames leave the window
    assert monitor.report().level == Level.OK


def test_no_budget_and_untimed_frames(clock):
    monitor = HealthMonitor(Limits(1.0, 0.0, 0.2, 5.0), clock)
    stream(monitor, clock, 1.0, timings=Timings(1e6, 1e6, 1e6))
    assert monitor.report().level == Level.OK  # budget 0: off
    monitor = HealthMonitor(LIMITS, clock)
    clock.now += 0.1
    monitor.frame_arrived()
    monitor.frame_processed()  # nobody subscribed: nothing timed
    health = monitor.report()
    assert health.level == Level.OK and math.isnan(health.values["inference_ms_p50"])
    assert health.values["fps_out"] == pytest.approx(10.0)  # 1 frame in 0.1 s since the start


def test_stale_and_bad_input_report_both_at_the_worst_level(monitor, clock):
    stream(monitor, clock, 1.0, bad_every=1)
    clock.now += 2.0
    health = monitor.report()
    assert health.level == Level.ERROR
    assert health.message.startswith("no frame for 2.0 s") and "bad frames" in health.message
    assert health.causes == ("no_input", "bad_frames")


@pytest.mark.parametrize("n", [1, 2, 7, 100])
def test_percentile_matches_numpy(n):
    values = list(np.random.default_rng(n).normal(size=n))
    for q in (0, 50, 95, 100):
        assert percentile(values, q) == pytest.approx(np.percentile(values, q))
    assert math.isnan(percentile([], 50))


def test_the_health_module_does_not_import_rclpy():
    tree = ast.parse((REPO / "sleeg_ros" / "health.py").read_text())
    names = [a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names]
    names += [n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module]
    assert not [m for m in names if m.split(".")[0] in ("rclpy", "sleeg_ros")], names
