"""Latest-frame slots, one per camera, between the subscription callbacks and the inference thread.

`put(key, frame)` never blocks and replaces that camera's frame if it is still waiting (counted as
dropped for that camera only); `take_all` blocks until some camera has a frame (or the slots are
closed) and takes the newest frame of every camera that has one, or of the `limit` cameras that
have waited longest (several inference workers each take a share). Latency stays bounded and a
flooding camera cannot starve another: at most one frame per camera waits, and a waiting camera
is served before any camera that got its frame later.
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
        self._waiting_since: dict[K, int] = {}  # key → put count when its waiting frame came
        self._puts = 0
        self._closed = False
        self.received: dict[K, int] = dict.fromkeys(self._items, 0)
        self.dropped: dict[K, int] = dict.fromkeys(self._items, 0)

    def put(self, key: K, item: T) -> None:
        """Offer `key`'s frame; its unprocessed older frame is dropped (KeyError: unknown key)."""
        with self._cond:
            self.received[key] += 1
            if self._items[key] is not None:
                self.dropped[key] += 1
            else:
                self._waiting_since[key] = self._puts
            self._puts += 1
            self._items[key] = item
            self._cond.notify()

    def take_all(self, timeout: float | None = None, limit: int = 0) -> list[tuple[K, T]]:
        """[(key, newest frame)] of every key holding one (at most `limit`, those waiting
        longest; 0: no limit), in the keys' order, waiting up to `timeout` for the first; []
        when closed or timed out."""
        with self._cond:
            self._cond.wait_for(lambda: self._closed or bool(self._waiting_since), timeout)
            keys = sorted(self._waiting_since, key=self._waiting_since.__getitem__)
            keys = set(keys[:limit] if limit > 0 else keys)
            taken = [(k, v) for k, v in self._items.items() if k in keys]
            for k in keys:
                self._items[k] = None
                del self._waiting_since[k]
            return taken

    def close(self) -> None:
        """Wake and release every waiting `take_all`."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()
