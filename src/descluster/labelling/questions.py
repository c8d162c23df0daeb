"""Questions and the judgement of what to ask next.

A :class:`Question` is a group of images shown together (at most
:data:`MAX_SHOWN`) with a proposed label where the tool has one. The policy is a
strategy object (:class:`QuestionPolicy`); the default, :class:`DefaultPolicy`,
asks in this order:

1. **Sub-groups** of groups the team split, first in, first out. A split
   sub-clusters the group in the task's space with the study's honest k rule
   (:func:`split_group`), once: a sub-group that is split again
   (``split_depth``) goes back to the pool that review batches draw from,
   because splitting it further costs about a decision per image, what labelling
   by hand costs.
2. **Identity conflicts** (tasks with ``identity=True``): the images of one
   object identity whose given labels disagree.
3. **Clusters first**: each cluster of the clustering the study made in the
   task's space, once, largest first, shown by its members nearest the cluster
   mean (the members a name most likely fits). The number shown starts small
   and doubles while cores are named without a split (halves after one), up to
   ``core_size``: a wrong guess costs one decision per image marked, so the
   first guesses are cheap. A cluster whose core is already half labelled is
   skipped.
4. **Spot checks** while the accuracy estimate is less precise than
   ``spot_target`` (default ±3 %): a uniform random draw from the propagated
   class whose next batch narrows the estimate most (a class not checked yet,
   else Neyman's allocation; :func:`descluster.labelling.estimate.spot_check_need`),
   if that uniform batch is expected pure enough to be named (:func:`pure_enough`);
   otherwise a review batch comes first (a batch answered "split" measures
   nothing and starts a chain of sub-group questions).
5. **Review batches**: the propagated class holding the most expected errors
   (sum over its unanswered images of ``1 - P(right)``, ``P(right)`` the
   calibrated confidence) is drawn with known inclusion probabilities
   (:func:`systematic_pps`). The draw is uniform when a uniform batch is
   expected to be "pure enough" (:func:`pure_enough`: at most a 5 % chance that
   fewer than 80 % of it share one class, the annotator's split threshold);
   otherwise it is tilted towards the images more likely right, the smallest
   tilt that is pure enough (:func:`tilt`). A batch just pure enough to be named
   holds the most wrong labels that one naming plus one mark each can fix; a
   batch that is not gets "split" and costs more per image.

Every spot check and review batch is a probability sample of one stratum, so it
both corrects labels (each marked image) and measures the accuracy of the
propagated labels (:mod:`descluster.labelling.estimate`).
"""

from __future__ import annotations

import uuid
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from ..errors import ParameterError
from ..validation import check_int

__all__ = ["Question", "QuestionPolicy", "DefaultPolicy", "PolicyContext", "split_group", "MAX_SHOWN"]

#: Most images a question shows (the issue's grid of 64).
MAX_SHOWN = 64
#: Share of a shown group under which it is answered "split" rather than named (the issue's rule).
SPLIT_SHARE = 0.8


@dataclass
class Question:
    """One question to the labelling team (JSON-serialisable with :meth:`to_dict`).

    Attributes
    ----------
    id : str
        Unique id (12 hex digits).
    task : str
    kind : str
        ``cluster``, ``subgroup``, ``identity``, ``spot`` (a uniform draw for the estimate), ``review`` or ``custom``.
    rows : list of int
        Every member of the group (an answer applies to all of them).
    shown : list of int
        The members shown, at most :data:`MAX_SHOWN` (all of ``rows`` for the tool's own questions).
    proposed : str or None
        Proposed label (a class of the task), None when the tool has none.
    confidence : float or None
        Mean propagated probability of ``proposed`` over the shown images.
    description : str
        What the group is, in words with numbers.
    reason : str
        Why it is asked now.
    meta : dict
        Kind-specific facts (cluster and space, sub-group id, sampling record).
    """

    id: str
    task: str
    kind: str
    rows: list
    shown: list
    proposed: str | None
    confidence: float | None
    description: str
    reason: str
    meta: dict = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready dict (ints, floats, strings, lists)."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "Question":
        """Inverse of :meth:`to_dict`."""
        return cls(**{k: data[k] for k in ("id", "task", "kind", "rows", "shown", "proposed", "confidence",
                                           "description", "reason")}, meta=dict(data.get("meta", {})))


def new_question_id() -> str:
    """A fresh random question id (12 hex digits)."""
    return uuid.uuid4().hex[:12]


def split_group(X: np.ndarray, random_state: int = 0, k_max: int = 30, n_init: int = 3) -> list[np.ndarray]:
    """Sub-cluster one group with the study's honest k rule; the parts partition the group.

    k-means (:mod:`descluster.cluster.sweep`) for ``k = 2 .. min(k_max, n // 4)`` (so
    sub-groups hold four images on average at the finest k), then
    :func:`descluster.cluster.selection.choose_k`. Groups of fewer than eight
    images, or where the sweep finds no valid k (e.g. identical rows), are split
    into two halves by a 2-means fit, or into single images.

    Parameters
    ----------
    X : ndarray of shape (n, n_features)
        The group's rows in the task's space.
    random_state : int
    k_max : int
        Largest k tried (the study's ``k_max``).
    n_init : int
        k-means++ restarts per k (the study's k-means default, 3); the app's drill-down of large
        groups uses 1, a third of the work, since its tree is for browsing and is cached.

    Returns
    -------
    list of ndarray of int64
        Positions ``0 .. n-1`` of each sub-group; disjoint, covering all n, each non-empty,
        at least two parts when ``n >= 2``.
    """
    from ..cluster.algorithms import make_algorithm
    from ..cluster.selection import choose_k
    from ..cluster.sweep import sweep

    X = np.ascontiguousarray(X, dtype=np.float32)
    n = X.shape[0]
    if n <= 1:
        return [np.arange(n)]
    labels = None
    top = min(k_max, n // 4)
    if top >= 2:
        try:
            res = sweep(X, make_algorithm("kmeans", random_state=random_state, n_init=n_init), ks=range(2, top + 1),
                        random_state=random_state, stability_rows=None,
                        silhouette_sample=max(10, n))
            k, _ = choose_k(res.table, total_inertia=res.total_inertia)
            labels = res.labels_for(k)
        except Exception:  # no valid k (duplicates, degenerate scores): fall back below
            labels = None
    if labels is None or len(np.unique(labels[labels >= 0])) < 2:
        try:
            labels = make_algorithm("kmeans", random_state=random_state).fit_predict(X, 2)
        except Exception:
            labels = None
    if labels is None or len(np.unique(labels)) < 2:
        labels = np.arange(n) % 2 if n > 2 else np.arange(n)
    labels = np.asarray(labels)
    labels[labels < 0] = labels.max() + 1
    return [np.flatnonzero(labels == v) for v in np.unique(labels)]


def cluster_cores(X: np.ndarray, clusters: np.ndarray, core_size: int) -> list[dict]:
    """The ``core_size`` members nearest each cluster's mean, and how tight that core is.

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_features)
    clusters : ndarray of shape (n_samples,), int (``-1`` = noise, left out)
    core_size : int

    Returns
    -------
    list of dict
        ``cluster`` (id), ``size`` (members), ``rows`` (core rows, nearest first),
        ``spread`` (mean squared distance of the core to the cluster mean, in ``X``'s units).
    """
    order = np.argsort(clusters, kind="stable")
    sorted_ids = clusters[order]
    ids = np.unique(sorted_ids[sorted_ids >= 0])
    bounds = np.searchsorted(sorted_ids, np.stack([ids, ids + 1]))
    out = []
    for c, lo, hi in zip(ids, bounds[0], bounds[1]):
        mem = np.sort(order[lo:hi])
        Xm = np.asarray(X[mem], dtype=np.float64)
        d = ((Xm - Xm.mean(axis=0)) ** 2).sum(axis=1)
        near = np.argsort(d, kind="stable")[:core_size]
        out.append({"cluster": int(c), "size": int(mem.size), "rows": mem[near].tolist(),
                    "spread": float(d[near].mean())})
    return out


@dataclass
class PolicyContext:
    """What a policy sees when choosing the next question.

    Attributes
    ----------
    state : TaskState
    proba : ndarray of shape (n_samples, n_classes) or None
        Propagated class distribution (None before any model).
    space : str
        The task's space key.
    X : ndarray of shape (n_samples, n_features)
        That space.
    clusters : ndarray of shape (n_samples,), int64, or None
        The study's clustering of that space.
    identities : ndarray of shape (n_samples,), object, or None
    conflicts : list of ndarray
        Rows of identities whose given labels disagree (identity tasks).
    rng : numpy.random.Generator
    cluster_text : dict of int -> str
        Automatic description of clusters (from ``cluster_facts.csv``) where known.
    pred : ndarray of shape (n_samples,), int, or None
        Propagated class of every row (-1 unreached); None before any model.
    conf : ndarray of shape (n_samples,), float32, or None
        Its probability.
    calibration : Calibration or None
        Per-class map from confidence to the probability that the label is right,
        learned from answered batches (:class:`descluster.labelling.estimate.Calibration`).
    cores : list of dict or None
        :func:`cluster_cores` of ``clusters`` (computed by the policy when None).
    """

    state: Any
    proba: np.ndarray | None
    space: str
    X: np.ndarray
    clusters: np.ndarray | None
    identities: np.ndarray | None = None
    conflicts: list = field(default_factory=list)
    rng: np.random.Generator = None
    cluster_text: dict = field(default_factory=dict)
    pred: np.ndarray | None = None
    conf: np.ndarray | None = None
    calibration: Any = None
    cores: list | None = None


class QuestionPolicy:
    """Base of question policies: ``next(ctx) -> Question or None`` (None: nothing left to ask)."""

    def next(self, ctx: PolicyContext) -> Question | None:  # pragma: no cover - abstract
        raise NotImplementedError

    def split(self, question: "Question", X: np.ndarray, random_state: int = 0,
              released: np.ndarray | None = None) -> list[np.ndarray]:
        """The sub-groups a "split" answer to ``question`` queues (positions into ``X``).

        ``X`` (n, n_features) holds the question's rows (sorted) in the task's space;
        ``released`` (n,) bool marks rows a split already sent back to review once.
        The default sub-clusters every split group (:func:`split_group`); an empty list
        queues nothing (the rows stay unlabelled, for review batches to draw).
        """
        return split_group(X, random_state=random_state)

    def get_params(self) -> dict:
        """Constructor parameters (for reports)."""
        return dict(vars(self))


def _proposal(ctx: PolicyContext, rows: np.ndarray) -> tuple[str | None, float | None]:
    """Majority propagated class of ``rows`` and its mean probability there."""
    if ctx.proba is None or not len(rows) or ctx.proba.shape[1] == 0:
        return None, None
    P = ctx.proba[rows]
    reached = P.sum(axis=1) > 0
    if not reached.any():
        return None, None
    c = int(np.bincount(P[reached].argmax(axis=1), minlength=P.shape[1]).argmax())
    return ctx.state.classes[c], float(P[:, c].mean())


class DefaultPolicy(QuestionPolicy):
    """Sub-groups, then identity conflicts, then cluster cores, then sampled review batches.

    See the module docstring for the order and the reasons.

    Parameters
    ----------
    batch_size : int, default 64
        Images per review batch, at most :data:`MAX_SHOWN`.
    core_size : int, default 16
        Most images shown per cluster question (the members nearest the cluster mean).
        The first cluster question shows ``core_size // 4``; the size doubles after each
        cluster question named without a split and halves after a split (a small first
        guess costs little; once cores prove pure, more images per naming).
    tilt : bool, default True
        Tilt review draws towards likelier-right images when a uniform draw would not be
        pure enough (:func:`tilt`); False draws uniformly.
    calibrated_tilt : bool, default True
        Judge purity with the calibrated confidence (False: the raw confidence).
    seek_errors : bool, default False
        When a uniform draw is pure enough, lean it towards the images most likely
        wrong, as far as it stays pure enough (:func:`doubt_tilt`). Measured on the
        built-in data (seeds 0, 1) it needs 10-35 more decisions to reach 0.98-0.99
        (more marks and splits per batch), hence off.
    spot_target : float or None, default 0.03
        Half-width of the accuracy interval below which no spot check is asked (None: never).
        A spot check is only asked of a class whose uniform batch is expected pure enough
        to be named (:func:`pure_enough`); a batch answered "split" measures nothing.
    split_depth : int, default 1
        How many times one group's images are sub-clustered: a sub-group that is split
        again (at this depth) queues no sub-groups, and its images go back to the pool of
        unlabelled images that review batches draw from. Each level of splitting costs a
        decision per sub-group, most of them images a review batch labels for a fraction
        of a decision each; 0 never sub-clusters.
    """

    def __init__(self, batch_size: int = MAX_SHOWN, core_size: int = 16, tilt: bool = True,
                 calibrated_tilt: bool = True, spot_target: float | None = 0.03, seek_errors: bool = False,
                 split_depth: int = 1):
        self.batch_size = batch_size
        self.core_size = core_size
        self.tilt = tilt
        self.calibrated_tilt = calibrated_tilt
        self.spot_target = spot_target
        self.seek_errors = seek_errors
        self.split_depth = split_depth

    def _validate(self):
        check_int("batch_size", self.batch_size, 1, MAX_SHOWN)
        check_int("core_size", self.core_size, 1, MAX_SHOWN)
        check_int("split_depth", self.split_depth, 0)

    def split(self, question: "Question", X: np.ndarray, random_state: int = 0,
              released: np.ndarray | None = None) -> list[np.ndarray]:
        """Sub-groups of a split ``question`` (:func:`split_group`); past ``split_depth`` none, or
        single images when every row of the group was sent back to review before (so the
        same mixed images cannot come back as a group for ever)."""
        self._validate()
        n = X.shape[0]
        if int(question.meta.get("depth", 0)) >= self.split_depth:
            if released is not None and n and np.asarray(released, bool).all():
                return [np.array([i]) for i in range(n)]
            return []
        return split_group(X, random_state=random_state)

    def next(self, ctx: PolicyContext) -> Question | None:
        """The next question for ``ctx.state`` or None when every image has an answer."""
        self._validate()
        st = ctx.state
        for q in (self._subgroup, self._identity, self._cluster, self._spot, self._review):
            out = q(ctx)
            if out is not None:
                return out
        return None

    # ------------------------------------------------------------------ kinds
    def _subgroup(self, ctx):
        st = ctx.state
        if not st.pending:
            return None
        g = st.pending[0]
        rows = np.asarray(g["rows"], dtype=np.int64)
        shown = rows[:MAX_SHOWN]
        prop, conf = _proposal(ctx, shown)
        return Question(new_question_id(), st.name, "subgroup", rows.tolist(), shown.tolist(), prop, conf,
                        description=f"{len(rows)} images: part {int(g['id'].rsplit('/', 1)[1]) + 1} of a group you split "
                                    f"(sub-clustered with the honest k rule in {ctx.space})"
                                    + ("; split it and its images go back to the review batches"
                                       if int(g.get("depth", 1)) >= self.split_depth else ""),
                        reason=f"sub-groups of split groups come first ({len(st.pending)} waiting)",
                        meta={"group": g["id"], "parent": g["parent"], "space": ctx.space,
                              "depth": int(g.get("depth", 1))})

    def _cluster(self, ctx):
        st = ctx.state
        if ctx.clusters is None:
            return None
        cores = ctx.cores if ctx.cores is not None else cluster_cores(ctx.X, ctx.clusters, self.core_size)
        todo = [c for c in cores if (ctx.space, c["cluster"]) not in st.asked_clusters]
        labelled = st.labelled
        size = self._core_size(st)
        for c in sorted(todo, key=lambda c: (-c["size"], c["cluster"])):
            core = np.asarray(c["rows"][:size], dtype=np.int64)
            if labelled[core].mean() >= 0.5:
                continue
            prop, conf = _proposal(ctx, core)
            text = ctx.cluster_text.get(c["cluster"], "")
            return Question(new_question_id(), st.name, "cluster", core.tolist(), core.tolist(), prop, conf,
                            description=(f"The {len(core)} images nearest the centre of cluster {c['cluster']} "
                                         f"({c['size']:,} images) of the study's clustering in {ctx.space}"
                                         + (f". {text}" if text else "")),
                            reason=(f"clusters first, largest first: {len(todo)} of {len(cores)} clusters "
                                    f"not asked yet; {size} images shown (the core grows while cores are named "
                                    "without a split)"),
                            meta={"space": ctx.space, "cluster": c["cluster"], "cluster_size": c["size"]})
        return None

    def _core_size(self, st) -> int:
        """Images shown per cluster question: ``core_size / 4`` at first, doubled after each cluster
        question named without a split and halved after a split, within [2, ``core_size``]."""
        size = max(2, self.core_size // 4)
        for e in st.entries:
            if e.kind == "answer" and e.payload["question"]["kind"] == "cluster":
                size = max(2, size // 2) if e.payload["action"] == "split" else min(self.core_size, size * 2)
        return size

    def _identity(self, ctx):
        st = ctx.state
        for rows in ctx.conflicts:
            rows = np.asarray(rows, dtype=np.int64)[:MAX_SHOWN]
            given = st.label[rows][st.source[rows] > 0]
            counts = np.bincount(given, minlength=len(st.classes))
            prop = st.classes[int(counts.argmax())]
            ident = ctx.identities[rows[0]] if ctx.identities is not None else "?"
            return Question(new_question_id(), st.name, "identity", rows.tolist(), rows.tolist(), prop, None,
                            description=f"All {len(rows)} images of identity {ident}: their given labels disagree "
                                        f"({', '.join(f'{st.classes[i]} {n}' for i, n in enumerate(counts) if n)})",
                            reason="an identity-invariant attribute cannot differ within one object",
                            meta={"identity": str(ident)})
        return None

    def _spot(self, ctx):
        from .estimate import spot_check_need

        if self.spot_target is None or ctx.pred is None:
            return None
        c = spot_check_need(ctx.state, ctx.pred, ctx.conf, ctx.space, self.spot_target, self.batch_size,
                            calibration=ctx.calibration)
        if c is None:
            return None
        open_rows = np.flatnonzero(~ctx.state.labelled)
        members = open_rows[ctx.pred[open_rows] == c]
        if members.size == 0:
            return None
        g = self._prob_right(ctx, members)
        if tilt(g, pure_enough(min(self.batch_size, members.size))) != 0.0:
            return None  # a uniform batch would be answered "split" and measure nothing: review first
        return self._review(ctx, force=c)

    def _prob_right(self, ctx, rows: np.ndarray) -> np.ndarray:
        """Estimated probability that the propagated label of each of ``rows`` is right (calibrated
        when the calibration is fitted and ``calibrated_tilt``), clipped to [1e-6, 1]."""
        pred, conf = ctx.pred[rows], ctx.conf[rows]
        use_cal = ctx.calibration is not None and ctx.calibration.fitted_ and self.calibrated_tilt
        return np.clip(ctx.calibration.prob_right(pred, conf) if use_cal else conf, 1e-6, 1.0)

    def _review(self, ctx, force: int | None = None):
        st = ctx.state
        open_rows = np.flatnonzero(~st.labelled)
        if open_rows.size == 0:
            return None
        pred = None if ctx.pred is None else ctx.pred[open_rows]
        if pred is None or not (pred >= 0).any():  # no model yet, or nothing reached: a uniform draw
            m = min(self.batch_size, open_rows.size)
            rows = np.sort(ctx.rng.choice(open_rows, size=m, replace=False))
            return Question(new_question_id(), st.name, "review", rows.tolist(), rows.tolist(), None, None,
                            description=f"{m} of the {open_rows.size:,} images without a label, drawn at random",
                            reason="no propagated label to propose yet", meta={"space": ctx.space})
        conf = ctx.conf[open_rows]
        prob_right = self._prob_right(ctx, open_rows)
        order = np.argsort(pred, kind="stable")
        sorted_pred = pred[order]
        classes = np.unique(sorted_pred[sorted_pred >= 0]) if force is None else np.array([force])
        bounds = np.searchsorted(sorted_pred, np.stack([classes, classes + 1]))
        m_target = min(self.batch_size, open_rows.size)
        target = pure_enough(m_target)
        best, fallback = None, None
        for c, lo, hi in zip(classes, bounds[0], bounds[1]):
            members = np.sort(order[lo:hi])
            if members.size == 0:
                continue
            g = prob_right[members]
            expected = float((1.0 - g).sum())
            m = min(self.batch_size, members.size)
            beta = tilt(g, pure_enough(m)) if self.tilt and force is None else 0.0
            if beta == 0 and self.seek_errors and force is None:
                beta = -doubt_tilt(g, pure_enough(m))
            if beta is None:
                if fallback is None or expected > fallback[0]:
                    fallback = (expected, int(c), members)
                continue
            if best is None or (expected, members.size) > best[0]:
                best = ((expected, members.size), int(c), members, beta)
        if best is None:  # no class can be drawn pure enough: the most confident images of the most uncertain class
            _, c, members = fallback  # rows a split sent back to review come last: else the same mixed
            back = st.released[open_rows[members]]  # images would be drawn, split and sent back again
            chosen = members[np.lexsort((-conf[members], back))[: self.batch_size]]
            pi = None
        else:
            (expected, _), c, members, beta = best
            m = min(self.batch_size, members.size)
            w = _weights(prob_right[members], beta)
            take, pi_all = systematic_pps(w, m, ctx.rng)
            chosen, pi = members[take], pi_all[take]
        rows = open_rows[chosen]
        order = np.argsort(rows)
        rows, chosen = rows[order], chosen[order]
        cls = st.classes[c]
        mean_conf = float(conf[chosen].mean())
        meta = {"space": ctx.space}
        if pi is not None:
            pi = pi[order]
            meta["sample"] = {"stratum": c, "population": int(members.size), "pred": [c] * len(rows), "space": ctx.space,
                              "conf": [round(float(v), 6) for v in conf[chosen]],
                              "pi": [float(v) for v in pi], "tilt": float(beta)}
            how = ("uniformly" if beta == 0 else f"with probability ~ P(right)^{beta:g}" if beta > 0
                   else f"with probability ~ (1 - P(right))^{-beta:g}, towards likely errors")
            reason = (f"{cls!r} holds the most expected errors ({expected:.0f} in {members.size:,} images); drawn "
                      f"{how} so that >= {target:.0%} are expected right, the draw also measures its accuracy")
            desc = (f"{len(rows)} of the {members.size:,} images propagation labels {cls!r} "
                    f"(mean confidence here {mean_conf:.2f}), drawn at random")
        else:
            reason = f"no class can be drawn at {target:.0%} expected precision: the most confident images of {cls!r}"
            desc = f"the {len(rows)} images propagation labels {cls!r} most surely (mean confidence {mean_conf:.2f})"
        if force is not None:
            reason = (f"spot check: the accuracy estimate is less precise than ±{self.spot_target:.0%}; a uniform "
                      f"draw of {cls!r} narrows it most")
        return Question(new_question_id(), st.name, "spot" if force is not None else "review", rows.tolist(),
                        rows.tolist(), cls, mean_conf, description=desc, reason=reason, meta=meta)


#: Exponents tried by :func:`tilt`, smallest first (0 = uniform).
TILTS = (0.0, 0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 32.0)


def _weights(g: np.ndarray, beta: float) -> np.ndarray:
    """Draw weights: ``g**beta`` (towards likely-right images) or ``(1-g)**-beta`` for ``beta < 0``."""
    g = np.asarray(g, dtype=np.float64)
    return g**beta if beta >= 0 else np.clip(1.0 - g, 1e-9, 1.0) ** (-beta)


def doubt_tilt(g: np.ndarray, target: float) -> float:
    """Largest exponent b of :data:`TILTS` for which a draw ~ ``(1-g)**b`` is still ``target`` precise.

    Leaning the draw towards the images most likely wrong finds the most errors per
    batch while the batch still gets named rather than split (0 = uniform).
    """
    g = np.asarray(g, dtype=np.float64)
    best = 0.0
    for b in TILTS[1:]:
        w = _weights(g, -b)
        if (w * g).sum() / w.sum() >= target:
            best = b
        else:
            break
    return best


def tilt(g: np.ndarray, target: float) -> float | None:
    """Smallest exponent b of :data:`TILTS` for which a draw with probability ~ ``g**b`` is ``target`` precise.

    The expected precision of one draw is ``sum(g**(b+1)) / sum(g**b)``.

    Parameters
    ----------
    g : ndarray of shape (n,)
        Estimated probability that each row's label is right.
    target : float

    Returns
    -------
    float or None
        None if no exponent reaches ``target``.
    """
    g = np.asarray(g, dtype=np.float64)
    for b in TILTS:
        w = g**b
        if (w * g).sum() / w.sum() >= target:
            return b
    return None


def systematic_pps(weights: np.ndarray, m: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Draw ``m`` of ``n`` units with inclusion probabilities proportional to ``weights``.

    Systematic probability-proportional-to-size sampling over a random order of
    the units (Madow 1949; Särndal, Swensson & Wretman 1992, *Model Assisted
    Survey Sampling*, §3.6): inclusion probabilities are exactly
    ``pi_i = m w_i / sum(w)``, units whose ``pi`` would exceed 1 are taken with
    certainty and the rest recomputed.

    Returns
    -------
    take : ndarray of int64
        Positions of the ``m`` units drawn.
    pi : ndarray of shape (n,), float64
        Inclusion probability of every unit.
    """
    w = np.asarray(weights, dtype=np.float64)
    n = w.size
    m = int(min(m, n))
    pi = np.zeros(n)
    sure = np.zeros(n, bool)
    while True:
        rest = ~sure
        k = m - int(sure.sum())
        if k <= 0:
            break
        pi[rest] = k * w[rest] / w[rest].sum()
        over = rest & (pi >= 1.0)
        if not over.any():
            break
        sure |= over
    pi[sure] = 1.0
    take = list(np.flatnonzero(sure))
    rest = np.flatnonzero(~sure)
    k = m - len(take)
    if k > 0:
        order = rng.permutation(rest)
        cum = np.cumsum(pi[order])
        points = rng.random() + np.arange(k)
        take += list(order[np.minimum(np.searchsorted(cum, points, side="right"), order.size - 1)])
    take = np.unique(np.asarray(take, dtype=np.int64))
    return take, pi


def pure_enough(m: int, majority: float = SPLIT_SHARE, z: float = 1.645) -> float:
    """Smallest expected precision p of a batch of ``m`` images with ``p - z sqrt(p (1-p) / m) >= majority``.

    A batch whose share of its majority class falls under ``majority`` (80 %) is
    answered "split"; at this expected precision that happens with probability
    <= 5 % (one-sided normal bound, ``z = 1.645``) if errors are independent.

    Returns
    -------
    float in [majority, 1]
    """
    grid = np.linspace(majority, 1.0, 2001)
    ok = grid - z * np.sqrt(grid * (1 - grid) / max(m, 1)) >= majority
    return float(grid[np.argmax(ok)]) if ok.any() else 1.0


def make_policy(policy=None) -> QuestionPolicy:
    """``None`` -> :class:`DefaultPolicy`; an instance is returned as is.

    Raises
    ------
    ParameterError
        For anything else.
    """
    if policy is None:
        return DefaultPolicy()
    if isinstance(policy, QuestionPolicy):
        return policy
    raise ParameterError(f"policy must be a QuestionPolicy instance or None; got {type(policy).__name__}")
