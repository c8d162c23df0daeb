"""``descluster simulate`` on a 300-image slice of the built-in data: curve, PNG, JSON summary, baselines."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from conftest import make_demo_slice
from descluster.cli import main
from descluster.labelling.simulate import SimulatedAnnotator, baseline_naive_loop


@pytest.fixture(scope="module")
def slice_results(tmp_path_factory):
    """300 demo images (50 per type), colour descriptor only (no torch), a quick study run."""
    import descluster.report.build
    from descluster.extract import extract_case

    root = tmp_path_factory.mktemp("slice300")
    images = make_demo_slice(root / "images", per_type=50)
    extract_case(images, root / "case", backbones=("colour",), progress=False)
    out = root / "out"
    with pytest.MonkeyPatch.context() as mp:  # the engine reads no report: skip building it
        mp.setattr(descluster.report.build, "build_report", lambda *a, **k: None)
        assert main(["run", str(root / "case"), "--out", str(out), "--algorithms", "kmeans", "--k-max", "8",
                     "--preprocessing", "standard,l2", "--no-outliers", "--no-pixel-checks",
                     "--embedding", "pca"]) == 0
    return out, images / "labels.csv"


def test_simulate_writes_the_curve_png_and_summary(slice_results, capsys):
    out, truth = slice_results
    capsys.readouterr()
    assert main(["simulate", str(out), "--truth", str(truth), "--column", "vehicle_type", "--budget", "120"]) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    curve = pd.read_csv(out / "labelling_curve.csv")
    assert list(curve.columns) == ["decisions", "accuracy", "labelled_share", "estimated_accuracy"]
    assert curve["decisions"].tolist() == list(range(1, len(curve) + 1))  # one row per decision
    assert summary["decisions"] == len(curve) >= 120 or summary["accuracy"] == 1.0
    assert summary["accuracy"] == pytest.approx(curve["accuracy"].iloc[-1])
    assert curve["accuracy"].between(0, 1).all() and curve["labelled_share"].is_monotonic_increasing
    assert (out / "labelling_curve.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    for t, d in summary["decisions_to"].items():  # the summary agrees with the curve
        hit = curve.loc[curve["accuracy"] >= float(t), "decisions"]
        assert d == (int(hit.iloc[0]) if len(hit) else None)
    base = pd.read_csv(out / "labelling_baselines.csv")
    assert {"clusters_named_once", "random_logistic", "random_knn", "by_hand", "naive_loop_k20",
            "naive_loop_k40"} <= set(base["method"])
    hand = base[base["method"] == "by_hand"]
    assert np.allclose(hand["accuracy"], hand["decisions"] / 300)
    a = base[base["method"] == "clusters_named_once"].iloc[0]
    k = pd.read_csv(out / "clusters.csv")["cluster"].nunique()
    assert a["decisions"] == k
    # even on a colour histogram, which hardly tells vehicle types apart, the loop beats labelling by hand
    assert curve["accuracy"].iloc[-1] > curve["decisions"].iloc[-1] / 300
    assert set(summary["baselines"]) == set(base["method"])
    reach = int(curve["decisions"].max())  # a baseline is judged within the loop's budget, not past it
    for name, b in summary["baselines"].items():
        assert all(d is None or d <= reach for d in b["decisions_to"].values()), name
    assert (base.loc[base["method"] == "naive_loop_k40", "decisions"] > reach).any()  # it does run past it


def test_simulated_annotator_follows_the_issue_rules():
    truth = np.array(["a"] * 8 + ["b"] * 2 + ["c"] * 5)
    ann = SimulatedAnnotator(truth)
    assert ann.decide(list(range(10))) == {"label": "a", "marks": {8: "b", 9: "b"}}  # 80 %: named, 2 marked
    assert ann.decide(list(range(11))) == {"split": True}  # 8 of 11 < 80 %
    assert ann.decide([10, 11]) == {"label": "c", "marks": {}}


def test_naive_loop_costs_one_decision_per_grid_plus_one_per_wrong_proposal():
    rng = np.random.default_rng(0)
    y = np.repeat([0, 1], 100)
    Z = (rng.normal(size=(200, 3)) + y[:, None] * 6).astype(np.float32)
    curve = baseline_naive_loop(Z, y, n_clusters=2, budget=50)
    # two clean clusters: two namings (64 shown each, no wrong images), then grids with no wrong proposal
    assert curve["decisions"].tolist()[:2] == [1, 2] and curve["accuracy"].iloc[-1] == 1.0


def test_simulate_refuses_a_truth_file_without_the_column(slice_results, capsys):
    out, truth = slice_results
    assert main(["simulate", str(out), "--truth", str(truth), "--column", "colour"]) == 2
    err = capsys.readouterr().err
    assert "no column 'colour'" in err and "vehicle_type" in err


@pytest.mark.parametrize("fault", ["no path column", "no path matches", "one class"])
def test_simulate_refuses_a_truth_file_it_cannot_use_in_one_line(slice_results, capsys, tmp_path, fault):
    out, truth = slice_results
    table = pd.read_csv(truth)
    if fault == "no path column":
        table = table.rename(columns={"path": "paths"})
    elif fault == "no path matches":
        table["path"] = [f"img{i:05d}.jpg" for i in range(len(table))]
    else:
        table["vehicle_type"] = "car"
    bad = tmp_path / "truth.csv"
    table.to_csv(bad, index=False)
    assert main(["simulate", str(out), "--truth", str(bad), "--column", "vehicle_type", "--no-baselines"]) == 2
    err = capsys.readouterr().err
    assert "unexpected" not in err and "Traceback" not in err and str(bad) in err
    expected = {"no path column": "(truth file): missing column(s) ['path']; the columns are ['paths',",
                "no path matches": "none of its 300 paths is an image of",
                "one class": "every image has the class 'car'"}[fault]
    assert expected in err


def test_simulate_without_baselines_removes_an_earlier_runs_baselines(slice_results, capsys):
    out, truth = slice_results
    (out / "labelling_baselines.csv").write_text("method,decisions,accuracy\nstale,1,0.5\n")
    assert main(["simulate", str(out), "--truth", str(truth), "--column", "vehicle_type", "--budget", "20",
                 "--no-baselines"]) == 0
    assert not (out / "labelling_baselines.csv").exists() and (out / "labelling_curve.csv").is_file()


@pytest.mark.parametrize("seed", [-1, 2**32, 1.5])
def test_simulate_refuses_a_bad_seed_before_any_work(tmp_path, seed):
    from descluster.errors import ParameterError
    from descluster.labelling.simulate import simulate

    # the folder does not exist: the seed is checked first, so the error names the seed, not the folder
    with pytest.raises(ParameterError, match=r"random_state \(--seed\)"):
        simulate(tmp_path / "no-results", tmp_path / "truth.csv", "vehicle_type", random_state=seed)
