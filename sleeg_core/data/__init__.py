"""Data in and out: anomaly labels and the Cityscapes label space, images, image messages,
frame geometry, labelled datasets and rosbag2 files. Imports only sleeg_core.common."""
