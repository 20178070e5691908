"""Ensembles of heads and segmentors (sleeg_core.model.ensemble) on tiny random ENet heads: the
score is the weighted sum of each head's normalised score, heads on one segmentor share its
forward, and each bad file is one clear error."""

import json
import math
import subprocess
import sys

import cv2
import numpy as np
import pytest
import torch
from helpers.ensembles import STATS, member, tiny_head, write_ensemble
from helpers.paths import REPO, shared_path
from helpers.segmentors import random_images

from sleeg_core.cli import main
from sleeg_core.common.errors import ModelLoadError, SleegError
from sleeg_core.data.images import read_rgb, to_batch
from sleeg_core.deploy.onnx_export import export_onnx
from sleeg_core.model.ensemble import EnsembleSegmenter
from sleeg_core.model.ensemble_file import EnsembleFile
from sleeg_core.model.headfile import HeadFile
from sleeg_core.model.inference import AnomalySegmenter, load_segmenter
from sleeg_core.model.shipped_heads import resolve_head, shipped_heads
from sleeg_core.segmentors.enet import ENetSegmentor


@pytest.fixture(scope="module")
def heads(tmp_path_factory):
    """Tiny head files a, b, c (ENet, each with its own statistics) in one folder."""
    folder = tmp_path_factory.mktemp("heads")
    for name in STATS:
        tiny_head(folder, name)
    return folder


def head_z(weights, heads, name, images, **kw) -> torch.Tensor:
    """The head's own 'sleeg' score, normalised by its file's statistics."""
    head_file = HeadFile.load(heads / f"{name}.pt")
    model = AnomalySegmenter.for_head_file(ENetSegmentor(weights), head_file).eval()
    s = model(images, **kw).scores["sleeg"]
    p50, p99 = STATS[name]
    return (s - p50) / (p99 - p50)


def load(path, weights=None, segmentor=None):
    return load_segmenter(segmentor, weights, path, "cpu")


def test_one_head_ensemble_is_exactly_that_heads_z_score(tmp_path, tiny_model, heads):
    w = tiny_model["weights"]
    path = write_ensemble(tmp_path / "e.yaml", member(w, (str(heads / "b.pt"), 2.0)))
    model, spec = load(path)
    images = random_images(2, 64, 96)
    assert torch.equal(model(images).scores["sleeg"], head_z(w, heads, "b", images))
    # fitted to an inference size and mapped back to the frame, as a head alone
    kw = {"size": (48, 96), "resize_mode": "pad"}
    torch.testing.assert_close(
        model(images, **kw).scores["sleeg"], head_z(w, heads, "b", images, **kw)
    )
    assert spec.lam == 0.5 == model.lam and math.isnan(spec.threshold)


def test_weights_are_normalised_to_sum_one(tmp_path, tiny_model, heads):
    w, images = tiny_model["weights"], random_images(1, 64, 96)
    a, c = str(heads / "a.pt"), str(heads / "c.pt")
    one = write_ensemble(tmp_path / "1.yaml", member(w, (a, 3.0), (c, 1.0)))
    ten = write_ensemble(tmp_path / "10.yaml", member(w, (a, 30.0), (c, 10.0)))
    got = load(one)[0](images).scores["sleeg"]
    want = 0.75 * head_z(w, heads, "a", images) + 0.25 * head_z(w, heads, "c", images)
    torch.testing.assert_close(got, want)
    torch.testing.assert_close(load(ten)[0](images).scores["sleeg"], got)


def test_members_add_up_and_the_first_gives_ids_logits_and_baselines(tmp_path, tiny_model, heads):
    w, images = tiny_model["weights"], random_images(1, 64, 96)
    path = write_ensemble(
        tmp_path / "e.yaml",
        member(w, (str(heads / "a.pt"), 1.0)),
        member(w, (str(heads / "c.pt"), 1.0), tta="flip"),
    )
    model, _ = load(path)
    model.tta = "none"
    assert [m.tta for m in model.members] == ["none", "flip"]  # its own tta kept
    pred = model(images, scores=("sleeg", "entropy"), keep_logits=True)
    flip = head_z(w, heads, "c", images)
    flip = (flip + head_z(w, heads, "c", images.flip(-1)).flip(-1)) / 2
    torch.testing.assert_close(
        pred.scores["sleeg"], 0.5 * head_z(w, heads, "a", images) + 0.5 * flip
    )
    alone = AnomalySegmenter(ENetSegmentor(w)).eval()(images, ("entropy",), keep_logits=True)
    assert torch.equal(pred.scores["entropy"], alone.scores["entropy"])
    assert torch.equal(pred.train_ids, alone.train_ids) and torch.equal(pred.logits, alone.logits)


@pytest.mark.parametrize(("tta", "passes"), [("none", 1), ("scales", 3)])
def test_heads_on_one_segmentor_share_its_forward(tmp_path, tiny_model, heads, tta, passes):
    w = tiny_model["weights"]
    path = write_ensemble(
        tmp_path / "e.yaml",
        member(w, (str(heads / "a.pt"), 1.0), (str(heads / "b.pt"), 1.0)),
        member(w, (str(heads / "c.pt"), 1.0)),  # same weights and tta: the same forward
    )
    model, _ = load(path)
    model.tta = tta
    assert len(model.members) == 1 and len(model.members[0].heads) == 3
    calls = []
    model.segmentor.register_forward_hook(lambda *_: calls.append(1))
    model(random_images(1, 64, 96))
    assert len(calls) == passes


BAD = {  # a file's content → what its one-line error says
    "unknown kind": ("kind: sleeg-head\nmembers: []\n", "kind is 'sleeg-head'"),
    "no members": ("kind: sleeg-ensemble\nmembers: []\n", "'members' must be a list of at least"),
    "unknown key": ("kind: sleeg-ensemble\nmember: []\n", "unknown key member; allowed"),
    "unknown member key": (
        "kind: sleeg-ensemble\nmembers:\n- {weights: W, heads: [{head: H, weight: 1}], x: 1}\n",
        "unknown key x in members[0]",
    ),
    "unknown head key": (
        "kind: sleeg-ensemble\nmembers:\n- {weights: W, heads: [{head: H, weight: 1, lam: 0}]}\n",
        "unknown key lam in members[0].heads[0]",
    ),
    "zero weight": (
        "kind: sleeg-ensemble\nmembers:\n- {weights: W, heads: [{head: H, weight: 0}]}\n",
        "members[0].heads[0].weight must be a finite number > 0, got 0.0",
    ),
    "negative weight": (
        "kind: sleeg-ensemble\nmembers:\n- {weights: W, heads: [{head: H, weight: -1}]}\n",
        "weight must be a finite number > 0, got -1.0",
    ),
    "nan weight": (
        "kind: sleeg-ensemble\nmembers:\n- {weights: W, heads: [{head: H, weight: .nan}]}\n",
        "weight must be a finite number > 0, got nan",
    ),
    "infinite weight": (
        "kind: sleeg-ensemble\nmembers:\n- {weights: W, heads: [{head: H, weight: .inf}]}\n",
        "weight must be a finite number > 0, got inf",
    ),
    "text weight": (
        "kind: sleeg-ensemble\nmembers:\n- {weights: W, heads: [{head: H, weight: half}]}\n",
        "weight must be a number, got 'half'",
    ),
    "bad tta": (
        "kind: sleeg-ensemble\nmembers:\n- {weights: W, tta: x, heads: [{head: H, weight: 1}]}\n",
        "unknown tta 'x'",
    ),
    "not yaml": ("kind: [sleeg\n", "cannot read it as YAML"),
}


@pytest.mark.parametrize("case", list(BAD))
def test_each_bad_file_is_one_clear_error(tmp_path, case):
    text, says = BAD[case]
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(ModelLoadError) as err:
        load(path)
    assert err.value.field == "head" and "\n" not in str(err.value)
    assert says in str(err.value) and str(path) in str(err.value)


def test_a_head_of_another_segmentor_or_without_statistics_is_one_clear_error(
    tmp_path, tiny_model, heads
):
    w = tiny_model["weights"]
    dab, bare = (
        tiny_head(tmp_path, "dab", segmentor="dabnet"),
        tiny_head(tmp_path, "x", stats=False),
    )
    cases = {
        "head '" + str(dab) + "' was trained on segmentor 'dabnet', not the member's 'enet'": (
            member(w, (str(heads / "a.pt"), 1.0), (str(dab), 1.0))
        ),
        "segmentor 'dabnet' (of its head '": member(w, (str(dab), 1.0)),
        "has no usable score_stats normal_p50/normal_p99": member(w, (str(bare), 1.0)),
        "weights file not found": member(tmp_path / "none.pth", (str(heads / "a.pt"), 1.0)),
    }
    for says, entry in cases.items():
        path = write_ensemble(tmp_path / "e.yaml", entry)
        with pytest.raises(ModelLoadError) as err:
            load(path)
        assert err.value.field == "head" and "\n" not in str(err.value)
        assert says in str(err.value) and "member 1" in str(err.value)


def test_loaded_by_shipped_name_with_paths_relative_to_the_file(
    tmp_path, tiny_model, heads, monkeypatch
):
    models = tmp_path / "models"
    models.mkdir()
    (models / "tiny.pth").symlink_to(tiny_model["weights"])
    (models / "a.pt").symlink_to(heads / "a.pt")
    write_ensemble(models / "tiny_pair.yaml", member("tiny.pth", ("a.pt", 1.0)))
    monkeypatch.setenv("SLEEG_MODELS", str(models))
    assert "tiny_pair" in shipped_heads() and resolve_head("tiny_pair").suffix == ".yaml"
    model, spec = load("tiny_pair")
    assert isinstance(model, EnsembleSegmenter) and isinstance(spec, EnsembleFile)
    images = random_images(1, 64, 96)
    assert torch.equal(
        model(images).scores["sleeg"], head_z(models / "tiny.pth", heads, "a", images)
    )
    # the weights and segmentor given alongside: the first member's, or an error naming them
    assert isinstance(
        load("tiny_pair", weights=tiny_model["weights"], segmentor="enet")[0], EnsembleSegmenter
    )
    for weights, segmentor, field in [
        (tmp_path / "other.pth", None, "weights"),
        (None, "espnet", "segmentor"),
    ]:
        with pytest.raises(ModelLoadError) as err:
            load("tiny_pair", weights=weights, segmentor=segmentor)
        assert err.value.field == field and "first member" in str(err.value)


def test_consumers_api(tmp_path, tiny_model, heads):
    """What the node, sleeg eval and sleeg export use of a model."""
    w = tiny_model["weights"]
    path = write_ensemble(tmp_path / "e.yaml", member(w, (str(heads / "a.pt"), 1.0)))
    model, spec = load(path)
    assert model.available_scores() == ["msp", "maxlogit", "entropy", "energy", "sleeg"]
    assert model.segmentor.info.name == "enet" and next(model.parameters()).device.type == "cpu"
    with pytest.raises(SleegError, match="keep their own λ"):
        model.lam = 0.0
    with pytest.raises(SleegError, match="unknown tta"):
        model.tta = "mirror"
    with pytest.raises(SleegError, match="not exported to ONNX"):
        export_onnx(model, spec, tmp_path / "e.onnx", (64, 128))


def test_recalibration_writes_the_ensembles_threshold_and_statistics(tmp_path, tiny_model, heads):
    """benchmarks/recalibrate.py on an ensemble file: the calibration rule the heads use, on the
    ensemble's score."""
    w = tiny_model["weights"]
    path = write_ensemble(
        tmp_path / "e.yaml",
        member(w, (str(heads / "a.pt"), 1.0), (str(heads / "b.pt"), 1.0)),
        calibration={"size": [48, 96], "tta": "flip"},  # recorded: kept by the recalibration
    )
    images = tmp_path / "data" / "cityscapes_train" / "images"
    images.mkdir(parents=True)
    for i in range(2):
        frame = random_images(1, 96, 192, seed=i)[0].permute(1, 2, 0).numpy()
        cv2.imwrite(str(images / f"f{i}.png"), frame)
    out = tmp_path / "calibrated.yaml"
    argv = [sys.executable, str(REPO / "benchmarks" / "recalibrate.py")]
    argv += ["--data-root", str(tmp_path / "data"), "--fpr", "0.1", "--frames", "2"]
    argv += ["--device", "cpu", "--out", str(out), str(path)]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    spec = EnsembleFile.load(out)
    rule = "10.00% of normal training pixels above it (2 frames at 96x48, tta flip)"
    assert spec.threshold_rule == rule and spec.calibration["fpr"] == 0.1
    assert spec.members == EnsembleFile.load(path).members
    # the frames scored as the calibration scores them
    model, _ = load(out)
    model.tta = "flip"
    scores = np.concatenate(
        [
            model(to_batch(cv2.resize(read_rgb(p), (96, 48), interpolation=cv2.INTER_AREA)))
            .scores["sleeg"]
            .numpy()
            .ravel()
            for p in sorted(images.iterdir())
        ]
    )
    assert abs(float((scores > spec.threshold).mean()) - 0.1) < 0.01
    assert spec.score_stats["normal_p50"] == pytest.approx(float(np.median(scores)), abs=1e-4)


def test_model_speed_measures_an_ensemble_beside_a_segmentor(tmp_path, tiny_model, heads):
    """benchmarks/model_speed.py --ensemble: a row of the ensemble's full time in the same run."""
    path = write_ensemble(
        tmp_path / "e.yaml", member(tiny_model["weights"], (str(heads / "a.pt"), 1.0))
    )
    out = tmp_path / "speed.json"
    argv = [sys.executable, str(REPO / "benchmarks" / "model_speed.py"), "--segmentors", "enet"]
    argv += ["--ensemble", str(path), "--sizes", "1024x512", "--device", "cpu", "--repeat", "1"]
    argv += ["--data-root", str(tmp_path), "--out", str(out)]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    rows = {r["segmentor"]: r for r in json.loads(out.read_text())["rows"]}
    assert set(rows) == {"enet", str(path)}
    assert rows[str(path)]["full_ms"] > 0 and math.isnan(rows[str(path)]["segmentor_ms"])


def test_sleeg_eval_runs_the_shipped_ensemble_on_real_images(tmp_path):
    """`sleeg eval --head models/enet_dabnet_sleeg.yaml` (its weights: the first member's) on two
    RoadObstacle21 images, at a quarter of the node's pixels and one pass to keep it short."""
    data = shared_path("anomaly", "smiyc_roadobstacle21_val")
    for entry in ("enet_cityscapes", "dabnet_cityscapes"):
        shared_path("weights", entry)
    out = tmp_path / "eval"
    argv = ["eval", "--head", str(REPO / "models" / "enet_dabnet_sleeg.yaml"), "--device", "cpu"]
    argv += ["--dataset", f"ro21={data}", "--scores", "entropy,sleeg", "--max-images", "2"]
    argv += ["--size", "256x512", "--tta", "none", "--examples", "0", "--out", str(out)]
    assert main(argv) == 0
    result = json.loads((out / "results.json").read_text())
    assert result["segmentor"] == "enet" and result["lam"] == 0.0
    scores = result["datasets"]["ro21"]["scores"]
    assert 0 < scores["sleeg"]["ap"] <= 1 and scores["sleeg"]["ap"] != scores["entropy"]["ap"]
    spec = EnsembleFile.load(REPO / "models" / "enet_dabnet_sleeg.yaml")
    assert result["datasets"]["ro21"]["mask"]["threshold"] == spec.threshold


def test_only_an_ensemble_may_leave_the_weights_empty(tiny_model):
    for weights in (None, ""):
        with pytest.raises(ModelLoadError) as err:
            load_segmenter(None, weights, tiny_model["head"], "cpu")
        assert err.value.field == "weights" and str(err.value).startswith("no weights: give a")


@pytest.mark.compile
def test_compiled_ensemble_matches_eager(tmp_path, tiny_model, heads, monkeypatch):
    """compile_networks compiles each member's heads, scores and train ids as one graph
    (fullgraph); traced by TorchDynamo and run by the "aot_eager" backend to keep it short."""
    compile_fn = torch.compile
    monkeypatch.setattr(
        torch,
        "compile",
        lambda fn, *a, mode=None, **kw: compile_fn(fn, *a, backend="aot_eager", **kw),
    )
    w = tiny_model["weights"]
    path = write_ensemble(
        tmp_path / "e.yaml", member(w, (str(heads / "a.pt"), 1.0), (str(heads / "b.pt"), 1.0))
    )
    eager, _ = load(path)
    compiled, _ = load(path)
    assert compiled.compile_networks("default") is compiled
    assert all(m._compiled is not None for m in compiled.members)
    images = random_images(1, 48, 64)
    want, got = eager(images, ("sleeg", "entropy")), compiled(images, ("sleeg", "entropy"))
    for name in ("sleeg", "entropy"):
        torch.testing.assert_close(got.scores[name], want.scores[name], atol=1e-4, rtol=1e-4)
    assert torch.equal(got.train_ids, want.train_ids)
