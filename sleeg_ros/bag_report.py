"""`sleeg bag eval`'s report: report.json, report.md, frames.csv, a latency plot and a contact
sheet."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import cv2
import numpy as np

from sleeg_core.bags import TYPESTORE, BagHandle, decode_image, header_stamp, open_bag
from sleeg_core.errors import SleegError
from sleeg_core.image_msgs import image_to_array, image_to_rgb
from sleeg_core.plots import plot_contact_sheet, plot_latency
from sleeg_core.visualize import heatmap, score_overlay, score_range
from sleeg_ros.bag_replay import IMAGE, SCORE, ReplayResult, SentFrame

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
    if not expected or not all(t in frame.arrivals for t in expected):
        return None
    return max(frame.arrivals[t] for t in expected) - frame.sent


def _number(text: str) -> float | int | None:
    """A status value: int, float, or None for NaN (no frames yet)."""
    value = float(text)
    if not math.isfinite(value):
        return None
    return int(value) if value.is_integer() and "." not in text else value


def node_counts(res: ReplayResult) -> dict | None:
    """The node's own counters over the replay (final status − status after warm-up)."""
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


def metrics_report(res: ReplayResult) -> dict | None:
    """AP / AUROC / FPR95 of the recorded anomaly/score images against the bag's labels."""
    if res.options.label_topic is None:
        return None
    rec = res.recorder
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


def build_report(res: ReplayResult) -> dict:
    """Everything `sleeg bag eval` measured, as one JSON-able dict."""
    opt = res.options
    frames = res.frames
    answered = [f for f in frames if f.arrivals]
    latencies = [lat for f in frames if (lat := frame_latency(f, res.expected)) is not None]
    arrivals = [t for f in answered for t in f.arrivals.values()]
    wall = (max(arrivals) - frames[0].sent) if arrivals else 0.0
    sending = frames[-1].sent - frames[0].sent if len(frames) > 1 else 0.0
    return {
        "bag": str(opt.bag),
        "bag_note": res.bag_note or None,
        "image_topic": opt.image_topic,
        "label_topic": opt.label_topic,
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
            "outputs_per_frame": list(res.expected),
        },
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
        "outputs": {
            "bag": str(opt.out / "outputs") if opt.record else None,
            "file": str(opt.out / "outputs" / "outputs.mcap") if opt.record else None,
            "messages": dict(res.recorder.counts),
            "recorder_error": res.recorder.error or None,
        },
    }


# ---------------------------------------------------------------- pictures


def write_latency_plot(res: ReplayResult, report: dict, path: Path) -> Path | None:
    frames = res.frames
    if not frames:
        return None
    t0 = frames[0].sent
    done = np.array(
        [(f.sent - t0, lat) for f in frames if (lat := frame_latency(f, res.expected)) is not None]
    ).reshape(-1, 2)
    lost = np.array([f.sent - t0 for f in frames if not f.arrivals])
    node = report["node_status"] or {}
    return plot_latency(done[:, 0], done[:, 1] * 1e3, lost, path, node.get("latency_ms_p50"))


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
    """Overlays of up to `n` frames spread over the replay, read back from the outputs bag;
    where the node published no overlay (no threshold), the input with the score heat map."""
    done = [f for f in res.frames if frame_latency(f, res.expected) is not None]
    chosen = {f.stamp: f for f in _pick(done, n)}
    if not res.options.record or not chosen or not ({"overlay", SCORE} & set(res.expected)):
        return None
    found: dict[str, dict[int, object]] = {"overlay": {}, SCORE: {}}
    outputs = open_bag(res.options.out / "outputs").reader
    try:
        conns = [c for c in outputs.connections if c.topic.endswith(tuple(found))]
        for conn, _t, raw in outputs.messages(connections=conns):
            stamp = header_stamp(raw)
            kind = "overlay" if conn.topic.endswith("overlay") else SCORE
            if stamp in chosen:
                found[kind][stamp] = TYPESTORE.deserialize_cdr(raw, IMAGE)
    finally:
        outputs.close()
    inputs = {} if found["overlay"].keys() >= chosen.keys() else _input_frames(res, bag, chosen)
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
        latency = frame_latency(frame, res.expected) or math.nan
        tiles.append((f"frame {frame.index}  ({1e3 * latency:.0f} ms)", _tile(picture)))
    return plot_contact_sheet(tiles, path) if tiles else None


def _input_frames(
    res: ReplayResult, bag: BagHandle, chosen: dict[int, SentFrame]
) -> dict[int, np.ndarray]:
    """The chosen frames' input images (bag stamp → RGB), read from the bag again."""
    wanted = {f.bag_stamp for f in chosen.values()}
    out: dict[int, np.ndarray] = {}
    conns = [c for c in bag.reader.connections if c.topic == res.options.image_topic]
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
    """One row per sent frame: stamps, send time and the latency of each output (ms)."""
    t0 = res.frames[0].sent if res.frames else 0.0
    with path.open("w", newline="") as f:
        out = csv.writer(f)
        out.writerow(
            ["index", "bag_stamp_ns", "sent_stamp_ns", "sent_s", "frame_ms", *res.expected]
        )
        for fr in res.frames:
            row = [fr.index, fr.bag_stamp, fr.stamp, f"{fr.sent - t0:.4f}"]
            row.append(_ms(frame_latency(fr, res.expected)))
            row += [
                _ms(fr.arrivals[t] - fr.sent if t in fr.arrivals else None) for t in res.expected
            ]
            out.writerow(row)
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
    """report.md: the numbers a person reads first."""
    fr, node = report["frames"], report["node_status"]
    lines = [
        f"# sleeg bag eval: {report['bag']}",
        "",
        f"- image topic `{report['image_topic']}`, labels "
        + (f"`{report['label_topic']}`" if report["label_topic"] else "none"),
        f"- mode: {report['mode']}; node "
        + ("started here" if report["node"]["started"] else "attached")
        + f", outputs per frame: {', '.join(report['node']['outputs_per_frame']) or 'none'}",
    ]
    if report["problems"]:
        lines += ["", "**Incomplete run:**", *(f"- {p}" for p in report["problems"])]
    lines += [
        "",
        "## Frames",
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
    lat = report["latency_ms"]
    lines += [
        "",
        "## Latency (ms, publish → output arrival, by header stamp)",
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
    tp = report["throughput"]
    lines += [
        "",
        f"Throughput: {_fmt(tp['processed_fps'], 2)} frames/s processed, "
        f"{_fmt(tp['sent_fps'], 2)} frames/s sent, over {tp['wall_s']:.1f} s.",
    ]
    m = report["metrics"]
    if m:
        lines += ["", f"## Anomaly metrics (labels on `{m['label_topic']}`)", ""]
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
        lines += [f"- label problem: {why} ({n})" for why, n in m["label_problems"].items()]
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
