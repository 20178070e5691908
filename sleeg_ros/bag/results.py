"""What happened in a replay: each frame sent and when its outputs arrived, the node's statuses,
and per camera the counts the report is made of."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from sleeg_ros.bag.options import CameraOptions, ReplayOptions
from sleeg_ros.bag.recorder import Recorder
from sleeg_ros.bag.scorer import Scorer


@dataclass
class SentFrame:
    index: int  # position among its image topic's messages
    bag_stamp: int  # header stamp in the bag (ns)
    stamp: int  # header stamp sent (the bag's, unless it repeats an earlier one of its camera)
    sent: float  # time.monotonic() right before publishing
    arrivals: dict[str, float] = field(default_factory=dict)  # output → time.monotonic()

    def answered(self, expected: tuple[str, ...]) -> bool:
        """Every one of the `expected` outputs arrived."""
        return all(t in self.arrivals for t in expected)

    def latency(self, expected: tuple[str, ...]) -> float | None:
        """Send → arrival of the frame's last expected output (s); None unless all arrived."""
        if not expected or not self.answered(expected):
            return None
        return max(self.arrivals[t] for t in expected) - self.sent


@dataclass
class NodeStatus:
    stamp: int  # header stamp (node clock, ns)
    values: dict[str, str]


@dataclass
class CameraResult:
    """What happened to one camera's frames."""

    options: CameraOptions
    in_bag: int  # image messages the bag index lists
    compressed: bool  # CompressedImage frames (else Image)
    topics: dict[str, str]  # frame output → its full topic
    scorer: Scorer
    read: int = 0  # image messages read
    frames: list[SentFrame] = field(default_factory=list)
    skipped: Counter[str] = field(default_factory=Counter)  # reason → frames not sent
    expected: tuple[str, ...] = ()  # outputs the node published for the warm-up frame
    warmup_frames: int = 0
    baseline: NodeStatus | None = None
    final: NodeStatus | None = None
    unmatched_outputs: int = 0  # outputs with a stamp that was never sent (another publisher?)
    timed_out: int = 0  # --max-rate: frames whose outputs did not all come within frame_timeout
    labels: int = 0  # label messages read


@dataclass
class ReplayResult:
    options: ReplayOptions
    cameras: dict[str, CameraResult]  # by camera name, in the order of the options
    problems: list[str] = field(default_factory=list)  # why the run is incomplete
    bag_note: str = ""
    node_pid: int | None = None
    node_exit: int | None = None
    recorder: Recorder | None = None

    def first_sent(self) -> float | None:
        """time.monotonic() of the first frame sent (None: none was)."""
        return min((c.frames[0].sent for c in self.cameras.values() if c.frames), default=None)
