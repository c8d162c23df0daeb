"""The measured cost of labelling: a simulated annotator runs the loop; baselines on the same images.

``descluster simulate RESULTS --truth labels.csv --column COL [--budget N]``.

The annotator (the rules are the issue's, fixed, not the engine's):

- it names a shown group by the majority true class of the shown images,
- says "split" when that majority is under 80 % of the shown images,
- and marks every shown image whose true class differs, giving its true class.

One answer is one decision (naming, split, junk), plus one per marked image.
It adds a class to the task the first time it needs it (the task starts
without classes). Accuracy is the share of *all* images whose final label
equals the truth (no label counts as wrong).

Baselines, on the same images and the study's recommended space:

(a) the recommended clustering named once per cluster, by the majority true
    class of 64 random members (one decision per cluster);
(b) the library route: images drawn at random and labelled one decision each,
    scikit-learn ``LogisticRegression`` (isotropically scaled space, as the
    engine) and ``KNeighborsClassifier`` (5 neighbours) predicting the rest;
    mean of 3 draws per budget;
(c) every image by hand: accuracy = decisions / n;
(d) the naive loop: name ``k`` k-means clusters (k = 20 and 40), showing 64
    random images each and marking the wrong ones, then review the least
    confident images of a ``LogisticRegression`` refitted after every grid, in
    grids of 64, each image with its own proposed label: one decision per grid
    plus one per wrong proposal.
"""

from __future__ import annotations

import io
import json
import logging
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from ..errors import CaseError
from ..io.atomic import write_bytes, write_csv
from ..io.tables import read_csv_table
from ..validation import MAX_SEED, check_int
from .estimate import estimate_accuracy
from .propagate import isotropic_scale
from .questions import MAX_SHOWN, SPLIT_SHARE
from .spaces import ResultsData

__all__ = ["SimulatedAnnotator", "simulate", "load_truth", "SimulationResult", "THRESHOLDS", "MAJORITY"]

log = logging.getLogger("descluster")

#: Accuracy levels whose decision cost the summary reports.
THRESHOLDS = (0.90, 0.95, 0.98, 0.99)
#: Below this share of the shown images the annotator says "split" (the issue's rule).
MAJORITY = SPLIT_SHARE
#: Budgets at which the summary and the README table compare every method.
REPORT_BUDGETS = (50, 100, 250, 450, 700, 1000)


def load_truth(results: ResultsData, truth_csv: str | os.PathLike, column: str) -> np.ndarray:
    """The truth column of ``truth_csv`` aligned to the results' rows.

    Returns
    -------
    ndarray of shape (n_samples,), object (str)

    Raises
    ------
    CaseError
        Missing file or column (lists the columns, ``path`` included), no path of the file
        matching the results (one of each shown), rows of the results without a truth value
        (gives the count and the first paths), or a single class.
    """
    from ..case import align_by_path

    path = Path(truth_csv)
    if not path.is_file():
        raise CaseError(f"truth file {path} does not exist")
    table = read_csv_table(path, "truth file", required=("path",), dtype=str, keep_default_na=False)
    if column not in table.columns:
        raise CaseError(f"{path}: no column {column!r}; columns are {[c for c in table.columns if c != 'path']}")
    aligned, unmatched = align_by_path(table[["path", column]], results.paths, path)
    if unmatched == len(results.paths) and len(table):
        raise CaseError(f"{path}: none of its {len(table):,} paths is an image of {results.root} (e.g. "
                        f"{table['path'].iloc[0]!r} there, {results.paths[0]!r} in the results); the column "
                        "'path' must name the images as images_paths.csv does")
    values = aligned[column]
    missing = values.isna() | (values.astype(str).str.strip() == "")
    if missing.any():
        first = [results.paths[i] for i in np.flatnonzero(missing.to_numpy())[:5]]
        raise CaseError(f"{path}, column {column!r}: {int(missing.sum()):,} of {len(values):,} images of "
                        f"{results.root} have no value (first: {first}); give every image a class "
                        "(e.g. 'unknown') to simulate")
    values = values.astype(str).str.strip().to_numpy(dtype=object)
    classes = np.unique(values)
    if classes.size < 2:
        raise CaseError(f"{path}, column {column!r}: every image has the class {classes[0]!r}; a labelling task "
                        "needs at least two classes to measure")
    return values


class SimulatedAnnotator:
    """Answers questions from a truth column by the rules in the module docstring.

    Parameters
    ----------
    truth : ndarray of shape (n_samples,), str
    majority : float, default :data:`MAJORITY`
    """

    def __init__(self, truth: np.ndarray, majority: float = MAJORITY):
        self.truth = np.asarray(truth, dtype=object)
        self.majority = majority

    def decide(self, shown: list[int]) -> dict:
        """``{"split": True}`` or ``{"label": cls, "marks": {row: cls}}`` for the shown rows."""
        t = self.truth[np.asarray(shown, dtype=np.int64)]
        values, counts = np.unique(t.astype(str), return_counts=True)
        best = int(np.argmax(counts))
        if counts[best] < self.majority * len(t):
            return {"split": True}
        name = str(values[best])
        return {"label": name, "marks": {int(r): str(c) for r, c in zip(shown, t) if c != name}}

    def answer(self, session, question) -> int:
        """Answer ``question`` in ``session`` (adding classes first); returns the decisions counted."""
        d = self.decide(question.shown)
        if d.get("split"):
            return session.answer(question.id, split=True)["decisions"]
        classes = session.state(question.task).classes
        for c in [d["label"], *d["marks"].values()]:
            if c not in classes:
                classes = session.add_class(question.task, c)
        return session.answer(question.id, label=d["label"], marks=d["marks"])["decisions"]


@dataclass
class SimulationResult:
    """Outcome of :func:`simulate`.

    Attributes
    ----------
    curve : DataFrame
        One row per decision: ``decisions, accuracy, labelled_share, estimated_accuracy``.
    baselines : dict of str -> DataFrame
        ``decisions, accuracy`` per baseline name.
    summary : dict
        The one-line JSON summary (see :func:`simulate`).
    """

    curve: pd.DataFrame
    baselines: dict = field(default_factory=dict)
    summary: dict = field(default_factory=dict)


def _first_reaching(decisions: np.ndarray, accuracy: np.ndarray, level: float) -> int | None:
    hit = np.flatnonzero(np.asarray(accuracy) >= level - 1e-12)
    return int(np.asarray(decisions)[hit[0]]) if hit.size else None


def _at_budget(decisions: np.ndarray, accuracy: np.ndarray, budget: int) -> float | None:
    """Best accuracy reached with at most ``budget`` decisions (None if the curve starts later)."""
    ok = np.asarray(decisions) <= budget
    return float(np.max(np.asarray(accuracy)[ok])) if ok.any() else None


# --------------------------------------------------------------------------- baselines
def _encode(truth: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    classes, y = np.unique(truth.astype(str), return_inverse=True)
    return classes, y.astype(np.int64)


def baseline_clusters(clusters: np.ndarray, y: np.ndarray, random_state: int = 0) -> pd.DataFrame:
    """(a) Each cluster named once by the majority of 64 random members: one row ``(k, accuracy)``."""
    rng = np.random.default_rng(random_state)
    pred = np.full(y.shape[0], -1)
    ids = np.unique(clusters[clusters >= 0])
    for c in ids:
        mem = np.flatnonzero(clusters == c)
        shown = rng.choice(mem, size=min(MAX_SHOWN, mem.size), replace=False)
        pred[mem] = np.bincount(y[shown]).argmax()
    return pd.DataFrame({"decisions": [int(ids.size)], "accuracy": [float(np.mean(pred == y))]})


def _logistic_proba(Z: np.ndarray, rows: np.ndarray, labels: np.ndarray, n_classes: int) -> np.ndarray:
    from sklearn.linear_model import LogisticRegression
    import warnings
    from sklearn.exceptions import ConvergenceWarning

    P = np.zeros((Z.shape[0], n_classes))
    if np.unique(labels).size < 2:
        P[:, labels[0]] = 1.0
        return P
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        m = LogisticRegression(max_iter=300).fit(Z[rows], labels)
    P[:, m.classes_] = m.predict_proba(Z)
    return P


def baseline_random(Z: np.ndarray, y: np.ndarray, budgets, repeats: int = 3, random_state: int = 0) -> dict:
    """(b) Random labels, one decision each; LogisticRegression and KNeighborsClassifier predict the rest.

    Returns
    -------
    dict with DataFrames ``random_logistic`` and ``random_knn`` (``decisions, accuracy``).
    """
    from sklearn.neighbors import KNeighborsClassifier

    n, C = y.shape[0], int(y.max()) + 1
    out = {"random_logistic": [], "random_knn": []}
    for b in budgets:
        b = int(min(b, n))
        accs = {"random_logistic": [], "random_knn": []}
        for r in range(repeats):
            rows = np.random.default_rng([random_state, r, b]).choice(n, size=b, replace=False)
            pred = _logistic_proba(Z, rows, y[rows], C).argmax(axis=1)
            pred[rows] = y[rows]
            accs["random_logistic"].append(np.mean(pred == y))
            knn = KNeighborsClassifier(n_neighbors=min(5, b)).fit(Z[rows], y[rows])
            pred = knn.predict(Z)
            pred[rows] = y[rows]
            accs["random_knn"].append(np.mean(pred == y))
        for k in out:
            out[k].append((b, float(np.mean(accs[k]))))
    return {k: pd.DataFrame(v, columns=["decisions", "accuracy"]) for k, v in out.items()}


def baseline_naive_loop(Z: np.ndarray, y: np.ndarray, n_clusters: int, budget: int, random_state: int = 0) -> pd.DataFrame:
    """(d) Name k-means clusters (64 random images shown each), then least-confident grids of 64.

    Returns
    -------
    DataFrame ``decisions, accuracy``, one row per grid or cluster answered.
    """
    from sklearn.cluster import KMeans

    n, C = y.shape[0], int(y.max()) + 1
    rng = np.random.default_rng(random_state)
    km = KMeans(n_clusters=min(n_clusters, n), n_init=3, random_state=random_state).fit(Z)
    given = np.full(n, -1)
    dec, rows_out = 0, []
    pred = np.zeros(n, np.int64)

    def record():
        rows_out.append((dec, float(np.mean(np.where(given >= 0, given, pred) == y))))

    for c in range(km.n_clusters):
        mem = np.flatnonzero(km.labels_ == c)
        if mem.size == 0:
            continue
        shown = rng.choice(mem, size=min(MAX_SHOWN, mem.size), replace=False)
        maj = np.bincount(y[shown]).argmax()
        given[shown] = y[shown]
        dec += 1 + int((y[shown] != maj).sum())
        lab = np.flatnonzero(given >= 0)
        pred = _logistic_proba(Z, lab, given[lab], C).argmax(axis=1)
        record()
    while dec < budget and (given < 0).any():
        lab = np.flatnonzero(given >= 0)
        P = _logistic_proba(Z, lab, given[lab], C)
        pred = P.argmax(axis=1)
        record()
        cand = np.flatnonzero(given < 0)
        grid = cand[np.argsort(P[cand].max(axis=1), kind="stable")[:MAX_SHOWN]]
        dec += 1 + int((pred[grid] != y[grid]).sum())
        given[grid] = y[grid]
    record()
    return pd.DataFrame(rows_out, columns=["decisions", "accuracy"])


# --------------------------------------------------------------------------- the loop
def simulate(results, truth_csv, column: str, budget: int | None = None, propagation="smoothed", policy=None,
             random_state: int = 0, baselines: bool = True, write: bool = True, progress: bool = True,
             identity: bool = False, session_kwargs: dict | None = None) -> SimulationResult:
    """Run the labelling loop with the simulated annotator, and the baselines.

    Parameters
    ----------
    results : str, PathLike or ResultsData
        A ``descluster run`` results folder.
    truth_csv : path
        CSV with ``path`` and ``column``.
    column : str
    budget : int, optional
        Stop after this many decisions (default ``min(n_images, 1000)``).
    propagation, policy
        Passed to :class:`~descluster.labelling.session.Session`.
    random_state : int
    baselines : bool
        Also run baselines (a)-(d).
    write : bool
        Write ``RESULTS/labelling_curve.csv``, ``labelling_baselines.csv``, ``labelling_curve.png``.
    progress : bool
        Log progress every 50 answers.
    identity : bool
        Create the task with identity spreading (paths must encode object identities).

    Returns
    -------
    SimulationResult
        ``summary`` has ``column``, ``n_images``, ``decisions``, ``accuracy`` (final),
        ``estimated_accuracy`` and ``interval`` (final), ``decisions_to`` (level -> decisions or
        None), ``accuracy_at`` (budget -> accuracy), ``estimate_error_max_after_100``, ``space``,
        ``propagation``, ``baselines`` (name -> ``decisions_to``, ``accuracy_at``) and
        ``beats_naive_loop`` (engine accuracy >= every (d) curve at every decision count both reach).

    Raises
    ------
    CaseError
        Bad truth file or results folder.
    ParameterError
        ``budget`` < 1, or ``random_state`` outside [0, :data:`~descluster.validation.MAX_SEED`].
    """
    from .session import Session

    random_state = check_int("random_state (--seed)", random_state, 0, MAX_SEED)
    data = results if isinstance(results, ResultsData) else ResultsData(results)
    truth = load_truth(data, truth_csv, column)
    n = data.n_samples
    budget = min(n, 1000) if budget is None else check_int("budget", budget, 1)
    t0 = time.perf_counter()
    session = Session(data, db=":memory:", policy=policy, propagation=propagation, random_state=random_state,
                      **(session_kwargs or {}))
    session.add_task(column, identity=identity)
    annotator = SimulatedAnnotator(truth)
    rows = []
    decisions, answers = 0, 0
    acc = labelled = 0.0
    est = None
    labels_now = np.full(n, "", dtype=object)  # final labels after the last answer ("" = none)
    while decisions < budget:
        q = session.next_question(column)
        if q is None:
            break
        plan = annotator.decide(q.shown)
        d = annotator.answer(session, q)
        answers += 1
        new_labels = session.labels(column)["label"].to_numpy(dtype=object)
        new_acc = float(np.mean(new_labels == truth))
        st = session.state(column)
        new_share = float(st.labelled.mean())
        pred = session.prediction(column)
        e = estimate_accuracy(st, None if pred is None else pred.conf, prediction=None if pred is None else pred.pred,
                              space=None if pred is None else pred.space,
                              calibration=None if pred is None else session.calibration(column, pred.space))
        rows += _partial_rows(decisions, d, plan, q, labels_now, truth, acc, est, labelled, new_acc, new_share,
                              e["estimate"])
        decisions += d
        acc, est, labelled, labels_now = new_acc, e["estimate"], new_share, new_labels
        if progress and answers % 50 == 0:
            log.info("simulate %s: %d answers, %d decisions, accuracy %.3f, estimated %s", column, answers,
                     decisions, acc, "n/a" if est is None else f"{est:.3f}")
    curve = pd.DataFrame(rows, columns=["decisions", "accuracy", "labelled_share", "estimated_accuracy"])
    final = session.progress(column)
    seconds = time.perf_counter() - t0
    summary = {
        "column": column, "n_images": n, "decisions": int(decisions), "answers": answers,
        "accuracy": float(acc), "estimated_accuracy": final["estimated_accuracy"], "interval": final["interval"],
        "decisions_to": {f"{t:.2f}": _first_reaching(curve["decisions"], curve["accuracy"], t) for t in THRESHOLDS},
        "accuracy_at": {str(b): _at_budget(curve["decisions"], curve["accuracy"], b) for b in REPORT_BUDGETS if b <= budget},
        "images_per_decision_at_0.95": None,
        "space": final["space"], "space_reason": final["space_reason"], "propagation": final["propagation"],
        "seconds": round(seconds, 1),
    }
    d95 = summary["decisions_to"]["0.95"]
    summary["images_per_decision_at_0.95"] = None if d95 is None else round(0.95 * n / d95, 2)
    after = curve[(curve["decisions"] >= 100) & curve["estimated_accuracy"].notna()]
    summary["estimate_error_max_after_100"] = (None if after.empty else
                                               float(np.max(np.abs(after["estimated_accuracy"] - after["accuracy"]))))
    session.close()
    base: dict[str, pd.DataFrame] = {}
    if baselines:
        classes, y = _encode(truth)
        Z = isotropic_scale(data.space(data.recommended))
        grid = sorted({int(b) for b in (10, 25, 50, 100, 200, 300, 450, 700, 1000, 1500, 2000) if b <= min(budget, n)}
                      | {int(min(budget, n))})
        base["clusters_named_once"] = baseline_clusters(data.clusterings[data.recommended], y, random_state)
        base.update(baseline_random(Z, y, grid, random_state=random_state))
        base["by_hand"] = pd.DataFrame({"decisions": grid, "accuracy": [g / n for g in grid]})
        for k in (20, 40):
            base[f"naive_loop_k{k}"] = baseline_naive_loop(Z, y, k, budget, random_state=random_state)
        reach = int(curve["decisions"].max()) if len(curve) else budget  # baselines judged within the loop's reach
        summary["baselines"] = {name: {"decisions_to": {f"{t:.2f}": _within(_first_reaching(b["decisions"],
                                                                                            b["accuracy"], t), reach)
                                                        for t in THRESHOLDS},
                                       "accuracy_at": {str(x): _at_budget(b["decisions"], b["accuracy"], x)
                                                       for x in REPORT_BUDGETS if x <= budget}}
                                for name, b in base.items()}
        summary["beats_naive_loop"] = all(_beats(curve, base[f"naive_loop_k{k}"]) for k in (20, 40))
    if write:
        write_csv(data.root / "labelling_curve.csv", curve)
        if base:
            write_csv(data.root / "labelling_baselines.csv",
                      pd.concat([b.assign(method=name) for name, b in base.items()], ignore_index=True)
                      [["method", "decisions", "accuracy"]])
        else:  # an earlier run's baselines (maybe of another column) must not stand beside this curve
            (data.root / "labelling_baselines.csv").unlink(missing_ok=True)
        write_bytes(data.root / "labelling_curve.png", plot_curve(curve, base, column, n))
    return SimulationResult(curve=curve, baselines=base, summary=summary)


def _within(decisions, reach: int):
    """``decisions`` if it is not None and at most ``reach`` (the loop's last decision), else None."""
    return decisions if decisions is not None and decisions <= reach else None


def _partial_rows(start, d, plan, q, labels_now, truth, acc, est, share, new_acc, new_share, new_est) -> list:
    """Curve rows for the ``d`` decisions of one answer.

    The naming is the answer's first decision and each marked image the next one;
    between them the labels are those the team sees before the propagation refits:
    the previous labels, the name on every member of the group (on every image when
    nothing was labelled before: the only class there is), then one corrected image
    per mark. The last decision shows the state after the answer, refit included.
    A split changes no label until its sub-groups are answered.
    """
    rows = []
    n = truth.shape[0]
    est_prev = np.nan if est is None else est
    if d > 1 and "label" in plan:
        tmp = labels_now.copy()
        if not (tmp != "").any():
            tmp[:] = plan["label"]
        tmp[np.asarray(q.rows, dtype=np.int64)] = plan["label"]
        a = float(np.mean(tmp == truth))
        for i in range(d - 1):  # the naming (every member answered from here on), then each mark but the last
            rows.append((start + i + 1, a + i / n, new_share, est_prev))
    elif d > 1:  # not expected (a split is one decision): hold the previous state
        rows += [(start + i + 1, acc, share, est_prev) for i in range(d - 1)]
    rows.append((start + d, new_acc, new_share, np.nan if new_est is None else new_est))
    return rows


def _beats(curve: pd.DataFrame, other: pd.DataFrame) -> bool:
    """Engine accuracy >= the other's at every decision count of the other curve that both cover."""
    if curve.empty or other.empty:
        return False
    d = np.asarray(curve["decisions"])
    a = np.asarray(curve["accuracy"])
    for dec, acc in zip(other["decisions"], other["accuracy"]):
        if dec < d[0] or dec > d[-1]:
            continue
        if a[np.searchsorted(d, dec, side="right") - 1] < acc - 1e-12:
            return False
    return True


def plot_curve(curve: pd.DataFrame, baselines: dict, column: str, n: int) -> bytes:
    """PNG bytes of the accuracy curve, the spot-check estimate and the baselines."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 5), dpi=110)
    ax.plot(curve["decisions"], curve["accuracy"], color="#1f4e9c", lw=2, label="descluster (true accuracy)")
    ax.plot(curve["decisions"], curve["estimated_accuracy"], color="#1f4e9c", lw=1, ls="--",
            label="descluster (estimated from spot checks)")
    styles = {"naive_loop_k20": ("#c0392b", "-"), "naive_loop_k40": ("#e67e22", "-"),
              "random_logistic": ("#27ae60", "-o"), "random_knn": ("#16a085", ":o"), "by_hand": ("#7f8c8d", "-")}
    for name, b in baselines.items():
        if name == "clusters_named_once":
            ax.plot(b["decisions"], b["accuracy"], "s", color="#8e44ad", ms=8, label="(a) clusters named once")
            continue
        color, ls = styles.get(name, ("#555555", "-"))
        marker = "o" if "o" in ls else None
        label = {"naive_loop_k20": "(d) naive loop, 20 clusters", "naive_loop_k40": "(d) naive loop, 40 clusters",
                 "random_logistic": "(b) random + LogisticRegression", "random_knn": "(b) random + kNN",
                 "by_hand": "(c) every image by hand"}.get(name, name)
        ax.plot(b["decisions"], b["accuracy"], ls.replace("o", ""), color=color, marker=marker, ms=3, lw=1.2, label=label)
    # the loop's range: a baseline that runs past it (the naive loop names all its clusters first) is cut there
    top = int(curve["decisions"].max()) if len(curve) else max(
        [1] + [int(b["decisions"].max()) for k, b in baselines.items() if k != "by_hand" and len(b)])
    ax.set_xlim(0, top)
    ax.set_ylim(max(0.0, min(0.5, float(curve["accuracy"].min()) if len(curve) else 0.5)), 1.001)
    for t in THRESHOLDS:
        ax.axhline(t, color="#bbbbbb", lw=0.6, zorder=0)
    ax.set_xlabel("human decisions")
    ax.set_ylabel(f"accuracy over all {n:,} images")
    ax.set_title(f"Labelling '{column}': accuracy against human decisions")
    ax.legend(loc="lower right", fontsize=8)
    buf = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buf, format="png")
    plt.close(fig)
    return buf.getvalue()


def summary_line(result: SimulationResult) -> str:
    """The summary as one line of JSON."""
    return json.dumps(result.summary, separators=(",", ":"), default=float)
