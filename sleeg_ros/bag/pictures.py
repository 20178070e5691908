"""The pictures of a `sleeg bag eval` report: each camera's frame latency over the replay
(latency.png) and a contact sheet of overlays read back from the outputs bag
(contact_sheet.png)."""

from __future__ import annotations

import math
from pathlib import Path

import cv2
import numpy as np

from sleeg_core.data.bags import TYPESTORE, BagHandle, decode_image, header_stamp, open_bag
from sleeg_core.data.image_msgs import image_to_array, image_to_rgb
from sleeg_core.eval.plots import LatencySeries, plot_contact_sheet, plot_latency
from sleeg_core.eval.visualize import heatmap, score_overlay, score_range
from sleeg_ros.bag.results import CameraResult, ReplayResult, SentFrame
from sleeg_ros.bag.topics import IMAGE, OVERLAY, SCORE

SHEET_WIDTH = 640  # pixels per contact-sheet tile


def camera_sections(report: dict) -> dict[str, dict]:
    """Camera name → its section of the report ("" → the report itself for a single unnamed
    camera)."""
    return report.get("cameras") or {"": report}


def write_latency_plot(res: ReplayResult, report: dict, path: Path) -> Path | None:
    """Each camera's frame latency over the replay, one line per camera."""
    t0 = res.first_sent()
    if t0 is None:
        return None
    sections, series = camera_sections(report), {}
    for name, camera in res.cameras.items():
        done = np.array(
            [
                (f.sent - t0, lat)
                for f in camera.frames
                if (lat := f.latency(camera.expected)) is not None
            ]
        ).reshape(-1, 2)
        lost = np.array([f.sent - t0 for f in camera.frames if not f.arrivals])
        node = sections[name]["node_status"] or {}
        series[name] = LatencySeries(done[:, 0], done[:, 1] * 1e3, lost, node.get("latency_ms_p50"))
    return plot_latency(series, path)


def _pick(frames: list[SentFrame], n: int) -> list[SentFrame]:
    if len(frames) <= n:
        return frames
    return [frames[round(i)] for i in np.linspace(0, len(frames) - 1, n)]


def _tile(image: np.ndarray) -> np.ndarray:
    h, w = image.shape[:2]
    if w <= SHEET_WIDTH:
        return image
    return cv2.resize(
        image, (SHEET_WIDTH, round(h * SHEET_WIDTH / w)), interpolation=cv2.INTER_AREA
    )


def write_contact_sheet(res: ReplayResult, bag: BagHandle, path: Path, n: int = 6) -> Path | None:
    """Overlays of up to `n` frames per camera spread over the replay, read back from the
    outputs bag; where the node published no overlay (no threshold), the input with the score
    heat map."""
    if not res.options.record:
        return None
    tiles = []
    for camera in res.cameras.values():
        tiles += _camera_tiles(camera, res.options.out / "outputs", bag, n)
    return plot_contact_sheet(tiles, path) if tiles else None


def _camera_tiles(
    camera: CameraResult, outputs_bag: Path, bag: BagHandle, n: int
) -> list[tuple[str, np.ndarray]]:
    """(title, picture) of up to `n` of the camera's answered frames."""
    done = [f for f in camera.frames if f.latency(camera.expected) is not None]
    chosen = {f.stamp: f for f in _pick(done, n)}
    if not chosen or not ({OVERLAY, SCORE} & set(camera.expected)):
        return []
    found = _read_outputs(outputs_bag, camera, chosen)
    complete = found[OVERLAY].keys() >= chosen.keys()
    inputs = {} if complete else _input_frames(camera, bag, chosen)
    tiles = []
    for stamp, frame in chosen.items():
        if stamp in found[OVERLAY]:
            picture = image_to_rgb(found[OVERLAY][stamp], 2**31)
        elif stamp in found[SCORE]:
            score = image_to_array(found[SCORE][stamp])
            lo, hi = score_range(score)
            rgb = inputs.get(frame.bag_stamp)
            picture = heatmap(score, lo, hi) if rgb is None else score_overlay(rgb, score, lo, hi)
        else:
            continue
        latency = frame.latency(camera.expected) or math.nan
        who = f"{camera.options.name}: " if camera.options.name else ""
        tiles.append((f"{who}frame {frame.index}  ({1e3 * latency:.0f} ms)", _tile(picture)))
    return tiles


def _read_outputs(
    outputs_bag: Path, camera: CameraResult, chosen: dict[int, SentFrame]
) -> dict[str, dict[int, object]]:
    """The chosen frames' overlay and score messages in the outputs bag: output → stamp → msg."""
    kinds = {camera.topics[k]: k for k in (OVERLAY, SCORE)}  # full topic → output
    found: dict[str, dict[int, object]] = {k: {} for k in kinds.values()}
    outputs = open_bag(outputs_bag).reader
    try:
        conns = [c for c in outputs.connections if c.topic in kinds]
        for conn, _t, raw in outputs.messages(connections=conns):
            stamp = header_stamp(raw)
            if stamp in chosen:
                found[kinds[conn.topic]][stamp] = TYPESTORE.deserialize_cdr(raw, IMAGE)
    finally:
        outputs.close()
    return found


def _input_frames(
    camera: CameraResult, bag: BagHandle, chosen: dict[int, SentFrame]
) -> dict[int, np.ndarray]:
    """The chosen frames' input images (bag stamp → RGB), read from the bag again."""
    wanted = {f.bag_stamp for f in chosen.values()}
    out: dict[int, np.ndarray] = {}
    conns = [c for c in bag.reader.connections if c.topic == camera.options.image_topic]
    try:
        for conn, _t, raw in bag.reader.messages(connections=conns):
            stamp = header_stamp(raw)
            if stamp in wanted and stamp not in out:
                out[stamp] = decode_image(bag.reader.deserialize(raw, conn.msgtype), conn.msgtype)
                if len(out) == len(wanted):
                    break
    except Exception:  # a damaged bag: tiles fall back to the heat map alone
        pass
    return out
