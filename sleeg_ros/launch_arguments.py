"""The launch file's logic, without the `launch` package: each launch argument checked against
what the node accepts and turned into its parameter value, and what the node's exit means for
`ros2 launch`.

An argument's accepted values come from where the node defines them: the parameter's type in
sleeg_ros.parameters.PARAMS (booleans: true | false; numbers), the choice tables (CHOICES, read
from the modules that act on them) and the device forms. `ros2 launch` imports this module in the
launch process, so it does not load PyTorch.

>>> launch_overrides({"threshold": "0.5", "autostart": "False", "tta": ""})
{'threshold': 0.5, 'autostart': False}
>>> launch_value("autostart", "yes")
Traceback (most recent call last):
...
ValueError: launch argument 'autostart': 'yes' is not true or false (empty: the parameters file's)
"""

from __future__ import annotations

import math
import signal
from collections.abc import Callable
from typing import Any

from sleeg_core.common.choices import COMPILE_MODES, DEVICE_FORMS, RESIZE_MODES, check_device
from sleeg_core.common.errors import SleegError
from sleeg_core.model.tta import TTA_MODES
from sleeg_ros.cameras import launch_pose
from sleeg_ros.parameters import IMAGE_TRANSPORTS, PARAMS

# the launch arguments that name one of a few values, and where the node's values come from
CHOICES: dict[str, tuple[str, ...]] = {
    "image_transport": IMAGE_TRANSPORTS,
    "resize_mode": RESIZE_MODES,
    "tta": TTA_MODES,
    "compile_mode": COMPILE_MODES,
    "device": DEVICE_FORMS,
}
BOOLEANS = {"true": True, "false": False}
DEFAULTS = {p.name: p.default for p in PARAMS}
NODE_NAME = "sleeg_anomaly"


class NodeExitError(RuntimeError):
    """The node ended with a failure: raised in `ros2 launch`, it shuts the launch down and makes
    its exit code 1."""


def choices(name: str) -> str:
    """The values launch argument `name` accepts, for its description: 'a | b | c'."""
    return " | ".join(CHOICES[name])


def launch_value(name: str, text: str) -> Any:
    """Launch argument `name` (not empty) → its parameter's value, else a one-line ValueError
    naming the argument and what it accepts."""
    accepts, convert = _rule(name)
    try:
        return convert(text)
    except (ValueError, SleegError):
        raise ValueError(
            f"launch argument '{name}': '{text}' is not {accepts} (empty: the parameters file's)"
        ) from None


def launch_overrides(args: dict[str, str]) -> dict[str, Any]:
    """The parameter overrides of the launch arguments that are not empty (empty keeps the
    parameters file's value); a ValueError naming every bad argument."""
    overrides, problems = {}, []
    for name, text in args.items():
        if text == "":
            continue
        try:
            overrides[name] = launch_value(name, text)
        except ValueError as err:
            problems.append(str(err))
    if problems:
        raise ValueError("; ".join(problems))
    return overrides


def check_node_exit(returncode: int) -> None:
    """The node's exit as `ros2 launch` sees it: nothing for 0 (a requested stop), else a
    NodeExitError saying how it ended."""
    if returncode == 0:
        return
    if returncode < 0:
        raise NodeExitError(f"{NODE_NAME} was killed by {signal.Signals(-returncode).name}")
    raise NodeExitError(f"{NODE_NAME} exited with code {returncode} (its log above says why)")


def _rule(name: str) -> tuple[str, Callable[[str], Any]]:
    """What launch argument `name` accepts (in words) and its conversion."""
    if name == "device":
        return f"one of {', '.join(DEVICE_FORMS)}", _checked(check_device)
    if name in CHOICES:
        return f"one of {', '.join(CHOICES[name])}", _one_of(CHOICES[name])
    if name == "camera_pose":
        return "[x, y, z, roll, pitch, yaw] (6 numbers)", launch_pose
    default = DEFAULTS.get(name)
    if isinstance(default, bool):
        return "true or false", _boolean
    if isinstance(default, int):
        return "an integer", int
    if isinstance(default, float):
        return "a finite number", _finite
    return "text", str


def _checked(check: Callable[[str], None]) -> Callable[[str], str]:
    def convert(text: str) -> str:
        check(text)
        return text

    return convert


def _one_of(values: tuple[str, ...]) -> Callable[[str], str]:
    def convert(text: str) -> str:
        if text not in values:
            raise ValueError(text)
        return text

    return convert


def _boolean(text: str) -> bool:
    value = BOOLEANS.get(text.lower())
    if value is None:
        raise ValueError(text)
    return value


def _finite(text: str) -> float:
    value = float(text)
    if math.isinf(value):
        raise ValueError(text)
    return value
