"""End to end: ``descluster run`` on a slice of the real demo images, checked against its labels."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from descluster.cli import main

pytestmark = pytest.mark.slow

FAST = ["--k-max", "10", "--algorithms", "kmeans,minibatch_kmeans,gmm,birch,ward,hdbscan",
        "--preprocessing", "standard,l2", "--embedding", "tsne"]


@pytest.fixture(scope="module")
def run_out(demo_slice_case, tmp_path_factory):
    out = tmp_path_factory.mktemp("run")
    assert main(["run", str(demo_slice_case), "--out", str(out), *FAST]) == 0
    return out


def test_outputs_exist_and_align_with_input_order(run_out, demo_slice_case):
    paths = pd.read_csv(demo_slice_case / "images_paths.csv")["paths"]
    clusters = pd.read_csv(run_out / "clusters.csv")
    assert list(clusters.columns) == ["path", "cluster"]
    assert clusters["path"].tolist() == paths.tolist()
    for name in ("mobilenetv2", "efficientnet_lite0", "colour"):
        per = pd.read_csv(run_out / f"clusters_{name}.csv")
        assert per["path"].tolist() == paths.tolist()
    for f in ("study.csv", "comparison.csv", "metrics.csv", "outliers.csv", "report.html", "manifest.json"):
        assert (run_out / f).is_file(), f


def test_metrics_cover_every_descriptor_scaling_and_k(run_out):
    metrics = pd.read_csv(run_out / "metrics.csv")
    assert set(metrics["algorithm"]) == {"kmeans"}
    counts = metrics.groupby(["descriptor", "preprocessing"]).size()
    singles = counts[[not d.startswith("mix:") for d, _ in counts.index]]
    assert len(singles) == 3 * 2 and (singles == 9).all()  # k = 2..10
    ok = metrics["calinski_harabasz"].notna()
    assert ok.mean() > 0.9
    assert (metrics.loc[ok, "calinski_harabasz"] > 0).all()


def test_comparison_recommends_exactly_one_and_clusters_match_it(run_out):
    comp = pd.read_csv(run_out / "comparison.csv")
    assert comp["recommended"].sum() == 1
    rec = comp[comp["recommended"]].iloc[0]
    clusters = pd.read_csv(run_out / "clusters.csv")
    assert clusters["cluster"][clusters["cluster"] >= 0].nunique() == rec["k"]
    assert {"kmeans", "minibatch_kmeans", "gmm", "birch", "ward", "hdbscan"} <= set(comp["algorithm"])
    assert comp["descriptor"].str.startswith("mix:").any()


def test_cnn_clustering_recovers_vehicle_types(run_out):
    """External check only: the labels never steer k (the rule is tested in test_selection)."""
    comp = pd.read_csv(run_out / "comparison.csv")
    cnn = comp[comp["descriptor"].isin(["mobilenetv2", "efficientnet_lite0"]) & (comp["algorithm"] == "kmeans")]
    assert cnn["nmi_vehicle_type"].max() >= 0.45


def test_outliers_table_and_manifest(run_out):
    out = pd.read_csv(run_out / "outliers.csv")
    assert {"path", "score", "rank", "flagged", "reason", "group_flagged", "group"} <= set(out.columns)
    facts = pd.read_csv(run_out / "cluster_facts.csv")
    assert {"colour", "colours", "distinctive", "no_vehicle", "description"} <= set(facts.columns)
    assert not facts.astype(str).apply(lambda c: c.str.contains("imagenet_[0-9]", regex=True)).any().any()
    assert sorted(out["rank"]) == list(range(1, len(out) + 1))
    man = json.loads((run_out / "manifest.json").read_text())
    assert man["case"]["n_images"] == 240
    assert len(man["case"]["descriptor_sha256"]) == 3
    assert man["parameters"]["cluster"]["k_max"] == 10
    rules = man["outlier_rules"]  # how images were judged survives into the manifest and the report
    assert "flag rule" in rules and sum(k.startswith("neighbours:") for k in rules) == 3
    assert all("neighbour search: exact" in v for k, v in rules.items() if k.startswith("neighbours:"))
    html = (run_out / "report.html").read_text()
    assert "How images were judged" in html and rules["flag rule"][:40] in html


def test_assign_judges_new_images_pixels_by_the_study_cuts(run_out, demo_slice_case, tmp_path):
    """The model keeps the study's pixel cuts: its own images are judged exactly as the study judged
    them, and images blurred afterwards are flagged as blurred although their descriptors are unchanged."""
    import shutil

    import numpy as np
    from PIL import Image, ImageFilter

    import descluster

    case = descluster.load_case(demo_slice_case)
    root = tmp_path / "images"
    shutil.copytree(case.images.root, root)
    blurred = list(case.paths[:240:40])
    for rel in blurred:
        f = root / rel.replace("\\", "/")
        Image.open(f).convert("RGB").filter(ImageFilter.GaussianBlur(6)).save(f, quality=95)
    new = descluster.load_case(demo_slice_case, images=root)
    model = descluster.FittedModel.load(run_out)
    assert model.pixels is not None and "blurred" in model.pixels.cuts
    t = model.assign(new).table
    assert t["path"].tolist() == list(case.paths)
    study = pd.read_csv(run_out / "outliers.csv", keep_default_na=False).set_index("path").loc[t["path"]]
    by = study["flagged_by"].astype(str).str.split(";")
    study_pixel = np.array([any(r.startswith("pixel:") and r != "pixel:no-vehicle" for r in rules) for rules in by])
    same = ~t["path"].isin(blurred).to_numpy()
    np.testing.assert_array_equal(t["pixel_flagged"].to_numpy()[same].astype(bool), study_pixel[same])
    hit = t.set_index("path").loc[blurred]
    assert hit["pixel_flagged"].all() and hit["flagged"].all() and hit["reason"].str.contains("blurred").all()
