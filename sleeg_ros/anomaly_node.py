"""`anomaly_node` (node `sleeg_anomaly`): camera frames in, segmentation and anomaly maps out.

A managed (lifecycle) node and a thin shell over sleeg_core: configure loads the model
(sleeg_ros.model_setup) and creates the output publishers (sleeg_ros.outputs), activate subscribes
to the inputs (`image` or `<image>/compressed` by parameter `image_transport`) and starts the
worker threads (sleeg_ros.scheduler), deactivate undoes that (and moves the model off the GPU),
cleanup and shutdown release everything; `autostart` (default) runs configure and activate at
start-up.

One node serves one camera (default: `image` in, outputs unprefixed) or the N cameras named by
parameter `cameras` with one model (sleeg_ros.cameras): camera c reads `c/image` and publishes
`c/anomaly/score` etc., with its own `c.*` parameters (threshold, image_transport, ignore_mask,
roi_polygon, camera_pose). Each camera also subscribes its `camera_info` (`c/camera_info`) and,
with `use_depth`, its aligned `depth` image: with its pose (`camera_pose`) they give the obstacles
their metres in `output_frame` and the 3D outputs (sleeg_ros.camera_geometry). A subscription
callback only drops the message into its camera's latest-frame slot; each round the inference
thread takes the newest frame of every camera that has one, decodes them, runs `AnomalySegmenter`
once per group of equal frame sizes (one batch) and hands the round to the publishing thread, which
post-processes and publishes every output with its input's header (sleeg_ros.stages) while the next
round runs (at most one round waits between them). Outputs nobody subscribes to are not computed.
Health (one status per camera, sleeg_ros.diagnostics) goes to /diagnostics in every state; every
topic's QoS may be changed by `qos_overrides` parameters (sleeg_ros.endpoints). SIGINT/SIGTERM run
the shutdown transition (the worker threads joined) before the node and its context go.
"""

from __future__ import annotations

import functools
import gc
import math
import os
import signal
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import FrameType
from typing import Any

import rclpy
import torch
from diagnostic_msgs.msg import DiagnosticArray
from rcl_interfaces.msg import SetParametersResult
from rclpy.executors import SingleThreadedExecutor
from rclpy.lifecycle import LifecycleNode, LifecycleState, TransitionCallbackReturn
from rclpy.parameter import Parameter
from rclpy.qos import QoSProfile
from rclpy.signals import SignalHandlerOptions
from sensor_msgs.msg import CameraInfo, CompressedImage, Image
from std_msgs.msg import Header

from sleeg_core.data.geometry import RESIZE_MODES
from sleeg_ros import endpoints
from sleeg_ros.camera_geometry import CameraInputs, ParameterPoses
from sleeg_ros.cameras import (
    Camera,
    judged_area,
    node_cameras,
    set_thresholds,
    threshold_params,
)
from sleeg_ros.diagnostics import DOING, NodeState, StatusTicker, camera_status
from sleeg_ros.endpoints import input_qos
from sleeg_ros.health import HealthMonitor, Limits
from sleeg_ros.model_setup import LoadedModel, compile_model, load_model, warm_up
from sleeg_ros.node_entry import STOP_SIGNALS, STOPPED
from sleeg_ros.outputs import OUTPUTS, STATUS_TOPIC, STATUS_TYPE
from sleeg_ros.parameters import IMAGE_TRANSPORTS, PARAMS, StartupError
from sleeg_ros.scheduler import Scheduler
from sleeg_ros.stages import NodeStages

COMPILING = "minutes on a CPU, frames wait until it is done"
SPIN_POLL_S = 0.1  # how long a stop request may wait for the executor
SUCCESS = TransitionCallbackReturn.SUCCESS


class AnomalyNode(LifecycleNode):
    """The managed node: see the module docstring for what each transition does."""

    def __init__(self) -> None:
        super().__init__("sleeg_anomaly")
        for p in PARAMS:
            self.declare_parameter(p.name, p.default, p.descriptor())
        self.cameras: list[Camera] = node_cameras(self, self.param)
        self.limits = Limits(
            max_input_age_s=self.param("max_input_age_s"),
            processing_budget_ms=self.param("processing_budget_ms"),
            max_bad_frame_rate=self.param("max_bad_frame_rate"),
            window_s=self.param("health_window_s"),
        )
        self.state = "unconfigured"  # the lifecycle state, as each transition leaves it
        self.failure: str | None = None  # the last failed transition, until one succeeds
        self.transition = ""  # the transition in progress ("configuring"), for /diagnostics
        self.doing = ""  # what it is doing ("configuring: compiling the model ...")
        self.ticker: StatusTicker | None = None  # publishes the status while a transition runs
        self.loaded: LoadedModel | None = None  # configured (configure → cleanup)
        self.stages: NodeStages | None = None
        self.max_batch = 1  # frames per forward pass (configure decides)
        self.offloaded = False  # deactivate moved the model off its CUDA device
        self.cpu_cores = torch.get_num_threads()  # PyTorch's default, before configure sets it
        self.scheduler: Scheduler | None = None  # active (activate → deactivate)
        for camera in self.cameras:
            camera.health = HealthMonitor(self.limits)
            camera.inputs = CameraInputs()  # kept from construction: the last camera_info
        self.add_on_set_parameters_callback(self._on_set_parameters)
        self.diagnostics_pub = endpoints.publisher(self, STATUS_TYPE, STATUS_TOPIC, managed=False)
        self.create_timer(self.param("status_period_s"), self._publish_status)

    def param(self, name: str) -> Any:
        return self.get_parameter(name).value

    # ------------------------------------------------------------------ lifecycle
    def on_configure(self, state: LifecycleState) -> TransitionCallbackReturn:
        """Check the start-up parameters, load the model (weights, head, device, compile) and
        create the output publishers, disabled until activate."""
        return self._transition("configure", self._configure, "inactive", self._cleanup)

    def on_activate(self, state: LifecycleState) -> TransitionCallbackReturn:
        """Outputs on, then the input subscriptions and the worker threads."""
        return self._transition(
            "activate", lambda: self._activate(state), "active", lambda: self._deactivate(state)
        )

    def on_deactivate(self, state: LifecycleState) -> TransitionCallbackReturn:
        """Inputs off, worker threads joined, outputs off, the model off the GPU."""
        return self._transition("deactivate", lambda: self._deactivate(state), "inactive")

    def on_cleanup(self, state: LifecycleState) -> TransitionCallbackReturn:
        """The model and the output publishers released."""
        return self._transition("cleanup", self._cleanup, "unconfigured")

    def on_shutdown(self, state: LifecycleState) -> TransitionCallbackReturn:
        """Everything released, from any state."""
        return self._transition("shutdown", lambda: self._release(state), "finalized")

    def on_error(self, state: LifecycleState) -> TransitionCallbackReturn:
        """After a transition raised: everything released, back to unconfigured."""
        self._release(state)
        self.state = "unconfigured"
        return SUCCESS

    def _transition(
        self,
        name: str,
        work: Callable[[], None],
        goal: str,
        undo: Callable[[], None] | None = None,
    ) -> TransitionCallbackReturn:
        """Run a transition's `work`: SUCCESS into state `goal`; else it is logged, `undo` runs
        and the result is FAILURE for a StartupError (the message names the parameter), ERROR
        for anything else (rclpy then calls on_error)."""
        try:
            with self._reporting(name):
                work()
        except Exception as err:
            known = isinstance(err, StartupError)
            self.failure = f"{name} failed: " + (
                str(err) if known else f"{err.__class__.__name__}: {err}"
            )
            self.get_logger().error(self.failure)
            if undo is not None:
                undo()
            return TransitionCallbackReturn.FAILURE if known else TransitionCallbackReturn.ERROR
        self.state, self.failure = goal, None
        self.get_logger().info(f"{name}: now {goal}")
        return SUCCESS

    @contextmanager
    def _reporting(self, name: str) -> Iterator[None]:
        """While transition `name` runs (the executor, whose timer publishes the status, waits),
        a thread publishes what it is doing at once and every status period."""
        self.transition = self.doing = DOING[name]
        try:
            with StatusTicker(self._publish_status, self.param("status_period_s")) as ticker:
                self.ticker = ticker
                yield
        finally:
            self.transition, self.doing, self.ticker = "", "", None

    def _step(self, doing: str) -> None:
        """What the transition in progress does now: on /diagnostics at once."""
        self.doing = doing
        if self.ticker is not None:
            self.ticker.poke()

    def finish(self) -> None:
        """The shutdown transition, unless finalized already: the worker threads are joined and
        everything released before the node and its context go."""
        if self.state != "finalized":
            self.trigger_shutdown()

    def _configure(self) -> None:
        for camera in self.cameras:
            if camera.transport not in IMAGE_TRANSPORTS:
                raise StartupError(
                    f"parameter '{camera.param('image_transport')}': '{camera.transport}' is not "
                    f"one of {', '.join(IMAGE_TRANSPORTS)}"
                )
        log = self.get_logger()
        self._step(
            f"configuring: loading the model (weights {self.param('weights')}, head "
            f"{self.param('head') or 'none'}, device {self.param('device')})"
        )
        self.loaded = loaded = load_model(self.param, log, len(self.cameras), self.cpu_cores)
        # auto: a round's frames of one size in one batch on CUDA; one at a time on the CPU,
        # where a batch of 4 1024×512 frames took 1.5× as long as 4 single passes (memory-bound)
        auto = len(self.cameras) if loaded.device.type == "cuda" else 1
        self.max_batch = self.param("max_batch") or auto
        resize_mode = self.param("resize_mode")
        if resize_mode not in RESIZE_MODES:
            raise StartupError(
                f"parameter 'resize_mode': '{resize_mode}' is not one of {', '.join(RESIZE_MODES)}"
            )
        for camera in self.cameras:
            camera.judged = judged_area(camera, self.param, loaded.size, resize_mode)
        self._set_thresholds()
        if mode := self.param("compile_mode"):
            self._step(f"configuring: compiling the model (compile_mode {mode}): {COMPILING}")
        compile_model(loaded, mode, self.param("score"), log)
        for camera in self.cameras:
            for out in OUTPUTS:
                topic = camera.topic(out.topic)
                camera.pubs[out.name] = endpoints.publisher(self, out.msg_type, topic, True)
        poses = ParameterPoses.from_params(
            [(c.name, c.in_force(self.param, "camera_pose")) for c in self.cameras], self.param
        )
        self.stages = NodeStages(self.cameras, loaded, self.param, log, resize_mode, poses)
        inputs = "; ".join(
            f"threshold {c.threshold:.4g}, input {c.transport} on {c.input_topic}"
            for c in self.cameras
        )
        log.info(
            f"ready: {loaded.name} on {loaded.device}, score '{self.param('score')}', "
            f"inference size {loaded.size or 'native'}, {len(self.cameras)} camera(s): {inputs}"
        )

    def _activate(self, state: LifecycleState) -> None:
        if self.offloaded:  # deactivated on CUDA: back to the device (and compiled again)
            self.loaded.model.to(self.loaded.device)
            self.offloaded = False
            if mode := self.param("compile_mode"):
                self._step(f"activating: compiling the model again (compile_mode {mode})")
                warm_up(self.loaded, mode, self.param("score"), self.get_logger())
        super().on_activate(state)  # the output publishers publish from now on
        names = [c.name for c in self.cameras]
        self.scheduler = Scheduler(names, self.stages, self.loaded.n_inference, self.max_batch)
        qos = input_qos(self.param("reliable_input"))
        for camera in self.cameras:
            camera.health, camera.last_stamp_ns = HealthMonitor(self.limits), None
            on_frame = functools.partial(self._on_frame, camera)
            camera.subscription = endpoints.subscription(
                self, camera.input_kind, camera.input_topic, on_frame, qos
            )
            self._subscribe_geometry(camera, qos)
        self.scheduler.start()

    def _subscribe_geometry(self, camera: Camera, qos: QoSProfile) -> None:
        """The camera's camera_info (the last one is kept from earlier activations) and, with
        use_depth, its depth images (the newest few kept for stamp matching)."""
        camera.geometry_issues, camera.geometry_logged = None, set()
        inputs = camera.inputs
        inputs.forget_depth()
        subs = [endpoints.subscription(self, CameraInfo, camera.info_topic, inputs.on_info, qos)]
        if self.param("use_depth"):
            subs.append(
                endpoints.subscription(self, Image, camera.depth_topic, inputs.on_depth, qos)
            )
        camera.geometry_subs = subs

    def _deactivate(self, state: LifecycleState) -> None:
        """Stop what activate started (whatever part of it exists); on CUDA the model moves to
        the CPU and the compiled graphs and PyTorch's cached blocks are freed."""
        for camera in self.cameras:
            if camera.subscription is not None:
                self.destroy_subscription(camera.subscription)
                camera.subscription = None
            for sub in camera.geometry_subs:
                self.destroy_subscription(sub)
            camera.geometry_subs = []
        if self.scheduler is not None:  # its threads finish their frames: nothing publishes after
            self.scheduler.stop()
            self.scheduler = None
        super().on_deactivate(state)  # the output publishers stop publishing
        device = self.loaded.device if self.loaded is not None else None
        if device is not None and device.type == "cuda" and not self.offloaded:
            self.loaded.model.to("cpu")
            self.offloaded = True
            self._free_device_memory()

    def _cleanup(self) -> None:
        """Release what configure acquired (whatever part of it exists)."""
        for camera in self.cameras:
            for pub in camera.pubs.values():
                self.destroy_lifecycle_publisher(pub)
            camera.pubs, camera.judged = {}, None
        self.stages = None
        self._free_device_memory()
        self.loaded, self.offloaded = None, False

    def _release(self, state: LifecycleState) -> None:
        """Everything, from any state."""
        self._deactivate(state)
        self._cleanup()

    def _free_device_memory(self) -> None:
        """Drop the compiled graphs (and their CUDA graph pools) and, on CUDA, PyTorch's cached
        blocks that no tensor uses any more."""
        if self.param("compile_mode"):
            torch.compiler.reset()
        if self.loaded is not None and self.loaded.device.type == "cuda":
            gc.collect()
            torch.cuda.empty_cache()

    # ------------------------------------------------------------------ parameters
    def _set_thresholds(self, changed: dict[str, float] | None = None) -> None:
        """Each camera's threshold in force; `changed` holds parameter values being set (not
        yet readable)."""
        value = {**{n: self.param(n) for n in threshold_params(self.cameras)}, **(changed or {})}
        head = self.loaded.head_threshold if self.loaded is not None else math.nan
        set_thresholds(self.cameras, value, head)

    def _on_set_parameters(self, params: list[Parameter]) -> SetParametersResult:
        names = threshold_params(self.cameras)
        changed = {p.name: float(p.value) for p in params if p.name in names}
        if any(math.isinf(v) for v in changed.values()):
            return SetParametersResult(successful=False, reason="threshold must be finite")
        if changed:
            self._set_thresholds(changed)
        return SetParametersResult(successful=True)

    # ------------------------------------------------------------------ callbacks
    def _on_frame(self, camera: Camera, msg: Image | CompressedImage) -> None:
        self.scheduler.put(camera.name, msg)
        camera.health.frame_arrived()
        camera.last_stamp_ns = msg.header.stamp.sec * 10**9 + msg.header.stamp.nanosec

    def _publish_status(self) -> None:
        """One status per camera on /diagnostics (sleeg_ros.diagnostics), in every state."""
        now = self.get_clock().now()
        node = NodeState(
            lifecycle=self.transition or self.state,
            failure=self.failure,
            slots=self.scheduler.slots if self.scheduler is not None else None,
            device=self.loaded.device if self.loaded is not None else None,
            configured=self.loaded is not None,
            doing=self.doing,
        )
        log = self.get_logger()
        statuses = [camera_status(c, node, now.nanoseconds, log) for c in self.cameras]
        header = Header(stamp=now.to_msg())
        self.diagnostics_pub.publish(DiagnosticArray(header=header, status=statuses))


class StopRequest:
    """SIGINT/SIGTERM handler in place of rclpy's, which invalidates the context at once, under
    publishing worker threads: while the model loads at autostart a signal aborts it
    (KeyboardInterrupt) and a second one, no worker thread running yet, exits at once (unwinding
    a torch.compile can outlast `ros2 launch`'s patience); once the node spins (or activates) it
    only asks the spin loop to end (after a transition in progress), and `main` takes things down
    in order."""

    def __init__(self) -> None:
        self.running = False
        self.requested = False

    def __call__(self, _signum: int, _frame: FrameType | None) -> None:
        if self.running:
            self.requested = True
        elif self.requested:
            os._exit(STOPPED)
        else:
            self.requested = True
            raise KeyboardInterrupt


def main(args: list[str] | None = None) -> int:
    stop = StopRequest()
    for sig in STOP_SIGNALS:
        signal.signal(sig, stop)
    log = rclpy.logging.get_logger("sleeg_anomaly")
    try:
        with rclpy.init(args=args, signal_handler_options=SignalHandlerOptions.NO):
            try:
                node = AnomalyNode()
            except StartupError as err:
                log.fatal(str(err))
                return 1
            autostart = node.param("autostart")
            if autostart and node.trigger_configure() != SUCCESS:
                log.fatal(f"autostart: {node.failure}; exiting")
                node.destroy_node()
                return 1
            executor = SingleThreadedExecutor()
            executor.add_node(node)
            stop.running = True
            try:
                if autostart and node.trigger_activate() != SUCCESS:
                    log.fatal(f"autostart: {node.failure}; exiting")
                    return 1
                while not stop.requested:
                    executor.spin_once(timeout_sec=SPIN_POLL_S)
            finally:
                node.finish()  # the inference thread first, then the executor, node and context
                executor.shutdown()
                node.destroy_node()
    except KeyboardInterrupt:  # SIGINT/SIGTERM during start-up (the model was loading)
        pass
    return 0
