"""The HTML report renders from a realistic RunResult built from the demo images.

The fixture (``make_demo_result``) clusters real tiny-vehicles crops on simple
pixel features (PCA + KMeans, two "descriptor kinds") so that every view of the
report has real content; ``tests/test_report_browser.py`` reuses it.
"""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from descluster.errors import ParameterError
from descluster.interpret import cluster_facts, colour_name
from descluster.io.images import ImageSource
from descluster.results import Choice, ReducedSpace, RunResult, SpaceId

DEMO = Path(__file__).resolve().parents[1] / "data" / "tiny-vehicles"
EVIL = "bike/<script>alert(1)</script>.jpg"


def _features(source: ImageSource, paths: list[str]) -> tuple[np.ndarray, np.ndarray, pd.DataFrame]:
    """Two toy descriptor kinds (16x16 RGB pixels; 4x4x4 colour histogram) and a quality table."""
    pix, hist, rows = [], [], []
    for p in paths:
        try:
            im = source.open(p)
        except Exception:
            im = Image.new("RGB", (100, 100), (128, 128, 128))
        a = np.asarray(im.resize((16, 16)), dtype=np.float32) / 255.0
        pix.append(a.ravel())
        q = (np.asarray(im, dtype=np.uint8) // 64).reshape(-1, 3)
        h = np.bincount(q[:, 0] * 16 + q[:, 1] * 4 + q[:, 2], minlength=64).astype(np.float32)
        hist.append(h / h.sum())
        rgb = np.asarray(im, dtype=np.float64)
        luma = float((rgb @ [0.299, 0.587, 0.114]).mean())
        c = rgb[25:75, 25:75].reshape(-1, 3)
        rows.append({"path": p, "width": im.width, "height": im.height, "mean_luminance": luma,
                     "colour": colour_name(np.median(c, axis=0)), "colour_share": 0.5})
    return np.array(pix, dtype=np.float32), np.array(hist, dtype=np.float32), pd.DataFrame(rows)


def _space(name: str, X: np.ndarray) -> ReducedSpace:
    from sklearn.decomposition import PCA
    from sklearn.preprocessing import StandardScaler

    Z = StandardScaler().fit_transform(X)
    pca = PCA(n_components=min(40, X.shape[0] - 1, X.shape[1]), random_state=0).fit(Z)
    keep = int(np.searchsorted(np.cumsum(pca.explained_variance_ratio_), 0.8) + 1)
    return ReducedSpace(SpaceId.single(name, "standard"), pca.transform(Z)[:, :keep].astype(np.float32),
                        pca.explained_variance_ratio_, keep, 0.8)


def _sweep(space: ReducedSpace, ks) -> Choice:
    from sklearn.cluster import KMeans
    from sklearn.metrics import calinski_harabasz_score, davies_bouldin_score, silhouette_score

    rows, fits = [], {}
    for k in ks:
        km = KMeans(n_clusters=k, n_init=2, random_state=0).fit(space.X)
        fits[k] = km
        rows.append({"k": k, "calinski_harabasz": calinski_harabasz_score(space.X, km.labels_),
                     "davies_bouldin": davies_bouldin_score(space.X, km.labels_),
                     "silhouette": silhouette_score(space.X, km.labels_), "stability": np.nan})
    sweep = pd.DataFrame(rows)
    k = 6 if 6 in fits else int(sweep.loc[sweep["silhouette"].idxmax(), "k"])
    return Choice(space.id, "kmeans", k, fits[k].labels_.astype(np.int64),
                  f"k = {k}: fixed for the test fixture", sweep, fits[k].cluster_centers_.astype(np.float32))


def make_demo_result(per_class: int = 20, ks=(4, 5, 6, 7), evil_path: bool = True,
                     seed: int = 0) -> tuple[RunResult, ImageSource]:
    """A RunResult over ``per_class`` images of each of the 6 demo vehicle types (+ one hostile path)."""
    source = ImageSource(DEMO)
    table = pd.read_csv(DEMO / "labels.csv")
    table = table.groupby("vehicle_type").sample(n=per_class, random_state=seed).reset_index(drop=True)
    if evil_path:  # a path that must render as text; the image does not exist (placeholder tile)
        table = pd.concat([table, pd.DataFrame([{"path": EVIL, "vehicle_type": "bike"}])], ignore_index=True)
    paths = table["path"].tolist()
    pix, hist, quality = _features(source, paths)
    spaces = {s.key: s for s in (_space("pixels", pix), _space("colourhist", hist))}
    choices = {}
    for s in spaces.values():
        ch = _sweep(s, ks)
        choices[ch.key] = ch
    from sklearn.metrics import adjusted_rand_score

    rows = []
    for key, ch in choices.items():
        at = ch.sweep[ch.sweep["k"] == ch.k].iloc[0]
        rows.append({"descriptor": ch.descriptor, "preprocessing": ch.preprocessing, "algorithm": ch.algorithm,
                     "k": ch.k, "silhouette": at["silhouette"], "score": at["silhouette"],
                     "ari_vehicle_type": adjusted_rand_score(table["vehicle_type"], ch.labels),
                     "recommended": key.startswith("pixels"), "k_reason": ch.reason})
    comparison = pd.DataFrame(rows)
    rec = "pixels/standard/kmeans"
    rec_choice = choices[rec]
    d = np.linalg.norm(spaces["pixels/standard"].X - rec_choice.centroids[rec_choice.labels], axis=1)
    order = np.argsort(-d)
    rank = np.empty(len(d), dtype=int)
    rank[order] = np.arange(1, len(d) + 1)
    flagged = rank <= max(2, len(d) // 40)
    dark = quality["mean_luminance"].to_numpy() < np.percentile(quality["mean_luminance"], 3)
    flagged_by = [";".join((["knn:pixels", "knn:colourhist"] if f else []) + (["pixel:dark"] if k else []))
                  for f, k in zip(flagged, dark)]
    outliers = pd.DataFrame({"path": paths, "knn_pixels": d, "rank": rank, "flagged": (flagged | dark).astype(int),
                             "flagged_by": flagged_by,
                             "reason": ["; ".join((["far from all neighbours in pixels"] if f else [])
                                                  + (["dark"] if k else [])) for f, k in zip(flagged, dark)]})
    a, b = choices["pixels/standard/kmeans"].labels, choices["colourhist/standard/kmeans"].labels
    ari = adjusted_rand_score(a, b)
    agreement = pd.DataFrame([[1.0, ari], [ari, 1.0]], index=["pixels", "colourhist"],
                             columns=["pixels", "colourhist"])
    result = RunResult(
        paths=paths, spaces=spaces, choices=choices, study=pd.concat([c.sweep for c in choices.values()]),
        comparison=comparison, recommended=rec, recommendation=f"{rec} at k = {rec_choice.k}: best silhouette.",
        per_descriptor={"pixels": "pixels/standard/kmeans", "colourhist": "colourhist/standard/kmeans"},
        outliers=outliers, quality=quality, labels=table[["path", "vehicle_type"]], agreement=agreement,
        notes=["test fixture: toy pixel descriptors", "a <b>note</b> with markup"],
        meta={"attribution": "tiny-vehicles, Tas et al. 2022, CC BY 4.0 (data/tiny-vehicles/ATTRIBUTION.md)"},
    )
    result.cluster_facts = cluster_facts(result)
    return result, source


@pytest.fixture(scope="module")
def demo():
    return make_demo_result()


@pytest.fixture(scope="module")
def built(demo, tmp_path_factory):
    from descluster.report import ReportOptions, build_report

    result, source = demo
    out = tmp_path_factory.mktemp("report")
    page = build_report(result, out, source, ReportOptions(max_map_points=50, map_3d=True))
    return result, out, page, page.read_text(encoding="utf-8")


def _data(html: str) -> dict:
    m = re.search(r'<script type="application/json" id="report-data">(.*?)</script>', html, re.S)
    return json.loads(m.group(1))


def test_report_has_every_cluster_section(built):
    result, out, page, html = built
    assert page == out / "report.html"
    ids = np.unique(result.choices[result.recommended].labels)
    for c in ids:
        assert f'id="cluster-{c}"' in html
        assert (out / "report_files" / f"cluster_{c}.png").is_file()
        assert (out / "report_files" / f"cluster_{c}_random.png").is_file()
    assert html.count('<article class="cluster"') == len(ids)
    for section in ("summary", "choosing-k", "map", "clusters", "descriptors", "outliers", "labelling"):
        assert f'<section id="{section}">' in html


def test_script_path_is_escaped(built):
    result, out, page, html = built
    assert "<script>alert(1)" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;.jpg" in html  # shown as text in the outlier / path lists
    assert "<b>note</b>" not in html and "&lt;b&gt;note&lt;/b&gt;" in html
    data = _data(html)  # the JSON survives the escaping and still holds the raw path
    assert EVIL in data["paths"]


def test_thumbnails_only_for_shown_points(built):
    result, out, page, html = built
    data = _data(html)
    n = len(result.paths)
    shown = data["thumbs"]["shown"]
    assert len(shown) == 50 < n
    assert len(set(shown)) == 50 and all(0 <= i < n for i in shown)
    tile, cols = data["thumbs"]["tile"], data["thumbs"]["cols"]
    sheets = sorted((out / "report_files").glob("thumbs_*.jpg"))
    assert len(sheets) == len(data["thumbs"]["sheets"]) == 1
    with Image.open(sheets[0]) as im:
        assert im.size == (cols * tile, -(-50 // cols) * tile)  # exactly enough rows for 50 tiles
    # every cluster is on the map (stratified sample)
    labels = np.asarray(result.choices[result.recommended].labels)
    assert set(labels[shown]) == set(labels)
    # the page carries every image's cluster for the labelling download
    assert data["clusters"] == labels.tolist() and len(data["paths"]) == n


def test_offline_and_attribution(built):
    result, out, page, html = built
    assert "plotly" in html.lower() and "scattergl" in html
    assert not re.search(r'<script[^>]+src="https?:', html)
    assert not re.search(r'<link[^>]+href="https?:', html)
    assert "CC BY 4.0" in html
    for src in re.findall(r'<img src="([^"]+)"', html):
        assert (out / src).is_file(), src


def test_recommended_row_highlighted_and_figures(built):
    result, out, page, html = built
    assert html.count('class="recommended"') == 1
    for name in ("variance.png", "sweep_kmeans.png", "map.png", "contingency.png", "agreement.png"):
        with Image.open(out / "report_files" / name) as im:
            assert im.width > 100 and im.height > 100


def _section(html: str, name: str) -> str:
    start = html.index(f'<section id="{name}">')
    return html[start:html.index("</section>", start)]


def test_outlier_gallery_is_ranked_each_image_once_with_all_reasons(built):
    from descluster.report import ReportOptions

    result, out, page, html = built
    opts = ReportOptions()
    gallery = _section(html, "outliers")
    ranks = [int(r) for r in re.findall(r'<figure class="outlier-card [a-z]+" data-rank="(\d+)">', gallery)]
    table = result.outliers.sort_values("rank")
    flagged = table[table["flagged"] == 1]
    top = table.iloc[:opts.n_outliers]
    more = max(0, opts.n_below - int((top["flagged"] == 0).sum()))
    below = table[(table["flagged"] == 0) & ~table.index.isin(top.index)].iloc[:more]
    # the top ranks, and enough of the best-ranked unflagged ones to show the threshold; each image once
    assert ranks == top["rank"].tolist() + below["rank"].tolist()
    assert len(ranks) == len(set(ranks))
    n_flag_cards = gallery.count('class="outlier-card flagged"')
    assert n_flag_cards == int(flagged["rank"].isin(ranks).sum()) > 0
    assert gallery.count('class="outlier-card below"') == len(ranks) - n_flag_cards > 0
    assert gallery.count('<div class="threshold-line">') == 1
    # an image flagged in two spaces and by a pixel rule shows all its reasons in one card
    both = table[table["reason"].str.contains("far from all neighbours") & table["reason"].str.contains("dark")]
    for _, row in both.iterrows():
        card = gallery[gallery.index(f'data-rank="{int(row["rank"])}"'):]
        card = card[:card.index("</figure>")]
        assert "far from all neighbours in pixels" in card and "<li>dark</li>" in card
    for rank in ranks:
        assert (out / "report_files" / f"outlier_{rank}.jpg").is_file()


def test_rules_box_separates_fired_from_flagged(built):
    from descluster.outliers.tally import flag_counts

    result, out, page, html = built
    n_flagged, counts = flag_counts(result.outliers, per_check=True)
    box = _section(html, "outliers")
    assert f"{n_flagged} of {len(result.outliers)} images flagged in total" in box
    for r in counts.itertuples():
        assert f'<td><code>{r.rule}</code></td><td class="num">{r.fired}</td><td class="num">{r.flagged}</td>' in box


def test_duplicate_groups_shown_as_groups(demo, tmp_path):
    from descluster.report import ReportOptions, build_report

    result, source = demo
    result = copy.copy(result)
    table = result.outliers.copy()
    table["duplicate_group"] = -1
    table.loc[[3, 7, 11], "duplicate_group"] = 0
    table.loc[[5, 9], "duplicate_group"] = 1
    result.outliers = table
    html = build_report(result, tmp_path, source, ReportOptions(max_map_points=20, map_3d=False)).read_text()
    box = _section(html, "outliers")
    assert "Duplicate groups (2)" in box
    assert box.index("Group 0: 3 images") < box.index("Group 1: 2 images")  # largest first
    group0 = box[box.index("Group 0: 3 images"):box.index("Group 1: 2 images")]
    assert all(f"<code>{result.paths[i]}</code>" in group0 for i in (3, 7, 11))


def test_comparison_shows_the_deciding_score_beside_the_configuration(built):
    result, out, page, html = built
    head = re.search(r'<table id="comparison" class="data">\s*<thead><tr>(.*?)</tr></thead>', html, re.S).group(1)
    cols = re.findall(r">([a-z_]+)</th>", head)
    assert cols[:5] == ["descriptor", "preprocessing", "algorithm", "k", "score"]
    rec = result.comparison[result.comparison["recommended"]].iloc[0]
    row = re.search(r'<tr class="recommended"[^>]*>(.*?)</tr>', html, re.S).group(1)
    assert f'<td class="col-score">{rec["score"]:.4g}</td>' in row


def test_every_cluster_can_be_browsed_page_by_page(built):
    result, out, page, html = built
    data = _data(html)
    labels = np.asarray(result.choices[result.recommended].labels)
    shown = set(data["thumbs"]["shown"])
    assert data["page_size"] >= 1
    for c in np.unique(labels):
        rows = data["browse"][str(int(c))]
        assert set(rows) == {i for i in np.flatnonzero(labels == c) if i in shown}  # its rows with a thumbnail
        assert f'<details class="browse" data-cluster="{c}">' in html
    # nearest the centre first: distances to the centroid do not decrease along a cluster's list
    choice = result.choices[result.recommended]
    X = result.spaces[f"{choice.descriptor}/{choice.preprocessing}"].X
    for c in np.unique(labels):
        rows = data["browse"][str(int(c))]
        d = np.linalg.norm(X[rows] - choice.centroids[c], axis=1)
        assert np.all(np.diff(d) >= -1e-4)


@pytest.mark.slow
def test_rebuild_replaces_files(demo, tmp_path):
    from descluster.report import ReportOptions, build_report

    result, source = demo
    build_report(result, tmp_path, source, ReportOptions(max_map_points=30, sheet_tiles=16, map_3d=False))
    assert len(list((tmp_path / "report_files").glob("thumbs_*.jpg"))) == 2
    build_report(result, tmp_path, None, ReportOptions(max_map_points=10, sheet_tiles=16, map_3d=False))
    assert len(list((tmp_path / "report_files").glob("thumbs_*.jpg"))) == 1


def test_bad_options(demo, tmp_path):
    from descluster.report import ReportOptions, build_report

    with pytest.raises(ParameterError, match="thumb_size=5"):
        build_report(demo[0], tmp_path, None, ReportOptions(thumb_size=5))


def test_image_grid_placeholders_modes_and_captions(tmp_path):
    from descluster.report.grids import PLACEHOLDER, image_grid

    Image.new("L", (50, 20), 200).save(tmp_path / "grey.png")  # grey-scale, wide
    Image.new("RGBA", (10, 40), (255, 0, 0, 255)).save(tmp_path / "rgba.png")
    (tmp_path / "broken.jpg").write_bytes(b"not a jpeg")
    paths = ["grey.png", "rgba.png", "broken.jpg", "missing.jpg", "../escape.png"]
    grid = image_grid(ImageSource(tmp_path), paths, ncols=3, size=40, captions=list("abcde"), gap=2)
    assert grid.mode == "RGB"
    assert grid.size == (3 * 40 + 2 * 2, 2 * (40 + 14) + 2)
    a = np.asarray(grid)
    assert tuple(a[20, 20]) == (200, 200, 200)  # grey image, centred and letterboxed in white
    assert tuple(a[2, 20]) == (255, 255, 255)
    assert tuple(a[20, 42 + 20]) == (255, 0, 0)
    for col, row in [(2, 0), (0, 1), (1, 1)]:  # broken, missing, unsafe -> placeholder tiles
        x, y = col * 42, row * 56
        assert tuple(a[y + 5, x + 20]) == PLACEHOLDER
    with pytest.raises(ParameterError, match="captions has 1"):
        image_grid(None, ["a", "b"], captions=["x"])
    with pytest.raises(ParameterError, match="ncols=0"):
        image_grid(None, ["a"], ncols=0)


def test_report_says_how_each_algorithm_ran(built):
    from descluster.cluster.algorithms import make_algorithm

    result, out, page, html = built
    ran = sorted({ch.algorithm for ch in result.choices.values()})
    assert "How each algorithm ran" in html
    for algo in ran:  # each algorithm of the study, with its own description for these rows
        assert make_algorithm(algo).describe_fit(len(result.paths)).split(",")[0] in html


def test_fit_descriptions_name_samples_and_extension():
    from descluster.cluster.algorithms import ALGORITHMS

    big = {name: cls().describe_fit(416_314, 248) for name, cls in ALGORITHMS.items()}
    assert "10,000-row sample" in big["kmeans"] and "all 416,314 rows" in big["kmeans"]
    for name in ("gmm", "birch", "ward", "hdbscan"):
        assert "20,000-row sample" in big[name], big[name]
    assert "3.0 GiB" in big["ward"] and "20 leading principal components" in big["hdbscan"]
    small = {name: cls().describe_fit(500, 8) for name, cls in ALGORITHMS.items()}
    assert all("sample" not in how for how in small.values()), small
    assert "principal components" not in small["hdbscan"]
