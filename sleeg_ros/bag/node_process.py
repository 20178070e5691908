"""The anomaly node a replay starts: its command line (parameters file, -p overrides, cameras,
remaps, namespace), its process in a session of its own, its log and its exit."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

from sleeg_ros.bag.camera import Camera
from sleeg_ros.bag.options import ReplayOptions

NODE_CODE = "import sys; from sleeg_ros.anomaly_node import main; sys.exit(main(sys.argv[1:]))"


class NodeProcess:
    """The anomaly node as a child process of the replay, its output in <out>/node.log."""

    def __init__(self, options: ReplayOptions, cameras: list[Camera]) -> None:
        self.opt = options
        self.cameras = cameras
        self.log = options.out / "node.log"
        self.proc: subprocess.Popen | None = None

    def command(self) -> list[str]:
        """The anomaly node with the params file, -p overrides and remaps of this run (named
        cameras: parameter `cameras`); each camera's image_transport follows its topic's message
        type."""
        args = ["--ros-args"]
        if self.opt.params_file:
            args += ["--params-file", str(self.opt.params_file)]
        params = [f"status_period_s:={self.opt.status_period}", *self.opt.overrides]
        if self.opt.named:
            params.append(f"cameras:=[{', '.join(c.opt.name for c in self.cameras)}]")
        params += [f"{c.opt.param('image_transport')}:={c.transport}" for c in self.cameras]
        for p in params:
            args += ["-p", p]
        for camera in self.cameras:
            args += ["-r", f"{camera.node_input()}:={camera.opt.image_topic}"]
        if self.opt.namespace.strip("/"):
            args += ["-r", f"__ns:={self.opt.namespace}"]
        return [sys.executable, "-c", NODE_CODE, *args]

    def start(self) -> int:
        """Start the node; returns its pid."""
        env = dict(os.environ)
        env.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
        env["PYTHONUNBUFFERED"] = "1"
        with self.log.open("w") as log:
            self.proc = subprocess.Popen(  # its own session: a Ctrl-C here reaches us only
                self.command(), env=env, stdout=log, stderr=subprocess.STDOUT,
                start_new_session=True,
            )  # fmt: skip
        print(f"started anomaly_node (pid {self.proc.pid}), log: {self.log}", flush=True)
        return self.proc.pid

    def stop(self) -> int | None:
        """Stop the node (SIGINT, after 10 s SIGKILL); returns its exit code (None: not
        started)."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode

    def gone(self) -> str | None:
        """Why the node process is no longer there, or None."""
        code = None if self.proc is None else self.proc.poll()
        if code is None:
            return None
        if code < 0:
            return f"the node process was killed by signal {-code}"
        lines = self.log.read_text(errors="replace").strip().splitlines()
        return f"the node process exited with code {code}" + (
            f": {lines[-1][:300]}" if code and lines else ""
        )
