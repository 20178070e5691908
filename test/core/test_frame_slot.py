"""The latest-frame slots drop old frames per camera instead of queueing them."""

import threading

from sleeg_ros.frame_slot import LatestFrames


def test_keeps_only_the_newest_per_camera_and_counts_drops_per_camera():
    slots: LatestFrames[str, int] = LatestFrames(["front", "left", "right"])
    for i in range(5):
        slots.put("front", i)  # a flooding camera
    slots.put("right", 100)
    assert slots.take_all(timeout=0) == [("front", 4), ("right", 100)]
    assert slots.take_all(timeout=0) == []
    assert slots.received == {"front": 5, "left": 0, "right": 1}
    assert slots.dropped == {"front": 4, "left": 0, "right": 0}


def test_a_flooding_camera_does_not_starve_the_others():
    slots: LatestFrames[str, int] = LatestFrames(["fast", "slow"])
    served = {"fast": 0, "slow": 0}
    for i in range(40):
        for _ in range(4):
            slots.put("fast", i)
        if i % 2 == 0:
            slots.put("slow", i)
        for key, _ in slots.take_all(timeout=0):
            served[key] += 1
    assert served == {"fast": 40, "slow": 20}  # every slow frame served, fast: one per round
    assert slots.dropped == {"fast": 120, "slow": 0}


class _SignallingCondition(threading.Condition):
    """A Condition that says when a thread starts waiting on it: `waiting` is set while the waiter
    still holds the lock, so whoever takes the lock next runs after the waiter has released it."""

    def __init__(self) -> None:
        super().__init__()
        self.waiting = threading.Event()

    def wait(self, timeout: float | None = None) -> bool:
        self.waiting.set()
        return super().wait(timeout)


def _waiting_taker(slots: LatestFrames, got: list) -> threading.Thread:
    """A thread blocked in `slots.take_all()` (no timeout) once this returns."""
    cond = _SignallingCondition()
    slots._cond = cond  # same lock semantics, plus the signal
    thread = threading.Thread(target=lambda: got.append(slots.take_all()), daemon=True)
    thread.start()
    assert cond.waiting.wait(timeout=10), "take_all never waited"
    assert got == [] and thread.is_alive()  # nothing to take: it waits
    return thread


def test_take_all_waits_for_a_frame_and_close_releases_it():
    slots: LatestFrames[str, str] = LatestFrames([""])
    got: list = []
    thread = _waiting_taker(slots, got)
    slots.put("", "frame")  # only once take_all waits: the put must wake it
    thread.join(timeout=10)
    assert not thread.is_alive() and got == [[("", "frame")]]
    got.clear()
    thread = _waiting_taker(slots, got)
    slots.close()  # only once take_all waits: close must wake it
    thread.join(timeout=10)
    assert not thread.is_alive() and got == [[]]


def test_a_limit_takes_the_cameras_that_waited_longest():
    slots: LatestFrames[str, int] = LatestFrames(["a", "b", "c"])
    slots.put("b", 1)
    slots.put("c", 2)
    slots.put("a", 3)
    slots.put("b", 4)  # replaces b's frame: b still waits since its first put
    assert slots.take_all(timeout=0, limit=2) == [("b", 4), ("c", 2)]
    slots.put("c", 5)
    assert slots.take_all(timeout=0, limit=1) == [("a", 3)]
    assert slots.take_all(timeout=0, limit=1) == [("c", 5)]
    assert slots.take_all(timeout=0, limit=1) == []
