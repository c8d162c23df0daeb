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
logit of the confidence, Platt 1999) fitted on the sampled images. The fit is
not weighted by the inverse inclusion probabilities (Horvitz & Thompson 1952):
a batch is drawn by class and confidence only, the very variables the map is
conditional on, so the selection is ignorable for it (Pfeffermann 1993, "The
role of sampling weights when modeling survey data", Int. Stat. Rev. 61) and
the weights would only add variance; with the strongly tilted draws a mixed
class needs, a handful of low-probability images carried almost all the weight
(on the demo's colour attribute the weighted fit put a 75 %-right class at
20 %). The population side is exact: the map is averaged over every unanswered
image. Two parameters extrapolate
smoothly to confidences no batch covered (an isotonic map, tried first, does
not: it clamps to the lowest sampled value), and the same map tells the question
policy how pure a batch will be. Only batches drawn under the task's current
space count (a confidence is only comparable within one model).

The estimate is stratified by the propagated class of the unanswered rows,
each class calibrated on its own sampled images; its interval is the normal
approximation of a stratified estimate (see :func:`estimate_accuracy`). The
question policy spot-checks the class that shrinks the interval most while it
is wider than the team's target (:func:`spot_check_need`).
"""

from __future__ import annotations

import numpy as np


__all__ = ["estimate_accuracy", "AccuracyEstimate", "calibration_map"]



class AccuracyEstimate(dict):
    """``estimate`` (float or None), ``low``, ``high`` (95 % interval), ``n_checked`` (sampled images),
    ``n_batches``, ``half_width`` (sampling part of the interval), ``unchecked`` (classes no batch
    sampled), ``method`` (str)."""


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


def _platt_of(samples: list[dict]) -> tuple[float, float]:
    c = np.concatenate([np.asarray(x["conf"], np.float64) for x in samples])
    y = np.concatenate([np.asarray(x["correct"], np.float64) for x in samples])
    return platt(c, y, np.ones_like(c))  # unweighted: see the module docstring


class Calibration:
    """Per-class Platt maps from confidence to the probability of a right label.

    Each class is calibrated on its own sampled images (batches of that stratum,
    under the current space); a class without any uses its batches drawn under an
    earlier space, else the map pooled over the current space's batches (over all
    batches right after a space change); before any batch the confidence is taken
    at face value. A class counts as *checked* (``effective_ > 0``) only with
    batches under the current space, so the interval stays wide for the others.

    Parameters
    ----------
    state : TaskState
    space : str or None
        See :func:`current_samples`.

    Attributes
    ----------
    a_, b_ : ndarray of shape (n_classes,)
        Platt slope and intercept per class.
    checked_ : ndarray of shape (n_classes,), int64
        Sampled images per class.
    effective_ : ndarray of shape (n_classes,)
        Sampled images the class's map was fitted on (the fit is unweighted, see the
        module docstring); 0 for unchecked classes.
    n_batches_ : int
    fitted_ : bool
        False before any answered batch (identity map).
    """

    def __init__(self, state, space: str | None = None):
        samples = current_samples(state, space)
        older = [x for x in state.samples if x["conf"] and x not in samples]
        C = max(len(state.classes), 1)
        self.n_batches_ = len(samples)
        pool = samples or older
        self.fitted_ = bool(pool)
        a0, b0 = _platt_of(pool) if pool else (1.0, 0.0)
        self.a_ = np.full(C, a0)
        self.b_ = np.full(C, b0)
        self.checked_ = np.zeros(C, np.int64)
        self.effective_ = np.zeros(C)
        for c in range(C):
            own = [x for x in samples if int(x["stratum"]) == c]
            if own:
                self.a_[c], self.b_[c] = _platt_of(own)
                self.checked_[c] = sum(len(x["conf"]) for x in own)
                self.effective_[c] = float(self.checked_[c])
            else:  # not checked under this space: its batches under earlier spaces, if any, inform the map
                old = [x for x in older if int(x["stratum"]) == c]
                if old:
                    self.a_[c], self.b_[c] = _platt_of(old)
        self.n_checked_ = int(sum(len(x["conf"]) for x in samples))

    def prob_right(self, prediction: np.ndarray, confidence: np.ndarray) -> np.ndarray:
        """Probability that each propagated label is right, shape like ``confidence`` (0 where unreached)."""
        pred = np.asarray(prediction)
        conf = np.asarray(confidence, np.float64)
        if not self.fitted_:
            return np.where(pred >= 0, conf, 0.0)
        k = np.maximum(pred, 0)
        g = 1.0 / (1.0 + np.exp(-(self.a_[k] * _logit(conf) + self.b_[k])))
        return np.where(pred >= 0, g, 0.0)


def calibration_map(state, space: str | None = None) -> Calibration:
    """The :class:`Calibration` of ``state`` under ``space``."""
    return Calibration(state, space)


def strata(state, prediction: np.ndarray, confidence: np.ndarray, space: str | None = None,
           calibration: Calibration | None = None) -> list[dict]:
    """Per propagated class of the unanswered rows: size, estimated accuracy and how well it is checked.

    Parameters
    ----------
    state : TaskState
    prediction : ndarray of shape (n_samples,), int
        Propagated class of every row (-1 where no label reached it).
    confidence : ndarray of shape (n_samples,)
    space : str, optional
        See :func:`current_samples`.
    calibration : Calibration, optional
        Default ``Calibration(state, space)``.

    Returns
    -------
    list of dict
        ``stratum`` (class index, -1 = unreached), ``size`` (unanswered rows), ``accuracy``
        (mean calibrated probability of a right label; 0 for unreached rows), ``checked``
        (sampled images of the class under this space), ``effective`` (their effective
        number, see :class:`Calibration`; ``inf`` for unreached rows, which are surely wrong).
    """
    cal = calibration if calibration is not None else Calibration(state, space)
    open_rows = ~state.labelled
    pred = np.asarray(prediction)[open_rows]
    g = cal.prob_right(pred, np.asarray(confidence)[open_rows])
    C = cal.a_.size
    sizes = np.bincount(pred + 1, minlength=C + 1)
    sums = np.bincount(pred + 1, weights=g, minlength=C + 1)
    out = []
    if sizes[0]:
        out.append({"stratum": -1, "size": int(sizes[0]), "accuracy": 0.0, "checked": 0, "effective": np.inf})
    for c in np.flatnonzero(sizes[1:]):
        out.append({"stratum": int(c), "size": int(sizes[c + 1]), "accuracy": float(sums[c + 1] / sizes[c + 1]),
                    "checked": int(cal.checked_[c]), "effective": float(cal.effective_[c])})
    return out


def estimate_accuracy(state, confidence: np.ndarray | None, prediction: np.ndarray | None = None,
                      level: float = 0.95, space: str | None = None,
                      calibration: Calibration | None = None) -> AccuracyEstimate:
    """Estimated share of correct labels over all rows, with an interval.

    Stratified by the propagated class of the unanswered rows (:func:`strata`):
    each class's accuracy comes from the calibration fitted on that class's own
    sampled images (the pooled one where it has none). The interval is the
    normal approximation of a stratified estimate, ``z sqrt(sum_c (N_c/n)^2
    p_c (1 - p_c) / m_c)`` with ``m_c`` the effective number of sampled images
    of class c (Cochran 1977, *Sampling Techniques*, §5.3), widened by the
    whole possible range of every class that no batch has sampled yet (its
    accuracy could be anything).

    Parameters
    ----------
    state : TaskState
        Its ``samples``, ``label``, ``source`` and ``group_share``.
    confidence : ndarray of shape (n_samples,) or None
        Current propagated confidence of every row (None: no model yet).
    prediction : ndarray of shape (n_samples,), optional
        Current propagated class of every row (-1 unreached); default one stratum.
    level : float, default 0.95
    space : str, optional
        Space of ``confidence``: only batches drawn under it calibrate (:func:`current_samples`).
    calibration : Calibration, optional
        Reused when given (it depends only on the answers and the space).

    Returns
    -------
    AccuracyEstimate
        ``estimate`` is None before any sampled batch was answered (``low``/``high`` are then
        the trivial bounds: the answered share and 1).
    """
    from scipy.stats import norm

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
    if prediction is None:
        prediction = np.where(confidence > 0, 0, -1)
        samples_one = [dict(x, stratum=0) for x in samples]
        state = _with_samples(state, samples_one)
    parts = strata(state, prediction, confidence, space, calibration if prediction is not None else None)
    right = sum(p["size"] * p["accuracy"] for p in parts)
    var = sum((p["size"] / n) ** 2 * p["accuracy"] * (1 - p["accuracy"]) / p["effective"]
              for p in parts if p["effective"] > 0 and np.isfinite(p["effective"]))
    z = float(norm.ppf(0.5 + level / 2))
    unchecked_low = sum(p["size"] * p["accuracy"] for p in parts if p["effective"] == 0) / n
    unchecked_high = sum(p["size"] * (1 - p["accuracy"]) for p in parts if p["effective"] == 0) / n
    est = (base + right) / n
    half = z * float(np.sqrt(var))
    low = max(base / n, est - half - unchecked_low)
    high = min((base + n_open) / n, est + half + unchecked_high)
    n_checked = int(sum(len(x["conf"]) for x in samples))
    unchecked = [p["stratum"] for p in parts if p["effective"] == 0]
    return AccuracyEstimate(estimate=float(est), low=float(low), high=float(high), n_checked=n_checked,
                            n_batches=len(samples), half_width=half, unchecked=unchecked,
                            method=(f"stratified by propagated class, Platt-calibrated confidence from {len(samples)} "
                                    f"answered random batches ({n_checked:,} images); {int(level * 100)} % normal "
                                    f"interval" + (f", widened for {len(unchecked)} class(es) not checked yet"
                                                   if unchecked else "")))


def _with_samples(state, samples):
    """A shallow stand-in of ``state`` with other samples (for the one-stratum estimate)."""
    import copy

    other = copy.copy(state)
    other.samples = samples
    return other


def spot_check_need(state, prediction: np.ndarray, confidence: np.ndarray, space: str | None,
                    target: float, batch: int, level: float = 0.95,
                    calibration: Calibration | None = None) -> int | None:
    """The class to spot-check next, or None when the estimate is precise enough.

    The estimate's half-width (:func:`estimate_accuracy`, unchecked classes counted
    with their whole range) is compared with ``target``; above it, the class whose
    next batch of ``batch`` images shrinks the variance most is returned: a class not
    checked yet (largest first), else the largest ``(N_c/n)^2 p_c (1-p_c)
    (1/m_c - 1/(m_c + batch))`` (Neyman's allocation, Cochran 1977, §5.5).
    """
    from scipy.stats import norm

    if not current_samples(state, space) and confidence is None:
        return None
    n = state.n_samples
    parts = [p for p in strata(state, prediction, confidence, space, calibration)
             if p["stratum"] >= 0 and p["size"] > 0]
    if not parts:
        return None
    z = float(norm.ppf(0.5 + level / 2))
    var = sum((p["size"] / n) ** 2 * p["accuracy"] * (1 - p["accuracy"]) / p["effective"]
              for p in parts if p["effective"] > 0)
    unchecked = [p for p in parts if p["effective"] == 0]
    width = z * np.sqrt(var) + sum(p["size"] for p in unchecked) / n
    if width <= target:
        return None
    if unchecked:  # the largest class no batch has sampled; classes under a quarter of the target
        big = max(unchecked, key=lambda p: p["size"])  # cannot move the estimate much: the variance decides
        if big["size"] / n > target / 4:
            return big["stratum"]
    gain = [((p["size"] / n) ** 2 * p["accuracy"] * (1 - p["accuracy"]) *
             (1 / p["effective"] - 1 / (p["effective"] + batch)), p["stratum"]) for p in parts if p["effective"] > 0]
    if not gain:
        return None
    best = max(gain)
    return best[1] if best[0] > 0 else None
