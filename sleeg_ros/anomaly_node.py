"""`anomaly_node` (node `sleeg_anomaly`): camera frames in, segmentation and anomaly maps out.

A thin shell over sleeg_core: the subscription callback (one input, `image` or
`<image>/compressed` by parameter `image_transport`) only drops the message into a latest-frame
slot; one inference thread decodes, runs `AnomalySegmenter`, and publishes every output with the
input's header. Outputs nobody subscribes to are not computed. Health (sleeg_ros.health) goes to
/diagnostics; every topic's QoS may be changed by `qos_overrides` parameters. SIGINT/SIGTERM stop
the executor and join the inference thread before the node and its context go.
"""

from __future__ import annotations

import copy
import math
import signal
import threading
import time
from dataclasses import dataclass
from types import FrameType

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
from rclpy.node import Node
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


class StartupError(Exception):
    """A configuration problem that stops the node before it runs (message names the param)."""


@dataclass
class Frame:
    msg: Image | CompressedImage
    received: float  # time.monotonic() at arrival


class AnomalyNode(Node):
    def __init__(self) -> None:
        super().__init__("sleeg_anomaly")
        for p in PARAMS:
            self.declare_parameter(p.name, p.default, p.descriptor())
        self.transport = self.param("image_transport")
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
        self.half = self.param("half_precision") and self.device.type == "cuda"
        w, h = self.param("inference_width"), self.param("inference_height")
        self.size = (h, w) if w > 0 and h > 0 else None
        self.resize_mode, self.judged = self._geometry()
        self.max_pixels = self.param("max_input_pixels")
        self.threshold = self._threshold_from(self.param("threshold"))
        self._compile(self.param("compile_mode"))
        self.add_on_set_parameters_callback(self._on_set_parameters)

        self.pubs = {
            "segmentation": self._publisher(Image, "segmentation"),
            "color": self._publisher(Image, "segmentation/color"),
            "score": self._publisher(Image, "anomaly/score"),
            "mask": self._publisher(Image, "anomaly/mask"),
            "obstacles": self._publisher(AnomalyObstacleArray, "anomaly/obstacles"),
            "overlay": self._publisher(Image, "overlay"),
        }
        self.diagnostics_pub = self._publisher(DiagnosticArray, "/diagnostics")
        qos = qos_profile_sensor_data
        if self.param("reliable_input"):
            qos = QoSProfile(depth=1, reliability=QoSReliabilityPolicy.RELIABLE)
        self.slot: LatestFrameSlot[Frame] = LatestFrameSlot()
        kind, input_topic = Image, self.resolve_topic_name("image")
        if self.transport == "compressed":
            kind, input_topic = CompressedImage, self._compressed_topic(input_topic)
        self.health = HealthMonitor(
            Limits(
                max_input_age_s=self.param("max_input_age_s"),
                processing_budget_ms=self.param("processing_budget_ms"),
                max_bad_frame_rate=self.param("max_bad_frame_rate"),
                window_s=self.param("health_window_s"),
            )
        )
        self.status_name = f"{self.get_name()}: {input_topic}"
        self.hardware_id = self.param("hardware_id") or input_topic
        self.last_stamp_ns: int | None = None  # header stamp of the newest frame
        self.last_level: Level | None = None
        self._subscription(kind, input_topic, qos)
        self.create_timer(self.param("status_period_s"), self._publish_status)
        self.worker = threading.Thread(target=self._run, name="sleeg-inference", daemon=True)
        self.stopping = threading.Event()
        self.worker.start()
        self.get_logger().info(
            f"ready: {self.model.segmentor.info.name} on {self.device}, score '{self.score_name}', "
            f"threshold {self.threshold:.4g}, inference size {self.size or 'native'}, "
            f"input {self.transport} on {input_topic}"
        )

    def _compressed_topic(self, image_topic: str) -> str:
        """`image/compressed` as remapped, else `<image topic>/compressed` (image_transport's
        convention), so remapping `image` alone moves both inputs."""
        compressed = self.resolve_topic_name("image/compressed")
        unmapped = self.resolve_topic_name("image/compressed", only_expand=True)
        return compressed if compressed != unmapped else f"{image_topic}/compressed"

    def param(self, name: str):
        return self.get_parameter(name).value

    # ------------------------------------------------------------------ QoS
    def _publisher(self, kind: type, topic: str) -> Publisher:
        """A reliable publisher; `qos_overrides.<topic>.publisher.*` may change its QoS."""
        name = self.resolve_topic_name(topic)
        events = PublisherEventCallbacks(
            incompatible_qos=lambda info: self._incompatible_qos(info, name, pub, "publisher")
        )
        try:
            pub = self.create_publisher(
                kind,
                topic,
                copy.copy(OUTPUT_QOS),  # overrides change the profile in place
                event_callbacks=events,
                qos_overriding_options=QoSOverridingOptions.with_default_policies(),
            )
        except (RuntimeError, ParameterException) as err:
            raise StartupError(f"parameter 'qos_overrides.{name}.publisher': {err}") from err
        return pub

    def _subscription(self, kind: type, topic: str, qos: QoSProfile) -> None:
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
        """torch.compile the networks and, for a fixed inference size, compile now (a frame of
        zeros) so that the first camera frame is not held up and failures stop the start-up."""
        if not mode:
            return
        try:
            self.model.compile_networks(mode)
        except SleegError as err:
            raise StartupError(f"parameter 'compile_mode': {err}") from err
        if self.size is None:
            self.get_logger().info(
                f"compile_mode '{mode}': compiling on the first frame of each size"
            )
            return
        start = time.perf_counter()
        zeros = torch.zeros(1, 3, *self.size, dtype=torch.uint8, device=self.device)
        try:
            with torch.autocast("cuda", dtype=torch.float16, enabled=self.half):
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
        """The health on /diagnostics; a level change is logged, every status at DEBUG."""
        health = self.health.report()
        now = self.get_clock().now()
        stamp_ns = self.last_stamp_ns
        age = math.nan if stamp_ns is None else round((now.nanoseconds - stamp_ns) / 1e9, 3)
        values = {
            "frames_in": self.slot.received,
            **health.values,
            "dropped": self.slot.dropped,
            "frame_age_s": age,  # now − the newest frame's header stamp
            "threshold": self.threshold,
        }
        if self.device.type == "cuda":
            values["gpu_memory_mb"] = round(torch.cuda.memory_allocated(self.device) / 2**20, 1)
            values["gpu_memory_reserved_mb"] = round(
                torch.cuda.memory_reserved(self.device) / 2**20, 1
            )
        status = DiagnosticStatus(
            level=bytes([health.level]),
            name=self.status_name,
            message=health.message,
            hardware_id=self.hardware_id,
            values=[KeyValue(key=k, value=str(v)) for k, v in values.items()],
        )
        self.diagnostics_pub.publish(
            DiagnosticArray(header=Header(stamp=now.to_msg()), status=[status])
        )
        if health.level != self.last_level:  # one call site per severity (rclpy's rule)
            change = f"/diagnostics {health.level.name}: {health.message}"
            if health.level == Level.OK:
                self.get_logger().info(change)
            else:
                self.get_logger().warning(change)
            self.last_level = health.level
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
        with torch.autocast("cuda", dtype=torch.float16, enabled=self.half):
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

    def stop(self) -> None:
        """Stop the inference thread and wait for its frame: nothing publishes after this."""
        self.stopping.set()
        self.slot.close()
        self.worker.join()


class StopRequest:
    """SIGINT/SIGTERM handler in place of rclpy's, which invalidates the context at once, under
    a publishing inference thread: during start-up a signal aborts it (KeyboardInterrupt); once
    the node runs it only asks the spin loop to end, and `main` takes things down in order."""

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
    try:
        with rclpy.init(args=args, signal_handler_options=SignalHandlerOptions.NO):
            try:
                node = AnomalyNode()
            except StartupError as err:
                rclpy.logging.get_logger("sleeg_anomaly").fatal(str(err))
                return 1
            executor = SingleThreadedExecutor()
            executor.add_node(node)
            stop.running = True
            try:
                while not stop.requested:
                    executor.spin_once(timeout_sec=SPIN_POLL_S)
            finally:
                node.stop()  # the inference thread first, then the executor, node and context
                executor.shutdown()
                node.destroy_node()
    except KeyboardInterrupt:  # SIGINT/SIGTERM during start-up (the model was loading)
        pass
    return 0
