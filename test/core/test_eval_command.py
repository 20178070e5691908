"""`sleeg eval` end to end on the tiny random model: the --lam override and the head scores."""

import json

import pytest
from helpers.datasets import make_dataset

from sleeg_core.cli import main


def run_eval(tmp_path, tmp_model_args, *extra):
    out = tmp_path / f"out{len(extra)}"
    data = make_dataset(tmp_path / f"data{len(extra)}")
    argv = ["eval", *tmp_model_args, "--dataset", f"t={data}", "--examples", "0"]
    argv += ["--scores", "entropy,sleeg,tae,tore", "--out", str(out), *extra]
    assert main(argv) == 0
    return json.loads((out / "results.json").read_text())


def test_lam_override_changes_the_sleeg_score_only(tmp_path, tmp_model_args):
    default = run_eval(tmp_path, tmp_model_args)
    zero = run_eval(tmp_path, tmp_model_args, "--lam", "0")
    assert default["lam"] == 0.5 and zero["lam"] == 0.0
    scores = zero["datasets"]["t"]["scores"]
    assert scores["sleeg"] == scores["tae"]  # λ = 0: the paper's score is TAE alone
    for name in ("entropy", "tae", "tore"):
        assert scores[name] == default["datasets"]["t"]["scores"][name]


def test_an_inference_size_is_fitted_by_the_resize_mode_and_scored_at_label_resolution(
    tmp_path, tmp_model_args
):
    runs = {}
    for mode in ("native", "pad", "stretch"):
        (tmp_path / mode).mkdir()
        extra = [] if mode == "native" else ["--size", "64x64", "--resize-mode", mode]
        runs[mode] = run_eval(tmp_path / mode, tmp_model_args, *extra)
    native, pad, stretch = runs.values()
    n_valid = native["datasets"]["t"]["n_valid_pixels"]
    for run in (pad, stretch):
        assert run["datasets"]["t"]["n_valid_pixels"] == n_valid  # every label pixel scored
    aucs = [r["datasets"]["t"]["scores"]["tae"]["auroc"] for r in (native, pad, stretch)]
    assert len(set(aucs)) == 3  # three different inputs to the network


def test_bootstrap_adds_intervals_and_the_heads_paired_shares(tmp_path, tmp_model_args):
    plain = run_eval(tmp_path, tmp_model_args)["datasets"]["t"]
    booted = run_eval(tmp_path, tmp_model_args, "--bootstrap", "50")["datasets"]["t"]
    assert "bootstrap" not in plain and "ci90" not in plain["scores"]["sleeg"]
    assert booted["bootstrap"]["draws"] == 50
    for name, score in booted["scores"].items():
        assert {k: score[k] for k in ("ap", "auroc", "fpr95")} == plain["scores"][name]
        for metric in ("ap", "fpr95"):
            low, high = score["ci90"][metric]
            assert 0 <= low <= high <= 1
    assert set(booted["bootstrap"]["paired"]) == {"entropy", "tae", "tore"}
    for shares in booted["bootstrap"]["paired"].values():
        assert 0 <= shares["ap"] <= 1 and 0 <= shares["fpr95"] <= 1
    table = (tmp_path / "out2" / "results.md").read_text()
    assert "resamples of the images" in table and "sleeg better than entropy in" in table


def test_a_negative_bootstrap_is_refused(tmp_path, tmp_model_args):
    data = make_dataset(tmp_path / "data")
    argv = ["eval", *tmp_model_args, "--dataset", f"t={data}", "--out", str(tmp_path / "o")]
    assert main([*argv, "--bootstrap", "-1"]) != 0


def test_max_images_evaluates_that_many_evenly_spaced_images(tmp_path, tmp_model_args):
    both = run_eval(tmp_path, tmp_model_args)["datasets"]["t"]
    one = run_eval(tmp_path, tmp_model_args, "--max-images", "1")["datasets"]["t"]
    assert both["n_images"] == 2 and one["n_images"] == 1
    assert one["n_valid_pixels"] * 2 == both["n_valid_pixels"]  # equal-sized images
    data = make_dataset(tmp_path / "data_neg")
    argv = ["eval", *tmp_model_args, "--dataset", f"t={data}", "--out", str(tmp_path / "o")]
    assert main([*argv, "--max-images", "-1"]) == 2


def test_the_heads_mask_is_scored_at_its_threshold_and_the_breakdown_on_request(
    tmp_path, tmp_model_args
):
    plain = run_eval(tmp_path, tmp_model_args)["datasets"]["t"]
    assert "fp_breakdown" not in plain
    mask = plain["mask"]
    assert mask["mask_open_px"] == 3 and mask["images"] == 2
    for key in ("siou", "ppv", "mean_f1", "precision", "recall", "normal_flagged"):
        assert mask[key] is None or 0 <= mask[key] <= 1
    everything = run_eval(tmp_path, tmp_model_args, "--threshold=-1e9", "--mask-open-px", "0")
    flagged = everything["datasets"]["t"]["mask"]
    assert (
        flagged["threshold"] == -1e9 and flagged["recall"] == 1 and flagged["normal_flagged"] == 1
    )
    broken = run_eval(tmp_path, tmp_model_args, "--breakdown")["datasets"]["t"]
    assert broken["scores"] == plain["scores"]  # the segmentation asked for changes no score
    fp = broken["fp_breakdown"]
    assert fp["flagged_normal_pixels"] > 0  # a random head flags normal pixels at TPR 95 %
    assert sum(fp["fp_share"].values()) == pytest.approx(1, abs=1e-4)
    assert sum(fp["band_fp_share"].values()) == pytest.approx(1, abs=1e-4)
    assert (tmp_path / "out1" / "t_fp_breakdown.png").is_file()
    assert (
        "false positives at the FPR95 threshold" in (tmp_path / "out1" / "results.md").read_text()
    )
