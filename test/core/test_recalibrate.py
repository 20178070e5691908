"""benchmarks/recalibrate.py rewrites a head file's threshold by the calibration rule, on the
tiny random model, and keeps everything else."""

import subprocess
import sys

import cv2
import numpy as np
import torch
from helpers.paths import REPO

from sleeg_core.data.images import read_rgb, to_batch
from sleeg_core.model.headfile import HeadFile
from sleeg_core.model.inference import load_segmenter


def test_the_threshold_leaves_the_asked_share_of_the_frames_pixels_above_it(tmp_path, tiny_model):
    root = tmp_path / "data"
    (root / "weights" / "enet_cityscapes").mkdir(parents=True)
    (root / "weights" / "enet_cityscapes" / "enet.pth").symlink_to(tiny_model["weights"])
    images = root / "cityscapes_train" / "images"
    images.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for i in range(2):
        cv2.imwrite(str(images / f"f{i}.png"), rng.integers(0, 256, (96, 192, 3), np.uint8))
    out = tmp_path / "head.pt"
    argv = [sys.executable, str(REPO / "benchmarks" / "recalibrate.py"), "--data-root", str(root)]
    argv += ["--fpr", "0.1", "--frames", "2", "--out", str(out), str(tiny_model["head"])]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    old, new = HeadFile.load(tiny_model["head"]), HeadFile.load(out)
    assert new.threshold != old.threshold and new.score_stats == old.score_stats
    assert new.threshold_rule.startswith("10.00% of normal training pixels above it (2 frames")
    assert new.train_config["calibration"]["fpr"] == 0.1
    assert all(torch.equal(new.state_dict[k], v) for k, v in old.state_dict.items())
    # the frames scored as the node scores them (1024x512, tta scales): 10 % above the threshold
    model, _ = load_segmenter(None, tiny_model["weights"], out, "cpu")
    model.tta = "scales"
    with torch.no_grad():
        scores = [
            model(to_batch(cv2.resize(read_rgb(p), (1024, 512), interpolation=cv2.INTER_AREA)))
            .scores["sleeg"]
            .numpy()
            for p in sorted(images.iterdir())
        ]
    above = float((np.concatenate([s.ravel() for s in scores]) > new.threshold).mean())
    assert abs(above - 0.1) < 0.005
