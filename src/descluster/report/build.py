"""Write ``report.html`` (+ ``report_files/``) from a :class:`~descluster.results.RunResult`.

The page opens from disk with no network: plotly.js is embedded inline, every
figure and montage is a PNG in ``report_files/`` referenced relatively, and the
hover thumbnails of the interactive map are packed into a few JPEG sprite
sheets (``report_files/thumbs_<i>.jpg``, one tile per *shown* point only), so a
416k-image report stays a handful of files. The path → cluster assignment of
every image is carried once, as JSON (paths as a string array, cluster ids as
an int array), for the in-page labelling workflow (``static/report.js``).

All text goes through jinja2 autoescaping; the JSON inside ``<script>`` has
``<``, ``>``, ``&`` and U+2028/2029 escaped (:func:`script_json`), so a path
like ``<script>x</script>.jpg`` is shown as text and cannot end the script.
"""

from __future__ import annotations

import io
import json
import logging
import math
import re
import shutil
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

from ..embed import embed_2d, stratified_sample
from ..errors import ParameterError
from ..interpret import centroid_distances, cluster_facts
from ..io.atomic import json_default, write_bytes, write_text
from ..results import RunResult
from . import figures
from .grids import image_grid, load_tile, png_bytes

logger = logging.getLogger(__name__)

FILES_DIR = "report_files"
_HERE = Path(__file__).parent


@dataclass
class ReportOptions:
    """Sizes of what the report shows.

    Parameters
    ----------
    max_map_points : int, >= 1
        Points on the interactive map (a sample stratified by cluster, fixed
        seed); only these get a hover thumbnail. Default 50,000.
    thumb_size : int, 16..256
        Hover thumbnail tile side, px.
    sheet_tiles : int, >= 1
        Thumbnails per sprite sheet (a square-ish grid of tiles).
    grid_size : int, 16..512
        Tile side of the per-cluster and outlier montages, px.
    n_nearest, n_random : int, >= 0
        Images per cluster nearest the centre / drawn at random.
    n_outliers : int, >= 0
        Images in the ranked outlier gallery (top ranks by the consensus score).
    n_below : int, >= 0
        Images below the flag threshold the gallery shows at least (marked as not flagged; added
        after the top ranks when those are all flagged).
    n_duplicate_groups : int, >= 0
        Duplicate groups shown (largest first), each with up to 8 images.
    page_size : int, >= 1
        Images per page when browsing a cluster (hover-thumbnail tiles).
    map_3d : bool
        Add a 3-D map (PCA of the clustering space on the shown points).
    n_jobs : int, >= 1
        Threads decoding images.
    random_state : int
    """

    max_map_points: int = 50_000
    thumb_size: int = 64
    sheet_tiles: int = 1024
    grid_size: int = 96
    n_nearest: int = 16
    n_random: int = 16
    n_outliers: int = 48
    n_below: int = 12
    n_duplicate_groups: int = 12
    page_size: int = 60
    map_3d: bool = True
    n_jobs: int = 4
    random_state: int = 0

    def validate(self) -> "ReportOptions":
        """Raise :class:`ParameterError` for any value out of range; return self."""
        ranges = {"max_map_points": (1, math.inf), "thumb_size": (16, 256), "sheet_tiles": (1, math.inf),
                  "grid_size": (16, 512), "n_nearest": (0, math.inf), "n_random": (0, math.inf),
                  "n_outliers": (0, math.inf), "n_below": (0, math.inf), "n_duplicate_groups": (0, math.inf),
                  "page_size": (1, 10_000), "n_jobs": (1, 256)}
        for name, (lo, hi) in ranges.items():
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or not lo <= v <= hi:
                raise ParameterError(f"{name}={v!r} is invalid: it must be an integer in [{lo}, {hi}]")
        return self


def script_json(obj) -> str:
    """JSON text safe to place inside ``<script>``: ``<``, ``>``, ``&``, U+2028/9 escaped."""
    text = json.dumps(obj, separators=(",", ":"), allow_nan=False, default=json_default)
    return (text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
            .replace("\u2028", "\\u2028").replace("\u2029", "\\u2029"))


def _fmt(value) -> str:
    """Cell text of a table: numbers rounded to 4 significant digits, NaN empty."""
    if value is None or (isinstance(value, float) and not np.isfinite(value)):
        return ""
    if isinstance(value, (bool, np.bool_)):
        return "yes" if value else ""
    if isinstance(value, (float, np.floating)):
        return f"{value:.4g}"
    if isinstance(value, (int, np.integer)):
        return f"{int(value):,}" if abs(int(value)) >= 10_000 else str(int(value))
    return str(value)


def _table(frame: pd.DataFrame | None, columns: list[str] | None = None) -> dict | None:
    if frame is None or len(frame) == 0:
        return None
    cols = [c for c in (columns or list(frame.columns)) if c in frame.columns]
    return {"columns": cols, "rows": [[_fmt(v) for v in rec] for rec in frame[cols].itertuples(index=False)]}


def _map_coords(result: RunResult, labels: np.ndarray) -> tuple[np.ndarray, str]:
    rec = result.recommended
    n = len(labels)
    Y = result.embeddings.get(rec)
    if Y is not None and len(Y) == n:
        return np.asarray(Y, dtype=np.float32)[:, :2], result.embedding_method.get(rec, "2-D map")
    choice = result.choices[rec]
    space = result.spaces.get(f"{choice.descriptor}/{choice.preprocessing}")
    if space is not None and len(space.X) == n:
        Y, how = embed_2d(space.X, method="pca")
        return Y, how + " (no t-SNE/UMAP map in the run: PCA fallback)"
    return np.zeros((n, 2), dtype=np.float32), "no map available"


def _thumb_sheets(images, paths: list[str], shown: np.ndarray, opts: ReportOptions, files: Path) -> dict:
    """Write sprite sheets of the shown points' thumbnails; return the page's lookup."""
    tile, per = opts.thumb_size, opts.sheet_tiles
    cols = max(1, int(math.ceil(math.sqrt(per))))
    sheets = []
    ok = 0
    with ThreadPoolExecutor(max_workers=opts.n_jobs) as pool:
        for s, start in enumerate(range(0, len(shown), per)):
            chunk = shown[start:start + per]
            rows = int(math.ceil(len(chunk) / cols))
            sheet = Image.new("RGB", (cols * tile, rows * tile), (255, 255, 255))
            for j, (t, good) in enumerate(pool.map(lambda i: load_tile(images, paths[int(i)], tile), chunk)):
                sheet.paste(t, ((j % cols) * tile, (j // cols) * tile))
                ok += good
            buf = io.BytesIO()
            sheet.save(buf, format="JPEG", quality=80)
            name = f"thumbs_{s}.jpg"
            write_bytes(files / name, buf.getvalue())
            sheets.append(name)
    return {"tile": tile, "cols": cols, "per": per, "sheets": [f"{FILES_DIR}/{n}" for n in sheets],
            "shown": shown.astype(int).tolist(), "readable": ok}


def _ranked(table: pd.DataFrame) -> pd.DataFrame:
    """The outlier table in rank order (1 = most suspicious); ``rank`` added from the row order if absent."""
    t = table.copy()
    if "rank" not in t:
        t["rank"] = np.arange(1, len(t) + 1)
    if "flagged" not in t:
        t["flagged"] = 0
    return t.sort_values("rank", kind="mergesort")


def _outlier_gallery(table: pd.DataFrame | None, top: int, below: int) -> tuple[pd.DataFrame, int]:
    """Rows of the ranked gallery: the ``top`` best ranks, plus unflagged rows below them so that at least
    ``below`` images under the flag threshold are shown.

    Returns
    -------
    rows : DataFrame
        In rank order, each image once.
    hidden_flagged : int
        Flagged images ranked below ``top`` that the gallery does not show (they are in ``outliers.csv``).
    """
    if table is None or len(table) == 0 or top + below == 0:
        return pd.DataFrame(), 0
    t = _ranked(table)
    flagged = t["flagged"].astype(bool)
    head = t.iloc[:top]
    missing_below = max(0, below - int((~flagged.loc[head.index]).sum()))  # the top may already cross the threshold
    tail = t[~flagged & ~t.index.isin(head.index)].iloc[:missing_below]
    rows = pd.concat([head, tail]).sort_values("rank", kind="mergesort")
    return rows, int(flagged.sum() - flagged.loc[head.index].sum())


def _reasons_of(row: pd.Series) -> list[str]:
    """Every reason of one outlier row, each once (the ``reason`` text split at ``;``)."""
    text = str(row.get("reason", "") if pd.notna(row.get("reason", "")) else "")
    return list(dict.fromkeys(p.strip() for p in text.split(";") if p.strip()))


def _duplicate_groups(table: pd.DataFrame | None, limit: int) -> tuple[list[pd.DataFrame], int]:
    """The ``limit`` largest duplicate groups (ties: best rank first), each in rank order; and the group count."""
    if table is None or "duplicate_group" not in table or limit == 0:
        return [], 0
    t = _ranked(table)
    t = t[t["duplicate_group"].fillna(-1).astype(int) >= 0]
    if not len(t):
        return [], 0
    stats = t.groupby("duplicate_group")["rank"].agg(["size", "min"]).sort_values(["size", "min"],
                                                                                ascending=[False, True])
    return [t[t["duplicate_group"] == g] for g in stats.index[:limit]], len(stats)


def _rules_box(result: RunResult) -> dict | None:
    """The rules box: flagged in total, the flag rule, and for every check the images it fired on."""
    from ..outliers.tally import flag_counts

    rules = dict(result.outlier_rules or {})
    if result.outliers is None and not rules:
        return None
    n_flagged, counts = flag_counts(result.outliers, per_check=True)
    fired = {r.rule: (int(r.fired), int(r.flagged)) for r in counts.itertuples()}
    rows = []
    for key, text in rules.items():
        if key == "flag rule" or key.startswith("neighbours:"):
            continue
        n_fired, n_flag = fired.get(key, (0, 0))
        # the counts have their own columns: a trailing "; 67 of 600 flagged" in the description would
        # read as the flagged count, which it is not
        text = re.sub(r";\s*[\d,]+(?: of [\d,]+)? flagged\s*$", "", str(text))
        rows.append({"rule": key, "fired": n_fired, "flagged": n_flag, "text": text})
    for key, (n_fired, n_flag) in fired.items():  # checks that fired but have no description
        if key not in rules:
            rows.append({"rule": key, "fired": n_fired, "flagged": n_flag, "text": ""})
    return {"n_flagged": n_flagged, "n": len(result.outliers) if result.outliers is not None else 0,
            "flag_rule": rules.get("flag rule", ""), "rows": rows,
            "neighbours": [str(v) for k, v in rules.items() if k.startswith("neighbours:")]}


def _env():
    import jinja2

    return jinja2.Environment(loader=jinja2.FileSystemLoader(str(_HERE / "templates")),
                              autoescape=jinja2.select_autoescape(["html"], default=True),
                              undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True)


def build_report(result: RunResult, out_dir: str | Path, images=None, options: ReportOptions | None = None) -> Path:
    """Write ``out_dir/report.html`` and its figures in ``out_dir/report_files/``.

    Parameters
    ----------
    result : RunResult
        The run; reads the recommended choice, spaces, study, comparison,
        embeddings, outliers, cluster facts, agreement, notes and meta.
    out_dir : path
        Output folder (created). ``report_files/`` inside it is replaced.
    images : ImageSource, optional
        For montages and hover thumbnails; without it tiles are placeholders.
    options : ReportOptions, optional

    Returns
    -------
    Path
        ``out_dir/report.html``.

    Raises
    ------
    ParameterError
        If ``result.recommended`` is not in ``result.choices`` or an option is out of range.
    """
    opts = (options or ReportOptions()).validate()
    if result.recommended not in result.choices:
        raise ParameterError(f"result.recommended={result.recommended!r} is not in result.choices "
                             f"({sorted(result.choices)})")
    out_dir = Path(out_dir)
    files = out_dir / FILES_DIR
    if files.exists():
        shutil.rmtree(files)
    files.mkdir(parents=True)
    choice = result.choices[result.recommended]
    labels = np.asarray(choice.labels).astype(np.int64)
    n = len(labels)
    paths = [str(p) for p in result.paths]
    if len(paths) != n:
        raise ParameterError(f"result.paths has {len(paths)} entries but the clustering has {n} labels")
    rng = np.random.default_rng(opts.random_state)
    colours = figures.cluster_colours(np.unique(labels))

    facts = result.cluster_facts if result.cluster_facts is not None else cluster_facts(result, images=images)
    facts = facts.set_index("cluster", drop=False)
    space = result.spaces.get(f"{choice.descriptor}/{choice.preprocessing}")
    dist = (centroid_distances(space.X, labels, choice.centroids) if space is not None and len(space.X) == n
            else np.zeros(n, dtype=np.float32))
    xmax = float(np.percentile(dist, 99)) or 1.0

    # -- figures ---------------------------------------------------------------
    figs = {}

    def save(name: str, data: bytes) -> str:
        write_bytes(files / name, data)
        return f"{FILES_DIR}/{name}"

    if result.spaces:
        figs["variance"] = save("variance.png", figures.variance_png(result.spaces))
    sweeps = []
    for algo in sorted({c.algorithm for c in result.choices.values()}):
        group = [c for c in result.choices.values() if c.algorithm == algo and c.sweep is not None and len(c.sweep)]
        if group:
            sweeps.append({"algorithm": algo, "png": save(f"sweep_{_safe(algo)}.png",
                                                         figures.sweep_png(group, result.recommended))})
    Y, map_how = _map_coords(result, labels)
    figs["map"] = save("map.png", figures.map_png(Y, labels, f"{result.recommended}: {map_how}"))
    shown = stratified_sample(n, min(n, opts.max_map_points), labels, opts.random_state)
    thumbs = _thumb_sheets(images, paths, shown, opts, files)
    map_html = figures.interactive_map_html(figures.interactive_map_figure(Y[shown], labels[shown], shown), "map2d")
    map3d_json = None  # drawn by the page only when the 3-D view is opened (keeps loading fast)
    if opts.map_3d and space is not None and len(space.X) == n and space.X.shape[1] >= 3:
        Y3, how3 = embed_2d(space.X[shown], method="pca", n_components=3)
        fig3 = figures.interactive_map_figure(Y3, labels[shown], shown, title=how3)
        map3d_json = json.loads(figures.figure_json(fig3))
        map3d_json["config"] = figures.PLOT_CONFIG

    # -- clusters ----------------------------------------------------------------
    clusters = []
    browse = {}  # cluster id -> rows with a thumbnail (the map's shown points), nearest the centre first
    has_thumb = np.zeros(n, dtype=bool)
    has_thumb[shown] = True
    for c in np.unique(labels):
        rows = np.flatnonzero(labels == c)
        order = rows[np.argsort(dist[rows], kind="stable")]
        browse[str(int(c))] = order[has_thumb[order]].astype(int).tolist()
        nearest = order[:opts.n_nearest]
        sample = np.sort(rng.choice(rows, size=min(opts.n_random, len(rows)), replace=False))
        f = facts.loc[int(c)] if int(c) in facts.index else pd.Series(dtype=object)
        item = {
            "id": int(c), "size": len(rows), "share": len(rows) / n, "colour": colours[int(c)],
            "description": str(f.get("description", "")),
            "facts": _facts_line(f),
            "nearest_png": save(f"cluster_{int(c)}.png", png_bytes(image_grid(images, [paths[i] for i in nearest], 8,
                                                                    opts.grid_size)))
            if len(nearest) else None,
            "random_png": save(f"cluster_{int(c)}_random.png", png_bytes(image_grid(images, [paths[i] for i in sample], 8,
                                                                          opts.grid_size)))
            if len(sample) else None,
            "nearest_paths": [paths[i] for i in nearest],
            "random_paths": [paths[i] for i in sample],
            "hist_png": save(f"cluster_{int(c)}_dist.png", figures.distance_hist_png(dist[rows], xmax, colours[int(c)])),
            "dist_median": float(np.median(dist[rows])),
            "n_browse": len(browse[str(int(c))]),
        }
        clusters.append(item)

    # -- descriptors side by side -------------------------------------------------
    side = None
    per = [(d, k) for d, k in result.per_descriptor.items() if k in result.choices]
    if len(per) >= 2:
        rec_desc = choice.descriptor
        per.sort(key=lambda dk: (dk[0] != rec_desc, dk[0]))
        (da, ka), (db, kb) = per[0], per[1]
        side = {"a": ka, "b": kb, "png": save("contingency.png", figures.contingency_png(
            result.choices[ka].labels, result.choices[kb].labels, da, db))}
    agreement = None
    if result.agreement is not None and len(result.agreement):
        agreement = {"png": save("agreement.png", figures.agreement_png(result.agreement)),
                     "table": _table(result.agreement.reset_index().rename(columns={"index": ""}))}

    # -- outliers ----------------------------------------------------------------
    gallery_rows, hidden_flagged = _outlier_gallery(result.outliers, opts.n_outliers, opts.n_below)
    gallery = []
    with ThreadPoolExecutor(max_workers=opts.n_jobs) as pool:
        gpaths = [str(p) for p in gallery_rows["path"]] if len(gallery_rows) else []
        tiles = list(pool.map(lambda p: load_tile(images, p, opts.grid_size)[0], gpaths))
    for (_, row), p, tile in zip(gallery_rows.iterrows(), gpaths, tiles):
        buf = io.BytesIO()
        tile.save(buf, format="JPEG", quality=85)
        group = int(row["duplicate_group"]) if "duplicate_group" in row and pd.notna(row["duplicate_group"]) else -1
        gallery.append({"rank": int(row["rank"]), "path": p, "flagged": bool(row["flagged"]),
                        "reasons": _reasons_of(row), "duplicate_group": group,
                        "score": _fmt(row["score"]) if "score" in row else "",
                        "png": save(f"outlier_{int(row['rank'])}.jpg", buf.getvalue())})
    groups, n_groups = _duplicate_groups(result.outliers, opts.n_duplicate_groups)
    duplicates = []
    for g in groups:
        shown_g = g.iloc[:8]
        gp = [str(p) for p in shown_g["path"]]
        duplicates.append({"id": int(g["duplicate_group"].iloc[0]), "size": len(g), "paths": gp,
                           "ranks": [int(r) for r in shown_g["rank"]],
                           "png": save(f"duplicates_{len(duplicates)}.png", png_bytes(image_grid(
                               images, gp, len(gp), opts.grid_size, [f"#{int(r)}" for r in shown_g["rank"]])))})
    outliers = {"gallery": gallery, "hidden_flagged": hidden_flagged, "duplicates": duplicates,
                "n_groups": n_groups, "rules": _rules_box(result)} if result.outliers is not None else None

    # -- summary -----------------------------------------------------------------
    comparison = result.comparison if result.comparison is not None else pd.DataFrame()
    # the configuration and its deciding score first (visible without scrolling), then the score's factors,
    # the external checks, and last the within-sweep internal metrics
    comp_cols = [c for c in ["descriptor", "preprocessing", "algorithm", "k", "score", "stability", "balance",
                             "coverage", "consensus"] if c in comparison.columns]
    comp_cols += [c for c in comparison.columns if c.startswith(("ari_", "nmi_", "purity_"))]
    comp_cols += [c for c in ["n_components", "calinski_harabasz", "davies_bouldin", "silhouette"]
                  if c in comparison.columns]
    comp = _table(comparison, comp_cols)
    if comp is not None:
        comp["recommended"] = [bool(v) for v in comparison.get("recommended", pd.Series([False] * len(comparison)))]
        comp["reasons"] = [str(v) for v in comparison.get("k_reason", pd.Series([""] * len(comparison)))]
        comp["failed"] = [f"{d}/{p}/{a}: {r}" for d, p, a, k, r in zip(
            comparison["descriptor"], comparison["preprocessing"], comparison["algorithm"], comparison["k"],
            comp["reasons"]) if not k]
    external = []
    rec_rows = comparison[comparison.get("recommended", pd.Series(False, index=comparison.index)).astype(bool)] \
        if len(comparison) else comparison
    if len(rec_rows):
        for col in comparison.columns:
            if col.startswith(("ari_", "nmi_", "purity_")):
                external.append((col, _fmt(rec_rows.iloc[0][col])))

    fits = _fit_descriptions(result, n)
    data = {
        "n": n, "paths": paths, "clusters": labels.tolist(), "ids": [c["id"] for c in clusters],
        "thumbs": thumbs, "browse": browse, "page_size": opts.page_size,
    }
    page = _env().get_template("report.html").render(
        result=result, n=n, choice=choice, recommended=result.recommended,
        recommendation=result.recommendation, notes=list(result.notes), comparison=comp, external=external,
        figs=figs, sweeps=sweeps, map_how=map_how, map_html=map_html, map3d_json=script_json(map3d_json) if map3d_json else None,
        n_shown=len(shown), clusters=clusters, side=side, agreement=agreement, outliers=outliers,
        attribution=result.meta.get("attribution"), data_json=script_json(data),
        css=(_HERE / "static" / "report.css").read_text(encoding="utf-8"),
        js=(_HERE / "static" / "report.js").read_text(encoding="utf-8"),
        options=opts, discard_name="discard", fits=fits, outlier_rules=result.outlier_rules,
    )
    return write_text(out_dir / "report.html", page)


def _fit_descriptions(result: RunResult, n: int) -> list[tuple[str, str]]:
    """(algorithm, how it ran on these n rows) for every algorithm in the study, in registry order;
    each described for the widest space it ran on (that decides HDBSCAN's projection)."""
    from ..cluster.algorithms import ALGORITHMS, make_algorithm

    widths: dict[str, int] = {}
    for ch in result.choices.values():
        sp = result.spaces.get(f"{ch.descriptor}/{ch.preprocessing}")
        p = int(sp.X.shape[1]) if sp is not None else 0
        widths[ch.algorithm] = max(widths.get(ch.algorithm, 0), p)
    return [(a, make_algorithm(a).describe_fit(n, widths[a] or None)) for a in ALGORITHMS if a in widths]


def _safe(name: str) -> str:
    return "".join(ch if ch.isalnum() or ch in "-_" else "_" for ch in name)


def _facts_line(f: pd.Series) -> list[tuple[str, str]]:
    """Label/value pairs shown under a cluster's automatic description."""
    out = []
    for col, label in [("distinctive", "sets it apart"), ("colours", "colours (of the vehicle)"), ("light", "light"),
                       ("luminance", "mean luminance /255"), ("imagenet", "ImageNet top-1"),
                       ("vehicle_share", "ImageNet vehicle share"), ("folder", "most common folder"),
                       ("width", "median width px"), ("height", "median height px"), ("aspect", "aspect w/h"),
                       ("dist_median", "median distance to centre")]:
        if col in f.index and _fmt(f[col]):
            out.append((label, _fmt(f[col])))
    for col in f.index:
        if str(col).startswith("purity_") and _fmt(f[col]):
            name = str(col)[len("purity_"):]
            out.append((f"purity ({name})", f"{100 * float(f[col]):.0f}% {f.get('label_' + name, '')}"))
    return out
