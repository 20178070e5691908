"""rosbag2 (.mcap, .db3, bag folders) reading and writing with `rosbags`: image streams.

Shared by `sleeg train` (bag sources), `sleeg eval` (labelled bags) and `sleeg bag`. No ROS
installation is needed, only the optional `rosbags` package (the `ros` extra): without it,
importing this package raises MissingPackageError saying so.

A bag written here is a rosbag2 folder as `ros2 bag record` writes it: `--out drive.mcap` makes
`drive/` holding `drive.mcap` and `metadata.yaml` (`drive.db3` the same with SQLite). An MCAP
file that was cut short (a recording that was killed before it wrote its footer) is read up to
its last complete record; `BagHandle.note` says so.

Import from this package: `reading` opens bags and reads image topics (`cut_mcap` recovers
cut-short MCAP files), `writing` writes image streams, `labelled` reads a bag with a label topic
as an evaluation dataset, and `messages` holds the message types and their encoding.
"""

from sleeg_core.common.errors import MissingPackageError

try:  # here, before any module of the package imports from it
    import rosbags  # noqa: F401
except ImportError as err:
    raise MissingPackageError(
        f"reading and writing rosbag2 files needs the 'rosbags' package ({err}): "
        "pip install rosbags, or pip install '.[ros]' (scripts/setup installs it)",
        name="rosbags",
    ) from err

from sleeg_core.data.bags.cut_mcap import mcap_complete_end
from sleeg_core.data.bags.labelled import LabelledBag
from sleeg_core.data.bags.messages import (
    IMAGE_TYPES,
    TYPESTORE,
    decode_image,
    header_stamp,
    image_message,
    with_stamp,
)
from sleeg_core.data.bags.reading import (
    BagFrame,
    BagHandle,
    bag_summary,
    extract_frames,
    iter_frames,
    open_bag,
    open_reader,
    topic_connections,
)
from sleeg_core.data.bags.writing import bag_folder, write_frames, write_image_bag

__all__ = [
    "IMAGE_TYPES",
    "TYPESTORE",
    "BagFrame",
    "BagHandle",
    "LabelledBag",
    "bag_folder",
    "bag_summary",
    "decode_image",
    "extract_frames",
    "header_stamp",
    "image_message",
    "iter_frames",
    "mcap_complete_end",
    "open_bag",
    "open_reader",
    "topic_connections",
    "with_stamp",
    "write_frames",
    "write_image_bag",
]
