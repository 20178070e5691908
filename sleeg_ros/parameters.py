"""The anomaly node's parameters: one table of names, defaults, descriptions and ranges.

Defaults match config/anomaly.yaml. `runtime` parameters may change while the node runs (validated
in the node's on-set callback); the others are read once: at construction (autostart, input topic,
health, /diagnostics QoS), by configure (model, geometry, outputs' QoS) or by activate (input QoS).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from rcl_interfaces.msg import (
    FloatingPointRange,
    IntegerRange,
    ParameterDescriptor,
)

from sleeg_core.eval.obstacles import NODE_CLEANUP
from sleeg_core.model.tta import NODE_TTA
from sleeg_ros.outputs import OUTPUTS


class StartupError(Exception):
    """A configuration problem that stops the node before it runs (the message names the
    parameter)."""


@dataclass(frozen=True)
class Param:
    name: str
    default: Any
    description: str
    runtime: bool = False
    int_range: tuple[int, int] | None = None
    float_range: tuple[float, float] | None = None
    dynamic_typing: bool = False  # for lists: `[]` has no type, and [0, 1] is an integer array

    def descriptor(self) -> ParameterDescriptor:
        desc = ParameterDescriptor(
            description=self.description,
            read_only=not self.runtime,
            dynamic_typing=self.dynamic_typing,
        )
        if self.int_range:
            desc.integer_range = [
                IntegerRange(from_value=self.int_range[0], to_value=self.int_range[1])
            ]
        if self.float_range:
            desc.floating_point_range = [
                FloatingPointRange(from_value=self.float_range[0], to_value=self.float_range[1])
            ]
        return desc


IMAGE_TRANSPORTS = ("raw", "compressed")

PARAMS: tuple[Param, ...] = (
    Param(
        "cameras",
        [],
        "camera names served by this one node, e.g. [front, left, right]: camera c reads "
        "c/image and publishes under c/ (c/anomaly/score, ...), each with its own slot, health "
        "and c.* parameters; []: one camera on image, outputs unprefixed",
        dynamic_typing=True,
    ),
    Param(
        "autostart",
        True,
        "configure and activate at start-up (a start-up error exits); false: wait in "
        "'unconfigured' for a lifecycle manager",
    ),
    Param(
        "segmentor",
        "",
        "segmentor name from the sleeg_core registry (enet, espnet, ...); empty: the head "
        "file's, else the known weights'",
    ),
    Param(
        "weights",
        "enet_cityscapes",
        "segmentor checkpoint: a file, or a known name (sleeg weights list), fetched once",
    ),
    Param(
        "head",
        "enet_cityscapes_sleeg",
        "trained OoD head: a file or a shipped head's name; empty: publish the `score` baseline",
    ),
    Param("score", "sleeg", "sleeg (needs a head) | msp | maxlogit | entropy | energy"),
    Param(
        "onnx_model",
        "",
        "a graph of `sleeg export` run by ONNX Runtime on the CPU instead of PyTorch (weights, "
        "head, segmentor and the inference size come from it; no device/compile_mode/tta); "
        "empty: PyTorch",
    ),
    Param("device", "auto", "auto | cpu | cuda | cuda:N"),
    Param(
        "half_precision",
        False,
        "fp16 networks on CUDA (weights converted by configure; scores stay fp32); ignored on CPU",
    ),
    Param(
        "tta",
        NODE_TTA,
        "scales: average the score over the input at 1, 0.75 and 0.5 of the inference size "
        "(1.81x the compute) | flip: with the mirrored frame's (2x) | none: one pass",
    ),
    Param(
        "compile_mode",
        "",
        "torch.compile segmentor + head + score as one: '' (off) | default | reduce-overhead "
        "(+ CUDA graphs) | max-autotune; compiled by configure for the inference size",
    ),
    Param(
        "cpu_threads",
        0,
        "CPU threads for inference (PyTorch or ONNX Runtime), shared by the inference threads; "
        "0: PyTorch's default (the cores)",
        int_range=(0, 256),
    ),
    Param(
        "inference_threads",
        0,
        "threads running the model, each on its own cameras' frames; 0: auto (1 on CUDA or "
        "with compile_mode; on the CPU one per camera up to the cores, each with its share of "
        "the cores)",
        int_range=(0, 64),
    ),
    Param(
        "max_batch",
        0,
        "with several cameras: at most this many frames (of one size) per forward pass; 0: auto "
        "(all of a round on CUDA, 1 on the CPU, where batching was measured slower)",
        int_range=(0, 64),
    ),
    Param(
        "inference_width", 1024, "inference width in pixels (0: native size)", int_range=(0, 8192)
    ),
    Param("inference_height", 512, "inference height in pixels (0: native)", int_range=(0, 8192)),
    Param(
        "resize_mode",
        "pad",
        "frame → inference size: pad (aspect kept, padded) | crop (aspect kept, centre window; "
        "outside it score = the lowest, mask 0, segmentation 255) | stretch; outputs are always "
        "at the frame's size, pixel-aligned",
    ),
    Param(
        "ignore_mask",
        "",
        "mask image (PNG) of pixels never judged anomalous: nonzero = ignore (ego hood, "
        "mounts), resized nearest to the frame; empty: none",
    ),
    Param(
        "roi_polygon",
        [],
        "judged region: flat list x0, y0, x1, y1, ... of at least 3 points normalised to [0, 1] "
        "(x right, y down); empty: the whole frame",
        dynamic_typing=True,
    ),
    Param("threshold", math.nan, "mask threshold on the score; NaN: the head file's", runtime=True),
    Param(
        "mask_open_px",
        NODE_CLEANUP.open_px,
        "morphological opening kernel (0: off)",
        True,
        int_range=(0, 63),
    ),
    Param(
        "min_blob_area",
        NODE_CLEANUP.min_area,
        "drop mask blobs smaller than this",
        True,
        int_range=(0, 10**7),
    ),
    Param(
        "min_blob_area_near",
        NODE_CLEANUP.min_area_near,
        "also drop mask blobs smaller than this times (their lowest row + 1) squared: this "
        "fraction of H² at the frame's bottom, less towards the top (0: off)",
        True,
        float_range=(0.0, 1.0),
    ),
    *(
        Param(f"publish_{o.name}", o.default, f"publish the {o.name} output", runtime=True)
        for o in OUTPUTS
    ),
    Param(
        "output_frame",
        "base_link",
        "frame of every metric output (obstacles' metres, points, markers; their frame_id) and "
        "of camera_pose (REP 103/105)",
    ),
    Param(
        "camera_pose",
        [],
        "the camera's body frame (x forward, y left, z up) in output_frame: [x, y, z, roll, "
        "pitch, yaw] in metres and radians; []: unknown (obstacles without metres)",
        dynamic_typing=True,
    ),
    Param(
        "use_depth",
        False,
        "subscribe `depth` beside the image (aligned depth: 16UC1 mm or 32FC1 m, the image's "
        "size or a uniform scale of it) and locate obstacles from it where it has readings",
    ),
    Param(
        "depth_max_age_s",
        0.05,
        "a depth image is used for a frame when their header stamps differ by at most this",
        runtime=True,
        float_range=(0.0, 10.0),
    ),
    Param(
        "points_budget",
        5000,
        "at most this many points per anomaly/points cloud (evenly subsampled)",
        runtime=True,
        int_range=(1, 10**7),
    ),
    Param(
        "markers_lifetime_s",
        0.5,
        "lifetime of the anomaly/markers boxes and labels (0: until replaced)",
        runtime=True,
        float_range=(0.0, 3600.0),
    ),
    Param(
        "image_transport",
        "raw",
        "raw: sensor_msgs/Image on `image` | compressed: CompressedImage (jpeg/png) on "
        "<image>/compressed; the one input subscribed to",
    ),
    Param("max_input_pixels", 4096 * 4096, "larger frames are refused", int_range=(64, 2**31 - 1)),
    Param(
        "reliable_input",
        False,
        "reliable input QoS instead of sensor-data best effort (qos_overrides./<topic>."
        "subscription.* win over it)",
    ),
    Param("status_period_s", 1.0, "/diagnostics publish period (s)", float_range=(0.1, 3600.0)),
    Param("hardware_id", "", "hardware_id of the /diagnostics status; empty: the input topic"),
    Param(
        "max_input_age_s",
        2.0,
        "health ERROR when no frame arrived for this long (and before the first)",
        float_range=(0.01, 3600.0),
    ),
    Param(
        "processing_budget_ms",
        1000.0,
        "health WARN when the p95 per-frame processing time over the window is above (0: off)",
        float_range=(0.0, 3.6e6),
    ),
    Param(
        "max_bad_frame_rate",
        0.1,
        "health WARN when the fraction of bad frames over the window is above",
        float_range=(0.0, 1.0),
    ),
    Param(
        "health_window_s",
        10.0,
        "window (s) of the /diagnostics rates, percentiles and bad-frame rate",
        float_range=(0.1, 3600.0),
    ),
)

# Per camera c of `cameras`, declared as `c.<name>`; the empty default means the node-wide value.
CAMERA_PARAMS: tuple[Param, ...] = (
    Param("threshold", math.nan, "this camera's mask threshold; NaN: the node's", runtime=True),
    Param("image_transport", "", "raw | compressed; empty: the node's"),
    Param("ignore_mask", "", "this camera's ignore mask (PNG); empty: the node's"),
    Param(
        "roi_polygon",
        [],
        "this camera's judged region (as roi_polygon); empty: the node's",
        dynamic_typing=True,
    ),
    Param(
        "camera_pose",
        [],
        "this camera's pose in output_frame (as camera_pose); empty: the node's",
        dynamic_typing=True,
    ),
)
