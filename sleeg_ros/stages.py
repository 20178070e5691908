"""What the node does with each frame of a round: decode, infer, publish (sleeg_ros.scheduler).

Only the outputs someone subscribes to (and `publish_<name>` allows) are computed: a frame nobody
wants an output of is not even decoded; train ids only for the segmentation outputs, the score
only for the anomaly outputs, the mask only when a threshold is in force. Every output is stamped
with its input frame's header. A bad frame (BadFrameError) or a failing one is counted against its
camera and logged, throttled; the node never dies on a frame.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Any

import numpy as np
from rclpy.impl.rcutils_logger import RcutilsLogger
from sensor_msgs.msg import CompressedImage
from std_msgs.msg import Header

from sleeg_core.data.geometry import restrict_score
from sleeg_core.data.image_msgs import BadFrameError, compressed_to_rgb, image_to_rgb
from sleeg_core.data.images import to_batch
from sleeg_core.data.labels import colorize
from sleeg_core.eval.obstacles import Obstacle, find_obstacles
from sleeg_core.eval.visualize import score_overlay, score_range
from sleeg_core.projection.locate import locate_obstacles
from sleeg_core.projection.points import anomaly_points
from sleeg_ros.camera_geometry import CameraInputs, PoseSource, effect, frame_geometry, stamp_ns
from sleeg_ros.cameras import Camera
from sleeg_ros.conversions import array_to_image
from sleeg_ros.health import Timings
from sleeg_ros.metric_msgs import metric_header, obstacle_array, obstacle_markers, point_cloud
from sleeg_ros.model_setup import LoadedModel
from sleeg_ros.outputs import OUTPUTS
from sleeg_ros.scheduler import Job

LOG_THROTTLE_S = 5.0
NEEDS = {need: tuple(o.name for o in OUTPUTS if o.needs == need) for need in ("ids", "score")}
THRESHOLDED = tuple(o.name for o in OUTPUTS if o.thresholded)
SPATIAL = tuple(o.name for o in OUTPUTS if o.spatial)


class NodeStages:
    """The scheduler's stages for the node's cameras (by name) and its loaded model."""

    def __init__(
        self,
        cameras: list[Camera],
        loaded: LoadedModel,
        param: Callable[[str], Any],
        log: RcutilsLogger,
        resize_mode: str,
        poses: PoseSource | None = None,
    ) -> None:
        self.cameras = {c.name: c for c in cameras}
        self.loaded = loaded
        self.param = param
        self.log = log
        self.resize_mode = resize_mode
        self.score_name = param("score")
        self.max_pixels = param("max_input_pixels")
        self.poses = poses  # None: no camera has a pose
        self.output_frame = param("output_frame")
        self.use_depth = param("use_depth")

    def decode(self, job: Job) -> None:
        """The outputs a frame needs and, when there are some, its pixels."""
        camera = self.cameras[job.key]
        want = {
            name: self.param(f"publish_{name}") and pub.get_subscription_count() > 0
            for name, pub in camera.pubs.items()
        }
        if not any(want.values()):
            return  # job.want stays {}: nothing to compute
        job.want = want
        msg = job.frame.msg
        if isinstance(msg, CompressedImage):
            job.rgb = compressed_to_rgb(msg, self.max_pixels)
        else:
            job.rgb = image_to_rgb(msg, self.max_pixels)

    def infer(self, jobs: list[Job]) -> None:
        """One forward pass for frames of one size; fills each job's train ids and score."""
        t1 = time.perf_counter()
        need_ids = any(needs(j, "ids") for j in jobs)
        need_score = any(needs(j, "score") for j in jobs)
        pred = self.loaded.model(
            to_batch([j.rgb for j in jobs], self.loaded.device),
            scores=(self.score_name,) if need_score else (),
            size=self.loaded.size,
            train_ids=need_ids,
            resize_mode=self.resize_mode,
        )
        ids = pred.train_ids.cpu().numpy() if need_ids else None
        scores = pred.scores[self.score_name].cpu().numpy() if need_score else None
        t2 = time.perf_counter()
        for i, job in enumerate(jobs):
            job.train_ids = ids[i] if needs(job, "ids") else None
            job.score = scores[i] if needs(job, "score") else None
            job.inference_ms = (t2 - t1) * 1e3

    def publish(self, job: Job) -> None:
        """Every wanted output of the job, in the outputs table's order."""
        camera, header = self.cameras[job.key], job.frame.msg.header
        values = self._id_outputs(job)
        if job.score is not None:
            values |= self._score_outputs(job, camera, header)
        for out in OUTPUTS:
            if out.name in values:
                value = values[out.name]
                msg = array_to_image(value, header, out.encoding) if out.encoding else value
                camera.pubs[out.name].publish(msg)
        t3 = time.perf_counter()
        latency_ms = (time.monotonic() - job.frame.received) * 1e3
        timings = Timings(job.inference_ms, (t3 - job.started) * 1e3, latency_ms)
        camera.health.frame_processed(timings)

    def skip(self, job: Job) -> None:
        self.cameras[job.key].health.frame_processed()

    def fail(self, key: str, err: Exception) -> None:
        camera = self.cameras[key]
        camera.health.frame_bad()
        if isinstance(err, BadFrameError):
            self.log.warning(
                f"{camera.input_topic}: skipped a frame: {err}",
                throttle_duration_sec=LOG_THROTTLE_S,
            )
        else:
            self.log.error(
                f"{camera.input_topic}: frame failed: {err.__class__.__name__}: {err}",
                throttle_duration_sec=LOG_THROTTLE_S,
            )

    @staticmethod
    def _id_outputs(job: Job) -> dict[str, np.ndarray]:
        values = {}
        if job.want.get("segmentation"):
            values["segmentation"] = job.train_ids
        if job.want.get("color"):
            values["color"] = colorize(job.train_ids)
        return values

    def _score_outputs(self, job: Job, camera: Camera, header: Header) -> dict[str, Any]:
        """The score outputs wanted: the score inside the judged area (outside: the lowest,
        never in the mask), then the mask, obstacles and overlay at the camera's threshold."""
        judged = camera.judged.mask(*job.score.shape)
        score = restrict_score(job.score, judged)
        want = job.want
        values: dict[str, Any] = {"score": score.astype(np.float32)} if want["score"] else {}
        threshold = camera.threshold
        if math.isnan(threshold) or not any(want[n] for n in THRESHOLDED):
            return values
        mask, obstacles = find_obstacles(
            score,
            threshold,
            self.param("mask_open_px"),
            self.param("min_blob_area"),
            judged,
            self.param("min_blob_area_near"),
        )
        if want["mask"]:
            values["mask"] = mask
        if want["overlay"]:
            lo, hi = score_range(score, self.loaded.score_stats)
            values["overlay"] = score_overlay(job.rgb, score, lo, hi, threshold)
        if any(want[n] for n in SPATIAL):
            values |= self._metric_outputs(job, camera, header, score, mask, obstacles)
        return values

    def _metric_outputs(
        self,
        job: Job,
        camera: Camera,
        header: Header,
        score: np.ndarray,
        mask: np.ndarray,
        obstacles: list[Obstacle],
    ) -> dict[str, Any]:
        """The metric outputs wanted (obstacles, points, markers) from the camera's geometry."""
        stamp = stamp_ns(job.frame.msg)
        pose = self.poses.pose(camera.name, stamp) if self.poses is not None else None
        max_age = self.param("depth_max_age_s") if self.use_depth else None
        geo = frame_geometry(camera.inputs or CameraInputs(), pose, stamp, mask.shape, max_age)
        self._report(camera, geo.issues if pose is not None else None)
        want, values = job.want, {}
        metric = metric_header(header, self.output_frame)
        if want["obstacles"] or want["markers"]:
            locations = locate_obstacles(mask, obstacles, geo.camera, geo.depth_m)
        if want["obstacles"]:
            values["obstacles"] = obstacle_array(
                header, camera.threshold, mask, obstacles, locations, self.output_frame
            )
        if want["markers"]:
            xy = tuple(pose.translation[:2]) if pose is not None else (0.0, 0.0)
            lifetime = self.param("markers_lifetime_s")
            ns = camera.name or "anomaly"
            values["markers"] = obstacle_markers(metric, ns, obstacles, locations, xy, lifetime)
        if want["points"]:
            points = np.zeros((0, 4), np.float32)
            if geo.camera is not None:
                budget = self.param("points_budget")
                points = anomaly_points(mask, geo.camera, geo.depth_m, budget, score)
            values["points"] = point_cloud(metric, points)
        return values

    def _report(self, camera: Camera, issues: dict[str, str] | None) -> None:
        """Log each cause the first time it appears (in this activation: a cause that comes and
        goes is not logged again) and keep the frame's causes for /diagnostics. None: the camera
        has no camera_pose, so its obstacles are in pixels only by choice — nothing to warn of."""
        if issues is None:
            camera.geometry_issues = None
            return
        for cause, text in issues.items():
            if cause not in camera.geometry_logged:
                camera.geometry_logged.add(cause)
                self.log.warning(f"{camera.input_topic}: {text}: {effect(cause)}")
        camera.geometry_issues = dict(issues)


def needs(job: Job, kind: str) -> bool:
    """Whether an output the job wants is computed from `kind` ("ids": the train ids, "score":
    the anomaly score)."""
    return any(job.want.get(name) for name in NEEDS[kind])
