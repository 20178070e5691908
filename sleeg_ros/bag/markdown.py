"""report.md of `sleeg bag eval`: the numbers of report.json a person reads first, as Markdown
(named cameras: a section each)."""

from __future__ import annotations

from sleeg_core.eval.components import percent


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
    if mask := m.get("mask"):
        lines += [
            "",
            f"The published anomaly/mask ({mask['images']} frames), in %:",
            "",
            "| sIoU ↑ | PPV ↑ | mean F1 ↑ | pixel precision ↑ | pixel recall ↑ "
            "| normal pixels flagged ↓ | objects | predicted components |",
            "|---:|---:|---:|---:|---:|---:|---:|---:|",
            "| "
            + " | ".join(
                percent(mask[k])
                for k in ("siou", "ppv", "mean_f1", "precision", "recall", "normal_flagged")
            )
            + f" | {mask['gt_components']} | {mask['predicted_components']} |",
        ]
    return lines + [f"- label problem: {why} ({n})" for why, n in m["label_problems"].items()]
