"""Evaluation: pixel metrics and their intervals over resampled images, dataset evaluation, plots,
score visualisation and the obstacles a mask is reduced to."""
