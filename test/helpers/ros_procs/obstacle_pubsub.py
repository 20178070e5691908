"""Child process for test_messages: publish or receive one AnomalyObstacleArray over DDS.

Usage: obstacle_pubsub.py pub|sub  — `sub` prints the received message as JSON and exits; `pub`
publishes until SIGINT, then exits 0. The process handles SIGINT itself, as the node does: with
rclpy's handler, a SIGINT that shuts the context down between two waits made `spin` raise
RCLError ("context is not valid") instead of returning.
"""

import json
import signal
import sys

import rclpy
from rclpy.qos import QoSDurabilityPolicy, QoSProfile, QoSReliabilityPolicy
from rclpy.signals import SignalHandlerOptions
from sensor_msgs.msg import RegionOfInterest

from sleeg_ros.msg import AnomalyObstacle, AnomalyObstacleArray

QOS = QoSProfile(
    depth=1,
    reliability=QoSReliabilityPolicy.RELIABLE,
    durability=QoSDurabilityPolicy.TRANSIENT_LOCAL,
)


def make_message() -> AnomalyObstacleArray:
    msg = AnomalyObstacleArray()
    msg.header.frame_id = "camera"
    msg.header.stamp.sec = 1234
    msg.header.stamp.nanosec = 5678
    msg.threshold = 0.25
    msg.anomalous_fraction = 0.125
    for i in range(2):
        ob = AnomalyObstacle()
        ob.roi = RegionOfInterest(x_offset=10 * i, y_offset=5, width=7, height=3 + i)
        ob.pixel_area = 21 + i
        ob.mean_score = 0.5 + i
        ob.max_score = 0.9 + i
        ob.centroid_x = 13.5
        ob.centroid_y = 6.0
        msg.obstacles.append(ob)
    return msg


def to_dict(msg: AnomalyObstacleArray) -> dict:
    return {
        "frame_id": msg.header.frame_id,
        "stamp": [msg.header.stamp.sec, msg.header.stamp.nanosec],
        "threshold": msg.threshold,
        "anomalous_fraction": msg.anomalous_fraction,
        "obstacles": [
            {
                "roi": [o.roi.x_offset, o.roi.y_offset, o.roi.width, o.roi.height],
                "pixel_area": o.pixel_area,
                "mean_score": o.mean_score,
                "max_score": o.max_score,
                "centroid": [o.centroid_x, o.centroid_y],
            }
            for o in msg.obstacles
        ],
    }


def main() -> None:
    role = sys.argv[1]
    stop: list[int] = []
    signal.signal(signal.SIGINT, lambda signum, frame: stop.append(signum))
    with rclpy.init(signal_handler_options=SignalHandlerOptions.NO):
        node = rclpy.create_node(f"obstacle_{role}")
        if role == "pub":
            pub = node.create_publisher(AnomalyObstacleArray, "anomaly/obstacles", QOS)
            node.create_timer(0.1, lambda: pub.publish(make_message()))
            while not stop:
                rclpy.spin_once(node, timeout_sec=0.1)
        else:
            done = []
            node.create_subscription(AnomalyObstacleArray, "anomaly/obstacles", done.append, QOS)
            while not done and not stop:
                rclpy.spin_once(node, timeout_sec=0.1)
            if done:
                print(json.dumps(to_dict(done[0])), flush=True)


if __name__ == "__main__":
    main()
