"""The named choices of the model's settings: resize modes, torch.compile modes, device forms.

Torch-free, so that what only checks a name (the launch file, in the `ros2 launch` process) does
not load PyTorch; the code that acts on each setting reads its choices from here.

>>> check_device("cuda:1")
>>> check_device("gpu")
Traceback (most recent call last):
...
sleeg_core.common.errors.SleegError: device 'gpu' is not one of auto, cpu, cuda, cuda:N
"""

import re

from sleeg_core.common.errors import SleegError

# frame → network input (sleeg_core.data.geometry)
RESIZE_MODES = ("stretch", "pad", "crop")
# torch.compile modes; "reduce-overhead" and "max-autotune" also capture CUDA graphs on CUDA
# (fixed input sizes): a graph's outputs live in memory that its next replay overwrites
COMPILE_MODES = ("default", "reduce-overhead", "max-autotune")
CUDA_GRAPH_MODES = ("reduce-overhead", "max-autotune")
# where a model runs: auto (CUDA when available, else the CPU), the CPU, CUDA or CUDA device N
DEVICE_FORMS = ("auto", "cpu", "cuda", "cuda:N")
_DEVICE = re.compile(r"auto|cpu|cuda(:\d+)?")


def check_device(device: str) -> None:
    """SleegError unless `device` has one of the DEVICE_FORMS."""
    if not _DEVICE.fullmatch(device):
        raise SleegError(f"device '{device}' is not one of {', '.join(DEVICE_FORMS)}")
