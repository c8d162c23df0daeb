"""Screening: every scaler × algorithm × mixture on a stratified sample, only the finalists on all rows.

The exhaustive study (``descluster run --exhaustive``) sweeps k for every configuration on
every row. Most of those sweeps only serve to *rank* configurations against each other, and
the ranking uses the label-free score of :mod:`descluster.recommend`, whose factors are
properties of the partition of the distribution, not of the row count:

- split-half stability is already computed on two ``stability_rows``-row halves (5,000 by
  default) whatever the number of rows, so a sample of 20,000 rows estimates the same
  quantity with the same estimator;
- size balance, coverage and the consensus NMI are proportions and an NMI of the sample's
  labels: their sampling error for a fixed partition is bounded by a bootstrap over the
  sample's rows (:func:`score_interval`).

So :func:`screen_study` runs the *same* stages (scaling + PCA, the k sweeps, the mixtures and
the comparison, :mod:`descluster.pipeline`) on a stratified sample (:func:`stratified_sample`)
and keeps the **finalists** (:func:`pick_finalists`): per descriptor kind the best
``scalers`` scalers of the every-scaler algorithm and the best ``algorithms`` other
algorithms, plus every configuration whose bootstrap interval reaches the leader's, and the
mixtures that rank among the overall best. Only those are reduced and swept on all rows,
where k is chosen, the comparison is rebuilt and the recommendation made by the unchanged
rules: when the exhaustive study's winners are among the finalists, the outputs are the same
(the full-row sweeps have the same cache keys as the exhaustive ones).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

import numpy as np
import pandas as pd

from ..errors import ParameterError
from ..validation import check_int

__all__ = ["stratified_sample", "score_interval", "pick_finalists", "ScreenResult", "screen_study"]

#: Rows of the uniform pre-sample that fits each descriptor kind's cheap projection.
PROJECTION_ROWS = 5_000
#: Components per descriptor kind of the cheap projection that the strata are made in.
PROJECTION_DIMS = 4


def _project(X, idx_fit: np.ndarray, dims: int, chunk: int = 16_384) -> np.ndarray:
    """(n, dims) float32: rows of ``X`` on the top ``dims`` principal axes of ``X[idx_fit]``."""
    from sklearn.utils.extmath import randomized_svd

    S = np.asarray(X[idx_fit], dtype=np.float32)
    mean = S.mean(axis=0, dtype=np.float64)
    # randomized SVD (Halko et al. 2011): O(rows x width x dims), not the full SVD's O(rows x width^2)
    _, _, vt = randomized_svd(S - mean.astype(np.float32), n_components=min(dims, *S.shape), random_state=0)
    V = vt.T.astype(np.float32)
    out = np.empty((X.shape[0], V.shape[1]), np.float32)
    m32 = mean.astype(np.float32)
    for a in range(0, X.shape[0], chunk):
        out[a:a + chunk] = (np.asarray(X[a:a + chunk], dtype=np.float32) - m32) @ V
    return out


def stratified_sample(descriptors: dict[str, Any], size: int, strata: int = 32, random_state: int = 0) -> np.ndarray:
    """Row indices of a sample stratified by a coarse k-means on a cheap projection.

    Every descriptor kind is projected on the top :data:`PROJECTION_DIMS` principal axes of a
    :data:`PROJECTION_ROWS`-row uniform pre-sample; the projections are concatenated and
    standardised, k-means with ``strata`` clusters (fitted on a 20,000-row uniform sample,
    every row assigned) makes the strata, and each stratum gets its proportional share of
    ``size`` (largest remainders, at least one row for a non-empty stratum), drawn uniformly
    without replacement. A proportional stratified sample estimates proportions with no more
    variance than a uniform one (Cochran 1977, *Sampling Techniques*, 5.6) and keeps small
    groups of rows represented.

    Parameters
    ----------
    descriptors : dict of str -> array or memmap of shape (n, d_kind)
        The same ``n`` rows in every kind.
    size : int
        Rows wanted (>= 2); ``size >= n`` returns every row.
    strata : int
        Strata (>= 1).
    random_state : int

    Returns
    -------
    ndarray of shape (min(size, n),), int64, sorted ascending, distinct.

    Raises
    ------
    ParameterError
        No descriptors, row counts that differ, or ``size``/``strata`` out of range.
    """
    from sklearn.cluster import KMeans

    if not descriptors:
        raise ParameterError("stratified_sample needs at least one descriptor matrix")
    size = check_int("size", size, 2)
    strata = check_int("strata", strata, 1)
    ns = {k: int(np.shape(v)[0]) for k, v in descriptors.items()}
    n = next(iter(ns.values()))
    if any(v != n for v in ns.values()):
        raise ParameterError(f"descriptor kinds have different row counts: {ns}")
    if size >= n:
        return np.arange(n, dtype=np.int64)
    rng = np.random.default_rng(random_state)
    fit_rows = np.sort(rng.choice(n, size=min(n, PROJECTION_ROWS), replace=False))
    Z = np.hstack([_project(descriptors[k], fit_rows, PROJECTION_DIMS) for k in sorted(descriptors)])
    Z -= Z.mean(axis=0)
    Z /= np.where(Z.std(axis=0) > 0, Z.std(axis=0), 1.0)
    strata = min(strata, size)
    km_rows = rng.choice(n, size=min(n, 20_000), replace=False)
    km = KMeans(n_clusters=strata, n_init=1, random_state=random_state).fit(Z[km_rows])
    stratum = km.predict(Z)
    counts = np.bincount(stratum, minlength=strata)
    quota = size * counts / n
    take = np.floor(quota).astype(np.int64)
    take = np.where((counts > 0) & (take == 0), 1, take)
    spare = size - int(take.sum())
    if spare > 0:  # largest remainders first
        order = np.argsort(-(quota - np.floor(quota)), kind="stable")
        for h in order:
            if spare == 0:
                break
            if take[h] < counts[h]:
                take[h] += 1
                spare -= 1
    take = np.minimum(take, counts)
    chosen = [rng.choice(np.flatnonzero(stratum == h), size=int(take[h]), replace=False)
              for h in range(strata) if take[h] > 0]
    return np.sort(np.concatenate(chosen)).astype(np.int64)


def _weighted_nmi(a: np.ndarray, b: np.ndarray, w: np.ndarray) -> float:
    """NMI (arithmetic normalisation, as scikit-learn's default) of labels ``a``, ``b`` (dense
    non-negative codes) with row weights ``w`` (bootstrap counts)."""
    ka, kb = int(a.max()) + 1, int(b.max()) + 1
    c = np.bincount(a * kb + b, weights=w, minlength=ka * kb).reshape(ka, kb)
    tot = c.sum()
    if tot <= 0:
        return float("nan")
    p = c / tot
    pa, pb = p.sum(axis=1), p.sum(axis=0)
    nz = p > 0
    mi = float((p[nz] * np.log(p[nz] / np.outer(pa, pb)[nz])).sum())
    ha = float(-(pa[pa > 0] * np.log(pa[pa > 0])).sum())
    hb = float(-(pb[pb > 0] * np.log(pb[pb > 0])).sum())
    if ha == 0 and hb == 0:
        return 1.0
    return mi / ((ha + hb) / 2) if (ha + hb) > 0 else 0.0


def _codes(labels: np.ndarray) -> np.ndarray:
    return np.unique(np.asarray(labels), return_inverse=True)[1].astype(np.int64)


def score_interval(labels: np.ndarray, references: list[np.ndarray], stability: float, n_boot: int = 100,
                   level: float = 0.95, random_state: int = 0) -> tuple[float, float]:
    """Bootstrap interval of the label-free score of one clustering of the sample, for its fixed partition.

    The score is ``stability × balance × coverage × log2(k) × consensus``
    (:func:`descluster.recommend.label_free_score`). The sample's rows are resampled with
    replacement ``n_boot`` times (Efron & Tibshirani 1993, percentile interval); balance,
    coverage and the consensus NMI with ``references`` are recomputed on each resample,
    stability is held at its split-half value (its own sampling error is that of the 5,000-row
    halves, the same in a screened and an exhaustive run).

    Parameters
    ----------
    labels : ndarray of shape (m,), int
        The clustering (noise -1).
    references : list of ndarray of shape (m,), int
        The other descriptor kinds' reference clusterings of the same rows.
    stability : float
    n_boot : int
        Resamples (>= 10).
    level : float in (0, 1)
    random_state : int

    Returns
    -------
    (low, high) : floats; (nan, nan) when the score is undefined.
    """
    n_boot = check_int("n_boot", n_boot, 10)
    if not (0 < level < 1):
        raise ParameterError(f"level must be in (0, 1); got {level}")
    labels = np.asarray(labels)
    m = labels.size
    if not np.isfinite(stability) or m == 0:
        return float("nan"), float("nan")
    lab = _codes(labels)
    noise = labels < 0
    refs = [_codes(r) for r in references]
    rng = np.random.default_rng(random_state)
    out = []
    for _ in range(n_boot):
        w = np.bincount(rng.integers(0, m, m), minlength=m).astype(np.float64)
        wc = w * ~noise
        sizes = np.bincount(lab, weights=wc)
        sizes = sizes[sizes > 0]
        if sizes.size < 2:
            out.append(np.nan)
            continue
        p = sizes / sizes.sum()
        balance = float(-(p * np.log(p)).sum() / np.log(sizes.size))
        coverage = float(wc.sum() / w.sum())
        cons = float(np.mean([_weighted_nmi(r, lab, w) for r in refs])) if refs else 1.0
        out.append(max(stability, 0.0) * balance * coverage * np.log2(sizes.size) * cons)
    out = np.asarray(out)
    out = out[np.isfinite(out)]
    if out.size == 0:
        return float("nan"), float("nan")
    a = (1 - level) / 2
    return float(np.quantile(out, a)), float(np.quantile(out, 1 - a))


@dataclass
class ScreenResult:
    """What the screening chose and why.

    Attributes
    ----------
    sample_rows : int
        Rows of the stratified sample.
    n_rows : int
        Rows of the case.
    strata : int
    table : DataFrame
        The sample's comparison (one row per configuration: ``descriptor, preprocessing,
        algorithm, k, stability, balance, consensus, base_score, score``) with
        ``score_low``/``score_high`` (bootstrap interval) and ``finalist`` (bool), ``why``.
    scalers : dict of str -> list of str
        Descriptor kind -> scalers reduced on all rows.
    algorithms : dict of str -> list of str
        Descriptor kind -> the other (not every-scaler) algorithms swept on all rows.
    mixtures : list of str
        Mixture ``descriptor`` names clustered on all rows.
    seconds : float
        Wall time of the screening.
    """

    sample_rows: int
    n_rows: int
    strata: int
    table: pd.DataFrame
    scalers: dict[str, list[str]] = field(default_factory=dict)
    algorithms: dict[str, list[str]] = field(default_factory=dict)
    mixtures: list[str] = field(default_factory=list)
    seconds: float = 0.0

    def notes(self) -> list[str]:
        """The report's lines: which steps ran on the sample, its size, and the intervals."""
        fin = self.table[self.table["finalist"]]
        out = [f"Screening: every scaler, algorithm and mixture was first run on a stratified sample of "
               f"{self.sample_rows:,} of {self.n_rows:,} rows ({self.strata} strata of a coarse k-means); "
               f"{len(fin)} of {len(self.table)} configurations were then run on all rows (k chosen, compared "
               "and recommended there). `descluster run --exhaustive` runs every configuration on all rows."]
        for d in sorted(self.scalers):
            out.append(f"Screening, {d}: scalers on all rows {', '.join(self.scalers[d])}; other algorithms on all "
                       f"rows {', '.join(self.algorithms.get(d, [])) or 'none'}.")
        if self.mixtures:
            out.append(f"Screening: mixtures on all rows: {', '.join(self.mixtures)}.")
        rows = self.table.head(6)
        out.append("Screened label-free scores on the sample with 95 % bootstrap intervals (partition fixed, rows "
                   "resampled; stability is the split-half value, estimated on halves of the same size as on all "
                   "rows): " + "; ".join(
                       f"{r.descriptor}/{r.preprocessing}/{r.algorithm} k={r.k}: {r.score:.2f} "
                       f"[{r.score_low:.2f}, {r.score_high:.2f}]" for r in rows.itertuples()) + ".")
        return out

    def to_dict(self) -> dict[str, Any]:
        """The manifest's ``screen`` entry (JSON-able)."""
        fin = self.table[self.table["finalist"]]
        return {"sample_rows": self.sample_rows, "n_rows": self.n_rows, "strata": self.strata,
                "steps_on_sample": ["reduce (scaling + PCA) of every scaler", "k sweeps of every configuration",
                                    "mixtures", "label-free comparison", "bootstrap intervals of the score"],
                "steps_on_all_rows": ["reduce of the finalist scalers", "k sweeps of the finalists (k chosen here)",
                                      "comparison and recommendation", "2-D map", "outliers and pixel checks",
                                      "model", "report"],
                "scalers": self.scalers, "algorithms": self.algorithms, "mixtures": list(self.mixtures),
                "configurations": int(len(self.table)), "finalists": int(len(fin)),
                "seconds": round(self.seconds, 3),
                "intervals": [{"configuration": f"{r.descriptor}/{r.preprocessing}/{r.algorithm}", "k": int(r.k),
                               "score": _num(r.score), "low": _num(r.score_low), "high": _num(r.score_high),
                               "finalist": bool(r.finalist)} for r in self.table.itertuples()]}


def _num(v) -> float | None:
    return round(float(v), 6) if v is not None and np.isfinite(v) else None


def pick_finalists(table: pd.DataFrame, first: str, mixtures: set[str], scalers: int = 2, algorithms: int = 2,
                   overall: int = 3) -> pd.Series:
    """Which screened configurations go on to all rows (bool per row of ``table``) and why.

    Per descriptor kind: the ``scalers`` best scalers of ``first`` (the every-scaler algorithm)
    and the ``algorithms`` best other algorithms, by ``score`` and also by ``base_score`` (the
    factor that picks each kind's consensus reference); any configuration whose interval
    ``score_high`` reaches the kind's leader's ``score_low``; and the mixtures among the
    ``overall`` best rows, or whose interval reaches the overall leader's.

    Returns
    -------
    why : Series of str (index of ``table``), empty where the row is not a finalist.
    """
    why = pd.Series("", index=table.index, dtype=object)

    def mark(idx, text):
        for i in idx:
            if not why[i]:
                why[i] = text

    single = table[~table["descriptor"].isin(mixtures)]
    for d, rows in single.groupby("descriptor", sort=True):
        for sub, n, what in ((rows[rows["algorithm"] == first], scalers, f"{first}: best scalers"),
                             (rows[rows["algorithm"] != first], algorithms, "best other algorithms")):
            if sub.empty:
                continue
            mark(sub.sort_values("score", ascending=False, kind="mergesort").head(n).index, f"{what} (score)")
            mark(sub.sort_values("base_score", ascending=False, kind="mergesort").head(n).index,
                 f"{what} (base score)")
        lead = rows.sort_values("score", ascending=False, kind="mergesort").iloc[0]
        if np.isfinite(lead["score_low"]):
            mark(rows.index[rows["score_high"] >= lead["score_low"]], "interval reaches the leader's")
    top = table.sort_values("score", ascending=False, kind="mergesort")
    mix = top[top["descriptor"].isin(mixtures)]
    mark([i for i in top.head(overall).index if i in mix.index], "mixture among the overall best")
    if len(top) and np.isfinite(top.iloc[0]["score_low"]):
        mark(mix.index[mix["score_high"] >= top.iloc[0]["score_low"]], "mixture interval reaches the leader's")
    return why


def screen_study(case, config, cache, digests: dict[str, str], progress: bool = True) -> ScreenResult:
    """Run the study's clustering stages on a stratified sample and choose the finalists (cached stages).

    Parameters
    ----------
    case : descluster.case.Case
    config : RunConfig
        ``config.screen`` gives the sample size, strata, finalist counts and bootstrap resamples.
    cache : StageCache
    digests : dict of str -> str
        Descriptor digests (the sample's spaces are keyed by them and the sample's rows).

    Returns
    -------
    ScreenResult
    """
    import time

    from .. import pipeline
    from ..cache import Entry, stable_hash
    from ..progress import stage
    from ..recommend import build_comparison, mixture_names

    sc = config.screen
    t0 = time.perf_counter()
    n = len(case.paths)
    params = {"descriptors": digests, "dropped": list(map(int, case.dropped_rows)), "size": sc.screen_rows,
              "strata": sc.screen_strata, "seed": config.seed, "projection": [PROJECTION_ROWS, PROJECTION_DIMS]}

    def compute() -> Entry:
        with stage(f"screening sample ({sc.screen_rows:,} of {n:,} rows, {sc.screen_strata} strata)", rows=n):
            idx = stratified_sample(case.descriptors, sc.screen_rows, sc.screen_strata, config.seed)
        return Entry(arrays={"rows": idx})

    idx = cache.get_or_compute("screen_sample", params, compute).arrays["rows"]
    tag = stable_hash(idx.tolist())
    sub = SimpleNamespace(descriptors={k: np.ascontiguousarray(v[idx]) for k, v in case.descriptors.items()},
                          dropped_rows=[], descriptor_files={})
    sub_digests = {k: stable_hash([digests[k], "sample", tag]) for k in digests}
    spaces = pipeline.reduce_stage(sub, config, cache, sub_digests)
    choices, first = pipeline.cluster_stage(spaces, config, cache, progress)
    comparison = build_comparison(choices, spaces, {}, None)
    if config.cluster.mixtures and len(case.descriptors) >= 2:
        mixed, mixed_choices = pipeline.mixture_stage(spaces, choices, comparison, first, config, cache, progress)
        spaces, choices = {**spaces, **mixed}, {**choices, **mixed_choices}
        comparison = build_comparison(choices, spaces, {}, None)
    mixtures = mixture_names(choices)
    # each kind's consensus reference, as build_comparison picks it (best base score)
    single = comparison[~comparison["descriptor"].isin(mixtures) & comparison["base_score"].notna()]
    refs = {}
    for r in single.sort_values("base_score", ascending=False, kind="mergesort").drop_duplicates("descriptor").itertuples():
        refs[r.descriptor] = choices[f"{r.descriptor}/{r.preprocessing}/{r.algorithm}"].labels
    lows, highs = [], []
    with stage(f"screening intervals ({len(comparison)} configurations, {sc.screen_bootstrap} resamples)"):
        for r in comparison.itertuples():
            ch = choices[f"{r.descriptor}/{r.preprocessing}/{r.algorithm}"]
            others = [lab for d, lab in refs.items() if d != r.descriptor]
            lo, hi = score_interval(np.asarray(ch.labels), others, float(r.stability), n_boot=sc.screen_bootstrap,
                                    random_state=config.seed)
            lows.append(lo)
            highs.append(hi)
    cols = [c for c in ("descriptor", "preprocessing", "algorithm", "k", "stability", "balance", "coverage",
                        "consensus", "base_score", "score") if c in comparison]
    table = comparison[cols].copy()
    table["score_low"], table["score_high"] = lows, highs
    why = pick_finalists(table, first, mixtures, sc.finalist_scalers, sc.finalist_algorithms, sc.finalist_overall)
    table["finalist"], table["why"] = why != "", why
    table.insert(0, "sample_rows", int(idx.size))
    fin = table[table["finalist"]]
    singles = fin[~fin["descriptor"].isin(mixtures)]
    scalers = {d: sorted(set(g.loc[g["algorithm"] == first, "preprocessing"])) or sorted(set(g["preprocessing"]))
               for d, g in singles.groupby("descriptor")}
    for d in sorted(set(case.descriptors) - set(scalers)):  # a kind with no finalist keeps its best scaler
        rows = table[(table["descriptor"] == d)]
        scalers[d] = [str(rows.iloc[0]["preprocessing"])] if len(rows) else list(config.reduce.preprocessings[:1])
    algos = {d: sorted(set(g.loc[g["algorithm"] != first, "algorithm"])) for d, g in singles.groupby("descriptor")}
    return ScreenResult(sample_rows=int(idx.size), n_rows=n, strata=sc.screen_strata, table=table.reset_index(drop=True),
                        scalers=scalers, algorithms=algos, mixtures=sorted(set(fin["descriptor"]) & mixtures),
                        seconds=time.perf_counter() - t0)
