"""How accurate are the labels now? An estimate with an interval, without ground truth.

Every review batch is a probability sample of the images without an answer
(each drawn with a known inclusion probability ``pi``, see
:func:`descluster.labelling.questions.systematic_pps`), so each answered batch
tells, for each shown image, the model's confidence in its label at that time
and whether the label was right. The estimate of the accuracy over all images is

    (given + sum of group shares + sum over unanswered rows of g(confidence)) / n,

where answered images count as right (the team's answer is the reference; a
member of a named group that was not shown counts with the share of the shown
images that had the name), and ``g`` maps the propagated confidence to the
probability that the label is right: Platt scaling (a logistic curve in the
logit of the confidence, Platt 1999) fitted on the sampled images, each
weighted by the inverse of its inclusion probability (Horvitz & Thompson 1952),
so the sample stands for all unanswered images. Two parameters extrapolate
smoothly to confidences no batch covered (an isotonic map, tried first, does
not: it clamps to the lowest sampled value), and the same map tells the question
policy how pure a batch will be. Only batches drawn under the task's current
space count (a confidence is only comparable within one model). The sum over
the unanswered rows is taken on a histogram of their confidences.

The interval is a percentile bootstrap over answered batches (Efron & Tibshirani
1993, ch. 13), the batch being the sampling unit.
"""

from __future__ import annotations

import numpy as np

#: Histogram bins of the unanswered rows' confidences (the sum over rows is taken per bin).
_BINS = 200

__all__ = ["estimate_accuracy", "AccuracyEstimate", "calibration_map"]



class AccuracyEstimate(dict):
    """``estimate`` (float or None), ``low``, ``high`` (95 % interval), ``n_checked`` (sampled images),
    ``n_batches``, ``method`` (str)."""


def current_samples(state, space: str | None = None) -> list[dict]:
    """Answered sampled batches whose confidences came from ``space`` (all when None).

    A confidence means something only for the model that gave it: after the task's
    space changes, batches drawn under the old space no longer calibrate the new
    model's confidences, so they are left out (they still count as answered images).
    """
    return [s for s in state.samples if s["conf"] and (space is None or s.get("space") == space)]


def _logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(np.asarray(p, np.float64), 1e-4, 1 - 1e-4)
    return np.log(p / (1 - p))


def platt(conf: np.ndarray, correct: np.ndarray, weight: np.ndarray) -> tuple[float, float]:
    """Weighted Platt scaling: ``P(right) = 1 / (1 + exp(-(a logit(conf) + b)))``.

    Maximum likelihood with Platt's regularised targets ``(N+ + 1) / (N+ + 2)`` and
    ``1 / (N- + 2)`` (Platt 1999, "Probabilistic outputs for support vector
    machines", §2.1), ``N+``/``N-`` the weighted counts of right/wrong labels, so a
    handful of samples, or samples that are all right, give a finite fit.

    Returns
    -------
    (a, b) : floats
    """
    from scipy.optimize import minimize

    x = _logit(conf)
    w = np.asarray(weight, np.float64)
    w = w / w.mean()
    y = np.asarray(correct, np.float64)
    n_pos, n_neg = float((w * y).sum()), float((w * (1 - y)).sum())
    t = np.where(y > 0.5, (n_pos + 1) / (n_pos + 2), 1 / (n_neg + 2))

    def loss(ab):
        z = ab[0] * x + ab[1]
        return float(np.sum(w * (np.logaddexp(0, z) - t * z)))

    def grad(ab):
        z = ab[0] * x + ab[1]
        r = w * (1 / (1 + np.exp(-z)) - t)
        return np.array([np.sum(r * x), np.sum(r)])

    res = minimize(loss, np.array([1.0, 0.0]), jac=grad, method="L-BFGS-B")
    return float(res.x[0]), float(res.x[1])


def _calibrate(samples: list[dict]):
    c = np.concatenate([np.asarray(x["conf"], np.float64) for x in samples])
    y = np.concatenate([np.asarray(x["correct"], np.float64) for x in samples])
    w = np.concatenate([1.0 / np.asarray(x["pi"], np.float64) for x in samples])
    a, b = platt(c, y, w)
    return lambda conf: 1.0 / (1.0 + np.exp(-(a * _logit(conf) + b)))


def calibration_map(state, space: str | None = None):
    """Platt map confidence -> probability of a right label from the answered batches of ``space``, or None.

    Returns
    -------
    callable or None
        ``g(conf ndarray) -> ndarray`` in (0, 1); None before any answered batch.
    """
    samples = current_samples(state, space)
    return _calibrate(samples) if samples else None


def estimate_accuracy(state, confidence: np.ndarray | None, n_boot: int = 200, random_state: int = 0,
                      level: float = 0.95, space: str | None = None) -> AccuracyEstimate:
    """Estimated share of correct labels over all rows, with a bootstrap interval.

    Parameters
    ----------
    state : TaskState
        Its ``samples``, ``label``, ``source`` and ``group_share``.
    confidence : ndarray of shape (n_samples,) or None
        Current propagated confidence of every row (None: no model yet).
    n_boot : int, default 200
        Bootstrap replicates.
    random_state : int
    level : float, default 0.95
    space : str, optional
        Space of ``confidence``: only batches drawn under it calibrate (:func:`current_samples`).

    Returns
    -------
    AccuracyEstimate
        ``estimate`` is None before any sampled batch was answered (``low``/``high`` are then
        the trivial bounds: the answered share and 1).
    """
    n = state.n_samples
    answered = state.source == 1
    group = state.source == 2
    base = float(answered.sum() + state.group_share[group].sum())
    open_rows = ~state.labelled
    n_open = int(open_rows.sum())
    samples = current_samples(state, space)
    if not samples or confidence is None:
        return AccuracyEstimate(estimate=None, low=base / n, high=(base + n_open) / n, n_checked=0, n_batches=0,
                                method="no answered review batch yet")
    if n_open == 0:
        return AccuracyEstimate(estimate=base / n, low=base / n, high=base / n, n_checked=0, n_batches=len(samples),
                                method="every image has an answer")
    counts, edges = np.histogram(np.clip(confidence[open_rows], 0, 1), bins=_BINS, range=(0.0, 1.0))
    sums = np.histogram(np.clip(confidence[open_rows], 0, 1), bins=edges, weights=confidence[open_rows])[0]
    centres = np.where(counts > 0, sums / np.maximum(counts, 1), 0.0)
    unreached = int((confidence[open_rows] <= 0).sum())

    def value(idx) -> float:
        g = _calibrate([samples[i] for i in idx])(centres)
        right = float((counts * g).sum()) - unreached * float(g[0])  # unreached rows have no label: wrong
        return (base + right) / n

    all_idx = np.arange(len(samples))
    est = value(all_idx)
    if n_boot <= 0:
        return AccuracyEstimate(estimate=float(est), low=float(est), high=float(est),
                                n_checked=int(sum(len(x["conf"]) for x in samples)), n_batches=len(samples),
                                method="Platt-calibrated confidence (no interval requested)")
    rng = np.random.default_rng(random_state)
    boots = np.array([value(rng.choice(all_idx, size=all_idx.size, replace=True)) for _ in range(n_boot)])
    alpha = (1.0 - level) / 2
    lo, hi = np.quantile(boots, [alpha, 1 - alpha])
    return AccuracyEstimate(estimate=float(est), low=float(min(lo, est)), high=float(max(hi, est)),
                            n_checked=int(sum(len(x["conf"]) for x in samples)), n_batches=len(samples),
                            method=f"Platt-calibrated confidence, {len(samples)} answered random batches "
                                   f"({sum(len(x['conf']) for x in samples):,} images); {int(level * 100)} % "
                                   "percentile bootstrap over batches")
