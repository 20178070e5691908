"""docs/runs.csv (the accuracy run history) parses, names each run once, and agrees with the
figures models/README.md states for the shipped heads and the best baselines; benchmarks/runs.py
queries it."""

from __future__ import annotations

import importlib.util
import re

import pytest
from helpers.paths import REPO

SPEC = importlib.util.spec_from_file_location("runs", REPO / "benchmarks" / "runs.py")
runs = importlib.util.module_from_spec(SPEC)
SPEC.loader.exec_module(runs)

# models/README.md, "Figures": | head | size | tta | four "AP / FPR95" cells |
FIGURE_ROW = re.compile(
    r"^\| (?P<name>[^|]+) \| (?P<size>[^|]+) \| (?P<tta>\w+) \|(?P<cells>.+)\|$"
)
SEGMENTOR_OF = {"ENet": "enet", "DABNet": "dabnet"}


def readme_figures() -> list[dict]:
    """The rows of models/README.md's figures table: name, size, tta and the eight numbers."""
    rows = []
    for line in (REPO / "models" / "README.md").read_text().splitlines():
        match = FIGURE_ROW.match(line)
        if not match or match["size"] not in ("1024×512", "native"):
            continue
        pairs = [cell.split(" / ") for cell in match["cells"].split(" | ")]
        rows.append(
            {
                "name": match["name"].strip(),
                "size": match["size"].replace("×", "x"),
                "tta": match["tta"],
                "figures": dict(
                    zip(runs.METRICS, (x.strip() for pair in pairs for x in pair), strict=True)
                ),
            }
        )
    return rows


def assert_agrees(stated: str, measured: float, where: str) -> None:
    """`measured` rounds to `stated` at the precision the README states it with."""
    decimals = len(stated.partition(".")[2])
    assert abs(float(stated) - measured) <= 0.5 * 10**-decimals + 1e-9, where


def test_csv_parses_with_unique_ids_and_plausible_figures():
    rows = runs.load_runs()
    ids = [r["run_id"] for r in rows]
    assert len(rows) > 100 and len(set(ids)) == len(ids)
    for row in rows:
        assert row["segmentor"] in ("enet", "dabnet", "enet+dabnet"), row["run_id"]
        assert row["size"] in ("1024x512", "native") and row["tta"], row["run_id"]
        figures = [v for key in runs.METRICS if (v := runs.value(row, key)) is not None]
        assert figures and all(0 <= v <= 100 for v in figures), row["run_id"]


def test_every_shipped_head_has_its_rows_and_they_match_models_readme():
    rows = runs.load_runs()
    heads = {p.stem for p in (REPO / "models").glob("*.pt")}
    stated = [r for r in readme_figures() if r["name"].strip("`") in heads]
    assert {r["name"].strip("`") for r in stated} == heads  # every file in models/ is in the table
    for figure in stated:
        name = figure["name"].strip("`")
        match = runs.select(
            rows,
            [("head", name), ("size", figure["size"]), ("tta", figure["tta"]), ("score", "sleeg")],
        )
        assert len(match) == 1, f"{name} {figure['size']} {figure['tta']}: {len(match)} rows"
        for key, text in figure["figures"].items():
            assert_agrees(text, runs.value(match[0], key), f"{name} {figure['tta']} {key}")


def test_best_baselines_in_models_readme_are_the_best_baseline_rows():
    rows = runs.select(runs.load_runs(), [("run", "baseline")])
    stated = [r for r in readme_figures() if "best baseline" in r["name"]]
    assert len(stated) >= 4
    for figure in stated:
        segmentor = SEGMENTOR_OF[figure["name"].split()[0]]
        scores = runs.select(
            rows, [("segmentor", segmentor), ("size", figure["size"]), ("tta", figure["tta"])]
        )
        for key, text in figure["figures"].items():
            best = (max if key.endswith("_ap") else min)(runs.value(r, key) for r in scores)
            assert_agrees(text, best, f"{figure['name']} {figure['tta']} {key}")


def test_runs_script_filters_sorts_and_averages(capsys, tmp_path):
    assert runs.main(["--filter", "run=D21", "--filter", "tta=scales", "--filter",
                      "train_every=1", "--sort=-ro21_ap", "--mean"]) == 0  # fmt: skip
    lines = capsys.readouterr().out.splitlines()[2:]
    assert [line.split(" | ")[0] for line in lines][:-1] == [
        "| D21.s2.1024.scales", "| D21.s3.1024.scales", "| D21.s0.1024.scales",
        "| D21.s1.1024.scales",
    ]  # fmt: skip
    seeds = runs.select(runs.load_runs(), [("run", "D21"), ("tta", "scales"), ("train_every", "1")])
    mean = sum(runs.value(r, "ro21_ap") for r in seeds) / len(seeds)
    assert f"{mean:.1f} / " in lines[-1] and lines[-1].startswith("| mean of 4 |")
    assert runs.main(["--filter", "run=no-such-run"]) == 1
    assert runs.main(["--filter", "run=E18", "--plot", str(tmp_path / "e18.png")]) == 0
    assert (tmp_path / "e18.png").stat().st_size > 0
    with pytest.raises(SystemExit):
        runs.main(["--filter", "no_such_column=1"])
