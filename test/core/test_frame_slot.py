"""The latest-frame slots drop old frames per camera instead of queueing them."""

import threading
import time

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


def test_take_all_waits_for_a_frame_and_close_releases_it():
    slots: LatestFrames[str, str] = LatestFrames([""])
    got = []
    t = threading.Thread(target=lambda: got.append(slots.take_all()))
    t.start()
    time.sleep(0.05)
    slots.put("", "frame")
    t.join(timeout=2)
    assert got == [[("", "frame")]]
    t = threading.Thread(target=lambda: got.append(slots.take_all()))
    t.start()
    slots.close()
    t.join(timeout=2)
    assert not t.is_alive() and got[-1] == []


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
