"""The node process's start-up: SIGINT/SIGTERM while PyTorch loads end it quietly, and
/diagnostics says what a slow configure is doing, seen by a DDS subscriber outside the node."""

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from subprocess import PIPE, STDOUT, Popen

import pytest
from helpers.paths import REPO

pytest.importorskip("rclpy", reason="rclpy not installed: run scripts/setup")
from helpers.node import node_params, stop
from helpers.ros_probe import Probe, start_node
from rclpy.logging import get_logger
from sensor_msgs.msg import Image

from sleeg_ros.cameras import Camera
from sleeg_ros.diagnostics import NodeState, StatusTicker, camera_status
from sleeg_ros.health import Level

EXECUTABLE = REPO / "scripts" / "anomaly_node"  # what `ros2 run` and `ros2 launch` start
COMPILING = "configuring: compiling the model (compile_mode default)"


def start_executable(env: dict[str, str], tiny_model) -> Popen:
    """The node's executable with the tiny model, in a session of its own, output piped."""
    args = [a for p in node_params(tiny_model) for a in ("-p", p)]
    return Popen(
        [sys.executable, str(EXECUTABLE), "--ros-args", *args],
        env=env,
        stdout=PIPE,
        stderr=STDOUT,
        text=True,
        start_new_session=True,
    )


def loading_pytorch(pid: int) -> bool:
    """A PyTorch library is mapped into process `pid`: `import torch` is under way (it takes
    seconds more)."""
    return "/libtorch" in Path(f"/proc/{pid}/maps").read_text()


@pytest.mark.skipif(not Path("/proc/self/maps").exists(), reason="needs Linux /proc maps")
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_a_stop_while_pytorch_loads_exits_quietly_with_code_0(ros_env, tiny_model, sig):
    proc = start_executable(ros_env, tiny_model)
    deadline = time.monotonic() + 120
    while not loading_pytorch(proc.pid):
        assert proc.poll() is None, proc.communicate()[0]
        assert time.monotonic() < deadline, "PyTorch never started loading"
        time.sleep(0.005)
    proc.send_signal(sig)
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 0, out
    assert "Traceback" not in out and "KeyboardInterrupt" not in out, out


def test_a_second_stop_while_start_up_unwinds_exits_at_once(ros_env):
    """The first SIGINT while the model loads aborts it (KeyboardInterrupt); while that unwinds
    (a torch.compile can take longer than `ros2 launch` waits) a second signal, as its SIGTERM,
    ends the process at once with code 0."""
    code = "\n".join(
        [
            "import os, signal, time",
            "from sleeg_ros.anomaly_node import StopRequest",
            "stop = StopRequest()",
            "signal.signal(signal.SIGINT, stop)",
            "signal.signal(signal.SIGTERM, stop)",
            "try:",
            "    os.kill(os.getpid(), signal.SIGINT)",
            "    time.sleep(60)",
            "except KeyboardInterrupt:",
            "    print('aborted', flush=True)",
            "os.kill(os.getpid(), signal.SIGTERM)",
            "time.sleep(60)",
            "print('not stopped', flush=True)",
        ]
    )
    done = subprocess.run(
        [sys.executable, "-c", code], env=ros_env, capture_output=True, text=True, timeout=120
    )
    assert (done.returncode, done.stdout) == (0, "aborted\n"), done


def test_a_stopped_node_ends_without_the_interpreters_teardown(ros_env, tiny_model, tmp_path):
    """Once the node is taken down the process ends at once, its log complete: the interpreter's
    own teardown (atexit handlers and all), which after a torch.compile outlasted the 5 s that
    `ros2 launch` waits before SIGTERM, is skipped. An atexit handler shows whether it ran."""
    site = tmp_path / "site"
    site.mkdir()
    (site / "sitecustomize.py").write_text(
        "import atexit\natexit.register(print, 'interpreter teardown', flush=True)\n"
    )
    env = {**ros_env, "PYTHONPATH": os.pathsep.join([str(site), ros_env.get("PYTHONPATH", "")])}
    proc = start_executable(env, tiny_model)
    log = []
    for line in proc.stdout:
        log.append(line)
        if "activate: now active" in line:
            break
    assert proc.poll() is None, "".join(log)
    rc, out = stop(proc, timeout=60)
    out = "".join(log) + out
    assert rc == 0 and "shutdown: now finalized" in out, out
    assert "interpreter teardown" not in out, out


@pytest.mark.compile
def test_diagnostics_say_what_a_slow_configure_is_doing(ros_env, tiny_model, tmp_path):
    """compile_mode on the CPU: configure compiles for tens of seconds (an empty compile cache,
    so it really compiles); meanwhile the status says so, again every status period."""
    env = {**ros_env, "TORCHINDUCTOR_CACHE_DIR": str(tmp_path / "inductor")}
    probe = Probe(outputs=("/diagnostics",))
    proc = start_node(env, *node_params(tiny_model, "compile_mode:=default", "tta:=none"))

    def compiling() -> list:
        return [s for s in probe.statuses() if s.message.startswith(COMPILING)]

    try:
        seen = probe.wait_for(lambda: len(compiling()) >= 2, timeout=300)
        assert seen, [s.message for s in probe.statuses()]
        assert all(s.level == bytes([Level.WARN]) for s in compiling())
        assert {v.value for s in compiling() for v in s.values if v.key == "lifecycle_state"} == {
            "configuring"
        }
        active = lambda: probe.latest_status().get("lifecycle_state") == "active"  # noqa: E731
        assert probe.wait_for(active, timeout=300), [s.message for s in probe.statuses()]
    finally:
        probe.close()
        rc, out = stop(proc)
    assert rc == 0, out
    assert "/diagnostics WARN: configuring: " in out, out  # the first such status is logged


def test_a_transition_in_progress_is_a_warning_saying_what_it_does():
    camera = Camera("", "raw", Image, "/cam/image", "n: /cam/image", "/cam/image")
    state = NodeState("configuring", None, None, None, False, doing="configuring: loading")
    status = camera_status(camera, state, 0, get_logger("test_node_startup"))
    assert (status.level, status.message) == (bytes([Level.WARN]), "configuring: loading")
    assert [(v.key, v.value) for v in status.values] == [("lifecycle_state", "configuring")]
    state.lifecycle, state.doing = "unconfigured", ""
    assert camera_status(camera, state, 0, get_logger("test_node_startup")).message == (
        "unconfigured"
    )


def test_the_status_ticker_publishes_at_once_when_poked_and_never_after_it_stops():
    calls, published = [], threading.Event()

    def publish() -> None:
        calls.append(threading.current_thread().name)
        published.set()

    with StatusTicker(publish, period_s=3600.0) as ticker:
        assert published.wait(30), "nothing published on start"
        published.clear()
        ticker.poke()
        assert published.wait(30), "a poke published nothing"
    assert calls == ["status", "status"]
    time.sleep(0.1)
    assert len(calls) == 2


def test_the_status_ticker_publishes_every_period():
    calls = []
    with StatusTicker(lambda: calls.append(1), period_s=0.01):
        deadline = time.monotonic() + 30
        while len(calls) < 5:
            assert time.monotonic() < deadline, "fewer than 5 statuses"
            time.sleep(0.01)
