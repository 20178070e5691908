"""The anomaly model: the OoD head and its file, the scores (estimators), test-time
averaging, `AnomalySegmenter` inference, and the registries of known weights and shipped heads."""
