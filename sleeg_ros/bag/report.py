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

import numpy as np

from sleeg_core.common.errors import SleegError
from sleeg_core.data.bags import BagHandle
from sleeg_ros.bag.markdown import report_markdown
from sleeg_ros.bag.pictures import write_contact_sheet, write_latency_plot
from sleeg_ros.bag.results import CameraResult, ReplayResult
from sleeg_ros.bag.topics import FRAME_OUTPUTS

COUNTERS = ("frames_in", "processed", "dropped", "bad_frames")
TIMINGS = ("inference_ms_p50", "processing_ms_p50", "latency_ms_p50", "latency_ms_p95")


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
    if rec.mask_metrics.images:  # the published masks: component-level and pixel figures
        out["mask"] = rec.mask_metrics.compute().as_dict()
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
    latencies = [lat for f in frames if (lat := f.latency(res.expected)) is not None]
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


def write_frames_csv(res: ReplayResult, path: Path) -> Path:
    """One row per sent frame in send order: stamps, send time and the latency of each output
    (ms); with named cameras the camera's name first."""
    named = res.options.named
    outputs = [t for t in FRAME_OUTPUTS if any(t in c.expected for c in res.cameras.values())]
    sent = sorted(
        ((name, c, f) for name, c in res.cameras.items() for f in c.frames),
        key=lambda item: item[2].sent,
    )
    t0 = res.first_sent() or 0.0
    with path.open("w", newline="") as f:
        out = csv.writer(f)
        header = ["index", "bag_stamp_ns", "sent_stamp_ns", "sent_s", "frame_ms", *outputs]
        out.writerow(["camera", *header] if named else header)
        for name, camera, fr in sent:
            row = [fr.index, fr.bag_stamp, fr.stamp, f"{fr.sent - t0:.4f}"]
            row.append(_ms(fr.latency(camera.expected)))
            row += [_ms(fr.arrivals[t] - fr.sent if t in fr.arrivals else None) for t in outputs]
            out.writerow([name, *row] if named else row)
    return path


def _ms(seconds: float | None) -> str:
    return "" if seconds is None else f"{1e3 * seconds:.2f}"


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
