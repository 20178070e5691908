"""Obstacles in metres on a real Cityscapes frame, with Cityscapes' published camera.

Runs the shipped ENet head on a frame (resized to --size), locates the anomaly obstacles it
finds with the flat-ground path, then checks the geometry against a known scale: the people in
the frame (their regions from the frame's gtFine colour labels when present, else ENet's person
class), whose heights should be those of adults (~1.6-1.9 m). It prints their ground distances
and heights with the published pitch, then the pitch at which their median height is 1.75 m and
the distances and heights with it.

Camera (Cityscapes camera.json as published with the dataset's 3D-box release; every city has
its own file and these values differ by centimetres and milliradians between them): intrinsics
fx 2262.52, fy 2265.30, u0 1096.98, v0 513.137 at 2048×1024 (scaled to --size); extrinsics in
the vehicle frame (ISO 8855 = REP 103 base_link: x forward, y left, z up, origin on the ground
below the rear axle): x 1.7, y 0.1, z 1.22 m, roll 0, pitch 0.038, yaw -0.0195 rad.

    python benchmarks/geometry_example.py --data-root ../shared/data
"""

from __future__ import annotations

import argparse
import os
import statistics
from pathlib import Path

import cv2
import numpy as np
import torch

from sleeg_core.data.images import read_rgb, to_batch
from sleeg_core.eval.obstacles import NODE_CLEANUP, find_obstacles
from sleeg_core.model.inference import load_segmenter
from sleeg_core.projection.camera import CameraGeometry, Intrinsics, Pose
from sleeg_core.projection.locate import Location, locate_obstacles

CITYSCAPES_K = (2262.52, 0.0, 1096.98, 0.0, 2265.3017905988554, 513.137, 0.0, 0.0, 1.0)
CITYSCAPES_SIZE = (2048, 1024)
CITYSCAPES_POSE = (1.7, 0.1, 1.22, 0.0, 0.038, -0.0195)  # x y z roll pitch yaw
FRAME = "driving/frankfurt_000001_058914_leftImg8bit.png"
PERSON_RGB, PERSON_ID = (220, 20, 60), 11  # Cityscapes colour and train id of "person"
ADULT_HEIGHT_M = 1.75
MIN_PERSON_PX = 400  # at 1024×512: people farther than ~40 m are too few pixels to measure


def camera(size: tuple[int, int], pitch: float) -> CameraGeometry:
    intrinsics = Intrinsics.from_k(CITYSCAPES_K, *CITYSCAPES_SIZE).scaled_to(*size)
    x, y, z, roll, _, yaw = CITYSCAPES_POSE
    return CameraGeometry(intrinsics, Pose.from_values([x, y, z, roll, pitch, yaw]))


def row(name: str, box: tuple[int, int, int, int], loc: Location) -> str:
    x, y, w, h = box
    return (
        f"  {name:<8} px ({x:4d},{y:4d}) {w:4d}x{h:<4d} {loc.method:<6} "
        f"distance {loc.distance:6.2f} m  x {loc.x:6.2f} y {loc.y:6.2f}  "
        f"width {loc.width:5.2f} height {loc.height:5.2f}"
    )


def people(frame_path: Path, ids: np.ndarray, size: tuple[int, int]) -> tuple[np.ndarray, str]:
    """A person mask at `size`: from the frame's gtFine colour labels when present, else ENet's."""
    gt = Path(str(frame_path).replace("_leftImg8bit", "_gtFine_color"))
    if gt.is_file():
        colour = read_rgb(gt)
        colour = cv2.resize(colour, size, interpolation=cv2.INTER_NEAREST)
        return np.all(colour == PERSON_RGB, axis=-1), f"gtFine labels ({gt.name})"
    return ids == PERSON_ID, "ENet's person class"


def median_height(mask: np.ndarray, obstacles: list, size: tuple[int, int], pitch: float) -> float:
    locs = locate_obstacles(mask, obstacles, camera(size, pitch), None)
    return statistics.median(loc.height for loc in locs if loc.method == "ground")


def fit_pitch(mask: np.ndarray, obstacles: list, size: tuple[int, int]) -> float:
    """The pitch at which the people's median height is ADULT_HEIGHT_M (bisection: a larger
    pitch brings every region nearer, so its height falls)."""
    lo, hi = 0.0, 0.12
    for _ in range(40):
        mid = (lo + hi) / 2
        lo, hi = (
            (mid, hi) if median_height(mask, obstacles, size, mid) > ADULT_HEIGHT_M else (lo, mid)
        )
    return (lo + hi) / 2


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    default_root = Path(os.environ.get("SLEEG_SHARED", "../shared")) / "data"
    parser.add_argument("--data-root", type=Path, default=default_root)
    parser.add_argument("--frame", default=FRAME, help="image path under --data-root")
    parser.add_argument("--size", default="1024x512", help="WxH the frame is resized to")
    parser.add_argument("--head", default="enet_cityscapes_sleeg")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    size = tuple(int(v) for v in args.size.split("x"))
    frame_path = args.data_root / args.frame
    image = cv2.resize(read_rgb(frame_path), size, interpolation=cv2.INTER_AREA)
    weights = args.data_root / "weights/enet_cityscapes/enet.pth"
    model, head = load_segmenter(None, weights, args.head, "cpu")
    pred = model(to_batch(image), scores=("sleeg",))
    score, ids = pred.scores["sleeg"][0].numpy(), pred.train_ids[0].numpy()
    published = CITYSCAPES_POSE[4]
    cam = camera(size, published)
    k = cam.intrinsics
    print(
        f"frame {args.frame} at {size[0]}x{size[1]}: fx {k.fx:.2f} fy {k.fy:.2f} "
        f"cx {k.cx:.2f} cy {k.cy:.2f}; pose {list(CITYSCAPES_POSE)}"
    )

    mask, obstacles = NODE_CLEANUP.apply(score, head.threshold)  # as the node cleans it
    located = locate_obstacles(mask, obstacles, cam, None)
    placed = sum(loc.method != "none" for loc in located)
    print(
        f"anomaly obstacles (threshold {head.threshold:.3f}): {len(obstacles)}, "
        f"{placed} on the ground, {len(obstacles) - placed} above the horizon (none)"
    )
    for o, loc in list(zip(obstacles, located, strict=True))[:8]:
        print(row("anomaly", (o.x, o.y, o.width, o.height), loc))

    person, source = people(frame_path, ids, size)
    min_px = MIN_PERSON_PX * size[0] * size[1] // (1024 * 512)
    pmask, persons = find_obstacles(person.astype(np.float32), 0.5, min_area=min_px)
    print(f"people ({source}, at least {min_px} px): {len(persons)}")
    fitted = fit_pitch(pmask, persons, size)
    for pitch, label in ((published, "published"), (fitted, "fitted")):
        locs = locate_obstacles(pmask, persons, camera(size, pitch), None)
        heights = [loc.height for loc in locs if loc.method == "ground"]
        print(f" pitch {pitch:.4f} rad ({label}): median height {statistics.median(heights):.2f} m")
        for o, loc in zip(persons, locs, strict=True):
            print(row("person", (o.x, o.y, o.width, o.height), loc))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
