"""The node's cameras: the naming rule, each camera's topics, parameters and health.

One node serves one camera (no `cameras`: name "", `image` in, outputs unprefixed) or the cameras
named by parameter `cameras`: camera c reads `c/image` (and `c/camera_info`, `c/depth` beside it),
publishes `c/anomaly/score` etc. and has its own `c.*` parameters
(sleeg_ros.parameters.CAMERA_PARAMS), each empty one meaning the node's.
A camera name is one ROS name token (a letter, then letters, digits or _), checked here for the
node's parameter and the launch file's arguments alike. `ros2 launch` imports this module in the
launch process, so it does not load PyTorch: `judged_area` imports sleeg_core.data.geometry when
configure calls it.

>>> check_camera_names(["front", "left"])
['front', 'left']
>>> launch_cameras("front, left", "/f/image_raw, /l/image_raw")[1]
[('front/image', '/f/image_raw'), ('left/image', '/l/image_raw')]
>>> launch_geometry(["front"], ["/f/image_raw"], "", "/f/depth")
[('front/camera_info', '/f/camera_info'), ('front/depth', '/f/depth')]
>>> launch_pose("[1.9, 0, 1.4, 0, 0.05, 0]")
[1.9, 0.0, 1.4, 0.0, 0.05, 0.0]
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from sensor_msgs.msg import CompressedImage, Image

from sleeg_core.common.errors import SleegError
from sleeg_ros.health import HealthMonitor, Level
from sleeg_ros.parameters import CAMERA_PARAMS, StartupError

if TYPE_CHECKING:
    from rclpy.lifecycle import LifecycleNode, LifecyclePublisher
    from rclpy.subscription import Subscription

    from sleeg_core.data.geometry import JudgedArea
    from sleeg_ros.camera_geometry import CameraInputs

CAMERA_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_]*")  # a camera's name: one ROS name token
Param = Callable[[str], Any]  # a parameter's value by name


def check_camera_names(names: list[Any]) -> list[str]:
    """`names` when each is a camera name and none repeats, else a ValueError saying which."""
    bad = [n for n in names if not isinstance(n, str) or not CAMERA_NAME.fullmatch(n)]
    if bad:
        raise ValueError(
            f"{', '.join(map(repr, bad))} not a camera name (a letter, then letters, digits or _)"
        )
    if len(set(names)) < len(names):
        raise ValueError(f"a name is repeated in {names}")
    return list(names)


def launch_cameras(cameras: str, topics: str) -> tuple[list[str], list[tuple[str, str]]]:
    """Launch arguments `cameras` and `camera_topics` ("a,b" or "[a, b]") → the `cameras`
    parameter and the remappings `<camera>/image` → topic (none without topics)."""
    names, bases = _launch_list(cameras), _launch_list(topics)
    try:
        check_camera_names(names)
    except ValueError as err:
        raise ValueError(f"launch argument 'cameras': {err}") from err
    if bases and len(bases) != len(names):
        raise ValueError(
            f"launch argument 'camera_topics': {len(bases)} topic(s) for {len(names)} camera(s)"
        )
    return names, [(f"{name}/image", topic) for name, topic in zip(names, bases, strict=False)]


def launch_geometry(
    cameras: list[str], image_topics: list[str], info_topic: str, depth_topics: str
) -> list[tuple[str, str]]:
    """Remappings of each camera's `camera_info` (launch argument `camera_info_topic`, else
    beside its image topic: /cam/image_raw → /cam/camera_info) and `depth` (`depth_topics`, in the
    cameras' order; empty: not remapped). `cameras` [] is the single camera ("")."""
    names = cameras or [""]
    depths = _launch_list(depth_topics)
    if depths and len(depths) != len(names):
        raise ValueError(
            f"launch argument 'depth_topics': {len(depths)} topic(s) for {len(names)} camera(s)"
        )
    if info_topic and cameras:
        raise ValueError("launch argument 'camera_info_topic': for the single camera only")
    remaps = []
    for name, image in zip(names, image_topics, strict=False):
        prefix = f"{name}/" if name else ""
        remaps.append((f"{prefix}camera_info", info_topic or beside(image, "camera_info")))
    prefixes = [f"{n}/" if n else "" for n in names]
    return remaps + [(f"{p}depth", topic) for p, topic in zip(prefixes, depths, strict=False)]


def beside(topic: str, name: str) -> str:
    """The topic `name` in `topic`'s namespace (image_transport's camera_info convention)."""
    return f"{topic.rstrip('/').rpartition('/')[0]}/{name}"


def launch_pose(text: str) -> list[float]:
    """Launch argument `camera_pose` ("[x, y, z, roll, pitch, yaw]") → 6 floats, else a
    ValueError naming it."""
    items = _launch_list(text)
    try:
        values = [float(v) for v in items]
    except ValueError as err:
        raise ValueError(f"launch argument 'camera_pose': {err}") from err
    if len(values) != 6:
        raise ValueError(
            f"launch argument 'camera_pose': [x, y, z, roll, pitch, yaw] needs 6 numbers, "
            f"got {len(values)}"
        )
    return values


def _launch_list(text: str) -> list[str]:
    items = text.strip().removeprefix("[").removesuffix("]").split(",")
    return [i.strip().strip("'\"") for i in items if i.strip()]


@dataclass
class Camera:
    """One input and its outputs: name "" is the single camera of a node without `cameras`."""

    name: str
    transport: str  # raw | compressed (checked by configure)
    input_kind: type
    input_topic: str  # resolved
    status_name: str  # of its /diagnostics status
    hardware_id: str
    info_topic: str = ""  # its camera_info (resolved)
    depth_topic: str = ""  # its aligned depth image (resolved; subscribed with use_depth)
    threshold: float = math.nan  # in force (the camera's, else the node's, else the head file's)
    judged: JudgedArea | None = None
    pubs: dict[str, LifecyclePublisher] = field(default_factory=dict)
    subscription: Subscription | None = None
    geometry_subs: list[Subscription] = field(default_factory=list)  # camera_info, depth
    inputs: CameraInputs | None = None  # the last camera_info and newest depth images
    geometry_issues: dict[str, str] | None = None  # the newest frame's causes (None: no frame)
    geometry_logged: set[str] = field(default_factory=set)  # causes logged in this activation
    health: HealthMonitor | None = None
    last_stamp_ns: int | None = None  # header stamp of the newest frame
    last_logged: tuple[Level, tuple[str, ...]] | None = None  # the last logged level and causes

    def topic(self, relative: str) -> str:
        """`relative` under this camera's prefix (`c/...`; the single camera: unprefixed)."""
        return f"{self.name}/{relative}" if self.name else relative

    def param(self, name: str) -> str:
        """The parameter that holds this camera's `name` (`c.name`; the single camera: `name`)."""
        return f"{self.name}.{name}" if self.name else name

    def in_force(self, param: Param, name: str) -> str:
        """The parameter that sets this camera's `name`: its own `c.name` when not empty, else
        the node's."""
        own = self.param(name)
        return own if param(own) else name


def node_cameras(node: LifecycleNode, param: Param) -> list[Camera]:
    """The cameras of parameter `cameras` (each with its `c.*` parameters declared), or the
    single unprefixed one; StartupError for a bad list."""
    try:
        names = check_camera_names(list(param("cameras") or []))
    except ValueError as err:
        raise StartupError(f"parameter 'cameras': {err}") from err
    return [_camera(node, param, name) for name in names or [""]]


def _camera(node: LifecycleNode, param: Param, name: str) -> Camera:
    """A camera with its parameters declared and its input topic resolved."""
    if name:
        for p in CAMERA_PARAMS:
            node.declare_parameter(f"{name}.{p.name}", p.default, p.descriptor())
    probe = Camera(name, "", Image, "", "", "")
    transport = param(probe.in_force(param, "image_transport"))
    image = node.resolve_topic_name(probe.topic("image"))
    kind, topic = Image, image
    if transport == "compressed":
        kind, topic = CompressedImage, _compressed_topic(node, probe.topic("image"), image)
    hardware_id = param("hardware_id")
    hardware_id = f"{hardware_id}/{name}" if hardware_id and name else hardware_id
    return Camera(
        name,
        transport,
        kind,
        topic,
        status_name=f"{node.get_name()}: {topic}",
        hardware_id=hardware_id or topic,
        info_topic=node.resolve_topic_name(probe.topic("camera_info")),
        depth_topic=node.resolve_topic_name(probe.topic("depth")),
    )


def _compressed_topic(node: LifecycleNode, image: str, image_topic: str) -> str:
    """`<image>/compressed` as remapped, else `<image topic>/compressed` (image_transport's
    convention), so remapping `image` alone moves both inputs."""
    compressed = node.resolve_topic_name(f"{image}/compressed")
    unmapped = node.resolve_topic_name(f"{image}/compressed", only_expand=True)
    return compressed if compressed != unmapped else f"{image_topic}/compressed"


def judged_area(
    camera: Camera, param: Param, size: tuple[int, int] | None, resize_mode: str
) -> JudgedArea:
    """A camera's judged area from its roi_polygon and ignore_mask (else the node's)."""
    from sleeg_core.data.geometry import JudgedArea, parse_roi_polygon, read_mask  # PyTorch

    name = camera.in_force(param, "roi_polygon")
    try:
        roi = parse_roi_polygon(param(name) or [])  # YAML [] is unset
    except SleegError as err:
        raise StartupError(f"parameter '{name}': {err}") from err
    ignore = None
    name = camera.in_force(param, "ignore_mask")
    if param(name):
        try:
            ignore = read_mask(param(name))
        except SleegError as err:
            raise StartupError(f"parameter '{name}': {err}") from err
    return JudgedArea(roi, ignore, size, resize_mode)


def threshold_params(cameras: list[Camera]) -> list[str]:
    """The parameters that set thresholds: the node's, then each named camera's."""
    return ["threshold", *(c.param("threshold") for c in cameras if c.name)]


def set_thresholds(cameras: list[Camera], value: dict[str, float], head_threshold: float) -> None:
    """Each camera's threshold: its own, else the node's, else the head file's (NaN: none), from
    the values of `threshold_params`."""
    for camera in cameras:
        threshold = value[camera.param("threshold")]
        if math.isnan(threshold):
            threshold = value["threshold"]
        if math.isnan(threshold):
            threshold = head_threshold
        camera.threshold = threshold
