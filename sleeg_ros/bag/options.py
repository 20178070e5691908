"""What a replay is asked to do: the bag's image topics and the node cameras they go to, pace,
node set-up and output folder."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from sleeg_core.data.labels import LabelMap


@dataclass
class CameraOptions:
    """One image topic of the bag and the node camera it goes to."""

    name: str  # the node's camera (parameter `cameras`); "": the single camera of a node without
    image_topic: str
    label_topic: str | None = None

    def node_name(self, relative: str) -> str:
        """A name of the node relative to this camera (`c/image`; the single camera: `image`)."""
        return f"{self.name}/{relative}" if self.name else relative

    def param(self, name: str) -> str:
        """The node parameter for this camera's `name` (`c.name`; the single camera: `name`)."""
        return f"{self.name}.{name}" if self.name else name

    @property
    def tag(self) -> str:
        """Prefix of this camera's problems ("" for the single camera)."""
        return f"camera {self.name}: " if self.name else ""


@dataclass
class ReplayOptions:
    bag: Path
    cameras: list[CameraOptions]  # distinct names and image topics
    out: Path
    rate: float | None  # recorded-rate factor; None: as fast as the node answers
    label_map: LabelMap
    attach: bool = False
    namespace: str = "/"
    params_file: Path | None = None
    overrides: list[str] = field(default_factory=list)
    startup_timeout: float = 120.0
    frame_timeout: float = 30.0
    status_period: float = 1.0  # for a node started here (a -p override wins)
    record: bool = True  # write the outputs into <out>/outputs (False: count and score only)

    @property
    def named(self) -> bool:
        """The node serves the cameras by name (parameter `cameras`, outputs under `<name>/`)."""
        return any(c.name for c in self.cameras)
