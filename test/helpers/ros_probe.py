"""A real rclpy participant inside the test process: publishes frames, collects node outputs."""

from __future__ import annotations

import itertools
import sys
import time
from collections import defaultdict
from pathlib import Path
from subprocess import PIPE, STDOUT, Popen

import numpy as np
import rclpy
from diagnostic_msgs.msg import DiagnosticStatus
from lifecycle_msgs.msg import Transition
from lifecycle_msgs.srv import ChangeState, GetState
from rcl_interfaces.srv import SetParameters
from rclpy.context import Context
from rclpy.executors import SingleThreadedExecutor
from rclpy.parameter import Parameter
from rclpy.qos import QoSProfile, QoSReliabilityPolicy
from sensor_msgs.msg import CompressedImage, Image

from sleeg_ros.outputs import STATUS_TOPIC, topic_types

from .paths import REPO

_probe_ids = itertools.count()
OUTPUTS = topic_types()  # every node output topic and /diagnostics → message type
DIAGNOSTICS = STATUS_TOPIC
NODE_STATUS = "sleeg_anomaly: /cam/image"  # status name "<node name>: <input topic>" begins so
RESEND_S = 5.0  # an idempotent service request unanswered this long is sent again
SETTLE_S = 0.5  # a request sent once waits this long after its service is ready
RELIABLE = QoSProfile(depth=50, reliability=QoSReliabilityPolicy.RELIABLE)


def start_node(
    env: dict[str, str],
    *params: str,
    remap: str = "image:=/cam/image",
    params_file: Path | None = None,
    remaps: tuple[str, ...] = (),
) -> Popen:
    """The real node executable with config/anomaly.yaml (then `params_file`), `-p name:=value`
    overrides and the `remap` of its input (then `remaps`)."""
    args = ["--ros-args", "--params-file", str(REPO / "config" / "anomaly.yaml"), "-r", remap]
    for rule in remaps:
        args += ["-r", rule]
    if params_file is not None:
        args += ["--params-file", str(params_file)]
    for p in params:
        args += ["-p", p]
    code = "import sys; from sleeg_ros.anomaly_node import main; sys.exit(main(sys.argv[1:]))"
    return Popen(
        [sys.executable, "-c", code, *args],
        env=env,
        stdout=PIPE,
        stderr=STDOUT,
        text=True,
        start_new_session=True,
    )


def startup_failure(env: dict[str, str], *params: str) -> str:
    """Start the node expecting it to stop at start-up: its output, once the exit code is 1 and
    no traceback was printed."""
    proc = start_node(env, *params)
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 1, out
    assert "Traceback" not in out, out
    return out


class Probe:
    """Publisher of /cam/image(/compressed) and subscriber of every output, in its own context."""

    def __init__(
        self, outputs: tuple[str, ...] = tuple(OUTPUTS), domain_id: int | None = None
    ) -> None:
        self.context = Context()
        rclpy.init(context=self.context, domain_id=domain_id)
        name = f"sleeg_test_probe_{next(_probe_ids)}"
        self.node = rclpy.create_node(name, context=self.context)
        self.executor = SingleThreadedExecutor(context=self.context)
        self.executor.add_node(self.node)
        self.image_pub = self.node.create_publisher(Image, "/cam/image", RELIABLE)
        self.jpeg_pub = self.node.create_publisher(
            CompressedImage, "/cam/image/compressed", RELIABLE
        )
        self.got: dict[str, list] = defaultdict(list)
        self.subs = [
            self.node.create_subscription(
                OUTPUTS[topic], topic, lambda m, t=topic: self.got[t].append(m), RELIABLE
            )
            for topic in outputs
        ]

    def spin(self, seconds: float) -> None:
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            self.executor.spin_once(timeout_sec=0.02)

    def wait_for(self, predicate, timeout: float = 60.0) -> bool:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if predicate():
                return True
            self.executor.spin_once(timeout_sec=0.05)
        return False

    def publish_until(self, pub, msg, predicate, timeout: float = 60.0, every: float = 1.0) -> bool:
        """Publish `msg` every `every` s until `predicate()` (a best-effort input may drop the
        first frames right after discovery, as a camera stream would)."""
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            pub.publish(msg)
            if self.wait_for(predicate, min(every, end - time.monotonic())):
                return True
        return False

    def stamped(self, topic: str, sec: int) -> list:
        """Messages received on `topic` whose header stamp has this `sec`."""
        return [m for m in self.got[topic] if m.header.stamp.sec == sec]

    def wait_for_node(self, timeout: float = 60.0, compressed: bool = False) -> None:
        """Until the node subscribes to the input (/cam/image, or /cam/image/compressed) and
        publishes to every probe subscription."""
        pub = self.jpeg_pub if compressed else self.image_pub

        def matched() -> bool:
            inputs = pub.get_subscription_count() > 0
            return inputs and all(s.get_publisher_count() > 0 for s in self.subs)

        assert self.wait_for(matched, timeout), "the node never matched the probe's topics"

    def image(self, rgb: np.ndarray, stamp: tuple[int, int], encoding: str = "rgb8") -> Image:
        msg = Image(height=rgb.shape[0], width=rgb.shape[1], encoding=encoding)
        msg.header.stamp.sec, msg.header.stamp.nanosec = stamp
        msg.header.frame_id = "cam_front"
        msg.step = rgb.strides[0] if rgb.size else 0
        msg.data = np.ascontiguousarray(rgb).tobytes()
        return msg

    def call(
        self,
        kind: type,
        service: str,
        request,
        timeout: float = 10.0,
        resend_s: float | None = None,
    ):
        """Call `service` (waiting for it) and return the response. Over DDS a request or its
        answer can be lost while a new client's endpoints are still being matched (seen once in
        CI): an idempotent request is sent again every `resend_s` seconds; one that must go
        once waits SETTLE_S after the service is ready before it is sent."""
        client = self.node.create_client(kind, service)
        try:
            assert self.wait_for(client.service_is_ready, timeout), f"no service {service}"
            if resend_s is None:
                self.spin(SETTLE_S)
            futures = [client.call_async(request)]
            deadline = time.monotonic() + timeout
            while True:
                wait = deadline - time.monotonic()
                if resend_s is not None:
                    wait = min(wait, resend_s)
                if self.wait_for(lambda: any(f.done() for f in futures), max(wait, 0.0)):
                    return next(f for f in futures if f.done()).result()
                assert time.monotonic() < deadline, f"no answer from {service}"
                futures.append(client.call_async(request))
        finally:
            self.node.destroy_client(client)

    def set_parameters(self, **values) -> list[bool]:
        request = SetParameters.Request(
            parameters=[Parameter(k, value=v).to_parameter_msg() for k, v in values.items()]
        )
        response = self.call(
            SetParameters, "/sleeg_anomaly/set_parameters", request, resend_s=RESEND_S
        )
        return [r.successful for r in response.results]

    def change_state(self, transition: str, timeout: float = 60.0) -> bool:
        """Ask the node for a lifecycle transition by label (configure, activate, deactivate,
        cleanup, shutdown); whether it succeeded."""
        request = ChangeState.Request(transition=Transition(label=transition))
        return self.call(ChangeState, "/sleeg_anomaly/change_state", request, timeout).success

    def lifecycle_state(self, timeout: float = 10.0) -> str:
        """The node's lifecycle state label (unconfigured, inactive, active, finalized)."""
        request = GetState.Request()
        response = self.call(GetState, "/sleeg_anomaly/get_state", request, timeout, RESEND_S)
        return response.current_state.label

    def statuses(self) -> list[DiagnosticStatus]:
        """The node's statuses received on /diagnostics so far (other publishers' left out)."""
        got = self.got[DIAGNOSTICS]
        return [s for msg in got for s in msg.status if s.name.startswith(NODE_STATUS)]

    def latest_status(self) -> dict[str, str]:
        """The newest status values received so far (empty before the first)."""
        statuses = self.statuses()
        return {kv.key: kv.value for kv in statuses[-1].values} if statuses else {}

    def next_status(self, timeout: float = 30.0) -> DiagnosticStatus:
        """The node's next status on /diagnostics (waits for it)."""
        n = len(self.statuses())
        assert self.wait_for(lambda: len(self.statuses()) > n, timeout), "no status published"
        return self.statuses()[-1]

    def status(self) -> dict[str, str]:
        """The next status values (waits for them)."""
        return {kv.key: kv.value for kv in self.next_status().values}

    def close(self) -> None:
        self.executor.shutdown()
        self.node.destroy_node()
        rclpy.shutdown(context=self.context)
