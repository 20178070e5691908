"""`ros2 launch sleeg_ros anomaly.launch.py camera_topic:=/camera/image_raw [head:=… weights:=…]`

Starts the SLEEG anomaly node with config/anomaly.yaml; every behaviour lives in the node and its
parameters file. Arguments left empty keep the parameters file's value (weights
`enet_cityscapes`, head `enet_cityscapes_sleeg`: the known ENet weights and the shipped head;
image_transport `raw`, resize_mode `pad`, no ignore_mask; roi_polygon only in the parameters
file). `camera_topic` is the base topic, as with image_transport: the node reads
it (`raw`) or `<camera_topic>/compressed` (`compressed`). `autostart:=false` starts the managed
node in 'unconfigured' for a lifecycle manager (default true: it configures and activates itself).

Several cameras, one node and one model: `cameras:=front,left,right` (camera c reads `c/image`
and publishes under `c/`), `camera_topics:=/front/image_raw,/left/image_raw,/right/image_raw`
remaps each camera's input (in order); `camera_topic` is then not used. Per-camera parameters
(`front.threshold`, `left.roi_polygon`, ...) go in the parameters file.

Obstacles in metres: `camera_pose:='[x, y, z, roll, pitch, yaw]'` (the camera in `output_frame`,
default base_link), `camera_info_topic` (default: `camera_info` beside `camera_topic`; with
`cameras`, beside each of `camera_topics`), `use_depth:=true` with `depth_topics` (one per camera,
in order) and `publish_points:=true`. The argument parsing lives in sleeg_ros.cameras (tested
without the launch package).

A bad argument stops the launch with a line naming it and what it accepts, taken from the node's
own tables (sleeg_ros.launch_arguments). The node's exit ends the launch, with exit code 1 when
the node failed (a start-up error: its log says which parameter).
"""

from pathlib import Path

from ament_index_python.packages import get_package_share_directory
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, OpaqueFunction, RegisterEventHandler, Shutdown
from launch.event_handlers import OnProcessExit
from launch_ros.actions import Node

from sleeg_ros.cameras import launch_cameras, launch_geometry
from sleeg_ros.launch_arguments import NODE_NAME, check_node_exit, choices, launch_overrides

OVERRIDES = (
    "autostart",
    "weights",
    "head",
    "device",
    "threshold",
    "compile_mode",
    "image_transport",
    "resize_mode",
    "tta",
    "ignore_mask",
    "output_frame",
    "camera_pose",
    "use_depth",
    "publish_points",
)


def _node(context, *_args, **_kwargs):
    names = (*OVERRIDES, "camera_topic", "cameras", "camera_topics")
    names += ("camera_info_topic", "depth_topics")
    arg = {name: context.launch_configurations[name] for name in names}
    overrides = launch_overrides({k: arg[k] for k in OVERRIDES})  # each checked, or ValueError
    cameras, remappings = launch_cameras(arg["cameras"], arg["camera_topics"])
    if cameras:
        overrides["cameras"] = cameras
    else:
        remappings = [("image", arg["camera_topic"])]
    images = [topic for _, topic in remappings]
    remappings += launch_geometry(cameras, images, arg["camera_info_topic"], arg["depth_topics"])
    node = Node(
        package="sleeg_ros",
        executable="anomaly_node",
        name=NODE_NAME,
        namespace=context.launch_configurations["namespace"],
        parameters=[context.launch_configurations["params_file"], overrides],
        remappings=remappings,
        output="screen",
        emulate_tty=True,
    )
    return [node, RegisterEventHandler(OnProcessExit(target_action=node, on_exit=_node_exited))]


def _node_exited(event, _context):
    """The node's exit ends the launch; a failure raises, which `ros2 launch` reports and turns
    into its exit code 1 (the launch tools of every release do so for an exception in launch)."""
    check_node_exit(event.returncode)
    return [Shutdown(reason=f"{NODE_NAME} stopped")]


def generate_launch_description() -> LaunchDescription:
    default_params = Path(get_package_share_directory("sleeg_ros")) / "config" / "anomaly.yaml"
    return LaunchDescription(
        [
            DeclareLaunchArgument(
                "camera_topic",
                default_value="/camera/image_raw",
                description="input base topic (remapped to image): sensor_msgs/Image, or "
                "CompressedImage on <camera_topic>/compressed with image_transport:=compressed",
            ),
            DeclareLaunchArgument(
                "cameras",
                default_value="",
                description="several cameras in one node, e.g. front,left,right (camera c reads "
                "c/image, publishes under c/); empty: one camera on camera_topic",
            ),
            DeclareLaunchArgument(
                "camera_topics",
                default_value="",
                description="with cameras: each camera's input topic, in the same order",
            ),
            DeclareLaunchArgument("namespace", default_value="", description="node namespace"),
            DeclareLaunchArgument(
                "autostart",
                default_value="",
                description="true (the parameters file's default): configure and activate at "
                "start-up | false: wait in 'unconfigured' for a lifecycle manager",
            ),
            DeclareLaunchArgument(
                "params_file", default_value=str(default_params), description="parameters YAML"
            ),
            DeclareLaunchArgument(
                "weights", default_value="", description="segmentor checkpoint file or known name"
            ),
            DeclareLaunchArgument(
                "head", default_value="", description="OoD head file or shipped head name"
            ),
            DeclareLaunchArgument("device", default_value="", description=choices("device")),
            DeclareLaunchArgument("threshold", default_value="", description="mask threshold"),
            DeclareLaunchArgument(
                "image_transport",
                default_value="",
                description=f"{choices('image_transport')}: sensor_msgs/Image on camera_topic, "
                "or CompressedImage (jpeg/png) on <camera_topic>/compressed",
            ),
            DeclareLaunchArgument(
                "compile_mode",
                default_value="",
                description=f"torch.compile mode: {choices('compile_mode')}",
            ),
            DeclareLaunchArgument(
                "resize_mode",
                default_value="",
                description=f"{choices('resize_mode')}: frame to inference size (pad and crop keep "
                "the aspect; crop: the centre)",
            ),
            DeclareLaunchArgument(
                "tta",
                default_value="",
                description=f"{choices('tta')}: test-time averaging (scales, the default: 1.81x "
                "the compute; none: one pass)",
            ),
            DeclareLaunchArgument(
                "ignore_mask",
                default_value="",
                description="PNG of pixels never judged anomalous (nonzero = ignore)",
            ),
            DeclareLaunchArgument(
                "output_frame",
                default_value="",
                description="frame of the obstacles' metres, points and markers (base_link)",
            ),
            DeclareLaunchArgument(
                "camera_pose",
                default_value="",
                description="[x, y, z, roll, pitch, yaw] of the camera in output_frame (m, rad)",
            ),
            DeclareLaunchArgument(
                "camera_info_topic",
                default_value="",
                description="the camera's CameraInfo (default: camera_info beside camera_topic)",
            ),
            DeclareLaunchArgument(
                "use_depth",
                default_value="",
                description="true: locate obstacles from an aligned depth image where it has one",
            ),
            DeclareLaunchArgument(
                "depth_topics",
                default_value="",
                description="aligned depth image topic(s), one per camera in order (use_depth)",
            ),
            DeclareLaunchArgument(
                "publish_points",
                default_value="",
                description="true: publish anomaly/points (PointCloud2 in output_frame)",
            ),
            OpaqueFunction(function=_node),
        ]
    )
