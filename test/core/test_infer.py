"""`sleeg infer` writes labels, colours, scores and overlays; odd inputs are handled or refused."""

import cv2
import numpy as np
import pytest
from helpers.paths import shared_path

from sleeg_core.cli import main as sleeg
from sleeg_core.data.labels import color_to_train_ids


@pytest.fixture
def inputs(tmp_path):
    rng = np.random.default_rng(0)
    folder = tmp_path / "in"
    folder.mkdir()
    cv2.imwrite(str(folder / "rgb.png"), rng.integers(0, 256, (40, 64, 3), dtype=np.uint8))
    cv2.imwrite(str(folder / "gray.png"), rng.integers(0, 256, (40, 64), dtype=np.uint8))
    cv2.imwrite(str(folder / "rgba.png"), rng.integers(0, 256, (40, 64, 4), dtype=np.uint8))
    cv2.imwrite(str(folder / "deep.png"), rng.integers(0, 65535, (40, 64, 3), dtype=np.uint16))
    cv2.imwrite(str(folder / "tiny.png"), np.zeros((4, 4, 3), np.uint8))
    return folder


def test_infer_with_head_writes_every_output(tmp_model_args, inputs, tmp_path, capsys):
    out = tmp_path / "out"
    assert sleeg(["infer", *tmp_model_args, "--input", str(inputs), "--out", str(out)]) == 0
    assert "1 skipped" in capsys.readouterr().out  # the 4×4 image
    for stem in ("rgb", "gray", "rgba", "deep"):
        labels = cv2.imread(str(out / f"{stem}_labels.png"), cv2.IMREAD_UNCHANGED)
        assert labels.dtype == np.uint8 and labels.shape == (40, 64) and labels.max() < 19
        color = cv2.imread(str(out / f"{stem}_color.png"))[..., ::-1]
        assert np.array_equal(color_to_train_ids(color), labels)
        score = cv2.imread(str(out / f"{stem}_score.tiff"), cv2.IMREAD_UNCHANGED)
        assert score.dtype == np.float32 and score.shape == (40, 64)
        assert cv2.imread(str(out / f"{stem}_overlay.png")).shape == (40, 64, 3)
    assert not (out / "tiny_labels.png").exists()


def test_infer_without_head_writes_segmentation_only(tiny_model, inputs, tmp_path):
    out = tmp_path / "out"
    args = ["--segmentor", "enet", "--weights", str(tiny_model["weights"])]
    assert sleeg(["infer", *args, "--input", str(inputs / "rgb.png"), "--out", str(out)]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["rgb_color.png", "rgb_labels.png"]


def test_wrong_checkpoint_is_one_clear_error(tiny_model, inputs, tmp_path, capsys):
    args = ["--segmentor", "espnet", "--weights", str(tiny_model["weights"])]
    assert sleeg(["infer", *args, "--input", str(inputs), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert "enet_random.pth" in err and "Traceback" not in err


def test_real_enet_colour_map_matches_cityscapes_ground_truth(tmp_path):
    weights = shared_path("weights", "enet_cityscapes", "enet.pth")
    frame = shared_path("driving", "frankfurt_000001_058914_leftImg8bit.png")
    gt = shared_path("driving", "frankfurt_000001_058914_gtFine_color.png")
    out = tmp_path / "out"
    args = ["--segmentor", "enet", "--weights", str(weights), "--device", "cpu"]
    args += ["--size", "native"]  # 2048×1024: the resolution ENet was trained and checked at
    assert sleeg(["infer", *args, "--input", str(frame), "--out", str(out)]) == 0
    pred = cv2.imread(str(out / f"{frame.stem}_labels.png"), cv2.IMREAD_UNCHANGED)
    truth = color_to_train_ids(cv2.imread(str(gt))[..., ::-1])
    valid = truth != 255
    assert (pred[valid] == truth[valid]).mean() >= 0.96
