"""Pixel facts per image, and rules that turn them into flags with human reasons.

:func:`image_quality_table` reads every image once (through
:meth:`ImageSource.open`, so always 8-bit RGB), optionally in a pool of worker
processes, and returns one row per path in input order. An unreadable, empty or
truncated file gives ``readable=False`` and its ``error``; it is never fatal.

:func:`quality_flags` applies :data:`QUALITY_RULES` to that table. A rule fires
when the value is beyond an absolute floor *and* (for rules relative to the
data) its robust z-score within this case (Iglewicz & Hoaglin 1993, see
:mod:`.thresholds`) is past 3.5 in the suspicious direction, so a case that is
dark all over is not flagged wholesale, and a tight distribution does not flag
harmless small deviations.

Formulas
--------
- luminance: ITU-R BT.601 luma ``0.299 R + 0.587 G + 0.114 B`` (0..255).
- saturated share: share of pixels with all three channels >= 250 (near white).
- bright-blob share: largest 8-connected region of luminance >= 240
  (:func:`scipy.ndimage.label`) over the pixel count.
- sharpness: variance of the Laplacian (:func:`scipy.ndimage.laplace`) of the
  grey image resized to 128×128 (Pech-Pacheco et al. 2000, "Diatom autofocusing
  in brightfield microscopy: a comparative study", ICPR); the fixed size makes
  values comparable between image sizes.
- entropy: Shannon entropy of the 256-bin luminance histogram, bits (0..8).
- channel spread: mean over pixels of ``max(R,G,B) - min(R,G,B)``; a frame is
  grey-scale / infra-red when the spread is < 3 grey levels and < 3% of the mean
  luminance (spread scales with brightness, so a dark colour frame is not grey).
- hashes: sha1 of the file bytes; perceptual hash ``imagehash.phash`` (DCT hash,
  64 bits as 16 hex digits).
- dominant colour: each pixel of the central half (resized to 32×32) is given
  the nearest colour of :data:`PALETTE` in CIE L*a*b* (:func:`skimage.color.rgb2lab`);
  the most frequent name and its share.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from ..errors import ParameterError
from ..io.images import ImageSource, path_key as _key
from .duplicates import groups_from_keys, hamming_nearest
from .thresholds import robust_z

#: Named colours (sRGB) for describing clusters; nearest in L*a*b*.
PALETTE: dict[str, tuple[int, int, int]] = {
    "white": (240, 240, 240),
    "silver": (185, 185, 190),
    "grey": (120, 120, 125),
    "black": (25, 25, 28),
    "red": (180, 30, 35),
    "orange": (230, 120, 30),
    "yellow": (230, 200, 40),
    "green": (40, 130, 60),
    "blue": (30, 70, 170),
    "brown": (110, 75, 45),
    "beige": (215, 195, 160),
}

LAPLACIAN_SIZE = 128
#: Grey-scale / infra-red: channel spread below this many grey levels ...
GREY_SPREAD = 3.0
#: ... and below this share of the mean luminance (a darkened colour image has a small spread too).
GREY_CHROMA = 0.03
QUALITY_COLUMNS = [
    "path", "readable", "error", "width", "height", "aspect", "mean_luminance", "p5_luminance",
    "p95_luminance", "saturated_share", "bright_blob_share", "laplacian_var", "entropy", "channel_spread",
    "greyscale", "sha1", "phash", "colour", "colour_share",
]


def _palette_lab() -> np.ndarray:
    from skimage.color import rgb2lab

    rgb = np.array(list(PALETTE.values()), dtype=np.float64)[None] / 255.0
    return rgb2lab(rgb)[0]


_PALETTE_LAB: np.ndarray | None = None


def image_facts(image) -> dict:
    """Pixel facts of one decoded image.

    Parameters
    ----------
    image : PIL.Image.Image
        8-bit RGB (as returned by :meth:`ImageSource.open`).

    Returns
    -------
    dict
        Keys ``width``, ``height`` (pixels), ``aspect`` (width / height),
        ``mean_luminance``, ``p5_luminance``, ``p95_luminance`` (0..255),
        ``saturated_share``, ``bright_blob_share`` (0..1), ``laplacian_var``
        (grey levels², at 128×128), ``entropy`` (bits), ``channel_spread``
        (grey levels), ``greyscale`` (bool: spread < 3 and < 3% of the mean luminance), ``phash`` (str), ``colour`` (str)
        and ``colour_share`` (0..1). See the module notes for the formulas.
    """
    global _PALETTE_LAB
    import imagehash
    from PIL import Image
    from scipy import ndimage
    from skimage.color import rgb2lab

    w, h = image.size
    work = image
    if max(w, h) > 512:  # statistics on a bounded copy (large images are rare and slow)
        work = image.copy()
        work.thumbnail((512, 512), Image.Resampling.BILINEAR)
    a = np.asarray(work, dtype=np.uint8)
    r, gch, b = a[..., 0], a[..., 1], a[..., 2]
    cmax = np.maximum(np.maximum(r, gch), b)
    cmin = np.minimum(np.minimum(r, gch), b)
    lum = a.astype(np.float32) @ np.array([0.299, 0.587, 0.114], dtype=np.float32)
    p5, p95 = np.percentile(lum, [5, 95])
    labels, nlab = ndimage.label(lum >= 240, structure=np.ones((3, 3)))
    blob = float(np.bincount(labels.ravel())[1:].max()) / lum.size if nlab else 0.0
    grey = Image.fromarray(np.clip(np.rint(lum), 0, 255).astype(np.uint8), mode="L")
    g = np.asarray(grey.resize((LAPLACIAN_SIZE, LAPLACIAN_SIZE), Image.Resampling.BILINEAR), dtype=np.float64)
    hist = np.bincount(np.asarray(grey).ravel(), minlength=256) / lum.size
    hist = hist[hist > 0]
    spread = float(cmax.mean() - cmin.mean())
    ch, cw = a.shape[0], a.shape[1]
    centre = work.crop((cw // 4, ch // 4, max(cw // 4 + 1, 3 * cw // 4), max(ch // 4 + 1, 3 * ch // 4)))
    lab = rgb2lab(np.asarray(centre.resize((32, 32), Image.Resampling.BILINEAR), dtype=np.float64) / 255.0).reshape(-1, 3)
    if _PALETTE_LAB is None:
        _PALETTE_LAB = _palette_lab()
    nearest = np.argmin(((lab[:, None, :] - _PALETTE_LAB[None]) ** 2).sum(-1), axis=1)
    counts = np.bincount(nearest, minlength=len(PALETTE))
    return {
        "width": int(w),
        "height": int(h),
        "aspect": float(w / h),
        "mean_luminance": float(lum.mean()),
        "p5_luminance": float(p5),
        "p95_luminance": float(p95),
        "saturated_share": float(np.count_nonzero(cmin >= 250)) / cmin.size,
        "bright_blob_share": blob,
        "laplacian_var": float(ndimage.laplace(g).var()),
        "entropy": max(0.0, float(-(hist * np.log2(hist)).sum())),
        "channel_spread": spread,
        "greyscale": bool(spread < GREY_SPREAD and spread < GREY_CHROMA * float(lum.mean())),
        "phash": str(imagehash.phash(image)),
        "colour": list(PALETTE)[int(counts.argmax())],
        "colour_share": float(counts.max() / counts.sum()),
    }


def _short_error(exc: Exception, path: str) -> str:
    msg = str(exc)
    if msg.startswith(f"{path}: "):
        msg = msg[len(path) + 2 :]
    return msg[:200]


def _row(source: ImageSource, path: str) -> dict:
    row: dict = {"path": path, "readable": False, "error": "", "sha1": ""}
    try:
        data = source.read_bytes(path)
        row["sha1"] = hashlib.sha1(data).hexdigest()
        row.update(image_facts(source.open(path)))
        row["readable"] = True
    except Exception as exc:  # unreadable files are facts, not failures
        row["error"] = _short_error(exc, path)
    return row


_WORKER_SOURCE: ImageSource | None = None


def _init_worker(source: ImageSource) -> None:
    global _WORKER_SOURCE
    _WORKER_SOURCE = source


def _worker_row(path: str) -> dict:
    return _row(_WORKER_SOURCE, path)  # type: ignore[arg-type]


def image_quality_table(source: ImageSource, paths: list[str], progress: bool = True, n_jobs: int = 2, chunksize: int = 64) -> pd.DataFrame:
    """Pixel facts of every image, one row per path in input order.

    Parameters
    ----------
    source : ImageSource
        Folder or zip holding the images.
    paths : list of str, length n
        Case paths (as in ``images_paths.csv``).
    progress : bool, default True
        Show a tqdm progress bar.
    n_jobs : int, default 2
        Worker processes (1 = in this process).
    chunksize : int, default 64
        Paths per task sent to a worker.

    Returns
    -------
    DataFrame of shape (n, 19)
        Columns :data:`QUALITY_COLUMNS`: ``path``, ``readable`` (bool), ``error``
        (str, "" when readable), ``width``, ``height`` (int pixels, NaN when
        unreadable), ``aspect``, ``mean_luminance``, ``p5_luminance``,
        ``p95_luminance``, ``saturated_share``, ``bright_blob_share``,
        ``laplacian_var``, ``entropy``, ``channel_spread``, ``greyscale``,
        ``sha1``, ``phash``, ``colour``, ``colour_share`` (see :func:`image_facts`).

    Raises
    ------
    ParameterError
        If ``n_jobs`` or ``chunksize`` is not a positive integer.
    """
    for name, v in (("n_jobs", n_jobs), ("chunksize", chunksize)):
        if not isinstance(v, int) or v < 1:
            raise ParameterError(f"{name}={v!r} must be a positive integer")
    paths = list(paths)
    if n_jobs == 1 or len(paths) < 4 * chunksize:
        rows = (_row(source, p) for p in paths)
        executor = None
    else:
        import multiprocessing as mp
        from concurrent.futures import ProcessPoolExecutor

        ctx = mp.get_context("spawn")  # no fork of a process that may hold threads (torch, faiss)
        executor = ProcessPoolExecutor(max_workers=n_jobs, mp_context=ctx, initializer=_init_worker, initargs=(source,))
        rows = executor.map(_worker_row, paths, chunksize=chunksize)
    if progress:
        from tqdm.auto import tqdm

        rows = tqdm(rows, total=len(paths), desc="image quality", unit="img")
    try:
        table = pd.DataFrame(list(rows))
    finally:
        if executor is not None:
            executor.shutdown()
    table = table.reindex(columns=QUALITY_COLUMNS)
    table["readable"] = table["readable"].astype(bool)
    table["greyscale"] = table["greyscale"].fillna(False).astype(bool)
    for col in ("error", "sha1", "phash", "colour"):
        table[col] = table[col].fillna("").astype(str)
    return table


# --------------------------------------------------------------------------- rules
def no_vehicle_flags(imagenet: pd.DataFrame, paths: list[str], min_vehicle_share: float = 0.1) -> tuple[np.ndarray, np.ndarray, str]:
    """The "no vehicle" rule from ``meta/imagenet.csv``.

    Parameters
    ----------
    imagenet : DataFrame
        Columns ``path`` and ``vehicle_share`` (ImageNet probability mass on
        vehicle classes, 0..1); matched to ``paths`` by path (either separator).
    paths : list of str, length n
    min_vehicle_share : float, default 0.1

    Returns
    -------
    flags : ndarray of shape (n,), bool
        ``vehicle_share < min_vehicle_share`` (False where the path is absent).
    share : ndarray of shape (n,), float64
        The vehicle share per path (NaN where absent).
    description : str
        The rule in words.

    Raises
    ------
    ParameterError
        If a column is missing or ``min_vehicle_share`` is outside [0, 1].
    """
    if not 0 <= min_vehicle_share <= 1:
        raise ParameterError(f"min_vehicle_share={min_vehicle_share!r} must be in [0, 1]")
    if not {"path", "vehicle_share"} <= set(imagenet.columns):
        raise ParameterError(f"imagenet table needs columns path and vehicle_share; has {list(imagenet.columns)}")
    sub = imagenet.drop_duplicates("path")
    share = pd.Series(pd.to_numeric(sub["vehicle_share"], errors="coerce").to_numpy(), index=[_key(p) for p in sub["path"].astype(str)])
    vs = share.reindex([_key(p) for p in paths]).to_numpy(dtype=np.float64)
    flags = np.isfinite(vs) & (vs < min_vehicle_share)
    desc = f"pixel:no-vehicle: ImageNet vehicle-class probability < {min_vehicle_share:.0%}; {int(flags.sum()):,} flagged"
    return flags, vs, desc


@dataclass
class QualityRule:
    """One pixel rule: fires when ``column`` is past ``floor`` and its robust z past ``z``.

    Parameters
    ----------
    name : str
        Short name used in ``flagged_by`` (``pixel:<name>``).
    column : str
        Column of the quality table.
    direction : {"high", "low"}
        Which side is suspicious.
    floor : float
        Absolute limit the value must also pass (``>= floor`` for high, ``<= floor`` for low).
    reason : str
        Format string with ``{v}`` (value) and ``{median}``, e.g. ``"dark: mean luminance {v:.0f}/255"``.
    z : float or None, default 3.5
        Robust z cut within the case; None = absolute floor only.
    log : bool, default False
        Robust z of ``log(value)`` (for multiplicative quantities).
    describe : str or None
        The rule in words, replacing the generated description.
    """

    name: str
    column: str
    direction: str
    floor: float
    reason: str
    z: float | None = 3.5
    log: bool = False
    describe: str | None = None

    def __post_init__(self):
        if self.direction not in ("high", "low"):
            raise ParameterError(f"direction={self.direction!r} must be 'high' or 'low'")

    def apply(self, table: pd.DataFrame) -> tuple[np.ndarray, np.ndarray, list[str], str]:
        """Evaluate on ``table`` (n rows) -> (flags (n,) bool, score (n,) float64, reasons, description)."""
        v = pd.to_numeric(table[self.column], errors="coerce").to_numpy(dtype=np.float64)
        ok = np.isfinite(v)
        sign = 1.0 if self.direction == "high" else -1.0
        zv = np.log(np.maximum(v, 1e-6)) if self.log else v
        z, med_t, _ = robust_z(np.where(ok, zv, np.nan))
        z = sign * z
        median = float(np.exp(med_t)) if self.log else med_t
        beyond = (v >= self.floor) if self.direction == "high" else (v <= self.floor)
        flags = ok & beyond & ((z > self.z) if self.z is not None else True)
        reasons = [self.reason.format(v=v[i], median=median) if flags[i] else "" for i in range(v.size)]
        cmp = ">=" if self.direction == "high" else "<="
        desc = f"pixel:{self.name}: " + (self.describe or f"{self.column} {cmp} {self.floor:g}")
        if self.z is not None:
            desc += f" and robust z{' of log' if self.log else ''} {'above' if sign > 0 else 'below'} {'+' if sign > 0 else '-'}{self.z:g} within the case (median {median:.4g})"
        desc += f"; {int(flags.sum()):,} flagged"
        return flags, np.where(ok, z, 0.0), reasons, desc


#: The default pixel rules (name -> rule). Floors chosen so clean vehicle crops never reach them.
QUALITY_RULES: list[QualityRule] = [
    QualityRule("over-exposed", "saturated_share", "high", 0.15, "over-exposed: {v:.0%} saturated pixels"),
    QualityRule("dark", "mean_luminance", "low", 45.0, "dark: mean luminance {v:.0f}/255"),
    QualityRule("blurred", "laplacian_var", "low", 40.0, "blurred: Laplacian variance {v:.1f} (median {median:.0f})", log=True),
    QualityRule("low-information", "entropy", "low", 4.0, "low information: entropy {v:.1f} bits"),
    QualityRule("greyscale", "greyscale", "high", 0.5, "grey-scale/infra-red frame", z=None,
                describe=f"channel spread < {GREY_SPREAD:g} grey levels and < {GREY_CHROMA:.0%} of the mean luminance"),
]


@dataclass
class QualityVerdict:
    """Pixel rules applied to a quality table.

    Attributes
    ----------
    flags : DataFrame of shape (n, n_rules), bool
        One column per rule name (plus ``unreadable``, ``unusual-size``, ``no-vehicle``).
    scores : DataFrame of shape (n, n_rules), float64
        Signed robust z per relative rule (larger = more suspicious), columns ``pixel_<name>``.
    reasons : list of str, length n
        "; "-joined reasons of the rules that fired ("" if none).
    notes : list of str, length n
        Duplicate notes ("exact duplicate of <path>", "near duplicate of <path>"), not flags.
    exact_group : ndarray of shape (n,), int64
        Groups of byte-identical files (``-1`` = unique).
    thresholds : dict of str -> str
        Rule name -> the rule in words with its numbers.
    """

    flags: pd.DataFrame
    scores: pd.DataFrame
    reasons: list[str]
    notes: list[str]
    exact_group: np.ndarray
    thresholds: dict[str, str] = field(default_factory=dict)


def quality_flags(
    table: pd.DataFrame,
    imagenet: pd.DataFrame | None = None,
    rules: list[QualityRule] | None = None,
    min_side: int = 16,
    max_aspect: float = 4.0,
    min_vehicle_share: float = 0.1,
    near_duplicate_bits: int = 2,
) -> QualityVerdict:
    """Apply pixel rules (and the ImageNet "no vehicle" rule) to a quality table.

    Parameters
    ----------
    table : DataFrame
        From :func:`image_quality_table` (n rows).
    imagenet : DataFrame or None
        ``meta/imagenet.csv`` with columns ``path`` and ``vehicle_share`` (0..1);
        rows are matched by path. None skips the rule.
    rules : list of QualityRule, default :data:`QUALITY_RULES`
    min_side : int, default 16
        Images with a side shorter than this (pixels) are "unusual size".
    max_aspect : float, default 4.0
        Width/height above this or below its inverse is "unusual size".
    min_vehicle_share : float, default 0.1
        ImageNet probability mass on vehicle classes below which an image shows "no vehicle".
    near_duplicate_bits : int, default 2
        Largest phash Hamming distance (of 64 bits) for "near duplicate of".

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
    if not 0 <= min_vehicle_share <= 1:
        raise ParameterError(f"min_vehicle_share={min_vehicle_share!r} must be in [0, 1]")
    if not (isinstance(near_duplicate_bits, int) and 0 <= near_duplicate_bits <= 64):
        raise ParameterError(f"near_duplicate_bits={near_duplicate_bits!r} must be an integer in [0, 64]")
    rules = QUALITY_RULES if rules is None else rules
    n = len(table)
    paths = table["path"].astype(str).tolist()
    flags: dict[str, np.ndarray] = {}
    scores: dict[str, np.ndarray] = {}
    reason_cols: list[list[str]] = []
    thresholds: dict[str, str] = {}
    readable = table["readable"].to_numpy(dtype=bool)

    flags["unreadable"] = ~readable
    reason_cols.append([f"unreadable: {e}" if not r else "" for r, e in zip(readable, table["error"].astype(str))])
    thresholds["unreadable"] = f"pixel:unreadable: the file cannot be read or decoded; {int((~readable).sum()):,} flagged"

    for rule in rules:
        f, s, r, d = rule.apply(table)
        flags[rule.name], scores[f"pixel_{rule.name}"] = f, s
        reason_cols.append(r)
        thresholds[rule.name] = d

    w = pd.to_numeric(table["width"], errors="coerce").to_numpy(dtype=np.float64)
    h = pd.to_numeric(table["height"], errors="coerce").to_numpy(dtype=np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        asp = w / h
        odd = readable & ((np.fmin(w, h) < min_side) | (asp > max_aspect) | (asp < 1 / max_aspect))
    flags["unusual-size"] = odd
    reason_cols.append([f"unusual size {int(w[i])}×{int(h[i])}" if odd[i] else "" for i in range(n)])
    thresholds["unusual-size"] = (
        f"pixel:unusual-size: a side < {min_side} px or aspect outside [1/{max_aspect:g}, {max_aspect:g}]; {int(odd.sum()):,} flagged"
    )

    if imagenet is not None:
        nov, vs, desc = no_vehicle_flags(imagenet, paths, min_vehicle_share)
        flags["no-vehicle"] = nov
        scores["pixel_no-vehicle"] = np.where(np.isfinite(vs), 1.0 - vs, 0.0)
        reason_cols.append([f"no vehicle: {vs[i]:.0%}" if nov[i] else "" for i in range(n)])
        thresholds["no-vehicle"] = desc

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
        flags=pd.DataFrame(flags), scores=pd.DataFrame(scores), reasons=reasons, notes=notes, exact_group=exact, thresholds=thresholds
    )
