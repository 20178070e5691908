"""Evaluation: pixel and image metrics, dataset evaluation, plots, score visualisation and the
obstacles a mask is reduced to."""
