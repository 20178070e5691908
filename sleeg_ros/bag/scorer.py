"""AP / AUROC / FPR95 of one camera during a replay: its anomaly/score images against the label
masks in the bag, with `StreamingMetrics` (the code behind `sleeg eval`); and the component-level
and pixel figures of its published anomaly/mask images, with `ComponentMetrics`."""

from __future__ import annotations

from collections import Counter

import numpy as np

from sleeg_core.common.errors import SleegError
from sleeg_core.data.bags import TYPESTORE, header_stamp
from sleeg_core.data.image_msgs import BadFrameError, image_to_array
from sleeg_core.data.labels import LabelMap
from sleeg_core.eval.components import ComponentMetrics
from sleeg_core.eval.metrics import StreamingMetrics
from sleeg_ros.bag.topics import IMAGE, MASK, SCORE

MAX_PENDING = 16  # outputs waiting for their label (and labels for their outputs), at most
SCORED = (SCORE, MASK)  # the outputs judged against the labels


class Scorer:
    """One camera's AP / AUROC / FPR95 of its anomaly/score images and the component-level
    figures of its anomaly/mask images against its labels, which meet by sent header stamp,
    whichever comes first. Fed from the recorder thread."""

    def __init__(self, label_map: LabelMap | None, frames: dict[int, int]) -> None:
        self.label_map = label_map  # None: no labels, nothing to score
        self.frame_index = frames  # sent stamp → frame index (filled by the main thread)
        self.label_problems: Counter[str] = Counter()
        self.metrics = StreamingMetrics()
        self.mask_metrics = ComponentMetrics()
        self.scored: list[int] = []  # frame indices whose score met a label
        self.unlabelled_scores = 0
        self._labels: dict[int, tuple[np.ndarray, set[str]]] = {}  # label, outputs still due
        self._pending: dict[str, dict[int, np.ndarray]] = {kind: {} for kind in SCORED}

    def add_output(self, kind: str, raw: bytes) -> None:
        """An anomaly/score or anomaly/mask message (`kind` is its output topic)."""
        stamp = header_stamp(raw)
        if stamp not in self.frame_index or self.label_map is None:
            return
        try:
            image = image_to_array(TYPESTORE.deserialize_cdr(raw, IMAGE)).copy()  # writable
        except BadFrameError as err:
            self.label_problems[f"{kind} not readable: {err}"] += 1
            return
        if stamp in self._labels:
            self._judge(kind, stamp, image)
        else:
            self._pending[kind][stamp] = image
        self._forget_labels()

    def add_label(self, stamp: int, label: np.ndarray) -> None:
        self._labels[stamp] = (label, set(SCORED))
        for kind, pending in self._pending.items():
            if stamp in pending:
                self._judge(kind, stamp, pending.pop(stamp))
        before = self.frame_index[stamp]  # outputs of earlier frames will meet no label
        self.unlabelled_scores += self._forget(self._pending[SCORE], before)
        self._forget(self._pending[MASK], before)
        self._forget_labels()

    def _forget(self, pending: dict[int, np.ndarray], before: int) -> int:
        """Drop pending items of frames before `before` (their partner will not come), and the
        oldest beyond MAX_PENDING; returns how many were dropped."""
        order = sorted(pending, key=self.frame_index.__getitem__)
        old = [s for s in order if self.frame_index[s] < before]
        old += [s for s in order[len(old) : len(order) - MAX_PENDING]]
        for s in old:
            del pending[s]
        return len(old)

    def _forget_labels(self) -> None:
        """Labels stay until each output met them (the node may publish no mask, or drop the
        frame), at most MAX_PENDING, the oldest dropped first."""
        done = [s for s, (_, due) in self._labels.items() if not due]
        order = sorted(self._labels.keys() - set(done), key=self.frame_index.__getitem__)
        for s in done + order[: max(len(order) - MAX_PENDING, 0)]:
            del self._labels[s]

    def _judge(self, kind: str, stamp: int, image: np.ndarray) -> None:
        raw_label, due = self._labels[stamp]
        due.discard(kind)
        try:
            if image.shape != raw_label.shape:
                raise SleegError(
                    f"label {raw_label.shape[1]}×{raw_label.shape[0]} ≠ score "
                    f"{image.shape[1]}×{image.shape[0]}"
                )
            label = self.label_map.apply(raw_label, "label")
        except SleegError as err:
            if kind == SCORE:  # one problem per frame
                self.label_problems[str(err)] += 1
            return
        if kind == SCORE:
            self.metrics.update(image, label)
            self.scored.append(self.frame_index[stamp])
        else:
            self.mask_metrics.update(image, label)

    def unlabelled(self) -> int:
        """Scores that met no label (once the recorder is closed)."""
        return self.unlabelled_scores + len(self._pending[SCORE])
