"""Colour names: the one palette behind every colour word descluster writes.

Names
-----
The 13 words people use when they label vehicle colours (:data:`COLOUR_NAMES`):
the 11 basic colour terms of Berlin & Kay (1969, *Basic Color Terms*, University
of California Press) -- white, black, grey, red, green, yellow, blue, brown,
orange, pink, purple -- plus silver and beige, the two car-paint names that are
not basic terms.

Reference values
----------------
The xkcd colour survey (R. Munroe 2010, "Color survey results",
https://blog.xkcd.com/2010/05/03/color-survey-results/, public domain): for each
name the mean sRGB colour that ~222,500 survey users called by that name, as
shipped in ``matplotlib.colors.XKCD_COLORS`` (the 30 entries used are copied into
:data:`SURVEY_HEX`, so that naming a colour does not import matplotlib; a test checks
them against matplotlib's). A chromatic name is represented by
the survey's ``"<name>"``, ``"light <name>"`` and ``"dark <name>"`` (a red car in
shade is still red); white, silver, grey and black are themselves levels of
lightness, so only the four plain entries are used for them (the survey's
"light grey" lies between silver and white). The survey's "dark pink" (L* 49,
as dark as its "red") is left out: pink is a light colour (light red, in Berlin &
Kay's and the ISCC-NBS descriptions), and with it the dull reds of a hazy camera
were called pink. :func:`prototypes` lists the 30 entries used.

Colour space and distance
-------------------------
CIELAB (D65, 2° observer; :func:`skimage.color.rgb2lab`) and the CIEDE2000
colour difference (CIE 142-2001; Sharma, Wu & Dalal 2005, "The CIEDE2000
color-difference formula", Color Res. Appl. 30(1); :func:`skimage.color.deltaE_ciede2000`)
with the parametric factor ``k_L = 2``: lightness differences count half, the
textile setting of CIE94 (CIE 116-1995) for surfaces seen under uneven light.
A colour is named by its nearest prototype. Pixels are named through a lookup
table over sRGB quantised to 32 levels per channel (at most 4 levels off). The table
(32,768 CIEDE2000 searches, about a second) ships with the package as
``palette_lut.npy``, written by :func:`compute_lut` (``python -m descluster.palette``);
a test checks that the shipped table equals a fresh :func:`compute_lut`. It is read
once per process.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import numpy as np

from .errors import ParameterError

#: The colour words, neutral first.
COLOUR_NAMES: tuple[str, ...] = (
    "white", "silver", "grey", "black", "red", "orange", "yellow", "green", "blue", "purple", "pink", "brown", "beige",
)
#: Names that carry no hue.
NEUTRAL_NAMES: frozenset[str] = frozenset({"white", "silver", "grey", "black"})
#: CIEDE2000 lightness weight (see module notes).
K_L = 2.0
#: Indices into :data:`COLOUR_NAMES`: black; white, silver and grey; the hue names (for :func:`name_from_shares`).
_BLACK = COLOUR_NAMES.index("black")
_NEUTRAL = [COLOUR_NAMES.index(n) for n in ("white", "silver", "grey")]
_HUES = [i for i, n in enumerate(COLOUR_NAMES) if n not in NEUTRAL_NAMES]
#: sRGB levels per channel of the naming lookup table.
LUT_LEVELS = 32


#: Survey entries left out (see module notes).
LEFT_OUT = frozenset({"dark pink"})
#: sRGB of the survey entries used, copied from ``matplotlib.colors.XKCD_COLORS`` (``"xkcd:<entry>"``).
SURVEY_HEX: dict[str, str] = {
    "white": "#ffffff", "silver": "#c5c9c7", "grey": "#929591", "black": "#000000",
    "red": "#e50000", "light red": "#ff474c", "dark red": "#840000",
    "orange": "#f97306", "light orange": "#fdaa48", "dark orange": "#c65102",
    "yellow": "#ffff14", "light yellow": "#fffe7a", "dark yellow": "#d5b60a",
    "green": "#15b01a", "light green": "#96f97b", "dark green": "#033500",
    "blue": "#0343df", "light blue": "#95d0fc", "dark blue": "#00035b",
    "purple": "#7e1e9c", "light purple": "#bf77f6", "dark purple": "#35063e",
    "pink": "#ff81c0", "light pink": "#ffd1df",
    "brown": "#653700", "light brown": "#ad8150", "dark brown": "#341c02",
    "beige": "#e6daa6", "light beige": "#fffeb6", "dark beige": "#ac9362",
}
#: The shipped naming lookup table (:func:`compute_lut`).
LUT_FILE = Path(__file__).with_name("palette_lut.npy")


def _survey_entries(name: str) -> list[str]:
    entries = [name] if name in NEUTRAL_NAMES else [name, f"light {name}", f"dark {name}"]
    return [e for e in entries if e not in LEFT_OUT]


@lru_cache(maxsize=1)
def prototypes() -> tuple[tuple[str, str, tuple[int, int, int]], ...]:
    """The reference colours: ``(colour name, survey entry, sRGB)`` per prototype.

    Returns
    -------
    tuple of (str, str, (int, int, int))
        E.g. ``("red", "dark red", (132, 0, 0))``; 4 neutral + 26 chromatic entries.
    """
    out = []
    for name in COLOUR_NAMES:
        for entry in _survey_entries(name):
            hex_ = SURVEY_HEX[entry].lstrip("#")
            out.append((name, entry, tuple(int(hex_[i:i + 2], 16) for i in (0, 2, 4))))
    return tuple(out)


def rgb_to_lab(rgb) -> np.ndarray:
    """CIELAB (D65) of 8-bit sRGB colours.

    :func:`skimage.color.rgb2lab` of ``rgb / 255`` (clipped to 0..255). A ``uint8`` array takes
    :func:`_lab_of_uint8`, the same operations with the sRGB linearisation looked up per level
    (the same values, bit for bit; ``tests/test_pixel_facts_reference.py``).

    Parameters
    ----------
    rgb : array-like of shape (..., 3), values 0..255

    Returns
    -------
    ndarray of shape (..., 3), float64
        ``L*`` in [0, 100], ``a*``, ``b*``.

    Raises
    ------
    ParameterError
        If the last axis does not have 3 channels.
    """
    a = np.asarray(rgb)
    if a.shape[-1:] != (3,):
        raise ParameterError(f"rgb must have 3 channels in its last axis; got shape {a.shape}")
    if a.dtype == np.uint8:
        return _lab_of_uint8(a)
    from skimage.color import rgb2lab

    return rgb2lab(np.clip(a.astype(np.float64), 0, 255) / 255.0)


@lru_cache(maxsize=1)
def _srgb_linear() -> np.ndarray:
    """Linear-light value of each 8-bit sRGB level (IEC 61966-2-1), computed as scikit-image's ``rgb2xyz`` does."""
    v = np.arange(256) / 255.0
    mask = v > 0.04045
    v[mask] = np.power((v[mask] + 0.055) / 1.055, 2.4)
    v[~mask] /= 12.92
    v.setflags(write=False)
    return v


def _lab_of_uint8(a: np.ndarray) -> np.ndarray:
    """:func:`skimage.color.rgb2lab` of ``a / 255`` for 8-bit pixels, its operations in its order (a test checks it).

    The sRGB linearisation is looked up per level (256 values) instead of computed per pixel; the
    matrix product, the white point and the CIELAB companding are scikit-image's.
    """
    from skimage.color import colorconv

    lin = _srgb_linear()[a]
    arr = lin @ colorconv.xyz_from_rgb.T.astype(np.float64)
    arr = arr / colorconv.xyz_tristimulus_values(illuminant="D65", observer="2", dtype=np.float64)
    mask = arr > 0.008856
    arr[mask] = np.cbrt(arr[mask])
    arr[~mask] = 7.787 * arr[~mask] + 16.0 / 116.0
    x, y, z = arr[..., 0], arr[..., 1], arr[..., 2]
    return np.stack([(116.0 * y) - 16.0, 500.0 * (x - y), 200.0 * (y - z)], axis=-1)


def nearest_name_index(lab: np.ndarray) -> np.ndarray:
    """Index into :data:`COLOUR_NAMES` of the nearest prototype (CIEDE2000, ``k_L = 2``).

    Parameters
    ----------
    lab : ndarray of shape (n, 3), float
        CIELAB colours.

    Returns
    -------
    ndarray of shape (n,), int64
    """
    from skimage.color import deltaE_ciede2000

    lab = np.asarray(lab, dtype=np.float64).reshape(-1, 3)
    protos = prototypes()
    ref = rgb_to_lab(np.array([p[2] for p in protos], dtype=np.float64))
    name_of = np.array([COLOUR_NAMES.index(p[0]) for p in protos], dtype=np.int64)
    d = deltaE_ciede2000(lab[:, None, :], ref[None, :, :], kL=K_L)
    return name_of[np.argmin(d, axis=1)]


def compute_lut() -> np.ndarray:
    """The naming lookup table: the name of the centre of every sRGB cell of :data:`LUT_LEVELS` levels a channel.

    Returns
    -------
    ndarray of shape (LUT_LEVELS, LUT_LEVELS, LUT_LEVELS), uint8
        Index into :data:`COLOUR_NAMES` (:func:`nearest_name_index` of the cell centre);
        indexed by ``(r * LUT_LEVELS) // 256`` and likewise for g and b.
    """
    step = 256 // LUT_LEVELS
    centres = np.arange(LUT_LEVELS) * step + (step - 1) / 2.0
    grid = np.stack(np.meshgrid(centres, centres, centres, indexing="ij"), axis=-1).reshape(-1, 3)
    return nearest_name_index(rgb_to_lab(grid)).astype(np.uint8).reshape(LUT_LEVELS, LUT_LEVELS, LUT_LEVELS)


@lru_cache(maxsize=1)
def _lut() -> np.ndarray:
    """The shipped table (:data:`LUT_FILE`), or :func:`compute_lut` when it is missing or of another shape."""
    shape = (LUT_LEVELS,) * 3
    try:
        table = np.load(LUT_FILE, allow_pickle=False)
    except OSError:
        table = None
    if table is None or table.shape != shape or table.dtype != np.uint8:
        table = compute_lut()
    table.setflags(write=False)
    return table


def pixel_name_index(rgb: np.ndarray) -> np.ndarray:
    """Colour-name index of every 8-bit sRGB pixel (lookup table, see module notes).

    Parameters
    ----------
    rgb : ndarray of shape (..., 3), uint8 (or integers 0..255)

    Returns
    -------
    ndarray of shape (...), uint8
        Index into :data:`COLOUR_NAMES`.
    """
    a = np.asarray(rgb)
    if a.shape[-1:] != (3,):
        raise ParameterError(f"rgb must have 3 channels in its last axis; got shape {a.shape}")
    q = ((a if a.dtype == np.uint8 else np.clip(a, 0, 255)).astype(np.intp) * LUT_LEVELS) // 256  # uint8: in range
    return _lut().ravel()[(q[..., 0] * LUT_LEVELS + q[..., 1]) * LUT_LEVELS + q[..., 2]]  # = _lut()[q0, q1, q2]


def colour_name(rgb) -> str:
    """Name of one sRGB colour (nearest prototype in CIEDE2000, ``k_L = 2``).

    Parameters
    ----------
    rgb : sequence of 3 numbers, 0..255

    Returns
    -------
    str
        One of :data:`COLOUR_NAMES`.
    """
    c = np.asarray(rgb, dtype=np.float64).reshape(1, 3)
    return COLOUR_NAMES[int(nearest_name_index(rgb_to_lab(c))[0])]


def weighted_quantile(values: np.ndarray, weights: np.ndarray, q: float) -> float:
    """Weighted ``q``-quantile: the smallest value whose cumulative weight reaches ``q`` of the total.

    Parameters
    ----------
    values, weights : ndarray of shape (n,), float
        Weights non-negative; when they sum to 0 the unweighted quantile is returned.
    q : float in [0, 1]

    Returns
    -------
    float
        NaN when ``values`` is empty.
    """
    order = np.argsort(values, kind="stable")
    v, w = values[order], weights[order]
    cw = np.cumsum(w)
    if v.size == 0:
        return float("nan")
    if cw[-1] <= 0:
        return float(np.quantile(v, q))
    return float(v[min(int(np.searchsorted(cw, q * cw[-1])), v.size - 1)])


#: Quantile of the object's lightness that names a neutral (white / silver / grey) object: its lit face.
LIT_QUANTILE = 0.95


def palette_shares(rgb: np.ndarray, weights: np.ndarray, index: np.ndarray | None = None) -> np.ndarray:
    """Weight share of every colour name among pixels (the object's palette).

    Parameters
    ----------
    rgb : ndarray of shape (n, 3), uint8
        Pixels (already corrected for the camera's levels, if any).
    weights : ndarray of shape (n,), float
        Non-negative weights (e.g. the object weights).
    index : ndarray of shape (n,), int, optional
        :func:`pixel_name_index` of ``rgb``, when the caller has it already.

    Returns
    -------
    ndarray of shape (len(COLOUR_NAMES),), float64
        Share of the weight named by each of :data:`COLOUR_NAMES` (sums to 1; all 0
        when the weights sum to 0).

    Raises
    ------
    ParameterError
        If ``weights`` and ``rgb`` disagree in length.
    """
    rgb = np.asarray(rgb).reshape(-1, 3)
    w = np.asarray(weights, dtype=np.float64).ravel()
    if w.size != rgb.shape[0]:
        raise ParameterError(f"weights has {w.size} entries but there are {rgb.shape[0]} pixels")
    total = float(w.sum())
    if total <= 0:
        return np.zeros(len(COLOUR_NAMES))
    idx = (pixel_name_index(rgb) if index is None else np.asarray(index)).astype(np.int64).ravel()
    return np.bincount(idx, weights=w, minlength=len(COLOUR_NAMES)) / total


def lit_lightness(rgb: np.ndarray, weights: np.ndarray, index: np.ndarray | None = None,
                  lightness: np.ndarray | None = None) -> float:
    """CIE L* of the lit face: the :data:`LIT_QUANTILE` weighted percentile of the non-black pixels' L*.

    Parameters
    ----------
    rgb : ndarray of shape (n, 3), uint8
    weights : ndarray of shape (n,), float
    index : ndarray of shape (n,), int, optional
        :func:`pixel_name_index` of ``rgb``, when the caller has it already.
    lightness : ndarray of shape (n,), float, optional
        L* of ``rgb`` (:func:`rgb_to_lab`), when the caller has it already.

    Returns
    -------
    float
        0..100; NaN when every pixel is named black or the weights sum to 0.
    """
    rgb = np.asarray(rgb).reshape(-1, 3)
    w = np.asarray(weights, dtype=np.float64).ravel()
    idx = pixel_name_index(rgb) if index is None else np.asarray(index).ravel()
    keep = (idx != COLOUR_NAMES.index("black")) & (w > 0)
    if not keep.any():
        return float("nan")
    if lightness is None:
        px = rgb[keep]  # 8-bit pixels take rgb_to_lab's lookup of the linearisation: the same numbers, faster
        lstar = rgb_to_lab(px if px.dtype == np.uint8 else px.astype(np.float64))[:, 0]
    else:
        lstar = np.asarray(lightness).ravel()[keep]
    return weighted_quantile(lstar, w[keep], LIT_QUANTILE)


def name_from_shares(shares: np.ndarray, lit: float) -> tuple[str, float, str, float]:
    """The colour name from a palette (:func:`palette_shares`) and a lit-face lightness (:func:`lit_lightness`).

    Every vehicle shows dark glass, tyres and shadow, and its shaded faces look
    darker than its paint, so the name is decided in three steps:

    1. **black** when black holds at least half of the palette;
    2. else the largest **hue name** when hue names together outweigh
       white + silver + grey;
    3. else the **neutral** (white, silver or grey) whose reference lightness L* is
       nearest to ``lit`` (the lit face of the object).

    The same rule names one image (:func:`name_object`) and a group of images (a
    cluster: the mean palette of its images and the median lit lightness;
    :mod:`descluster.interpret`).

    Parameters
    ----------
    shares : ndarray of shape (len(COLOUR_NAMES),), float
        Palette shares (non-negative; normalised here).
    lit : float
        L* of the lit face (0..100); NaN picks the neutral with the largest share.

    Returns
    -------
    name : str
        One of :data:`COLOUR_NAMES`, "" when the shares are all 0.
    share : float
        Share that decided it: black (1), the hue (2), or white + silver + grey (3).
    runner_up : str
        The name with the largest share among the others ("" if none).
    runner_up_share : float

    Raises
    ------
    ParameterError
        If ``shares`` has the wrong length.
    """
    mass = np.asarray(shares, dtype=np.float64).ravel()
    if mass.size != len(COLOUR_NAMES):
        raise ParameterError(f"shares has {mass.size} entries; need one per colour name ({len(COLOUR_NAMES)})")
    total = float(np.nansum(mass))
    if total <= 0:
        return "", 0.0, "", 0.0
    mass = np.nan_to_num(mass) / total
    black, neutral, hues = _BLACK, _NEUTRAL, _HUES
    if mass[black] >= 0.5:
        chosen, share = black, float(mass[black])
    elif mass[hues].sum() > mass[neutral].sum():
        chosen = hues[int(np.argmax(mass[hues]))]
        share = float(mass[chosen])
    else:
        if lit == lit:  # not NaN
            ref = _neutral_lightness()
            chosen = min(neutral, key=lambda i: abs(ref[i] - lit))
        else:
            chosen = neutral[int(np.argmax(mass[neutral]))]
        share = float(mass[neutral].sum())
    values = mass.tolist()  # Python floats: the same numbers, cheaper to compare one by one
    rest = [i for i in np.argsort(-mass, kind="stable").tolist() if i != chosen and values[i] > 0]
    if not rest:
        return COLOUR_NAMES[chosen], share, "", 0.0
    return COLOUR_NAMES[chosen], share, COLOUR_NAMES[rest[0]], values[rest[0]]


def name_object(rgb: np.ndarray, weights: np.ndarray) -> tuple[str, float, str, float]:
    """The colour name of an object from its pixels and their weights.

    :func:`name_from_shares` of the pixels' :func:`palette_shares` and
    :func:`lit_lightness` (see there for the three steps).

    Parameters
    ----------
    rgb : ndarray of shape (n, 3), uint8
        Pixels (already corrected for the camera's levels, if any).
    weights : ndarray of shape (n,), float
        Non-negative weights (e.g. a centre prior); all zero gives ``("", 0, "", 0)``.

    Returns
    -------
    name, share, runner_up, runner_up_share
        As :func:`name_from_shares`.

    Raises
    ------
    ParameterError
        If ``weights`` and ``rgb`` disagree in length.
    """
    mass = palette_shares(rgb, weights)
    if mass.sum() <= 0:
        return "", 0.0, "", 0.0
    lit = lit_lightness(rgb, weights) if mass[COLOUR_NAMES.index("black")] < 0.5 else float("nan")
    return name_from_shares(mass, lit)


def _neutral_rgb(name: str) -> tuple[int, int, int]:
    return next(p[2] for p in prototypes() if p[0] == name)


@lru_cache(maxsize=1)
def _neutral_lightness() -> dict[int, float]:
    """Index into :data:`COLOUR_NAMES` -> L* of the reference colour, for white, silver and grey."""
    return {COLOUR_NAMES.index(n): float(rgb_to_lab(np.array(_neutral_rgb(n), dtype=np.float64))[0])
            for n in ("white", "silver", "grey")}


def describe_palette() -> str:
    """The palette in words, for reports: names, space, distance and the source of the values."""
    return (f"colour names {', '.join(COLOUR_NAMES)}: nearest xkcd-survey reference colour (Munroe 2010; "
            f"'<name>', 'light <name>', 'dark <name>' for hues) in CIELAB by CIEDE2000 with k_L = {K_L:g}")


if __name__ == "__main__":  # python -m descluster.palette: rewrite the shipped lookup table
    from .io.atomic import write_npy

    write_npy(LUT_FILE, compute_lut())
    print(f"wrote {LUT_FILE}")
