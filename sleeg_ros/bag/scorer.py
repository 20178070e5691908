"""AP / AUROC / FPR95 of one camera during a replay: its anomaly/score images against the label
masks in the bag, with `StreamingMetrics` (the code behind `sleeg eval`)."""

from __future__ import annotations

from collections import Counter

import numpy as np

from sleeg_core.common.errors import SleegError
from sleeg_core.data.bags import TYPESTORE, header_stamp
from sleeg_core.data.image_msgs import BadFrameError, image_to_array
from sleeg_core.data.labels import LabelMap
from sleeg_core.eval.metrics import StreamingMetrics
from sleeg_ros.bag.topics import IMAGE

MAX_PENDING = 16  # scores waiting for their label (and labels for their score), at most


class Scorer:
    """One camera's AP / AUROC / FPR95: its anomaly/score images against its labels, which meet
    by sent header stamp, whichever comes first. Fed from the recorder thread."""

    def __init__(self, label_map: LabelMap | None, frames: dict[int, int]) -> None:
        self.label_map = label_map  # None: no labels, nothing to score
        self.frame_index = frames  # sent stamp → frame index (filled by the main thread)
        self.label_problems: Counter[str] = Counter()
        self.metrics = StreamingMetrics()
        self.scored: list[int] = []  # frame indices whose score met a label
        self.unlabelled_scores = 0
        self._labels: dict[int, np.ndarray] = {}
        self._scores: dict[int, np.ndarray] = {}

    def add_score(self, raw: bytes) -> None:
        stamp = header_stamp(raw)
        if stamp not in self.frame_index or self.label_map is None:
            return
        try:
            score = image_to_array(TYPESTORE.deserialize_cdr(raw, IMAGE)).copy()  # writable
        except BadFrameError as err:
            self.label_problems[f"anomaly/score not readable: {err}"] += 1
            return
        if stamp in self._labels:
            self._score(stamp, score, self._labels.pop(stamp))
        else:
            self._scores[stamp] = score
        self._forget(self._labels, before=self.frame_index[stamp])  # frames the node dropped

    def add_label(self, stamp: int, label: np.ndarray) -> None:
        if stamp in self._scores:
            self._score(stamp, self._scores.pop(stamp), label)
        else:
            self._labels[stamp] = label
        self.unlabelled_scores += self._forget(self._scores, before=self.frame_index[stamp])

    def _forget(self, pending: dict[int, np.ndarray], before: int) -> int:
        """Drop pending items of frames before `before` (their partner will not come), and the
        oldest beyond MAX_PENDING; returns how many were dropped."""
        order = sorted(pending, key=self.frame_index.__getitem__)
        old = [s for s in order if self.frame_index[s] < before]
        old += [s for s in order[len(old) : len(order) - MAX_PENDING]]
        for s in old:
            del pending[s]
        return len(old)

    def _score(self, stamp: int, score: np.ndarray, raw_label: np.ndarray) -> None:
        if score.shape != raw_label.shape:
            self.label_problems[
                f"label {raw_label.shape[1]}×{raw_label.shape[0]} ≠ score "
                f"{score.shape[1]}×{score.shape[0]}"
            ] += 1
            return
        try:
            label = self.label_map.apply(raw_label, "label")
        except SleegError as err:
            self.label_problems[str(err)] += 1
            return
        self.metrics.update(score, label)
        self.scored.append(self.frame_index[stamp])

    def unlabelled(self) -> int:
        """Scores that met no label (once the recorder is closed)."""
        return self.unlabelled_scores + len(self._scores)
