"""Pixel rules: facts of :mod:`.pixels` turned into flags with thresholds from the data.

:func:`quality_flags` applies :data:`QUALITY_RULES` to the pixel table of a
collection. Each rule states its threshold, with the numbers, and how many
images it flags (``QualityVerdict.thresholds``, printed in the report and in
``manifest.json``).

How a threshold is set
----------------------
A relative rule fires when the value is in the suspicious tail of *this*
collection -- robust z-score beyond 3.5 (Iglewicz & Hoaglin 1993, median and
MAD, see :mod:`.thresholds`) -- **and** past an absolute anchor with a physical
meaning, so that a tight distribution does not flag harmless deviations and a
collection that is dark all over is not flagged wholesale:

``over-exposed``   more than half of the *object's* pixels clipped (all channels
                   >= 250: their detail is lost), centre prior of
                   :mod:`.pixels`, **and** even the darkest tones the exposure kept
                   (5th percentile of the unclipped pixels' luma) lighter than middle
                   grey (Zone V: 18% reflectance, L* 50, luma 118): an over-exposed
                   frame lifts its shadows, while a white-background studio shot keeps
                   the car's tyres, glass and shade dark however much backdrop is clipped;
``dark``           the object is hidden: even the brightest 5% of the object is
                   darker than Zone II of Adams' zone system (2.25% reflectance,
                   three stops under middle grey, CIE L* 16.5, luma 42: "first
                   suggestion of texture"; A. Adams, *The Negative*, 1981). A dark
                   (night) frame whose object shows lamps, paint or reflections is
                   not flagged; darkness itself is reported as a property;
``blurred``        the blur effect (Crété-Roffet et al. 2007, :mod:`.pixels`): the image
                   compared with a re-blurred copy of itself, so blur is measured
                   relative to the image's own detail, not to other images (a smooth
                   truck panel or a studio backdrop is not "blurred"); in the
                   collection's high tail **and** at least 0.5 (a further 11-px blur
                   leaves more than half of the image's neighbour differences in
                   place: more of its detail is already gone than kept);
``low-information`` the object's luminance entropy **and** the whole frame's under 4 bits
                   (fewer than 16 equally used grey levels: half the bits of an 8-bit
                   image), in the low tail: a flat frame (fog, sky, lens cap), not a
                   vehicle whose centre is one plain panel of paint;
``greyscale``      a true grey-scale frame: channels equal over the whole frame
                   (95th percentile of ``max - min`` <= 2 levels: a time stamp may colour 5%); a colourless car
                   on a colourful background is not one;
``unusual-size``   a side under 16 px or an aspect outside [1/4, 4];
``unreadable``     the file cannot be decoded;
``no-vehicle``     advisory (:class:`~.vehicle.LowVehicleEvidence` on image shares).

A rule that would flag more than ``max_share`` (default 10%) of the readable
images flags none: its text says how many images it describes, as a property of
the collection (e.g. "grey-scale frames: 2,311 of 4,800 (48%) -- an infra-red
camera?"), because a rule that fires on a large part of the data describes the
data, not defects in it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from ..errors import ParameterError
from ..validation import check_float
from .duplicates import groups_from_keys, hamming_nearest
from .pixels import GREY_P95_SPREAD, collection_levels
from .thresholds import robust_z
from .vehicle import LowVehicleEvidence, vehicle_shares

__all__ = ["QUALITY_RULES", "QualityRule", "QualityVerdict", "no_vehicle_flags", "quality_flags", "unusual_size",
           "NIGHT_LUMA", "ZONE_II_LUMA", "MIDDLE_GREY_LUMA", "BLUR_ANCHOR", "LOW_INFORMATION_BITS"]

#: Luma of Zone II (2.25% reflectance, CIE L* 16.5): detail is hidden below it.
ZONE_II_LUMA = 42.0
#: Mean luma under which a frame is night-like (a property, reported, never a flag).
NIGHT_LUMA = 60.0
#: Luma of middle grey (Zone V: 18% reflectance, CIE L* 50, sRGB 118).
MIDDLE_GREY_LUMA = 118.0
#: Blur effect (Crété-Roffet et al. 2007) at or above which a re-blur keeps at least half of the image's detail.
BLUR_ANCHOR = 0.5
#: Entropy (bits) of 16 equally used grey levels: half the bits of an 8-bit image.
LOW_INFORMATION_BITS = 4.0


# --------------------------------------------------------------------------- rules
def no_vehicle_flags(imagenet: pd.DataFrame, paths: list[str],
                     evidence: LowVehicleEvidence | None = None) -> tuple[np.ndarray, np.ndarray, list[str], str]:
    """The image-level "no vehicle" rule (advisory): :class:`~.vehicle.LowVehicleEvidence` on image shares.

    Parameters
    ----------
    imagenet : DataFrame
        Columns ``path`` and ``vehicle_share`` (0..1), matched to ``paths`` by path.
    paths : list of str, length n
    evidence : LowVehicleEvidence or None
        Default ``LowVehicleEvidence()``.

    Returns
    -------
    flags : ndarray of shape (n,), bool
        False where the path is absent.
    share : ndarray of shape (n,), float64
        The vehicle share per path (NaN where absent).
    reasons : list of str, length n
        ``"no vehicle: 3%"`` where flagged, else "".
    description : str
        The rule in words with its numbers.

    Raises
    ------
    ParameterError
        If a column is missing.
    """
    vs = vehicle_shares(imagenet, paths)
    verdict = (evidence or LowVehicleEvidence()).decide(vs, "images")
    reasons = [f"no vehicle: {vs[i]:.0%}" if verdict.flags[i] else "" for i in range(len(vs))]
    return verdict.flags, vs, reasons, f"pixel:no-vehicle (advisory): {verdict.description}"


@dataclass
class QualityRule:
    """One pixel rule: fires when ``column`` is in the collection's suspicious tail and past ``anchor``.

    Parameters
    ----------
    name : str
        Short name used in ``flagged_by`` (``pixel:<name>``).
    column : str
        Column of the pixel table.
    direction : {"high", "low"}
        Which side is suspicious.
    reason : str
        Format string with ``{v}`` (value), e.g. ``"dark: object's brightest 5% at luma {v:.0f}/255"``.
    z : float or None, default 3.5
        Robust z cut within the collection; None = the anchor alone.
    log : bool, default False
        Robust z of ``log(value)`` (multiplicative quantities).
    anchor : float or None, default None
        Absolute bound that must also be passed (``>=`` for high, ``<=`` for low); None = none.
    anchor_text : str, default ""
        What the anchor means, printed with it.
    ratio : float or None, default None
        Effect-size bound: the value must also be beyond ``ratio × median`` of the
        collection (e.g. 0.25: under a quarter of the median); None = none.
    also : tuple of (column, direction, bound, text), default ()
        Further absolute conditions that must all hold as well (``>=`` bound for
        "high", ``<=`` for "low"), each with what it means, e.g.
        ``("unclipped_p5_luminance", "high", 118, "the kept tones are lighter than middle grey")``.
        A row where its value is NaN does not fire; a table without the column
        (written before it existed) skips the condition and says so.

    Raises
    ------
    ParameterError
        If ``direction`` is not "high" or "low", or neither ``z`` nor ``anchor`` is set.
    """

    name: str
    column: str
    direction: str
    reason: str
    z: float | None = 3.5
    log: bool = False
    anchor: float | None = None
    anchor_text: str = ""
    ratio: float | None = None
    also: tuple = ()

    def __post_init__(self):
        if self.direction not in ("high", "low"):
            raise ParameterError(f"direction={self.direction!r} must be 'high' or 'low'")
        for cond in self.also:
            if len(cond) != 4 or cond[1] not in ("high", "low"):
                raise ParameterError(f"rule {self.name!r}: each 'also' condition is (column, 'high'|'low', bound, "
                                     f"text); got {cond!r}")
        if self.z is None and self.anchor is None:
            raise ParameterError(f"rule {self.name!r} needs a robust-z cut, an anchor, or both")

    def apply(self, table: pd.DataFrame, readable: np.ndarray) -> tuple[np.ndarray, np.ndarray, float, str]:
        """Evaluate on ``table`` (n rows).

        Returns
        -------
        flags : ndarray of shape (n,), bool
        score : ndarray of shape (n,), float64
            Signed robust z (larger = more suspicious; 0 where not measured).
        cut : float
            The effective threshold in the column's units (NaN if nothing can fire).
        description : str
            The rule with its numbers and how many images it flags.
        """
        v = pd.to_numeric(table[self.column], errors="coerce").to_numpy(dtype=np.float64)
        ok = np.isfinite(v) & readable
        high = self.direction == "high"
        sign = 1.0 if high else -1.0
        t = np.log(np.maximum(v, 1e-9)) if self.log else v
        z, med_t, scale = robust_z(np.where(ok, t, np.nan))
        z = sign * z
        back = (lambda x: float(np.exp(x))) if self.log else float
        cuts = []
        if self.z is not None:
            cuts.append(back(med_t + sign * self.z * scale) if scale > 0 else (np.inf if high else -np.inf))
        if self.anchor is not None:
            cuts.append(float(self.anchor))
        if self.ratio is not None:
            cuts.append(self.ratio * back(med_t))
        cut = max(cuts) if high else min(cuts)
        # (no spread with a z cut: cut is +-inf, so the rule cannot fire)
        flags = self.fires(table, readable, cut)
        also_text = []
        for col, direction, bound, text in self.also:
            if col not in table:  # a table from before the column existed: the condition is not measured
                also_text.append(f"{col} not measured")
                continue
            also_text.append(f"{col} {'>=' if direction == 'high' else '<='} {bound:g} ({text})")
        cmp = ">=" if high else "<="
        parts = []
        if self.z is not None:
            parts.append(f"robust z{' of log' if self.log else ''} {'above +' if high else 'below -'}{self.z:g} "
                         f"(median {back(med_t):.4g})")
        if self.anchor is not None:
            parts.append(f"{self.anchor_text or 'anchor'} {self.anchor:g}")
        if self.ratio is not None:
            parts.append(f"{'over' if high else 'under'} {self.ratio:g} × the median")
        desc = f"{self.column} {cmp} {cut:.4g} ({' and '.join(parts)})"
        if also_text:
            desc += " and " + " and ".join(also_text)
        return flags, np.where(ok, z, 0.0), cut, desc

    def fires(self, table: pd.DataFrame, readable: np.ndarray, cut: float) -> np.ndarray:
        """Where the rule fires at threshold ``cut`` (column units; NaN or infinite never fires).

        The value must pass ``cut`` and every absolute condition of :attr:`also` whose
        column the table has. Used by :meth:`apply` with the cut it derives, and by a
        fitted model on new images with the study's cut
        (:class:`descluster.model.PixelReference`).

        Parameters
        ----------
        table : DataFrame (n rows) with the rule's column
        readable : ndarray of shape (n,), bool
        cut : float

        Returns
        -------
        ndarray of shape (n,), bool
        """
        values = pd.to_numeric(table[self.column], errors="coerce").to_numpy(dtype=np.float64)
        if not np.isfinite(cut):
            return np.zeros(len(values), dtype=bool)
        flags = np.isfinite(values) & readable & ((values >= cut) if self.direction == "high" else (values <= cut))
        for col, direction, bound, _ in self.also:
            if col in table:
                a = pd.to_numeric(table[col], errors="coerce").to_numpy(dtype=np.float64)
                with np.errstate(invalid="ignore"):
                    flags &= (a >= bound) if direction == "high" else (a <= bound)
        return flags


#: The default pixel rules; see the module notes for what each threshold means.
QUALITY_RULES: list[QualityRule] = [
    QualityRule("over-exposed", "object_saturated_share", "high", "over-exposed: {v:.0%} of the object clipped",
                anchor=0.5, anchor_text="more than half of the object clipped:",
                also=(("unclipped_p5_luminance", "high", MIDDLE_GREY_LUMA,
                       "even the darkest kept tones are lighter than middle grey: the exposure lifted the shadows"),)),
    QualityRule("dark", "object_p95_luminance", "low", "dark, object hidden: its brightest 5% at luma {v:.0f}/255",
                log=True, anchor=ZONE_II_LUMA, anchor_text="darker than Zone II, luma"),
    QualityRule("blurred", "blur_effect", "high", "blurred: blur effect {v:.2f}", anchor=BLUR_ANCHOR,
                anchor_text="a further blur keeps most of the image's own detail: blur effect"),
    QualityRule("low-information", "object_entropy", "low", "low information: entropy {v:.1f} bits",
                anchor=LOW_INFORMATION_BITS, anchor_text="under 16 equally used grey levels, bits",
                also=(("entropy", "low", LOW_INFORMATION_BITS, "the whole frame too"),)),
    QualityRule("greyscale", "channel_spread_p95", "low", "grey-scale frame (equal channels)", z=None,
                anchor=GREY_P95_SPREAD, anchor_text="channels equal over the frame: 95th percentile of max-min, levels"),
]


@dataclass
class QualityVerdict:
    """Pixel rules applied to a pixel table.

    Attributes
    ----------
    flags : DataFrame of shape (n, n_rules), bool
        One column per rule name (plus ``unreadable``, ``unusual-size``, ``no-vehicle``);
        all False for a rule held back by ``max_share``.
    scores : DataFrame of shape (n, n_rules), float64
        Signed robust z per relative rule (larger = more suspicious), columns ``pixel_<name>``.
    reasons : list of str, length n
        "; "-joined reasons of the rules that fired ("" if none).
    notes : list of str, length n
        Duplicate notes ("exact duplicate of <path>", "near duplicate of <path>"), not flags.
    exact_group : ndarray of shape (n,), int64
        Groups of byte-identical files (``-1`` = unique).
    thresholds : dict of str -> str
        Rule name -> the rule in words with its numbers and count; also
        ``"property:night"`` and ``"colour:levels"`` (properties, never flags).
    held_back : list of str
        Rules that would have flagged more than ``max_share`` of the images.
    cuts : dict of str -> float
        Relative rule name -> the threshold it applied, in its column's units (NaN: cannot
        fire); rules in ``held_back`` are left out. What a fitted model judges new images by.
    """

    flags: pd.DataFrame
    scores: pd.DataFrame
    reasons: list[str]
    notes: list[str]
    exact_group: np.ndarray
    thresholds: dict[str, str] = field(default_factory=dict)
    held_back: list[str] = field(default_factory=list)
    cuts: dict[str, float] = field(default_factory=dict)


def unusual_size(table: pd.DataFrame, readable: np.ndarray, min_side: int = 16,
                 max_aspect: float = 4.0) -> tuple[np.ndarray, list[str]]:
    """The size rule: a side under ``min_side`` px or a width/height outside ``[1/max_aspect, max_aspect]``.

    Parameters
    ----------
    table : DataFrame with ``width`` and ``height`` (n rows)
    readable : ndarray of shape (n,), bool
    min_side : int, default 16
    max_aspect : float, default 4.0

    Returns
    -------
    flags : ndarray of shape (n,), bool
    reasons : list of str, length n ("" where it does not fire)
    """
    w = pd.to_numeric(table["width"], errors="coerce").to_numpy(dtype=np.float64)
    h = pd.to_numeric(table["height"], errors="coerce").to_numpy(dtype=np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        asp = w / h
        odd = readable & ((np.fmin(w, h) < min_side) | (asp > max_aspect) | (asp < 1 / max_aspect))
    return odd, [f"unusual size {int(w[i])}×{int(h[i])}" if odd[i] else "" for i in range(len(odd))]


def quality_flags(
    table: pd.DataFrame,
    imagenet: pd.DataFrame | None = None,
    rules: list[QualityRule] | None = None,
    min_side: int = 16,
    max_aspect: float = 4.0,
    evidence: LowVehicleEvidence | None = None,
    near_duplicate_bits: int = 2,
    max_share: float = 0.10,
) -> QualityVerdict:
    """Apply the pixel rules (and the image-level "no vehicle" rule) to a pixel table.

    Parameters
    ----------
    table : DataFrame
        From :func:`~.pixels.image_quality_table` (n rows). Tables written before the
        object columns existed fall back to the frame columns
        (``saturated_share``, ``p95_luminance``, ``laplacian_var``).
    imagenet : DataFrame or None
        ``meta/imagenet.csv`` with columns ``path`` and ``vehicle_share`` (0..1);
        rows are matched by path. None skips the rule.
    rules : list of QualityRule, default :data:`QUALITY_RULES`
    min_side : int, default 16
        Images with a side shorter than this (pixels) are "unusual size".
    max_aspect : float, default 4.0
        Width/height above this or below its inverse is "unusual size".
    evidence : LowVehicleEvidence or None
        The "no vehicle" rule (default ``LowVehicleEvidence()``).
    near_duplicate_bits : int, default 2
        Largest phash Hamming distance (of 64 bits) for "near duplicate of".
    max_share : float, default 0.10
        A rule that would flag more than this share of the readable images flags
        none and says so (see the module notes); in (0, 1].

    Returns
    -------
    QualityVerdict

    Raises
    ------
    ParameterError
        Bad parameters, or ``imagenet`` lacking ``path``/``vehicle_share``.
    """
    if not (isinstance(min_side, int) and min_side >= 1):
        raise ParameterError(f"min_side={min_side!r} must be a positive integer (pixels)")
    if not max_aspect > 1:
        raise ParameterError(f"max_aspect={max_aspect!r} must be > 1")
    if not (isinstance(near_duplicate_bits, int) and 0 <= near_duplicate_bits <= 64):
        raise ParameterError(f"near_duplicate_bits={near_duplicate_bits!r} must be an integer in [0, 64]")
    max_share = check_float("max_share", max_share, 0.0, 1.0)
    rules = QUALITY_RULES if rules is None else rules
    table = _with_fallback_columns(table)
    n = len(table)
    paths = table["path"].astype(str).tolist()
    flags: dict[str, np.ndarray] = {}
    scores: dict[str, np.ndarray] = {}
    reason_cols: list[list[str]] = []
    thresholds: dict[str, str] = {}
    held_back: list[str] = []
    readable = table["readable"].to_numpy(dtype=bool)
    n_ok = int(readable.sum())

    flags["unreadable"] = ~readable
    reason_cols.append([f"unreadable: {e}" if not r else "" for r, e in zip(readable, table["error"].astype(str))])
    thresholds["unreadable"] = f"pixel:unreadable: the file cannot be read or decoded; {int((~readable).sum()):,} flagged"

    def settle(name: str, f: np.ndarray, text: str, what: str) -> np.ndarray:
        count = int(f.sum())
        if n_ok and count > max_share * n_ok:
            held_back.append(name)
            thresholds[name] = (f"pixel:{name}: {text}; would flag {count:,} of {n_ok:,} readable images "
                                f"({count / n_ok:.0%}), more than {max_share:.0%}: {what} is a property of this "
                                f"collection, not flagged")
            return np.zeros(n, dtype=bool)
        thresholds[name] = f"pixel:{name}: {text}; {count:,} of {n_ok:,} flagged"
        return f

    cuts: dict[str, float] = {}
    for rule in rules:
        f, sc, cut, d = rule.apply(table, readable)
        v = pd.to_numeric(table[rule.column], errors="coerce").to_numpy(dtype=np.float64)
        f = settle(rule.name, f, d, rule.name)
        if rule.name not in held_back:
            cuts[rule.name] = float(cut)
        flags[rule.name], scores[f"pixel_{rule.name}"] = f, sc
        reason_cols.append([rule.reason.format(v=v[i]) if f[i] else "" for i in range(n)])

    odd, size_reasons = unusual_size(table, readable, min_side, max_aspect)
    odd = settle("unusual-size", odd, f"a side < {min_side} px or aspect outside [1/{max_aspect:g}, {max_aspect:g}]",
                 "this size")
    flags["unusual-size"] = odd
    reason_cols.append([r if f else "" for f, r in zip(odd, size_reasons)])

    if imagenet is not None:
        nov, vs, nov_reasons, desc = no_vehicle_flags(imagenet, paths, evidence)
        flags["no-vehicle"] = nov
        scores["pixel_no-vehicle"] = np.where(np.isfinite(vs), 1.0 - vs, 0.0)
        reason_cols.append(nov_reasons)
        thresholds["no-vehicle"] = desc

    if "mean_luminance" in table:
        lum = pd.to_numeric(table["mean_luminance"], errors="coerce").to_numpy(dtype=np.float64)
        night = int((readable & (lum < NIGHT_LUMA)).sum())
        thresholds["property:night"] = (
            f"property: {night:,} of {n_ok:,} readable images are night-like (mean luma < {NIGHT_LUMA:g}); darkness is "
            f"flagged only where it hides the object (rule 'dark')")
    thresholds["colour:levels"] = collection_levels(table)[1]

    exact = groups_from_keys([s if s else None for s in table["sha1"].astype(str)])
    notes = [""] * n
    first: dict[int, int] = {}
    for i, g in enumerate(exact):
        if g >= 0:
            j = first.setdefault(int(g), i)
            if j != i:
                notes[i] = f"exact duplicate of {paths[j]}"
    phashes = [p if r else "" for p, r in zip(table["phash"].astype(str), readable)]
    nearest, dist = hamming_nearest(phashes)
    for i in range(n):
        if not notes[i] and nearest[i] >= 0 and dist[i] <= near_duplicate_bits and exact[i] < 0:
            if nearest[i] < i:  # the later one names the earlier one
                notes[i] = f"near duplicate of {paths[nearest[i]]} (phash distance {dist[i]} bits)"

    reasons = ["; ".join(r[i] for r in reason_cols if r[i]) for i in range(n)]
    return QualityVerdict(
        flags=pd.DataFrame(flags), scores=pd.DataFrame(scores), reasons=reasons, notes=notes, exact_group=exact,
        thresholds=thresholds, held_back=held_back, cuts=cuts,
    )


#: Older pixel tables (before the object columns): column -> the frame column that stands in for it.
_FALLBACK = {"object_saturated_share": "saturated_share", "object_p95_luminance": "p95_luminance",
             "sharpness": "laplacian_var", "channel_spread_p95": "channel_spread", "object_entropy": "entropy",
             "blur_effect": None}


def _with_fallback_columns(table: pd.DataFrame) -> pd.DataFrame:
    missing = [c for c in _FALLBACK if c not in table.columns]
    if not missing:
        return table
    table = table.copy()
    for c in missing:
        src = _FALLBACK[c]
        table[c] = table[src] if src is not None and src in table.columns else np.nan
    return table
