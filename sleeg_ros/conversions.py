"""numpy → sensor_msgs/Image for the node's outputs (decoding is sleeg_core.data.image_msgs)."""

from __future__ import annotations

import numpy as np
from sensor_msgs.msg import Image
from std_msgs.msg import Header


def array_to_image(array: np.ndarray, header: Header, encoding: str) -> Image:
    """H×W (mono8, 32FC1) or H×W×3 (rgb8) array → Image stamped with `header`."""
    array = np.ascontiguousarray(array)
    msg = Image(header=header, height=array.shape[0], width=array.shape[1], encoding=encoding)
    msg.is_bigendian = 0
    msg.step = array.strides[0]
    msg.data = array.tobytes()  # bytes: ~400× faster than assigning the ndarray
    return msg
