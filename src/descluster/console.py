"""What a run tells its user on the console: what was found at the start, what came out at the end.

:func:`describe_case` lists what :func:`~descluster.case.load_case` found (the
image source and its kind, images found / missing, what extraction could not
read, descriptor kinds with their shapes, labels) and :func:`run_summary` closes
a run: the recommended configuration in words, cluster sizes, how many images
were flagged and why, and the files to open next. Both return lines of text; the
pipeline logs the first, the command line prints the second.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from .results import SpaceId

__all__ = ["describe_case", "configuration_words", "run_summary", "unreadable_lines"]

#: How many paths or clusters a console line lists before "and N more".
SHOW = 5

_SCALERS = {"none": "unscaled", "standard": "standard-scaled", "minmax": "min-max scaled",
            "robust": "robust-scaled", "l2": "L2-normalised"}
_ALGORITHMS = {"kmeans": "k-means", "minibatch_kmeans": "mini-batch k-means", "gmm": "a Gaussian mixture",
               "birch": "BIRCH", "ward": "Ward agglomerative clustering", "hdbscan": "HDBSCAN"}


def _first(items: list[str], show: int = SHOW) -> str:
    text = ", ".join(items[:show])
    return text + (f" and {len(items) - show:,} more" if len(items) > show else "")


def describe_case(case) -> list[str]:
    """Lines saying what a loaded case holds.

    Parameters
    ----------
    case : descluster.case.Case

    Returns
    -------
    list of str
        The case folder and row count; every descriptor kind with its shape and
        file; the image source (folder or zip, path) with images found and
        missing; images that extraction could not read (``meta/unreadable.csv``);
        the label columns; then every note of the case (``note: ...``).
    """
    n = case.n_images
    lines = [f"case {case.root} ({case.name!r}): {n:,} images listed in images_paths.csv"]
    kinds = [f"{name} {X.shape[0]:,} × {X.shape[1]:,} {np.dtype(X.dtype).name} "
             f"({Path(case.descriptor_files[name]).name})" if name in case.descriptor_files
             else f"{name} {X.shape[0]:,} × {X.shape[1]:,}" for name, X in case.descriptors.items()]
    lines.append(f"descriptors: {len(kinds)} kind{'s' if len(kinds) != 1 else ''}: " + "; ".join(kinds))
    if case.images is None:
        lines.append("images: none found (pass --images FOLDER_OR_ZIP): image grids and pixel checks are skipped")
    else:
        kind = "zip file (read in place, not unpacked)" if case.images.is_zip else "folder"
        missing = len(case.missing_images)
        found = f"{n - missing:,} of {n:,} found"
        if missing:
            found += f", {missing:,} missing (first: {_first(case.missing_images)})"
        lines.append(f"images: {kind} {case.images.root}: {found}")
    skipped = _extraction_unreadable(case.root)
    if skipped:
        lines.append(f"extraction skipped {len(skipped):,} unreadable image{'s' if len(skipped) != 1 else ''} "
                     f"(not in this case; {case.root / 'meta' / 'unreadable.csv'}): {_first(skipped)}")
    if case.labels is not None:
        cols = [c for c in case.labels.columns if c != "path"]
        lines.append(f"labels: {', '.join(cols) or 'no label columns'} (for external checks only; never used to choose)")
    said = ("are missing from",) if case.missing_images else ()
    said += ("no image folder or .zip found",) if case.images is None else ()  # the images line says so
    lines += [f"note: {note}" for note in case.notes if not any(s in note for s in said)]
    return lines


def _extraction_unreadable(root: Path) -> list[str]:
    """``path: error`` of each row of ``CASE/meta/unreadable.csv`` (written by ``extract``); [] if none."""
    if root is None:  # a case built from arrays
        return []
    f = Path(root) / "meta" / "unreadable.csv"
    if not f.is_file():
        return []
    try:
        table = pd.read_csv(f, dtype=str, keep_default_na=False)
    except (OSError, ValueError, pd.errors.ParserError):
        return [f"{f} cannot be read"]
    if "path" not in table.columns:
        return []
    errors = table["error"] if "error" in table.columns else [""] * len(table)
    # an error that already starts with its path (ImageReadError's form) is shown once
    return [(e if e.startswith(f"{p}: ") else f"{p}: {e}") if e else str(p) for p, e in zip(table["path"], errors)]


def unreadable_lines(quality: pd.DataFrame | None, missing=()) -> list[str]:
    """A line on the images the pixel checks could not read, besides the missing ones.

    Parameters
    ----------
    quality : DataFrame or None
        :func:`~descluster.outliers.quality.image_quality_table` (``path``, ``readable``, ``error``).
    missing : collection of str
        Paths already reported missing (:attr:`Case.missing_images`); not counted again.

    Returns
    -------
    list of str
        One line (how many were read, or how many could not be decoded with the
        first paths and errors); empty without a quality table.
    """
    if quality is None or "readable" not in quality.columns:
        return []
    missing = set(missing)
    bad = quality[~quality["readable"].astype(bool) & ~quality["path"].isin(missing)]
    n_read = int(quality["readable"].astype(bool).sum())
    if not len(bad):
        return [f"images: {n_read:,} of {len(quality):,} read and checked"
                + (f" ({len(missing):,} missing)" if missing else "")]
    errors = bad["error"] if "error" in bad.columns else pd.Series([""] * len(bad), index=bad.index)
    shown = [f"{p} ({_short(e)})" if e else str(p) for p, e in zip(bad["path"], errors)]
    return [f"images: {len(bad):,} of {len(quality):,} exist but could not be read (flagged `unreadable` in "
            f"outliers.csv): {_first(shown, 3)}"]


def _short(error: str, limit: int = 70) -> str:
    error = str(error).split(" <")[0]  # drop object reprs such as <_io.BytesIO object at 0x...>
    return error if len(error) <= limit else error[: limit - 1] + "…"


def configuration_words(row) -> str:
    """A comparison row in words: ``"the mixture of a and b, clustered with k-means into k = 9 clusters"``.

    Parameters
    ----------
    row : mapping or pandas Series
        A ``comparison.csv`` row (``descriptor``, ``preprocessing``, ``algorithm``, ``k``,
        optional ``n_components``).
    """
    desc, prep = str(row["descriptor"]), str(row.get("preprocessing", ""))
    kinds = SpaceId.mixture_kinds(desc)
    if kinds is not None:
        parts, preps = list(kinds), prep.split("+")
        if len(preps) == len(parts):  # the mixture's blocks, each at its own scaler
            parts = [f"{d} ({_SCALERS.get(p, p)})" for d, p in zip(parts, preps)]
        what = "the mixture of " + (" and ".join(parts) if len(parts) <= 2 else ", ".join(parts[:-1]) + " and " + parts[-1])
        if len(preps) == 1 and prep:
            what += f", each {_SCALERS.get(prep, prep)}"
    else:
        what = f"{desc}, {_SCALERS.get(prep, prep)}"
    dims = row.get("n_components")
    if dims is not None and pd.notna(dims):
        what += f", reduced by PCA to {int(dims):,} dimensions"
    algo = str(row["algorithm"])
    return f"{what}, clustered with {_ALGORITHMS.get(algo, algo)} into k = {int(row['k'])} clusters"


def run_summary(result, out_dir) -> list[str]:
    """The closing lines of a run.

    Parameters
    ----------
    result : descluster.results.RunResult
    out_dir : path
        The results folder.

    Returns
    -------
    list of str
        The recommended configuration in words with its score; the cluster sizes; their
        split-half stability on its 0 (chance) to 1 scale;
        flagged images in total and per rule; duplicate groups; the external check
        where labels exist; how many stages were reused from an earlier run (from
        ``result.meta["cache"]``, when any were); the files to open next.
    """
    from .outliers.tally import flag_counts, rule_title

    out = Path(out_dir).resolve()
    comp = result.comparison
    rec = comp[comp["recommended"].astype(bool)].iloc[0] if "recommended" in comp else None
    lines = []
    if rec is not None:
        score = f" (label-free score {rec['score']:.2f}" if "score" in rec and pd.notna(rec["score"]) else " ("
        lines.append(f"recommended: {configuration_words(rec)}{score}, the highest of {len(comp):,} configurations; "
                     "the reasons are in report.html and comparison.csv)")
    labels = np.asarray(result.choices[result.recommended].labels)
    ids, sizes = np.unique(labels, return_counts=True)
    order = np.argsort(-sizes, kind="stable")
    parts = [f"{'noise' if ids[i] < 0 else ids[i]}: {sizes[i]:,}" for i in order]
    lines.append(f"clusters (id: images, largest first): {_first(parts, 30)}")
    if rec is not None and "stability" in rec and pd.notna(rec["stability"]):
        lines.append(f"stability of these clusters: {rec['stability']:.2f} (adjusted Rand index of the clustering "
                     "refitted on random halves: 0 = no better than chance, 1 = the same partition every time)")
    if result.outliers is not None:
        n_flagged, fired = flag_counts(result.outliers)
        why = "; ".join(f"{rule_title(r.rule)} {r.fired:,} ({r.flagged:,} flagged)" for r in fired.itertuples())
        lines.append(f"outliers: {n_flagged:,} of {len(result.outliers):,} images flagged"
                     + (f"; each rule fired on (an image can have several; a rule can fire without flagging): {why}"
                        if why else ""))
        if "duplicate_group" in result.outliers:
            groups = result.outliers["duplicate_group"]
            groups = groups[groups >= 0]
            if len(groups):
                n_groups = groups.nunique()
                lines.append(f"duplicates: {n_groups:,} group{'s' if n_groups != 1 else ''} of near-identical images "
                             f"({len(groups):,} images; column duplicate_group of outliers.csv)")
    for col in [c for c in comp.columns if c.startswith("nmi_")] if rec is not None else []:
        name = col[4:]
        ari = f", ari_{name} = {rec['ari_' + name]:.3f}" if f"ari_{name}" in rec else ""
        lines.append(f"external check (not used for any choice): {col} = {rec[col]:.3f}{ari}")
    cache = (getattr(result, "meta", None) or {}).get("cache") or {}
    if cache.get("reused"):
        took = cache.get("reused_compute_total_s") or 0.0
        lines.append(f"resumed: {cache['reused']:,} stage(s) reused from an earlier run in {out / '.cache'} "
                     f"(their compute times, some in parallel, add up to {took / 60:.1f} min), "
                     f"{cache.get('computed', 0):,} computed in this run")
    lines.append(f"open next: {out / 'report.html'} (clusters to name, then Suspicious images); "
                 f"then the rows of {out / 'outliers.csv'} with flagged = 1, in rank order")
    lines.append(f"all results: {out} (clusters.csv, study.csv, comparison.csv, outliers.csv, manifest.json)")
    return lines
