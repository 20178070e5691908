"""The launch file's logic without the launch package (sleeg_ros.launch_arguments): each argument
checked against what the node accepts, and what the node's exit means for `ros2 launch`."""

import subprocess
import sys

import pytest

pytest.importorskip("rclpy", reason="rclpy not installed: run scripts/setup")

from sleeg_core.common.choices import COMPILE_MODES, DEVICE_FORMS, RESIZE_MODES
from sleeg_core.model.tta import TTA_MODES
from sleeg_ros.launch_arguments import (
    CHOICES,
    NodeExitError,
    check_node_exit,
    choices,
    launch_overrides,
    launch_value,
)
from sleeg_ros.parameters import IMAGE_TRANSPORTS, PARAMS

BOOLEAN_PARAMS = [p.name for p in PARAMS if isinstance(p.default, bool)]


def test_the_choices_are_the_nodes_own_tables():
    assert CHOICES == {
        "image_transport": IMAGE_TRANSPORTS,
        "resize_mode": RESIZE_MODES,
        "tta": TTA_MODES,
        "compile_mode": COMPILE_MODES,
        "device": DEVICE_FORMS,
    }
    assert choices("image_transport") == " | ".join(IMAGE_TRANSPORTS)


@pytest.mark.parametrize("name", ["image_transport", "resize_mode", "tta", "compile_mode"])
def test_a_choice_is_refused_naming_the_argument_and_every_accepted_value(name):
    for value in CHOICES[name]:
        assert launch_value(name, value) == value
    with pytest.raises(ValueError) as caught:
        launch_value(name, "bogus")
    message = str(caught.value)
    assert message.startswith(f"launch argument '{name}': 'bogus' is not one of "), message
    assert all(value in message for value in CHOICES[name]), message
    assert "\n" not in message


@pytest.mark.parametrize("device", ["auto", "cpu", "cuda", "cuda:0", "cuda:12"])
def test_each_device_form_is_accepted(device):
    assert launch_value("device", device) == device


@pytest.mark.parametrize("device", ["gpu", "cuda:", "cuda:x", "CPU", "mps"])
def test_another_device_is_refused_with_the_forms(device):
    with pytest.raises(ValueError, match=f"launch argument 'device': '{device}' is not one of "):
        launch_value("device", device)


def test_threshold_is_a_finite_number_or_left_out_when_empty():
    assert launch_overrides({"threshold": "-1.25"}) == {"threshold": -1.25}
    assert launch_overrides({"threshold": ""}) == {}
    for bad in ("abc", "inf", "-inf", "1,5"):
        with pytest.raises(ValueError) as caught:
            launch_value("threshold", bad)
        assert str(caught.value) == (
            f"launch argument 'threshold': '{bad}' is not a finite number "
            "(empty: the parameters file's)"
        )


@pytest.mark.parametrize("name", BOOLEAN_PARAMS)
def test_each_boolean_parameter_takes_true_or_false(name):
    assert launch_value(name, "true") is True
    assert launch_value(name, "False") is False
    with pytest.raises(ValueError, match=f"launch argument '{name}': 'yes' is not true or false"):
        launch_value(name, "yes")


def test_text_arguments_pass_unchanged_and_camera_pose_is_parsed():
    got = launch_overrides({"weights": "/w/enet.pth", "camera_pose": "[0, 0, 1.5, 0, 0.1, 0]"})
    assert got == {"weights": "/w/enet.pth", "camera_pose": [0.0, 0.0, 1.5, 0.0, 0.1, 0.0]}
    with pytest.raises(ValueError, match=r"'camera_pose': '\[1, 2\]' is not \[x, y, z, roll"):
        launch_value("camera_pose", "[1, 2]")


def test_every_bad_argument_is_named_in_one_line():
    with pytest.raises(ValueError) as caught:
        launch_overrides({"threshold": "abc", "tta": "fast", "autostart": "maybe", "head": "h"})
    message = str(caught.value)
    assert "\n" not in message
    for name in ("threshold", "tta", "autostart"):
        assert f"launch argument '{name}'" in message
    assert "'head'" not in message


def test_a_node_that_stopped_cleanly_ends_the_launch_quietly():
    check_node_exit(0)


@pytest.mark.parametrize(
    ("returncode", "message"),
    [
        (1, "sleeg_anomaly exited with code 1 (its log above says why)"),
        (-9, "sleeg_anomaly was killed by SIGKILL"),
        (-11, "sleeg_anomaly was killed by SIGSEGV"),
    ],
)
def test_a_failed_node_raises_which_makes_ros2_launch_exit_non_zero(returncode, message):
    with pytest.raises(NodeExitError) as caught:
        check_node_exit(returncode)
    assert str(caught.value) == message


def test_the_launch_process_loads_no_pytorch():
    """`ros2 launch` imports sleeg_ros.launch_arguments in the launch process itself."""
    code = "import sys, sleeg_ros.launch_arguments; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False", out.stderr
