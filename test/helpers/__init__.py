"""Helpers shared by the tests: paths, generated data, the ROS probe and node arguments.

Modules that need rclpy (ros_probe, node, bags) are imported only by tests under test/ros/."""
