"""`anomaly_node` (node `sleeg_anomaly`): camera frames in, segmentation and anomaly maps out.

A managed (lifecycle) node and a thin shell over sleeg_core: configure loads the model and creates
the output publishers, activate subscribes to the one input (`image` or `<image>/compressed` by
parameter `image_transport`) and starts the inference thread, deactivate undoes that (and moves the
model off the GPU), cleanup and shutdown release everything; `autostart` (default) runs configure
and activate at start-up. The subscription callback only drops the message into a latest-frame
slot; the inference thread decodes, runs `AnomalySegmenter`, and publishes every output with the
input's header. Outputs nobody subscribes to are not computed. Health (sleeg_ros.health) goes to
/diagnostics in every state; every topic's QoS may be changed by `qos_overrides` parameters.
SIGINT/SIGTERM run the shutdown transition (the inference thread joined) before the node and its
context go.
"""

from __future__ import annotations

import copy
import gc
import math
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from types import FrameType
from typing import Any

import numpy as np
import rclpy
import torch
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from rcl_interfaces.msg import SetParametersResult
from rclpy.event_handler import (
    PublisherEventCallbacks,
    QoSOfferedIncompatibleQoSInfo,
    QoSRequestedIncompatibleQoSInfo,
    SubscriptionEventCallbacks,
)
from rclpy.exceptions import ParameterException
from rclpy.executors import SingleThreadedExecutor
from rclpy.lifecycle import (
    LifecycleNode,
    LifecyclePublisher,
    LifecycleState,
    TransitionCallbackReturn,
)
from rclpy.parameter import Parameter
from rclpy.publisher import Publisher
from rclpy.qos import QoSPolicyKind, QoSProfile, QoSReliabilityPolicy, qos_profile_sensor_data
from rclpy.qos_overriding_options import QoSOverridingOptions
from rclpy.signals import SignalHandlerOptions
from rclpy.subscription import Subscription
from sensor_msgs.msg import CompressedImage, Image, RegionOfInterest
from std_msgs.msg import Header

from sleeg_core.cityscapes import colorize
from sleeg_core.errors import SleegError
from sleeg_core.geometry import (
    RESIZE_MODES,
    JudgedArea,
    parse_roi_polygon,
    read_mask,
    restrict_score,
)
from sleeg_core.headfile import HeadFile
from sleeg_core.image_msgs import BadFrameError, compressed_to_rgb, image_to_rgb
from sleeg_core.images import to_batch
from sleeg_core.inference import AnomalySegmenter, resolve_device
from sleeg_core.models import pick_segmentor, resolve_head
from sleeg_core.obstacles import find_obstacles
from sleeg_core.segmentors import build_segmentor
from sleeg_core.visualize import score_overlay, score_range
from sleeg_core.weights import KNOWN_WEIGHTS
from sleeg_core.weights import resolve as resolve_weights
from sleeg_ros.conversions import array_to_image
from sleeg_ros.frame_slot import LatestFrameSlot
from sleeg_ros.health import HealthMonitor, Level, Limits, Timings
from sleeg_ros.msg import AnomalyObstacle, AnomalyObstacleArray
from sleeg_ros.parameters import IMAGE_TRANSPORTS, PARAMS

OUTPUT_QOS = QoSProfile(depth=2, reliability=QoSReliabilityPolicy.RELIABLE)
OVERRIDABLE = {k.name.lower() for k in QoSOverridingOptions.with_default_policies().policy_kinds}
LOG_THROTTLE_S = 5.0
SPIN_POLL_S = 0.1  # how long a stop request may wait for the executor
OUTPUTS: dict[str, tuple[type, str]] = {  # output: message type, topic
    "segmentation": (Image, "segmentation"),
    "color": (Image, "segmentation/color"),
    "score": (Image, "anomaly/score"),
    "mask": (Image, "anomaly/mask"),
    "obstacles": (AnomalyObstacleArray, "anomaly/obstacles"),
    "overlay": (Image, "overlay"),
}
SUCCESS = TransitionCallbackReturn.SUCCESS


class StartupError(Exception):
    """A configuration problem that stops the node before it runs (message names the param)."""


@dataclass
class Frame:
    msg: Image | CompressedImage
    received: float  # time.monotonic() at arrival


class AnomalyNode(LifecycleNode):
    """The managed node: see the module docstring for what each transition does."""

    def __init__(self) -> None:
        super().__init__("sleeg_anomaly")
        for p in PARAMS:
            self.declare_parameter(p.name, p.default, p.descriptor())
        self.transport: str = self.param("image_transport")  # checked by configure
        self.input_kind, self.input_topic = self._input()
        self.limits = Limits(
            max_input_age_s=self.param("max_input_age_s"),
            processing_budget_ms=self.param("processing_budget_ms"),
            max_bad_frame_rate=self.param("max_bad_frame_rate"),
            window_s=self.param("health_window_s"),
        )
        self.status_name = f"{self.get_name()}: {self.input_topic}"
        self.hardware_id = self.param("hardware_id") or self.input_topic
        self.state = "unconfigured"  # the lifecycle state, as each transition leaves it
        self.failure: str | None = None  # the last failed transition, until one succeeds
        self.last_level: Level | None = None
        # configured (configure → cleanup): the model and the output publishers
        self.model: AnomalySegmenter | None = None
        self.head_file: HeadFile | None = None
        self.device: torch.device | None = None
        self.offloaded = False  # deactivate moved the model off its CUDA device
        self.threshold = math.nan
        self.judged: JudgedArea | None = None
        self.pubs: dict[str, LifecyclePublisher] = {}
        # active (activate → deactivate): the input, the inference thread and its counters
        self.subscription: Subscription | None = None
        self.worker: threading.Thread | None = None
        self.stopping = threading.Event()
        self.slot: LatestFrameSlot[Frame] = LatestFrameSlot()
        self.health = HealthMonitor(self.limits)
        self.last_stamp_ns: int | None = None  # header stamp of the newest frame
        self.add_on_set_parameters_callback(self._on_set_parameters)
        self.diagnostics_pub = self._publisher(DiagnosticArray, "/diagnostics", managed=False)
        self.create_timer(self.param("status_period_s"), self._publish_status)

    def _input(self) -> tuple[type, str]:
        """The input's message type and resolved topic by image_transport (unknown: raw's)."""
        topic = self.resolve_topic_name("image")
        if self.transport == "compressed":
            return CompressedImage, self._compressed_topic(topic)
        return Image, topic

    def _compressed_topic(self, image_topic: str) -> str:
        """`image/compressed` as remapped, else `<image topic>/compressed` (image_transport's
        convention), so remapping `image` alone moves both inputs."""
        compressed = self.resolve_topic_name("image/compressed")
        unmapped = self.resolve_topic_name("image/compressed", only_expand=True)
        return compressed if compressed != unmapped else f"{image_topic}/compressed"

    def param(self, name: str) -> Any:
        return self.get_parameter(name).value

    # ------------------------------------------------------------------ lifecycle
    def on_configure(self, state: LifecycleState) -> TransitionCallbackReturn:
        """Check the start-up parameters, load the model (weights, head, device, compile) and
        create the output publishers, disabled until activate."""
        return self._transition("configure", self._configure, "inactive", self._cleanup)

    def on_activate(self, state: LifecycleState) -> TransitionCallbackReturn:
        """Outputs on, then the input subscription and the inference thread."""
        return self._transition(
            "activate", lambda: self._activate(state), "active", lambda: self._deactivate(state)
        )

    def on_deactivate(self, state: LifecycleState) -> TransitionCallbackReturn:
        """Input off, inference thread joined, outputs off, the model off the GPU."""
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

    def finish(self) -> None:
        """The shutdown transition, unless finalized already: the inference thread is joined and
        everything released before the node and its context go."""
        if self.state != "finalized":
            self.trigger_shutdown()

    def _configure(self) -> None:
        if self.transport not in IMAGE_TRANSPORTS:
            raise StartupError(
                f"parameter 'image_transport': '{self.transport}' is not one of "
                f"{', '.join(IMAGE_TRANSPORTS)}"
            )
        if self.param("cpu_threads") > 0:
            torch.set_num_threads(self.param("cpu_threads"))
        self.model, self.head_file = self._load_model()
        try:
            self.model.tta = self.param("tta")
        except SleegError as err:
            raise StartupError(f"parameter 'tta': {err}") from err
        self.score_name = self.param("score")
        self.device = next(self.model.parameters()).device
        if self.param("half_precision") and self.device.type == "cuda":  # ignored on the CPU
            self.model.convert_networks(torch.float16)
        w, h = self.param("inference_width"), self.param("inference_height")
        self.size = (h, w) if w > 0 and h > 0 else None
        self.resize_mode, self.judged = self._geometry()
        self.max_pixels = self.param("max_input_pixels")
        self.threshold = self._threshold_from(self.param("threshold"))
        self._compile(self.param("compile_mode"))
        for name, (kind, topic) in OUTPUTS.items():
            self.pubs[name] = self._publisher(kind, topic, managed=True)
        self.get_logger().info(
            f"ready: {self.model.segmentor.info.name} on {self.device}, score '{self.score_name}', "
            f"threshold {self.threshold:.4g}, inference size {self.size or 'native'}, "
            f"input {self.transport} on {self.input_topic}"
        )

    def _activate(self, state: LifecycleState) -> None:
        if self.offloaded:  # deactivated on CUDA: back to the device (and compiled again)
            self.model.to(self.device)
            self.offloaded = False
            if self.param("compile_mode"):
                self._warm_up(self.param("compile_mode"))
        super().on_activate(state)  # the output publishers publish from now on
        self.slot, self.health = LatestFrameSlot(), HealthMonitor(self.limits)  # counts restart
        self.last_stamp_ns = None
        qos = qos_profile_sensor_data
        if self.param("reliable_input"):
            qos = QoSProfile(depth=1, reliability=QoSReliabilityPolicy.RELIABLE)
        self.subscription = self._subscription(self.input_kind, self.input_topic, qos)
        self.stopping = threading.Event()
        self.worker = threading.Thread(target=self._run, name="sleeg-inference", daemon=True)
        self.worker.start()

    def _deactivate(self, state: LifecycleState) -> None:
        """Stop what activate started (whatever part of it exists); on CUDA the model moves to
        the CPU and the compiled graphs and PyTorch's cached blocks are freed."""
        if self.subscription is not None:
            self.destroy_subscription(self.subscription)
            self.subscription = None
        if self.worker is not None:  # it finishes its frame: nothing publishes after this
            self.stopping.set()
            self.slot.close()
            self.worker.join()
            self.worker = None
        super().on_deactivate(state)  # the output publishers stop publishing
        if self.device is not None and self.device.type == "cuda" and not self.offloaded:
            self.model.to("cpu")
            self.offloaded = True
            self._free_device_memory()

    def _cleanup(self) -> None:
        """Release what configure acquired (whatever part of it exists)."""
        for pub in self.pubs.values():
            self.destroy_lifecycle_publisher(pub)
        self.pubs = {}
        self.model = self.head_file = None
        self.judged = None
        self._free_device_memory()
        self.device, self.offloaded = None, False

    def _release(self, state: LifecycleState) -> None:
        """Everything, from any state."""
        self._deactivate(state)
        self._cleanup()

    def _free_device_memory(self) -> None:
        """Drop the compiled graphs (and their CUDA graph pools) and, on CUDA, PyTorch's cached
        blocks that no tensor uses any more."""
        if self.param("compile_mode"):
            torch.compiler.reset()
        if self.device is not None and self.device.type == "cuda":
            gc.collect()
            torch.cuda.empty_cache()

    # ------------------------------------------------------------------ QoS
    def _publisher(self, kind: type, topic: str, managed: bool) -> Publisher:
        """A reliable publisher, `managed` (a lifecycle publisher: publishes only while active)
        or not; `qos_overrides.<topic>.publisher.*` may change its QoS."""
        name = self.resolve_topic_name(topic)
        events = PublisherEventCallbacks(
            incompatible_qos=lambda info: self._incompatible_qos(info, name, pub, "publisher")
        )
        create = self.create_lifecycle_publisher if managed else self.create_publisher
        try:
            pub = create(
                kind,
                topic,
                copy.copy(OUTPUT_QOS),  # overrides change the profile in place
                event_callbacks=events,
                qos_overriding_options=QoSOverridingOptions.with_default_policies(),
            )
        except (RuntimeError, ParameterException) as err:
            raise StartupError(f"parameter 'qos_overrides.{name}.publisher': {err}") from err
        return pub

    def _subscription(self, kind: type, topic: str, qos: QoSProfile) -> Subscription:
        """The input subscription; `qos_overrides.<topic>.subscription.*` may change its QoS."""
        events = SubscriptionEventCallbacks(
            incompatible_qos=lambda info: self._incompatible_qos(info, topic, sub, "subscription")
        )
        try:
            sub = self.create_subscription(
                kind,
                topic,
                self._on_frame,
                copy.copy(qos),
                event_callbacks=events,
                qos_overriding_options=QoSOverridingOptions.with_default_policies(),
            )
        except (RuntimeError, ParameterException) as err:
            raise StartupError(f"parameter 'qos_overrides.{topic}.subscription': {err}") from err
        return sub

    def _incompatible_qos(
        self,
        info: QoSOfferedIncompatibleQoSInfo | QoSRequestedIncompatibleQoSInfo,
        topic: str,
        entity: Publisher | Subscription,
        side: str,
    ) -> None:
        """Log an endpoint that cannot match our `entity` (its `side`: publisher | subscription),
        naming the topic and the policy."""
        policy = QoSPolicyKind(info.last_policy_kind).name.lower()
        ours = getattr(entity.qos_profile, policy, None)
        ours = getattr(ours, "name", ours)
        other = "a subscription requests" if side == "publisher" else "a publisher offers"
        fix = "change the other side's QoS"
        if policy in OVERRIDABLE:
            fix += f" or qos_overrides.{topic}.{side}.{policy}"
        self.get_logger().warning(
            f"incompatible QoS on {topic}: {other} a {policy} this {side} cannot match "
            f"(ours: {str(ours).lower()}); nothing flows between them: {fix}"
        )

    # ------------------------------------------------------------------ start-up
    def _load_model(self) -> tuple[AnomalySegmenter, HeadFile | None]:
        head, weights = self.param("head"), self.param("weights")
        score = self.param("score")
        head_file = None
        if head:
            try:
                head_path = resolve_head(head)
                head_file = HeadFile.load(head_path)
            except SleegError as err:
                raise StartupError(f"parameter 'head': {err}") from err
        elif score.startswith("sleeg"):
            raise StartupError(f"parameter 'score' is '{score}', which needs parameter 'head'")
        if not weights:
            raise StartupError(
                "parameter 'weights' is empty: set a checkpoint file or a known name "
                f"({', '.join(KNOWN_WEIGHTS)})"
            )
        try:
            name = pick_segmentor(self.param("segmentor"), weights, head_file)
        except SleegError as err:
            raise StartupError(f"parameter 'segmentor': {err}") from err
        try:
            weights_path = resolve_weights(weights)
        except SleegError as err:
            raise StartupError(f"parameter 'weights': {err}") from err
        if not weights_path.is_file():
            raise StartupError(f"parameter 'weights': file not found: {weights}")
        options = head_file.segmentor_options if head_file else {}
        try:
            segmentor = build_segmentor(name, weights_path, **options)
        except SleegError as err:
            raise StartupError(f"parameter 'weights'/'segmentor': {err}") from err
        try:
            if head_file:
                head_file.check_segmentor(
                    segmentor.info.name, segmentor.info.feature_channels, str(head_path)
                )
            device = resolve_device(self.param("device"))
        except SleegError as err:
            name = "head" if head_file and "trained on" in str(err) else "device"
            raise StartupError(f"parameter '{name}': {err}") from err
        model = AnomalySegmenter.for_head_file(segmentor, head_file)
        if score not in model.available_scores():
            raise StartupError(
                f"parameter 'score': '{score}' is not one of {', '.join(model.available_scores())}"
            )
        return model.to(device).eval(), head_file

    def _geometry(self) -> tuple[str, JudgedArea]:
        """resize_mode, and the judged area from roi_polygon and ignore_mask."""
        mode = self.param("resize_mode")
        if mode not in RESIZE_MODES:
            raise StartupError(
                f"parameter 'resize_mode': '{mode}' is not one of {', '.join(RESIZE_MODES)}"
            )
        try:
            roi = parse_roi_polygon(self.param("roi_polygon") or [])  # YAML [] is unset
        except SleegError as err:
            raise StartupError(f"parameter 'roi_polygon': {err}") from err
        ignore = None
        if self.param("ignore_mask"):
            try:
                ignore = read_mask(self.param("ignore_mask"))
            except SleegError as err:
                raise StartupError(f"parameter 'ignore_mask': {err}") from err
        return mode, JudgedArea(roi, ignore, self.size, mode)

    def _compile(self, mode: str) -> None:
        """torch.compile the model (compile_mode) and compile it now (`_warm_up`)."""
        if not mode:
            return
        try:
            self.model.compile_networks(mode)
        except SleegError as err:
            raise StartupError(f"parameter 'compile_mode': {err}") from err
        self._warm_up(mode)

    def _warm_up(self, mode: str) -> None:
        """For a fixed inference size, compile now (a frame of zeros) so that the first camera
        frame is not held up and failures stop the transition; else on each size's first frame."""
        if self.size is None:
            self.get_logger().info(
                f"compile_mode '{mode}': compiling on the first frame of each size"
            )
            return
        start = time.perf_counter()
        zeros = torch.zeros(1, 3, *self.size, dtype=torch.uint8, device=self.device)
        try:
            self.model(zeros, scores=(self.score_name,))
        except Exception as err:
            raise StartupError(
                f"parameter 'compile_mode': compiling '{mode}' failed: "
                f"{err.__class__.__name__}: {str(err).splitlines()[0] if str(err) else ''}"
            ) from err
        seconds = time.perf_counter() - start
        self.get_logger().info(
            f"compiled '{mode}' for {self.size[1]}×{self.size[0]} in {seconds:.1f} s"
        )

    def _threshold_from(self, value: float) -> float:
        if math.isnan(value):
            return self.head_file.threshold if self.head_file else math.nan
        return value

    def _on_set_parameters(self, params: list[Parameter]) -> SetParametersResult:
        for p in params:
            if p.name == "threshold":
                value = float(p.value)
                if math.isinf(value):
                    return SetParametersResult(successful=False, reason="threshold must be finite")
                self.threshold = self._threshold_from(value)
        return SetParametersResult(successful=True)

    # ------------------------------------------------------------------ callbacks
    def _on_frame(self, msg: Image | CompressedImage) -> None:
        self.slot.put(Frame(msg, time.monotonic()))
        self.health.frame_arrived()
        self.last_stamp_ns = msg.header.stamp.sec * 10**9 + msg.header.stamp.nanosec

    def _publish_status(self) -> None:
        """The status on /diagnostics, in every lifecycle state: while active the health of the
        input and the inference; else WARN naming the state, or ERROR naming the last failed
        transition. A level change is logged, every status at DEBUG."""
        now = self.get_clock().now()
        values: dict[str, Any] = {"lifecycle_state": self.state}
        if self.state == "active":
            health = self.health.report()
            level, message = health.level, health.message
            stamp_ns = self.last_stamp_ns
            age = math.nan if stamp_ns is None else round((now.nanoseconds - stamp_ns) / 1e9, 3)
            values |= {
                "frames_in": self.slot.received,
                **health.values,
                "dropped": self.slot.dropped,
                "frame_age_s": age,  # now − the newest frame's header stamp
            }
        elif self.failure is not None:
            level, message = Level.ERROR, self.failure
        else:
            level, message = Level.WARN, self.state
        if self.model is not None:
            values["threshold"] = self.threshold
        if self.device is not None and self.device.type == "cuda":
            values["gpu_memory_mb"] = round(torch.cuda.memory_allocated(self.device) / 2**20, 1)
            values["gpu_memory_reserved_mb"] = round(
                torch.cuda.memory_reserved(self.device) / 2**20, 1
            )
        status = DiagnosticStatus(
            level=bytes([level]),
            name=self.status_name,
            message=message,
            hardware_id=self.hardware_id,
            values=[KeyValue(key=k, value=str(v)) for k, v in values.items()],
        )
        self.diagnostics_pub.publish(
            DiagnosticArray(header=Header(stamp=now.to_msg()), status=[status])
        )
        if level != self.last_level:  # one call site per severity (rclpy's rule)
            change = f"/diagnostics {level.name}: {message}"
            if level == Level.OK:
                self.get_logger().info(change)
            else:
                self.get_logger().warning(change)
            self.last_level = level
        self.get_logger().debug(" ".join(f"{k}={v}" for k, v in values.items()))

    # ------------------------------------------------------------------ inference thread
    def _run(self) -> None:
        while not self.stopping.is_set():
            frame = self.slot.take(timeout=0.2)
            if frame is None:
                continue
            try:
                self._process(frame)
            except BadFrameError as err:
                self.health.frame_bad()
                self.get_logger().warning(
                    f"skipped a frame: {err}", throttle_duration_sec=LOG_THROTTLE_S
                )
            except Exception as err:  # the node must never die on a frame
                self.health.frame_bad()
                self.get_logger().error(
                    f"frame failed: {err.__class__.__name__}: {err}",
                    throttle_duration_sec=LOG_THROTTLE_S,
                )

    def wanted(self, name: str) -> bool:
        return self.param(f"publish_{name}") and self.pubs[name].get_subscription_count() > 0

    def _process(self, frame: Frame) -> None:
        t0 = time.perf_counter()
        msg = frame.msg
        want = {name: self.wanted(name) for name in self.pubs}
        need_ids = want["segmentation"] or want["color"]
        need_score = want["score"] or want["mask"] or want["obstacles"] or want["overlay"]
        if not (need_ids or need_score):  # nobody listens: nothing to compute
            self.health.frame_processed()
            return
        if isinstance(msg, CompressedImage):
            rgb = compressed_to_rgb(msg, self.max_pixels)
        else:
            rgb = image_to_rgb(msg, self.max_pixels)
        images = to_batch(rgb, self.device)
        t1 = time.perf_counter()
        pred = self.model(
            images,
            scores=(self.score_name,) if need_score else (),
            size=self.size,
            train_ids=need_ids,
            resize_mode=self.resize_mode,
        )
        train_ids = pred.train_ids[0].cpu().numpy() if need_ids else None
        score = pred.scores[self.score_name][0].cpu().numpy() if need_score else None
        t2 = time.perf_counter()
        header = msg.header
        if want["segmentation"]:
            self.pubs["segmentation"].publish(array_to_image(train_ids, header, "mono8"))
        if want["color"]:
            self.pubs["color"].publish(array_to_image(colorize(train_ids), header, "rgb8"))
        if score is not None:
            self._publish_anomaly(rgb, score, header, want)
        t3 = time.perf_counter()
        latency_ms = (time.monotonic() - frame.received) * 1e3
        self.health.frame_processed(Timings((t2 - t1) * 1e3, (t3 - t0) * 1e3, latency_ms))

    def _publish_anomaly(
        self, rgb: np.ndarray, score: np.ndarray, header: Header, want: dict[str, bool]
    ) -> None:
        judged = self.judged.mask(*score.shape)  # outside it: the lowest score, never in the mask
        score = restrict_score(score, judged)
        if want["score"]:
            self.pubs["score"].publish(array_to_image(score.astype(np.float32), header, "32FC1"))
        threshold = self.threshold
        if math.isnan(threshold) or not (want["mask"] or want["obstacles"] or want["overlay"]):
            return
        mask, obstacles = find_obstacles(
            score, threshold, self.param("mask_open_px"), self.param("min_blob_area"), judged
        )
        if want["mask"]:
            self.pubs["mask"].publish(array_to_image(mask, header, "mono8"))
        if want["obstacles"]:
            out = AnomalyObstacleArray(
                header=header,
                threshold=float(threshold),
                anomalous_fraction=float(np.count_nonzero(mask)) / mask.size,
            )
            out.obstacles = [
                AnomalyObstacle(
                    roi=RegionOfInterest(
                        x_offset=o.x, y_offset=o.y, width=o.width, height=o.height
                    ),
                    pixel_area=o.pixel_area,
                    mean_score=o.mean_score,
                    max_score=o.max_score,
                    centroid_x=o.centroid_x,
                    centroid_y=o.centroid_y,
                )
                for o in obstacles
            ]
            self.pubs["obstacles"].publish(out)
        if want["overlay"]:
            lo, hi = score_range(score, self.head_file.score_stats if self.head_file else None)
            overlay = score_overlay(rgb, score, lo, hi, threshold)
            self.pubs["overlay"].publish(array_to_image(overlay, header, "rgb8"))


class StopRequest:
    """SIGINT/SIGTERM handler in place of rclpy's, which invalidates the context at once, under
    a publishing inference thread: while the model loads at autostart a signal aborts it
    (KeyboardInterrupt); once the node spins (or activates) it only asks the spin loop to end
    (after a transition in progress), and `main` takes things down in order."""

    def __init__(self) -> None:
        self.running = False
        self.requested = False

    def __call__(self, _signum: int, _frame: FrameType | None) -> None:
        if not self.running:
            raise KeyboardInterrupt
        self.requested = True


def main(args: list[str] | None = None) -> int:
    stop = StopRequest()
    for sig in (signal.SIGINT, signal.SIGTERM):
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
