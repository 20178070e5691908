"""`anomaly_node` (node `sleeg_anomaly`): camera frames in, segmentation and anomaly maps out.

A managed (lifecycle) node and a thin shell over sleeg_core: configure loads the model and creates
the output publishers, activate subscribes to the inputs (`image` or `<image>/compressed` by
parameter `image_transport`) and starts the worker threads, deactivate undoes that (and moves the
model off the GPU), cleanup and shutdown release everything; `autostart` (default) runs configure
and activate at start-up.

One node serves one camera (default: `image` in, outputs unprefixed) or the N cameras named by
parameter `cameras` with one model: camera c reads `c/image` and publishes `c/anomaly/score` etc.,
with its own `c.*` parameters (threshold, image_transport, ignore_mask, roi_polygon). A
subscription callback only drops the message into its camera's latest-frame slot; each round the
inference thread takes the newest frame of every camera that has one, decodes them, runs
`AnomalySegmenter` once per group of equal frame sizes (one batch) and hands the round to the
publishing thread, which post-processes and publishes every output with its input's header while
the next round runs (at most one round waits between them). Outputs nobody subscribes to are not
computed. Health (sleeg_ros.health, one status per camera) goes to /diagnostics in every state;
every topic's QoS may be changed by `qos_overrides` parameters.
SIGINT/SIGTERM run the shutdown transition (the worker threads joined) before the node and its
context go.
"""

from __future__ import annotations

import copy
import gc
import math
import queue
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
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

from sleeg_core.common.errors import SleegError
from sleeg_core.data.geometry import (
    RESIZE_MODES,
    JudgedArea,
    parse_roi_polygon,
    read_mask,
    restrict_score,
)
from sleeg_core.data.image_msgs import BadFrameError, compressed_to_rgb, image_to_rgb
from sleeg_core.data.images import to_batch
from sleeg_core.data.labels import colorize
from sleeg_core.deploy.onnx_backend import OnnxSegmenter
from sleeg_core.eval.obstacles import find_obstacles
from sleeg_core.eval.visualize import score_overlay, score_range
from sleeg_core.model.headfile import HeadFile
from sleeg_core.model.inference import AnomalySegmenter, resolve_device
from sleeg_core.model.shipped_heads import pick_segmentor, resolve_head
from sleeg_core.model.weights import KNOWN_WEIGHTS
from sleeg_core.model.weights import resolve as resolve_weights
from sleeg_core.segmentors import build_segmentor
from sleeg_ros.conversions import array_to_image
from sleeg_ros.frame_slot import LatestFrames
from sleeg_ros.health import HealthMonitor, Level, Limits, Timings
from sleeg_ros.msg import AnomalyObstacle, AnomalyObstacleArray
from sleeg_ros.parameters import CAMERA_NAME, CAMERA_PARAMS, IMAGE_TRANSPORTS, PARAMS

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


@dataclass
class Camera:
    """One input and its outputs: name "" is the single camera of a node without `cameras`."""

    name: str
    transport: str  # raw | compressed (checked by configure)
    input_kind: type
    input_topic: str  # resolved
    status_name: str  # of its /diagnostics status
    hardware_id: str
    threshold: float = math.nan  # in force (the camera's, else the node's, else the head file's)
    judged: JudgedArea | None = None
    pubs: dict[str, LifecyclePublisher] = field(default_factory=dict)
    subscription: Subscription | None = None
    health: HealthMonitor | None = None
    last_stamp_ns: int | None = None  # header stamp of the newest frame
    last_logged: tuple[Level, tuple[str, ...]] | None = None  # the last logged level and causes

    def topic(self, relative: str) -> str:
        """`relative` under this camera's prefix (`c/...`; the single camera: unprefixed)."""
        return f"{self.name}/{relative}" if self.name else relative

    def param(self, name: str) -> str:
        """The parameter that holds this camera's `name` (`c.name`; the single camera: `name`)."""
        return f"{self.name}.{name}" if self.name else name


@dataclass
class Job:
    """One camera's frame in a round of the inference thread."""

    camera: Camera
    frame: Frame
    want: dict[str, bool]  # output → wanted ({}: none)
    started: float  # time.perf_counter() at the start of the round
    rgb: np.ndarray | None = None
    train_ids: np.ndarray | None = None
    score: np.ndarray | None = None
    inference_ms: float = math.nan  # of the batch it ran in

    @property
    def need_ids(self) -> bool:
        return bool(self.want.get("segmentation") or self.want.get("color"))

    @property
    def need_score(self) -> bool:
        return any(self.want.get(n) for n in ("score", "mask", "obstacles", "overlay"))


class AnomalyNode(LifecycleNode):
    """The managed node: see the module docstring for what each transition does."""

    def __init__(self) -> None:
        super().__init__("sleeg_anomaly")
        for p in PARAMS:
            self.declare_parameter(p.name, p.default, p.descriptor())
        self.cameras = [self._camera(name) for name in self._camera_names()]
        self.limits = Limits(
            max_input_age_s=self.param("max_input_age_s"),
            processing_budget_ms=self.param("processing_budget_ms"),
            max_bad_frame_rate=self.param("max_bad_frame_rate"),
            window_s=self.param("health_window_s"),
        )
        self.state = "unconfigured"  # the lifecycle state, as each transition leaves it
        self.failure: str | None = None  # the last failed transition, until one succeeds
        # configured (configure → cleanup): the model and the output publishers
        self.model: AnomalySegmenter | None = None
        self.head_threshold = math.nan  # calibrated with the head (head file or ONNX graph)
        self.score_stats: dict[str, float] | None = None
        self.device: torch.device | None = None
        self.offloaded = False  # deactivate moved the model off its CUDA device
        # active (activate → deactivate): the inputs, the worker threads and the counters
        self.cpu_cores = torch.get_num_threads()  # PyTorch's default, before configure sets it
        self.n_inference = 1  # inference threads (configure decides)
        self.workers: list[threading.Thread] = []  # inference threads, then the publishing one
        self.outbox: queue.Queue[list[Job] | None] = queue.Queue(maxsize=1)
        self.stopping = threading.Event()
        self.slots: LatestFrames[str, Frame] = LatestFrames(c.name for c in self.cameras)
        for camera in self.cameras:
            camera.health = HealthMonitor(self.limits)
        self.add_on_set_parameters_callback(self._on_set_parameters)
        self.diagnostics_pub = self._publisher(DiagnosticArray, "/diagnostics", managed=False)
        self.create_timer(self.param("status_period_s"), self._publish_status)

    def _camera_names(self) -> list[str]:
        """Parameter `cameras` checked: [""] (one unprefixed camera) when empty."""
        names = list(self.param("cameras") or [])
        if not names:
            return [""]
        bad = [n for n in names if not isinstance(n, str) or not CAMERA_NAME.fullmatch(n)]
        if bad:
            raise StartupError(
                f"parameter 'cameras': {', '.join(map(repr, bad))} not a camera name (a letter, "
                "then letters, digits or _)"
            )
        if len(set(names)) < len(names):
            raise StartupError(f"parameter 'cameras': a name is repeated in {names}")
        return names

    def _camera(self, name: str) -> Camera:
        """A camera with its parameters declared and its input topic resolved."""
        if name:
            for p in CAMERA_PARAMS:
                self.declare_parameter(f"{name}.{p.name}", p.default, p.descriptor())
        probe = Camera(name, "", Image, "", "", "")
        transport = self.param(self._in_force(probe, "image_transport"))
        image = self.resolve_topic_name(probe.topic("image"))
        kind, topic = Image, image
        if transport == "compressed":
            kind, topic = CompressedImage, self._compressed_topic(probe.topic("image"), image)
        hardware_id = self.param("hardware_id")
        hardware_id = f"{hardware_id}/{name}" if hardware_id and name else hardware_id
        return Camera(
            name,
            transport,
            kind,
            topic,
            status_name=f"{self.get_name()}: {topic}",
            hardware_id=hardware_id or topic,
        )

    def _in_force(self, camera: Camera, name: str) -> str:
        """The parameter that sets a camera's `name`: its own `c.name` when not empty, else the
        node's."""
        own = camera.param(name)
        return own if self.param(own) else name

    def _compressed_topic(self, image: str, image_topic: str) -> str:
        """`<image>/compressed` as remapped, else `<image topic>/compressed` (image_transport's
        convention), so remapping `image` alone moves both inputs."""
        compressed = self.resolve_topic_name(f"{image}/compressed")
        unmapped = self.resolve_topic_name(f"{image}/compressed", only_expand=True)
        return compressed if compressed != unmapped else f"{image_topic}/compressed"

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
        """The shutdown transition, unless finalized already: the worker threads are joined and
        everything released before the node and its context go."""
        if self.state != "finalized":
            self.trigger_shutdown()

    def _configure(self) -> None:
        for camera in self.cameras:
            if camera.transport not in IMAGE_TRANSPORTS:
                name = camera.param("image_transport")
                raise StartupError(
                    f"parameter '{name}': '{camera.transport}' is not one of "
                    f"{', '.join(IMAGE_TRANSPORTS)}"
                )
        w, h = self.param("inference_width"), self.param("inference_height")
        self.size = (h, w) if w > 0 and h > 0 else None
        if self.param("onnx_model"):
            self.n_inference, threads = self._inference_threads(cuda=False)
            self.model = self._load_onnx(self.param("onnx_model"), threads)
            self.head_threshold, self.score_stats = self.model.threshold, self.model.score_stats
            self.device, self.size = torch.device("cpu"), self.model.size
            model_name = f"{self.model.segmentor_name} graph (ONNX Runtime)"
        else:
            self.model, head_file = self._load_model()
            if head_file is not None:
                self.head_threshold, self.score_stats = head_file.threshold, head_file.score_stats
            try:
                self.model.tta = self.param("tta")
            except SleegError as err:
                raise StartupError(f"parameter 'tta': {err}") from err
            self.device = next(self.model.parameters()).device
            if self.param("half_precision") and self.device.type == "cuda":  # ignored on CPU
                self.model.convert_networks(torch.float16)
            self.n_inference, threads = self._inference_threads(self.device.type == "cuda")
            torch.set_num_threads(threads)
            model_name = self.model.segmentor.info.name
        self.score_name = self.param("score")
        # auto: a round's frames of one size in one batch on CUDA; one at a time on the CPU,
        # where a batch of 4 1024×512 frames took 1.5× as long as 4 single passes (memory-bound)
        auto = len(self.cameras) if self.device.type == "cuda" else 1
        self.max_batch = self.param("max_batch") or auto
        self.resize_mode = self._resize_mode()
        for camera in self.cameras:
            camera.judged = self._judged_area(camera)
        self.max_pixels = self.param("max_input_pixels")
        self._set_thresholds()
        self._compile(self.param("compile_mode"))
        for camera in self.cameras:
            for name, (kind, topic) in OUTPUTS.items():
                camera.pubs[name] = self._publisher(kind, camera.topic(topic), managed=True)
        inputs = "; ".join(
            f"threshold {c.threshold:.4g}, input {c.transport} on {c.input_topic}"
            for c in self.cameras
        )
        self.get_logger().info(
            f"ready: {model_name} on {self.device}, score '{self.score_name}', "
            f"inference size {self.size or 'native'}, {len(self.cameras)} camera(s): {inputs}"
        )

    def _activate(self, state: LifecycleState) -> None:
        if self.offloaded:  # deactivated on CUDA: back to the device (and compiled again)
            self.model.to(self.device)
            self.offloaded = False
            if self.param("compile_mode"):
                self._warm_up(self.param("compile_mode"))
        super().on_activate(state)  # the output publishers publish from now on
        self.slots = LatestFrames(c.name for c in self.cameras)  # counts restart
        qos = qos_profile_sensor_data
        if self.param("reliable_input"):
            qos = QoSProfile(depth=1, reliability=QoSReliabilityPolicy.RELIABLE)
        for camera in self.cameras:
            camera.health, camera.last_stamp_ns = HealthMonitor(self.limits), None
            camera.subscription = self._subscription(camera, qos)
        self.stopping = threading.Event()
        self.outbox = queue.Queue(maxsize=self.n_inference)
        self.workers = [
            threading.Thread(target=self._run, name=f"sleeg-inference-{i}", daemon=True)
            for i in range(self.n_inference)
        ]
        self.workers.append(
            threading.Thread(target=self._run_publisher, name="sleeg-publish", daemon=True)
        )
        for worker in self.workers:
            worker.start()

    def _deactivate(self, state: LifecycleState) -> None:
        """Stop what activate started (whatever part of it exists); on CUDA the model moves to
        the CPU and the compiled graphs and PyTorch's cached blocks are freed."""
        for camera in self.cameras:
            if camera.subscription is not None:
                self.destroy_subscription(camera.subscription)
                camera.subscription = None
        if self.workers:  # they finish their frames: nothing publishes after this
            *inference, publisher = self.workers
            self.stopping.set()
            self.slots.close()
            for worker in inference:
                worker.join()  # its last round handed over
            self.outbox.put(None)
            publisher.join()
            self.workers = []
        super().on_deactivate(state)  # the output publishers stop publishing
        if self.device is not None and self.device.type == "cuda" and not self.offloaded:
            self.model.to("cpu")
            self.offloaded = True
            self._free_device_memory()

    def _cleanup(self) -> None:
        """Release what configure acquired (whatever part of it exists)."""
        for camera in self.cameras:
            for pub in camera.pubs.values():
                self.destroy_lifecycle_publisher(pub)
            camera.pubs, camera.judged = {}, None
        self.model, self.head_threshold, self.score_stats = None, math.nan, None
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

    def _subscription(self, camera: Camera, qos: QoSProfile) -> Subscription:
        """A camera's input subscription; `qos_overrides.<topic>.subscription.*` may change its
        QoS."""
        topic = camera.input_topic
        events = SubscriptionEventCallbacks(
            incompatible_qos=lambda info: self._incompatible_qos(info, topic, sub, "subscription")
        )
        try:
            sub = self.create_subscription(
                camera.input_kind,
                topic,
                lambda msg: self._on_frame(camera, msg),
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

    def _inference_threads(self, cuda: bool) -> tuple[int, int]:
        """(inference threads, CPU threads each computes with). Auto (inference_threads 0): one
        on CUDA or with compile_mode; on the CPU one per camera up to the cores (or cpu_threads),
        each with its share of them — as many single-threaded processes would run, without a
        copy of the model each."""
        cores = self.param("cpu_threads") or self.cpu_cores
        n = self.param("inference_threads")
        if n == 0:
            n = 1 if cuda or self.param("compile_mode") else min(len(self.cameras), cores)
        return n, max(1, cores // n)

    def _load_onnx(self, path: str, threads: int) -> OnnxSegmenter:
        """An exported graph on ONNX Runtime (CPU): the PyTorch-only parameters must be off, and
        the graph fixes the score, the inference size and the test-time averaging (none)."""
        used = {
            "device": self.param("device") not in ("auto", "cpu"),
            "compile_mode": bool(self.param("compile_mode")),
        }
        if any(used.values()):
            names = ", ".join(n for n, on in used.items() if on)
            raise StartupError(
                f"parameter 'onnx_model': ONNX Runtime runs the graph on the CPU as exported; "
                f"unset {names} (or unset onnx_model for PyTorch)"
            )
        try:
            model = OnnxSegmenter(path, threads)
        except SleegError as err:
            raise StartupError(f"parameter 'onnx_model': {err}") from err
        if self.param("score") not in model.available_scores():
            raise StartupError(
                f"parameter 'score': '{self.param('score')}' is not the score of the ONNX graph "
                f"{path} ('{model.score_name}')"
            )
        if self.size not in (None, model.size):
            self.get_logger().warning(
                f"inference size {self.size[1]}x{self.size[0]} ignored: the ONNX graph runs at "
                f"{model.size[1]}x{model.size[0]}"
            )
        if self.param("tta") != "none":
            self.get_logger().warning(
                f"tta '{self.param('tta')}' ignored: the ONNX graph runs once per frame, as "
                "exported (set tta: none to silence this)"
            )
        return model

    def _resize_mode(self) -> str:
        mode = self.param("resize_mode")
        if mode not in RESIZE_MODES:
            raise StartupError(
                f"parameter 'resize_mode': '{mode}' is not one of {', '.join(RESIZE_MODES)}"
            )
        return mode

    def _judged_area(self, camera: Camera) -> JudgedArea:
        """A camera's judged area from its roi_polygon and ignore_mask (else the node's)."""
        name = self._in_force(camera, "roi_polygon")
        try:
            roi = parse_roi_polygon(self.param(name) or [])  # YAML [] is unset
        except SleegError as err:
            raise StartupError(f"parameter '{name}': {err}") from err
        ignore = None
        name = self._in_force(camera, "ignore_mask")
        if self.param(name):
            try:
                ignore = read_mask(self.param(name))
            except SleegError as err:
                raise StartupError(f"parameter '{name}': {err}") from err
        return JudgedArea(roi, ignore, self.size, self.resize_mode)

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

    def _set_thresholds(self, changed: dict[str, float] | None = None) -> None:
        """Each camera's threshold: its own, else the node's, else the head file's (NaN: none);
        `changed` holds parameter values being set (not yet readable)."""
        value = {**{n: self.param(n) for n in self._threshold_params()}, **(changed or {})}
        for camera in self.cameras:
            threshold = value[camera.param("threshold")]
            if math.isnan(threshold):
                threshold = value["threshold"]
            if math.isnan(threshold):
                threshold = self.head_threshold
            camera.threshold = threshold

    def _threshold_params(self) -> list[str]:
        return ["threshold", *(c.param("threshold") for c in self.cameras if c.name)]

    def _on_set_parameters(self, params: list[Parameter]) -> SetParametersResult:
        changed = {p.name: float(p.value) for p in params if p.name in self._threshold_params()}
        if any(math.isinf(v) for v in changed.values()):
            return SetParametersResult(successful=False, reason="threshold must be finite")
        if changed:
            self._set_thresholds(changed)
        return SetParametersResult(successful=True)

    # ------------------------------------------------------------------ callbacks
    def _on_frame(self, camera: Camera, msg: Image | CompressedImage) -> None:
        self.slots.put(camera.name, Frame(msg, time.monotonic()))
        camera.health.frame_arrived()
        camera.last_stamp_ns = msg.header.stamp.sec * 10**9 + msg.header.stamp.nanosec

    def _publish_status(self) -> None:
        """One status per camera on /diagnostics, in every lifecycle state: while active the
        health of its input and of the inference; else WARN naming the state, or ERROR naming the
        last failed transition. A level change is logged, every status at DEBUG."""
        now = self.get_clock().now()
        statuses = [self._status(camera, now.nanoseconds) for camera in self.cameras]
        header = Header(stamp=now.to_msg())
        self.diagnostics_pub.publish(DiagnosticArray(header=header, status=statuses))

    def _status(self, camera: Camera, now_ns: int) -> DiagnosticStatus:
        values: dict[str, Any] = {"lifecycle_state": self.state}
        causes: tuple[str, ...] = ()
        if self.state == "active":
            sub = camera.subscription
            health = camera.health.report(None if sub is None else sub.get_publisher_count())
            level, message, causes = health.level, health.message, health.causes
            stamp_ns = camera.last_stamp_ns
            age = math.nan if stamp_ns is None else round((now_ns - stamp_ns) / 1e9, 3)
            values |= {
                "frames_in": self.slots.received[camera.name],
                **health.values,
                "dropped": self.slots.dropped[camera.name],
                "frame_age_s": age,  # now − the newest frame's header stamp
            }
        elif self.failure is not None:
            level, message = Level.ERROR, self.failure
        else:
            level, message = Level.WARN, self.state
        if self.model is not None:
            values["threshold"] = camera.threshold
        if self.device is not None and self.device.type == "cuda":
            values["gpu_memory_mb"] = round(torch.cuda.memory_allocated(self.device) / 2**20, 1)
            values["gpu_memory_reserved_mb"] = round(
                torch.cuda.memory_reserved(self.device) / 2**20, 1
            )
        logged = (level, causes)  # a new level, or a new cause at the same level, is logged
        if logged != camera.last_logged:  # one call site per severity (rclpy's rule)
            where = f"camera {camera.name}: " if camera.name else ""
            change = f"/diagnostics {level.name}: {where}{message}"
            if level == Level.OK:
                self.get_logger().info(change)
            else:
                self.get_logger().warning(change)
            camera.last_logged = logged
        self.get_logger().debug(
            f"{camera.status_name}: " + " ".join(f"{k}={v}" for k, v in values.items())
        )
        return DiagnosticStatus(
            level=bytes([level]),
            name=camera.status_name,
            message=message,
            hardware_id=camera.hardware_id,
            values=[KeyValue(key=k, value=str(v)) for k, v in values.items()],
        )

    # ------------------------------------------------------------------ inference and publishing
    def _run(self) -> None:
        """An inference thread: with one, each round takes every waiting camera's frame; with
        several, each takes the `max_batch` cameras that waited longest."""
        cameras = {c.name: c for c in self.cameras}
        limit = 0 if self.n_inference == 1 else self.max_batch
        while not self.stopping.is_set():
            taken = self.slots.take_all(timeout=0.2, limit=limit)
            if taken:
                self._process_round([(cameras[name], frame) for name, frame in taken])

    def _run_publisher(self) -> None:
        """Publishes the rounds the inference thread hands over (None: stop), so that a round's
        post-processing and publishing overlap the next round's inference."""
        while (jobs := self.outbox.get()) is not None:
            for job in jobs:
                self._guarded(job.camera, lambda j=job: self._publish(j))

    def _process_round(self, taken: list[tuple[Camera, Frame]]) -> None:
        """The newest frame of each camera: decoded, run in one batch per frame size, handed to
        the publishing thread (waiting while it still publishes the previous round). A bad or
        failing frame is counted against its camera and the others go on."""
        t0 = time.perf_counter()
        groups: dict[tuple[int, int], list[Job]] = {}
        for camera, frame in taken:
            job = self._guarded(camera, lambda c=camera, f=frame: self._decode(c, f, t0))
            if job is not None and job.want:
                groups.setdefault(job.rgb.shape[:2], []).append(job)
            elif job is not None:  # nobody listens: nothing to compute
                camera.health.frame_processed()
        ready = []
        size = self.max_batch
        batches = [js[i : i + size] for js in groups.values() for i in range(0, len(js), size)]
        for jobs in batches:
            batched = len(jobs) > 1 and self._batch(jobs)
            for job in jobs:  # a failed batch again frame by frame: the failing one is named
                if batched or self._guarded(job.camera, lambda j=job: self._infer([j])):
                    ready.append(job)
        if ready:
            self.outbox.put(ready)

    def _batch(self, jobs: list[Job]) -> bool:
        """`_infer` for several frames; False when it failed."""
        try:
            return self._infer(jobs)
        except Exception as err:
            self.get_logger().debug(f"a batch of {len(jobs)} failed: {err}")
            return False

    def _guarded(self, camera: Camera, work: Callable[[], Any]) -> Any:
        """`work()`, or None after logging its error and counting a bad frame of `camera`: the
        node must never die on a frame."""
        try:
            return work()
        except BadFrameError as err:
            camera.health.frame_bad()
            self.get_logger().warning(
                f"{camera.input_topic}: skipped a frame: {err}",
                throttle_duration_sec=LOG_THROTTLE_S,
            )
        except Exception as err:
            camera.health.frame_bad()
            self.get_logger().error(
                f"{camera.input_topic}: frame failed: {err.__class__.__name__}: {err}",
                throttle_duration_sec=LOG_THROTTLE_S,
            )
        return None

    def wanted(self, camera: Camera, name: str) -> bool:
        return self.param(f"publish_{name}") and camera.pubs[name].get_subscription_count() > 0

    def _decode(self, camera: Camera, frame: Frame, t0: float) -> Job:
        """The frame's pixels and which outputs it needs (none wanted: no pixels decoded)."""
        want = {name: self.wanted(camera, name) for name in camera.pubs}
        job = Job(camera, frame, want, t0)
        if not (job.need_ids or job.need_score):
            job.want = {}
            return job
        msg = frame.msg
        if isinstance(msg, CompressedImage):
            job.rgb = compressed_to_rgb(msg, self.max_pixels)
        else:
            job.rgb = image_to_rgb(msg, self.max_pixels)
        return job

    def _infer(self, jobs: list[Job]) -> bool:
        """One forward pass for frames of one size; fills each job's train ids and score."""
        t1 = time.perf_counter()
        need_ids = any(j.need_ids for j in jobs)
        need_score = any(j.need_score for j in jobs)
        pred = self.model(
            to_batch([j.rgb for j in jobs], self.device),
            scores=(self.score_name,) if need_score else (),
            size=self.size,
            train_ids=need_ids,
            resize_mode=self.resize_mode,
        )
        ids = pred.train_ids.cpu().numpy() if need_ids else None
        scores = pred.scores[self.score_name].cpu().numpy() if need_score else None
        t2 = time.perf_counter()
        for i, job in enumerate(jobs):
            job.train_ids = ids[i] if job.need_ids else None
            job.score = scores[i] if job.need_score else None
            job.inference_ms = (t2 - t1) * 1e3
        return True

    def _publish(self, job: Job) -> None:
        camera, header, want = job.camera, job.frame.msg.header, job.want
        if want["segmentation"]:
            camera.pubs["segmentation"].publish(array_to_image(job.train_ids, header, "mono8"))
        if want["color"]:
            color = colorize(job.train_ids)
            camera.pubs["color"].publish(array_to_image(color, header, "rgb8"))
        if job.score is not None:
            self._publish_anomaly(camera, job.rgb, job.score, header, want)
        t3 = time.perf_counter()
        latency_ms = (time.monotonic() - job.frame.received) * 1e3
        timings = Timings(job.inference_ms, (t3 - job.started) * 1e3, latency_ms)
        camera.health.frame_processed(timings)

    def _publish_anomaly(
        self,
        camera: Camera,
        rgb: np.ndarray,
        score: np.ndarray,
        header: Header,
        want: dict[str, bool],
    ) -> None:
        judged = camera.judged.mask(*score.shape)  # outside: the lowest score, never in the mask
        score = restrict_score(score, judged)
        pubs = camera.pubs
        if want["score"]:
            pubs["score"].publish(array_to_image(score.astype(np.float32), header, "32FC1"))
        threshold = camera.threshold
        if math.isnan(threshold) or not (want["mask"] or want["obstacles"] or want["overlay"]):
            return
        mask, obstacles = find_obstacles(
            score, threshold, self.param("mask_open_px"), self.param("min_blob_area"), judged
        )
        if want["mask"]:
            pubs["mask"].publish(array_to_image(mask, header, "mono8"))
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
            pubs["obstacles"].publish(out)
        if want["overlay"]:
            lo, hi = score_range(score, self.score_stats)
            overlay = score_overlay(rgb, score, lo, hi, threshold)
            pubs["overlay"].publish(array_to_image(overlay, header, "rgb8"))


class StopRequest:
    """SIGINT/SIGTERM handler in place of rclpy's, which invalidates the context at once, under
    publishing worker threads: while the model loads at autostart a signal aborts it
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
