"""Arguments for the real node process and what it runs, for tests under test/ros/."""

from __future__ import annotations

import signal
import threading
from subprocess import Popen

import cv2
import numpy as np
from sensor_msgs.msg import CompressedImage

from sleeg_core.model.headfile import HeadFile
from sleeg_core.model.inference import AnomalySegmenter
from sleeg_core.model.tta import NODE_TTA
from sleeg_core.segmentors.enet import ENetSegmentor

FRAME = np.random.default_rng(0).integers(0, 256, (96, 160, 3), dtype=np.uint8)


def node_params(tiny_model, *extra: str) -> list[str]:
    """`name:=value` parameters that run the tiny model on the CPU at 128×64, then `extra`."""
    return [
        f"weights:={tiny_model['weights']}",
        f"head:={tiny_model['head']}",
        "device:=cpu",
        "inference_width:=128",
        "inference_height:=64",
        "status_period_s:=0.5",
        "cpu_threads:=1",  # behaviour tests: keep the shared cores free for the test process
        *extra,
    ]


def node_model(tiny_model) -> AnomalySegmenter:
    """What a node started with `node_params` runs, in this process: the tiny segmentor and
    head with the node's default test-time averaging."""
    head = HeadFile.load(tiny_model["head"])
    model = AnomalySegmenter.for_head_file(ENetSegmentor(tiny_model["weights"]), head).eval()
    model.tta = NODE_TTA
    return model


def stop(proc, sig=signal.SIGINT, timeout: float = 10.0) -> tuple[int, str]:
    """Send `sig` and wait for the process: its exit code and output."""
    proc.send_signal(sig)
    out, _ = proc.communicate(timeout=timeout)
    return proc.returncode, out


def log_lines(proc: Popen) -> list[str]:
    """The process's output lines as they come (read by a thread)."""
    lines: list[str] = []

    def read() -> None:
        for line in proc.stdout:
            lines.append(line)

    threading.Thread(target=read, daemon=True).start()
    return lines


def jpeg(sec: int) -> CompressedImage:
    """FRAME as a JPEG CompressedImage stamped `sec`."""
    _, data = cv2.imencode(".jpg", FRAME[..., ::-1])
    msg = CompressedImage(format="jpeg", data=data.tobytes())
    msg.header.stamp.sec = sec
    return msg


def frames_in_after(probe, pub, msgs: list) -> int:
    """Publish `msgs`, then the node's frames_in counter two status periods later."""
    for msg in msgs:
        pub.publish(msg)
        probe.spin(0.05)
    probe.status()
    return int(probe.status()["frames_in"])
