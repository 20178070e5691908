"""The outputs table drives the node's parameters and per-frame work: only what someone
subscribes to is computed, and each output goes out as the table says."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from rclpy.logging import get_logger
from sensor_msgs.msg import Image
from std_msgs.msg import Header

from sleeg_core.data.geometry import JudgedArea
from sleeg_core.model.inference import Prediction
from sleeg_core.projection.camera import Pose
from sleeg_ros.camera_geometry import ParameterPoses
from sleeg_ros.cameras import Camera
from sleeg_ros.conversions import array_to_image
from sleeg_ros.health import HealthMonitor, Limits
from sleeg_ros.model_setup import LoadedModel
from sleeg_ros.msg import AnomalyObstacle, AnomalyObstacleArray
from sleeg_ros.outputs import OUTPUT_NAMES, OUTPUTS, STATUS_TOPIC, topic_types, type_name
from sleeg_ros.parameters import PARAMS
from sleeg_ros.scheduler import Frame, Job
from sleeg_ros.stages import NodeStages

H, W = 8, 12
METRIC_PARAMS = ("output_frame", "use_depth", "depth_max_age_s", "points_budget")


def test_every_output_has_its_publish_parameter_and_its_own_topic() -> None:
    params = {p.name: p for p in PARAMS}
    for out in OUTPUTS:
        param = params[f"publish_{out.name}"]
        assert param.default is out.default and param.runtime
    assert [o.name for o in OUTPUTS if not o.default] == ["points"]  # off unless asked
    assert all(o.thresholded for o in OUTPUTS if o.spatial)  # computed from the mask
    assert len({o.topic for o in OUTPUTS}) == len(OUTPUTS) == len(set(OUTPUT_NAMES))
    assert {o.needs for o in OUTPUTS} == {"ids", "score"}
    assert all(o.encoding for o in OUTPUTS if o.msg_type is Image)
    types = topic_types()
    assert types["anomaly/obstacles"] is AnomalyObstacleArray and STATUS_TOPIC in types
    assert STATUS_TOPIC not in topic_types(status=False)
    assert type_name(AnomalyObstacleArray) == "sleeg_ros/msg/AnomalyObstacleArray"


def test_a_replay_records_the_outputs_it_can_match_to_a_frame() -> None:
    """sleeg bag matches outputs to frames by their header stamp: the markers (a MarkerArray, no
    header) are left out; the points are recorded when the node publishes them."""
    from sleeg_ros.bag.topics import FRAME_OUTPUTS

    topics = {o.name: o.topic for o in OUTPUTS}
    assert topics["markers"] not in FRAME_OUTPUTS and topics["points"] in FRAME_OUTPUTS
    assert set(FRAME_OUTPUTS) == set(topics.values()) - {topics["markers"]}


class Pub:
    """A publisher with `subscribers` subscriptions that keeps what it is given."""

    def __init__(self, subscribers: int) -> None:
        self.subscribers = subscribers
        self.sent: list = []

    def get_subscription_count(self) -> int:
        return self.subscribers

    def publish(self, msg) -> None:
        self.sent.append(msg)


class Model:
    """Train ids 3 everywhere; score 1 in the top-left quarter, 0 elsewhere."""

    def __init__(self) -> None:
        self.calls: list[dict] = []

    def __call__(self, images, scores, size, train_ids, resize_mode) -> Prediction:
        self.calls.append({"scores": scores, "train_ids": train_ids})
        b = images.shape[0]
        score = torch.zeros(b, H, W)
        score[:, : H // 2, : W // 2] = 1.0
        ids = torch.full((b, H, W), 3, dtype=torch.uint8) if train_ids else None
        return Prediction(ids, {n: score for n in scores})


def stages_for(
    subscribed: set[str], threshold: float, **overrides: object
) -> tuple[NodeStages, Camera, Model]:
    camera = Camera("", "raw", Image, "/cam/image", "status", "hw", threshold=threshold)
    camera.pubs = {name: Pub(int(name in subscribed)) for name in OUTPUT_NAMES}
    camera.judged = JudgedArea()
    camera.health = HealthMonitor(Limits(2.0, 1000.0, 0.1, 10.0))
    params = {f"publish_{n}": True for n in OUTPUT_NAMES}
    params |= {"score": "sleeg", "max_input_pixels": 2**24, "mask_open_px": 0, "min_blob_area": 0}
    params["min_blob_area_near"] = 0.0
    params |= {p.name: p.default for p in PARAMS if p.name in METRIC_PARAMS} | overrides
    model = Model()
    loaded = LoadedModel(model, "fake", torch.device("cpu"), None, 1, score_stats=None)
    pose = overrides.get("camera_pose")
    poses = ParameterPoses({"": Pose.from_values(pose)}) if pose else None
    stages = NodeStages([camera], loaded, params.__getitem__, get_logger("t"), "pad", poses=poses)
    return stages, camera, model


def frame() -> Frame:
    rgb = np.zeros((H, W, 3), np.uint8)
    header = Header(frame_id="cam")
    header.stamp.sec = 7
    return Frame(array_to_image(rgb, header, "rgb8"), 0.0)


def run(stages: NodeStages) -> Job:
    job = Job("", frame(), 0.0)
    stages.decode(job)
    if job.want:
        stages.infer([job])
        stages.publish(job)
    return job


def sent(camera: Camera) -> dict[str, list]:
    return {name: pub.sent for name, pub in camera.pubs.items() if pub.sent}


def test_nothing_subscribed_nothing_decoded_or_computed() -> None:
    stages, camera, model = stages_for(set(), 0.5)
    job = run(stages)
    assert job.want == {} and job.rgb is None and model.calls == [] and sent(camera) == {}


def test_the_segmentation_outputs_need_only_train_ids() -> None:
    stages, camera, model = stages_for({"color"}, 0.5)
    run(stages)
    assert model.calls == [{"scores": (), "train_ids": True}]
    out = sent(camera)
    assert list(out) == ["color"]
    msg = out["color"][0]
    assert (msg.encoding, msg.height, msg.width, msg.header.stamp.sec) == ("rgb8", H, W, 7)


def test_the_anomaly_outputs_need_only_the_score_and_follow_the_table() -> None:
    stages, camera, model = stages_for({"score", "mask", "obstacles"}, 0.5)
    run(stages)
    assert model.calls == [{"scores": ("sleeg",), "train_ids": False}]
    out = sent(camera)
    assert list(out) == ["score", "mask", "obstacles"]
    assert out["score"][0].encoding == "32FC1" and out["mask"][0].encoding == "mono8"
    mask = np.frombuffer(bytes(out["mask"][0].data), np.uint8).reshape(H, W)
    assert np.count_nonzero(mask) == (H // 2) * (W // 2)
    obstacles = out["obstacles"][0]
    assert obstacles.anomalous_fraction == pytest.approx(0.25)
    assert [(o.roi.width, o.roi.height) for o in obstacles.obstacles] == [(W // 2, H // 2)]
    # no pose configured: in pixels only by choice, every metric value unknown, nothing warned
    assert obstacles.output_frame == "base_link" and obstacles.header.frame_id == "cam"
    (obstacle,) = obstacles.obstacles
    assert obstacle.method == AnomalyObstacle.METHOD_NONE
    metres = (obstacle.contact.x, obstacle.distance, obstacle.width, obstacle.height)
    assert all(math.isnan(v) for v in metres)
    assert camera.geometry_issues is None
    # with a pose, the missing camera_info is a cause for /diagnostics
    stages, camera, _ = stages_for({"obstacles"}, 0.5, camera_pose=[0.0, 0.0, 1.5, 0.0, 0.0, 0.0])
    run(stages)
    assert set(camera.geometry_issues) == {"no_camera_info"}


def test_min_blob_area_near_drops_a_blob_below_its_rows_minimum() -> None:
    """The blob (rows 0-3, 24 px) needs min_blob_area_near · 4² px: kept at 1.0 (16), dropped
    at 2.0 (32)."""
    for near, kept in ((1.0, (H // 2) * (W // 2)), (2.0, 0)):
        stages, camera, _ = stages_for({"mask"}, 0.5, min_blob_area_near=near)
        run(stages)
        mask = np.frombuffer(bytes(sent(camera)["mask"][0].data), np.uint8)
        assert np.count_nonzero(mask) == kept, near


def test_without_a_threshold_only_the_score_goes_out() -> None:
    stages, camera, _ = stages_for({"score", "mask", "obstacles", "overlay"}, math.nan)
    run(stages)
    assert list(sent(camera)) == ["score"]
