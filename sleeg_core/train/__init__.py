"""Training a head: the trainer, its losses, pseudo-anomaly patches, refinement, training data
and sources, and distributed (torchrun) training."""
