"""`anomaly_node` (node `sleeg_anomaly`): camera frames in, segmentation and anomaly maps out.

A thin shell over sleeg_core: the subscription callback (one input, `image` or
`<image>/compressed` by parameter `image_transport`) only drops the message into a latest-frame
slot; one inference thread decodes, runs `AnomalySegmenter`, and publishes every output with the
input's header. Outputs nobody subscribes to are not computed. SIGINT/SIGTERM stop the executor
and join the inference thread before the node and its context go.
"""

from __future__ import annotations

import math
import signal
import threading
import time
from collections import deque
from dataclasses import dataclass
from types import FrameType

import numpy as np
import rclpy
import torch
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from rcl_interfaces.msg import SetParametersResult
from rclpy.executors import SingleThreadedExecutor
from rclpy.node import Node
from rclpy.parameter import Parameter
from rclpy.qos import QoSProfile, QoSReliabilityPolicy, qos_profile_sensor_data
from rclpy.signals import SignalHandlerOptions
from sensor_msgs.msg import CompressedImage, Image, RegionOfInterest
from std_msgs.msg import Header

from sleeg_core.cityscapes import colorize
from sleeg_core.errors import SleegError
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
from sleeg_ros.msg import AnomalyObstacle, AnomalyObstacleArray
from sleeg_ros.parameters import IMAGE_TRANSPORTS, PARAMS

OUTPUT_QOS = QoSProfile(depth=2, reliability=QoSReliabilityPolicy.RELIABLE)
LOG_THROTTLE_S = 5.0
SPIN_POLL_S = 0.1  # how long a stop request may wait for the executor


class StartupError(Exception):
    """A configuration problem that stops the node before it runs (message names the param)."""


@dataclass
class Frame:
    msg: Image | CompressedImage
    received: float  # time.monotonic() at arrival


class Stats:
    """Counters and recent timings for the status output (written by the inference thread)."""

    def __init__(self) -> None:
        self.processed = 0
        self.bad = 0
        self.infer_ms: deque[float] = deque(maxlen=100)
        self.node_ms: deque[float] = deque(maxlen=100)
        self.latency_ms: deque[float] = deque(maxlen=100)


def _percentile(values: deque[float], q: float) -> float:
    snapshot = list(values)  # the inference thread appends concurrently
    return round(float(np.percentile(snapshot, q)), 2) if snapshot else math.nan


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
        self.max_pixels = self.param("max_input_pixels")
        self.threshold = self._threshold_from(self.param("threshold"))
        self._compile(self.param("compile_mode"))
        self.add_on_set_parameters_callback(self._on_set_parameters)

        self.pubs = {
            "segmentation": self.create_publisher(Image, "segmentation", OUTPUT_QOS),
            "color": self.create_publisher(Image, "segmentation/color", OUTPUT_QOS),
            "score": self.create_publisher(Image, "anomaly/score", OUTPUT_QOS),
            "mask": self.create_publisher(Image, "anomaly/mask", OUTPUT_QOS),
            "obstacles": self.create_publisher(
                AnomalyObstacleArray, "anomaly/obstacles", OUTPUT_QOS
            ),
            "overlay": self.create_publisher(Image, "overlay", OUTPUT_QOS),
        }
        self.status_pub = self.create_publisher(DiagnosticArray, "status", OUTPUT_QOS)
        qos = qos_profile_sensor_data
        if self.param("reliable_input"):
            qos = QoSProfile(depth=1, reliability=QoSReliabilityPolicy.RELIABLE)
        self.slot: LatestFrameSlot[Frame] = LatestFrameSlot()
        kind, input_topic = Image, self.resolve_topic_name("image")
        if self.transport == "compressed":
            kind, input_topic = CompressedImage, self._compressed_topic(input_topic)
        self.create_subscription(kind, input_topic, self._on_frame, qos)
        self.stats = Stats()
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

    def _publish_status(self) -> None:
        s = self.stats
        values = {
            "frames_in": self.slot.received,
            "processed": s.processed,
            "dropped": self.slot.dropped,
            "bad_frames": s.bad,
            "inference_ms_median": _percentile(s.infer_ms, 50),
            "node_ms_median": _percentile(s.node_ms, 50),
            "latency_ms_median": _percentile(s.latency_ms, 50),
            "latency_ms_p95": _percentile(s.latency_ms, 95),
            "threshold": self.threshold,
        }
        status = DiagnosticStatus(
            level=DiagnosticStatus.OK if not s.bad else DiagnosticStatus.WARN,
            name="sleeg_anomaly",
            message="running",
            hardware_id=str(self.device),
            values=[KeyValue(key=k, value=str(v)) for k, v in values.items()],
        )
        self.status_pub.publish(DiagnosticArray(header=self._stamp_now(), status=[status]))
        self.get_logger().info(" ".join(f"{k}={v}" for k, v in values.items()))

    def _stamp_now(self) -> Header:
        return Header(stamp=self.get_clock().now().to_msg())

    # ------------------------------------------------------------------ inference thread
    def _run(self) -> None:
        while not self.stopping.is_set():
            frame = self.slot.take(timeout=0.2)
            if frame is None:
                continue
            try:
                self._process(frame)
            except BadFrameError as err:
                self.stats.bad += 1
                self.get_logger().warning(
                    f"skipped a frame: {err}", throttle_duration_sec=LOG_THROTTLE_S
                )
            except Exception as err:  # the node must never die on a frame
                self.stats.bad += 1
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
            self.stats.processed += 1
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
        self.stats.processed += 1
        self.stats.infer_ms.append((t2 - t1) * 1e3)
        self.stats.node_ms.append(((t1 - t0) + (t3 - t2)) * 1e3)
        self.stats.latency_ms.append((time.monotonic() - frame.received) * 1e3)

    def _publish_anomaly(
        self, rgb: np.ndarray, score: np.ndarray, header: Header, want: dict[str, bool]
    ) -> None:
        if want["score"]:
            self.pubs["score"].publish(array_to_image(score.astype(np.float32), header, "32FC1"))
        threshold = self.threshold
        if math.isnan(threshold) or not (want["mask"] or want["obstacles"] or want["overlay"]):
            return
        mask, obstacles = find_obstacles(
            score, threshold, self.param("mask_open_px"), self.param("min_blob_area")
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
