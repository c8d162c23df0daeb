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
        Images per outlier reason.
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
    n_outliers: int = 24
    map_3d: bool = True
    n_jobs: int = 4
    random_state: int = 0

    def validate(self) -> "ReportOptions":
        """Raise :class:`ParameterError` for any value out of range; return self."""
        ranges = {"max_map_points": (1, math.inf), "thumb_size": (16, 256), "sheet_tiles": (1, math.inf),
                  "grid_size": (16, 512), "n_nearest": (0, math.inf), "n_random": (0, math.inf),
                  "n_outliers": (0, math.inf), "n_jobs": (1, 256)}
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


def _outlier_groups(table: pd.DataFrame | None, top: int) -> list[tuple[str, pd.DataFrame]]:
    """(reason category, top rows by rank) pairs; categories from ``flagged_by`` when present."""
    if table is None or len(table) == 0 or top == 0:
        return []
    t = table.copy()
    if "rank" not in t:
        t["rank"] = np.arange(1, len(t) + 1)
    t = t.sort_values("rank", kind="mergesort")
    flagged = t[t["flagged"].astype(bool)] if "flagged" in t else t
    groups: dict[str, list[int]] = {}
    if "flagged_by" in flagged:
        for idx, value in flagged["flagged_by"].fillna("").astype(str).items():
            keys = []
            for part in filter(None, (p.strip() for p in value.split(";"))):
                det = part.partition(":")[0]
                key = part if det == "pixel" else det  # descriptor detectors: one group over all spaces
                if key not in keys:
                    keys.append(key)
            for key in keys:
                groups.setdefault(key, []).append(idx)
    elif "reason" in flagged:
        for idx, value in flagged["reason"].fillna("").astype(str).items():
            key = value.split(";")[0].split(":")[0].strip()
            if key:
                groups.setdefault(key, []).append(idx)
    if not groups:
        groups["most suspicious (by rank)"] = list(t.index)
    return [(k, t.loc[v[:top]]) for k, v in sorted(groups.items(), key=lambda kv: -len(kv[1]))]


def _reason_title(key: str) -> str:
    try:
        from ..outliers.consensus import PHRASES
    except Exception:  # the outlier module is optional for the report
        PHRASES = {}
    if key.startswith("pixel:"):
        return f"pixel rule: {key.split(':', 1)[1]}"
    return PHRASES.get(key, key)


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
    for c in np.unique(labels):
        rows = np.flatnonzero(labels == c)
        order = rows[np.argsort(dist[rows], kind="stable")]
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
    outliers = []
    for key, top in _outlier_groups(result.outliers, opts.n_outliers):
        top_paths = [str(p) for p in top["path"]] if "path" in top else [paths[i] for i in top.index]
        caps = [f"#{int(r)}" for r in top["rank"]]
        outliers.append({
            "title": _reason_title(key),
            "png": save(f"outliers_{len(outliers)}.png", png_bytes(image_grid(images, top_paths, 8, opts.grid_size, caps))),
            "items": [{"rank": int(r), "path": p, "reason": str(reason)}
                      for r, p, reason in zip(top["rank"], top_paths,
                                              top["reason"] if "reason" in top else [""] * len(top))],
        })

    # -- summary -----------------------------------------------------------------
    comparison = result.comparison if result.comparison is not None else pd.DataFrame()
    comp_cols = [c for c in ["descriptor", "preprocessing", "algorithm", "n_components", "k", "calinski_harabasz",
                             "davies_bouldin", "silhouette", "stability", "balance", "coverage", "consensus", "score"]
                 if c in comparison.columns]
    comp_cols += [c for c in comparison.columns if c.startswith(("ari_", "nmi_", "purity_"))]
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
        "thumbs": thumbs,
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
    for col, label in [("colours", "colours"), ("light", "light"), ("luminance", "mean luminance /255"),
                       ("imagenet", "ImageNet top-1"), ("vehicle_share", "ImageNet vehicle share"),
                       ("width", "median width px"), ("height", "median height px"), ("aspect", "aspect w/h"),
                       ("dist_median", "median distance to centre")]:
        if col in f.index and _fmt(f[col]):
            out.append((label, _fmt(f[col])))
    for col in f.index:
        if str(col).startswith("purity_") and _fmt(f[col]):
            name = str(col)[len("purity_"):]
            out.append((f"purity ({name})", f"{100 * float(f[col]):.0f}% {f.get('label_' + name, '')}"))
    return out
