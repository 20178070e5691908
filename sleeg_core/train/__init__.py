"""Training a head: the run settings, the trainer, its losses, pseudo-anomaly patches, refinement,
training data and sources, checkpoints, the metrics log, threshold calibration and distributed
(torchrun) training."""
