"""`sleeg bag eval`'s report: report.json, report.md, frames.csv, a latency plot and a contact
sheet.

The figures of a camera (frames, node counters, latency, throughput, metrics) form one section:
for a single unnamed camera it is merged into the top level of report.json (the layout of the
single-camera replay), for named cameras it goes under `"cameras": {name: section}`.
"""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import cv2
import numpy as np

from sleeg_core.common.errors import SleegError
from sleeg_core.data.bags import TYPESTORE, BagHandle, decode_image, header_stamp, open_bag
from sleeg_core.data.image_msgs import image_to_array, image_to_rgb
from sleeg_core.eval.plots import LatencySeries, plot_contact_sheet, plot_latency
from sleeg_core.eval.visualize import heatmap, score_overlay, score_range
from sleeg_ros.bag.replay import FRAME_OUTPUTS, IMAGE, SCORE, CameraResult, ReplayResult, SentFrame

COUNTERS = ("frames_in", "processed", "dropped", "bad_frames")
TIMINGS = ("inference_ms_p50", "processing_ms_p50", "latency_ms_p50", "latency_ms_p95")
SHEET_WIDTH = 640  # pixels per contact-sheet tile


def stats_ms(seconds: list[float]) -> dict[str, float | int] | None:
    """Median, p95, max and count of durations given in seconds, in milliseconds."""
    if not seconds:
        return None
    ms = np.asarray(seconds) * 1e3
    return {
        "median": round(float(np.median(ms)), 2),
        "p95": round(float(np.percentile(ms, 95)), 2),
        "max": round(float(ms.max()), 2),
        "n": int(ms.size),
    }


def frame_latency(frame: SentFrame, expected: tuple[str, ...]) -> float | None:
    """Send → arrival of the frame's last expected output (s); None unless all arrived."""
    if not expected or not frame.answered(expected):
        return None
    return max(frame.arrivals[t] for t in expected) - frame.sent


def _number(text: str) -> float | int | None:
    """A status value: int, float, or None for NaN (no frames yet)."""
    value = float(text)
    if not math.isfinite(value):
        return None
    return int(value) if value.is_integer() and "." not in text else value


def node_counts(res: CameraResult) -> dict | None:
    """The node's own counters of a camera over the replay (final status − status after
    warm-up)."""
    if res.baseline is None or res.final is None:
        return None
    out: dict[str, float | int | None] = {}
    for key in COUNTERS:
        try:
            out[key] = _number(res.final.values[key]) - _number(res.baseline.values[key])
        except (KeyError, ValueError, TypeError):
            out[key] = None
    for key in TIMINGS:
        try:
            out[key] = _number(res.final.values[key])
        except (KeyError, ValueError):
            out[key] = None
    if out["frames_in"] is not None:
        out["lost_in_transport"] = len(res.frames) - out["frames_in"]
    return out


def metrics_report(res: CameraResult) -> dict | None:
    """AP / AUROC / FPR95 of a camera's anomaly/score images against its labels in the bag."""
    if res.options.label_topic is None:
        return None
    rec = res.scorer
    out: dict = {
        "label_topic": res.options.label_topic,
        "labels_read": res.labels,
        "frames_scored": len(rec.scored),
        "frames_without_label": rec.unlabelled(),
        "label_problems": dict(rec.label_problems),
    }
    try:
        m = rec.metrics.compute()
    except SleegError as err:
        out["error"] = str(err)
        return out
    out.update(ap=m.ap, auroc=m.auroc, fpr95=m.fpr95, n_pixels=m.n_pixels, n_anomaly=m.n_anomaly)
    return out


def camera_report(res: CameraResult) -> dict:
    """One camera's section: topics, frames, node counters, latency, throughput, metrics."""
    frames = res.frames
    answered = [f for f in frames if f.arrivals]
    latencies = [lat for f in frames if (lat := frame_latency(f, res.expected)) is not None]
    arrivals = [t for f in answered for t in f.arrivals.values()]
    wall = (max(arrivals) - frames[0].sent) if arrivals else 0.0
    sending = frames[-1].sent - frames[0].sent if len(frames) > 1 else 0.0
    return {
        "image_topic": res.options.image_topic,
        "label_topic": res.options.label_topic,
        "outputs_per_frame": list(res.expected),
        "frames": {
            "in_bag": res.in_bag,
            "read": res.read,
            "skipped": sum(res.skipped.values()),
            "skipped_reasons": dict(res.skipped),
            "sent": len(frames),
            "with_outputs": len(answered),
            "with_all_outputs": len(latencies),
            "without_outputs": len(frames) - len(answered),
            "timed_out": res.timed_out,
            "warmup_frames": res.warmup_frames,
            "unmatched_outputs": res.unmatched_outputs,
        },
        "node_status": node_counts(res),
        "latency_ms": {
            "frame": stats_ms(latencies),
            "per_output": {
                t: stats_ms([f.arrivals[t] - f.sent for f in answered if t in f.arrivals])
                for t in res.expected
            },
        },
        "throughput": {
            "processed_fps": round(len(answered) / wall, 3) if wall > 0 else None,
            "sent_fps": round((len(frames) - 1) / sending, 3) if sending > 0 else None,
            "wall_s": round(wall, 3),
        },
        "metrics": metrics_report(res),
    }


def output_counts(res: ReplayResult) -> dict[str, int]:
    """Messages received per output topic: by full topic, or for a single unnamed camera by
    output name (`anomaly/score`, `/diagnostics`) as the single-camera report has them."""
    counts = res.recorder.counts
    if res.options.named:
        return dict(counts)
    (camera,) = res.cameras.values()
    names = {full: short for short, full in camera.topics.items()}
    return {names.get(topic, topic): n for topic, n in counts.items()}


def build_report(res: ReplayResult) -> dict:
    """Everything `sleeg bag eval` measured, as one JSON-able dict."""
    opt = res.options
    sections = {name: camera_report(camera) for name, camera in res.cameras.items()}
    report = {
        "bag": str(opt.bag),
        "bag_note": res.bag_note or None,
        "mode": "max-rate" if opt.rate is None else f"recorded rate x{opt.rate:g}",
        "complete": not res.problems,
        "problems": res.problems,
        "warnings": [],
        "node": {
            "started": not opt.attach,
            "namespace": opt.namespace,
            "params_file": str(opt.params_file) if opt.params_file else None,
            "overrides": opt.overrides,
            "pid": res.node_pid,
            "exit_code": res.node_exit,
            "log": str(opt.out / "node.log") if not opt.attach else None,
        },
    }
    if opt.named:
        report["cameras"] = sections
    else:
        section = sections[""]
        report["node"]["outputs_per_frame"] = section.pop("outputs_per_frame")
        report.update(section)
    report["outputs"] = {
        "bag": str(opt.out / "outputs") if opt.record else None,
        "file": str(opt.out / "outputs" / "outputs.mcap") if opt.record else None,
        "messages": output_counts(res),
        "recorder_error": res.recorder.error or None,
    }
    return report


def camera_sections(report: dict) -> dict[str, dict]:
    """Camera name → its section of the report ("" → the report itself for a single unnamed
    camera)."""
    return report.get("cameras") or {"": report}


# ---------------------------------------------------------------- pictures


def first_sent(res: ReplayResult) -> float | None:
    """time.monotonic() of the first frame sent (None: none was)."""
    return min((c.frames[0].sent for c in res.cameras.values() if c.frames), default=None)


def write_latency_plot(res: ReplayResult, report: dict, path: Path) -> Path | None:
    """Each camera's frame latency over the replay, one line per camera."""
    t0 = first_sent(res)
    if t0 is None:
        return None
    sections, series = camera_sections(report), {}
    for name, camera in res.cameras.items():
        done = np.array(
            [
                (f.sent - t0, lat)
                for f in camera.frames
                if (lat := frame_latency(f, camera.expected)) is not None
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
    done = [f for f in camera.frames if frame_latency(f, camera.expected) is not None]
    chosen = {f.stamp: f for f in _pick(done, n)}
    if not chosen or not ({"overlay", SCORE} & set(camera.expected)):
        return []
    kinds = {camera.topics[k]: k for k in ("overlay", SCORE)}  # full topic → output
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
    complete = found["overlay"].keys() >= chosen.keys()
    inputs = {} if complete else _input_frames(camera, bag, chosen)
    tiles = []
    for stamp, frame in chosen.items():
        if stamp in found["overlay"]:
            picture = image_to_rgb(found["overlay"][stamp], 2**31)
        elif stamp in found[SCORE]:
            score = image_to_array(found[SCORE][stamp])
            lo, hi = score_range(score)
            rgb = inputs.get(frame.bag_stamp)
            picture = heatmap(score, lo, hi) if rgb is None else score_overlay(rgb, score, lo, hi)
        else:
            continue
        latency = frame_latency(frame, camera.expected) or math.nan
        who = f"{camera.options.name}: " if camera.options.name else ""
        tiles.append((f"{who}frame {frame.index}  ({1e3 * latency:.0f} ms)", _tile(picture)))
    return tiles


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


def write_frames_csv(res: ReplayResult, path: Path) -> Path:
    """One row per sent frame in send order: stamps, send time and the latency of each output
    (ms); with named cameras the camera's name first."""
    named = res.options.named
    outputs = [t for t in FRAME_OUTPUTS if any(t in c.expected for c in res.cameras.values())]
    sent = sorted(
        ((name, c, f) for name, c in res.cameras.items() for f in c.frames),
        key=lambda item: item[2].sent,
    )
    t0 = first_sent(res) or 0.0
    with path.open("w", newline="") as f:
        out = csv.writer(f)
        header = ["index", "bag_stamp_ns", "sent_stamp_ns", "sent_s", "frame_ms", *outputs]
        out.writerow(["camera", *header] if named else header)
        for name, camera, fr in sent:
            row = [fr.index, fr.bag_stamp, fr.stamp, f"{fr.sent - t0:.4f}"]
            row.append(_ms(frame_latency(fr, camera.expected)))
            row += [_ms(fr.arrivals[t] - fr.sent if t in fr.arrivals else None) for t in outputs]
            out.writerow([name, *row] if named else row)
    return path


def _ms(seconds: float | None) -> str:
    return "" if seconds is None else f"{1e3 * seconds:.2f}"


# ---------------------------------------------------------------- text


def _fmt(value: object, digits: int = 1) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def report_markdown(report: dict) -> str:
    """report.md: the numbers a person reads first (named cameras: a section each)."""
    named = "cameras" in report
    node = report["node"]
    lines = [f"# sleeg bag eval: {report['bag']}", ""]
    if not named:
        lines.append(_topics_line(report))
    lines.append(
        f"- mode: {report['mode']}; node "
        + ("started here" if node["started"] else "attached")
        + (
            f", cameras: {', '.join(report['cameras'])}"
            if named
            else f", outputs per frame: {', '.join(node['outputs_per_frame']) or 'none'}"
        )
    )
    if report["problems"]:
        lines += ["", "**Incomplete run:**", *(f"- {p}" for p in report["problems"])]
    if named:
        for name, section in report["cameras"].items():
            outputs = ", ".join(section["outputs_per_frame"]) or "none"
            lines += ["", f"## Camera `{name}`", "", _topics_line(section)]
            lines += [f"- outputs per frame: {outputs}", *_camera_markdown(section, "###")]
    else:
        lines += _camera_markdown(report, "##")
    out = report["outputs"]
    where = (
        f"recorded in `{out['bag']}` (rosbag2, MCAP)" if out["bag"] else "received (not recorded)"
    )
    lines += [
        "",
        f"Outputs {where}: " + ", ".join(f"{t} {n}" for t, n in sorted(out["messages"].items())),
        "",
    ]
    return "\n".join(lines)


def _topics_line(section: dict) -> str:
    labels = f"`{section['label_topic']}`" if section["label_topic"] else "none"
    return f"- image topic `{section['image_topic']}`, labels {labels}"


def _camera_markdown(section: dict, heading: str) -> list[str]:
    """A camera's frames, latency and metrics, under `heading`-level titles."""
    fr, node = section["frames"], section["node_status"]
    lines = [
        "",
        f"{heading} Frames",
        "",
        "| | count |",
        "|---|---:|",
        f"| in the bag | {fr['in_bag']} |",
        f"| read | {fr['read']} |",
        f"| skipped (not sent) | {fr['skipped']} |",
        f"| sent | {fr['sent']} |",
        f"| with outputs | {fr['with_outputs']} |",
        f"| without outputs (dropped or lost) | {fr['without_outputs']} |",
    ]
    if node:
        lines += [
            f"| node: received | {_fmt(node['frames_in'])} |",
            f"| node: processed | {_fmt(node['processed'])} |",
            f"| node: dropped (newer frame came first) | {_fmt(node['dropped'])} |",
            f"| node: bad frames | {_fmt(node['bad_frames'])} |",
        ]
    lines += [f"- skipped: {why} ({n})" for why, n in fr["skipped_reasons"].items()]
    lat = section["latency_ms"]
    lines += [
        "",
        f"{heading} Latency (ms, publish → output arrival, by header stamp)",
        "",
        "| output | median | p95 | max | frames |",
        "|---|---:|---:|---:|---:|",
    ]
    for name, s in [("all outputs of a frame", lat["frame"]), *lat["per_output"].items()]:
        if s:
            lines.append(
                f"| {name} | {s['median']:.1f} | {s['p95']:.1f} | {s['max']:.1f} | {s['n']} |"
            )
    if node:
        lines.append(
            f"\nThe node's own status (frames of its health window, receipt → last publish): "
            f"latency median {_fmt(node['latency_ms_p50'])}, p95 {_fmt(node['latency_ms_p95'])}; "
            f"inference median {_fmt(node['inference_ms_p50'])}, processing (decode + inference "
            f"+ publish) median {_fmt(node['processing_ms_p50'])}."
        )
    else:
        lines.append("\nNo node status before and after the replay: node counters unavailable.")
    tp = section["throughput"]
    lines += [
        "",
        f"Throughput: {_fmt(tp['processed_fps'], 2)} frames/s processed, "
        f"{_fmt(tp['sent_fps'], 2)} frames/s sent, over {tp['wall_s']:.1f} s.",
    ]
    return lines + _metrics_markdown(section["metrics"], heading)


def _metrics_markdown(m: dict | None, heading: str) -> list[str]:
    if not m:
        return []
    lines = ["", f"{heading} Anomaly metrics (labels on `{m['label_topic']}`)", ""]
    if "error" in m:
        lines.append(f"Not computed: {m['error']}")
    else:
        lines += [
            "| AP ↑ | AUROC ↑ | FPR95 ↓ | frames | valid pixels | anomalous |",
            "|---:|---:|---:|---:|---:|---:|",
            f"| {100 * m['ap']:.2f} | {100 * m['auroc']:.2f} | {100 * m['fpr95']:.2f} "
            f"| {m['frames_scored']} | {m['n_pixels']:,} | "
            f"{m['n_anomaly'] / m['n_pixels']:.2%} |",
        ]
    return lines + [f"- label problem: {why} ({n})" for why, n in m["label_problems"].items()]


def write_report(res: ReplayResult, bag: BagHandle, sheet_frames: int = 6) -> dict:
    """report.json, report.md, frames.csv, latency.png and contact_sheet.png in the output
    folder."""
    out = res.options.out
    report = build_report(res)
    files = {
        "report_json": out / "report.json",
        "report_md": out / "report.md",
        "frames_csv": write_frames_csv(res, out / "frames.csv"),
    }
    try:
        if plot := write_latency_plot(res, report, out / "latency.png"):
            files["latency_plot"] = plot
        if sheet := write_contact_sheet(res, bag, out / "contact_sheet.png", sheet_frames):
            files["contact_sheet"] = sheet
    except Exception as err:  # pictures must never cost the numbers
        report["warnings"].append(f"pictures failed: {err.__class__.__name__}: {err}")
    report["files"] = {k: str(v) for k, v in files.items()}
    (out / "report.json").write_text(json.dumps(report, indent=2))
    (out / "report.md").write_text(report_markdown(report))
    return report
