"""Latest-frame slots, one per camera, between the subscription callbacks and the inference thread.

`put(key, frame)` never blocks and replaces that camera's frame if it is still waiting (counted as
dropped for that camera only); `take_all` blocks until some camera has a frame (or the slots are
closed) and takes the newest frame of every camera that has one, in the order the cameras were
given. Latency stays bounded and a flooding camera cannot starve another: at most one frame per
camera waits, and every waiting camera is served in each round.
"""

from __future__ import annotations

import threading
from collections.abc import Hashable, Iterable
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)
T = TypeVar("T")


class LatestFrames(Generic[K, T]):
    def __init__(self, keys: Iterable[K]) -> None:
        self._cond = threading.Condition()
        self._items: dict[K, T | None] = dict.fromkeys(keys)
        self._closed = False
        self.received: dict[K, int] = dict.fromkeys(self._items, 0)
        self.dropped: dict[K, int] = dict.fromkeys(self._items, 0)

    def put(self, key: K, item: T) -> None:
        """Offer `key`'s frame; its unprocessed older frame is dropped (KeyError: unknown key)."""
        with self._cond:
            self.received[key] += 1
            if self._items[key] is not None:
                self.dropped[key] += 1
            self._items[key] = item
            self._cond.notify()

    def take_all(self, timeout: float | None = None) -> list[tuple[K, T]]:
        """[(key, newest frame)] of every key holding one, waiting up to `timeout` for the first;
        [] when closed or timed out."""
        with self._cond:
            self._cond.wait_for(
                lambda: self._closed or any(v is not None for v in self._items.values()), timeout
            )
            taken = [(k, v) for k, v in self._items.items() if v is not None]
            for k, _ in taken:
                self._items[k] = None
            return taken

    def close(self) -> None:
        """Wake and release every waiting `take_all`."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()
