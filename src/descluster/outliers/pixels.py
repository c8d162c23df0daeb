"""Pixel facts per image, measured on the object where that matters.

:func:`image_quality_table` reads every image once (through
:meth:`ImageSource.open`, so always 8-bit RGB), optionally in a pool of worker
processes, and returns one row per path in input order. An unreadable, empty or
truncated file gives ``readable=False`` and its ``error``; it is never fatal.
The rules that turn these facts into flags are in :mod:`.quality`.

The object estimate
-------------------
Exposure and colour are measured on the object, not on a white studio
background or the road around a vehicle crop.

- **Clipping** is weighed with the centre prior alone (below): a glare that clips
  the road clips the border too, so the boundary prior would take the clipped
  scene for background; a studio car fills the centre, its backdrop the rim.
- **Darkness, sharpness and information** use :func:`object_weights` on a 32×32 copy: a *background
  (boundary) prior* (Wei, Wen, Zhu & Sun 2012, "Geodesic saliency using
  background priors", ECCV) -- the outer 10% ring of the frame shows background,
  and a pixel is background when its CIELAB distance to its k-th nearest border
  pixel (k = 25% of the border: a colour is background when a quarter of the
  border has it) is within the border's own spread (median + 3.5 MAD of the
  border pixels' distances, at least the just-noticeable difference
  ΔE*ab = 2.3, Sharma 2003, *Digital Color Imaging Handbook*, ch. 1) -- times a
  *centre prior* (Judd, Ehinger, Durand & Torralba 2009, "Learning to predict where
  humans look", ICCV): a Gaussian of standard deviation 1/4 of the side. When
  under 2% of the frame stands out from the border (a uniform frame), the centre
  prior alone is used. A studio shot's plain backdrop is background, so it does
  not make the car "smooth" or "low information".
- **Colour** uses the centre prior, with the pixels of the border's colours
  (the boundary prior's background) weighted :data:`BACKGROUND_WEIGHT` (0.1)
  instead of dropped, and without clipped pixels (a clipped pixel has lost its
  colour); named by :func:`descluster.palette.name_object`. Dropping the
  background outright fails on vehicle crops that the vehicle fills: its body
  touches the border and is taken for background. The weight was chosen on the
  development half of the hand labels (``benchmarks/data/tiny_vehicles_colours.csv``,
  230 crops, and 51 motorbikes labelled for this): right names (silver = grey)
  centre prior alone 73% / 2% (motorbikes: the road wins), boundary prior alone
  67% / 39%, background at 0.1: 75% / 29%.
- **Camera levels**: a hazy camera raises the black level and greys whites. When
  a collection has at least :data:`MIN_LEVEL_IMAGES` readable images, its black
  point per channel is the 10th percentile over images of each image's
  1st-percentile channel value, its white point the 90th percentile of the
  99th-percentile values; colours are named after the linear stretch
  ``(v - black) / (white - black)`` -- the uniform-haze model
  ``I = J t + A (1 - t)`` inverted (Koschmieder; He, Sun & Tang 2009, "Single image
  haze removal using dark channel prior", CVPR). A collection whose points are
  already near 0 and 255 is left as it is.

Speed
-----
The checks of one image share their intermediate results (one CIELAB copy, one padded
grey image, one percentile selection per array) and the colour lookup table ships with
the package (:mod:`descluster.palette`); the helpers that replace library calls for speed
(:func:`_percentiles`, :func:`_median`, :func:`blur_effect`, :func:`_laplace`, the
blocked distances of :func:`foreground_mask`) do the same operations in the same order,
so the facts are those of the straightforward code bit for bit
(``tests/test_pixel_facts_reference.py``, ``benchmarks/decode_bench.py``). Where the order
cannot matter they take shorter ways to the same numbers: the k-th nearest border pixel is
selected on 16-bit keys and then exactly (:func:`_kth_smallest`); an inner pixel is compared
only with the border pixels whose L* is within the threshold (plus a margin far above the
rounding; the others are beyond it); Sobel sums of whole numbers are exact in any order
(:func:`_sobel_abs4_whole`); :func:`numpy.maximum` gets arrays, not scalars (3x faster).
Together ~1.16x fewer CPU seconds an image on 64 px thumbnails, the same tables
(``benchmarks/pixels_stage_bench.py``).

Formulas
--------
- luminance: ITU-R BT.601 luma ``0.299 R + 0.587 G + 0.114 B`` (0..255).
- clipped pixel: all three channels >= 250; ``saturated_share`` over the frame,
  ``object_saturated_share`` weighted by the centre prior (see below).
- ``object_p95_luminance``: weighted 95th percentile of the object's luma (the
  brightest parts of the object: paint highlights, lamps, reflections).
- bright-blob share: largest 8-connected region of luminance >= 240
  (:func:`scipy.ndimage.label`) over the pixel count.
- ``laplacian_var``: variance of the Laplacian (:func:`scipy.ndimage.laplace`) of the
  grey image resized to 128×128 (Pech-Pacheco et al. 2000, "Diatom autofocusing
  in brightfield microscopy: a comparative study", ICPR). ``sharpness`` is measured
  on the object and per direction: the object-weighted mean squared second
  difference along the least sharp of four directions (0°, 45°, 90°, 135°; the
  Laplacian is the sum of the 0° and 90° ones), over the object-weighted variance
  of the grey image (weights of :func:`object_weights` resized to 128×128). The
  least sharp direction shows motion blur, which leaves the direction across the
  motion sharp; the ratio does not change when the exposure scales the contrast
  (a night frame is not "blurred"); a plain studio backdrop does not count as a
  smooth, blurred area.
- ``blur_effect``: the no-reference blur metric of Crété-Roffet, Dolmière, Ladret &
  Nicolas (2007), "The blur effect: perception and estimation with a new
  no-reference perceptual blur metric", SPIE Human Vision and Electronic Imaging XII
  (:func:`skimage.measure.blur_effect`, computed as :func:`blur_effect` does it, re-blurring
  filter of :data:`BLUR_H_SIZE` px, the most blurred of the two axes) on the 128×128 grey image: the image is
  compared with a re-blurred copy of *itself*, so the value (0 = sharp, 1 = fully
  blurred) is the share of the image's own neighbour differences that a further
  blur leaves in place. It is measured relative to the image's own detail, so a
  smooth truck panel, a plain studio backdrop (flat areas add to neither sum) or a
  dim frame is not "blurred", while a blurred image of any content is.
- ``unclipped_p5_luminance``: centre-weighted 5th percentile of the luma of the
  pixels that are *not* clipped (32×32 copy; 255 when all are clipped): the
  darkest tones the exposure kept. An over-exposed frame lifts them (a studio
  shot keeps its car's tyres and glass dark).
- entropy: Shannon entropy of the 256-bin luminance histogram, bits (0..8);
  ``object_entropy`` the same with the object weights (on the 128×128 grey image),
  so the spike of a plain backdrop does not make a studio shot "low information".
- channel spread: per pixel ``max(R,G,B) - min(R,G,B)``; ``channel_spread`` is its
  mean, ``channel_spread_p95`` its 95th percentile over the whole frame. A frame
  is grey-scale (``greyscale``) when ``channel_spread_p95 <= 2``: its channels are
  equal everywhere up to the ±1 level rounding of 8-bit YCbCr decoding, a colour
  overlay (a camera's time stamp, with its JPEG chroma bleed) on up to 5% of the
  frame allowed. A colourless car on a
  colourful background is not a grey-scale frame.
- hashes: sha1 of the file bytes; perceptual hash ``imagehash.phash`` (DCT hash,
  64 bits as 16 hex digits).
- ``colour``, ``colour_share``, ``colour_2``, ``colour_2_share``: the object's colour
  name and the weight share that decided it, and the runner-up name
  (:func:`descluster.palette.name_object`), after the camera levels;
  ``palette_<name>``: the weight share of each colour name among the object's
  pixels (:func:`descluster.palette.palette_shares`), and ``colour_lit_lightness``
  the L* of its lit face, from which a cluster's colour is named
  (:mod:`descluster.interpret`).
- ``p1_r`` ... ``p99_b``: 1st and 99th percentiles of each channel (0..255), from
  which the camera levels are estimated.
"""

from __future__ import annotations

import hashlib
from functools import lru_cache

import numpy as np
import pandas as pd

from ..errors import ParameterError
from ..io.images import ImageSource
from ..palette import (COLOUR_NAMES, lit_lightness, name_from_shares, palette_shares, pixel_name_index, rgb_to_lab,
                       weighted_quantile)

LAPLACIAN_SIZE = 128
#: Side of the copy the object estimate is computed on.
OBJECT_SIZE = 32
#: Width of the border ring taken as background, as a share of the side.
BORDER_SHARE = 0.10
#: k of the k-th nearest border pixel, as a share of the border pixels.
BORDER_K_SHARE = 0.25
#: Just-noticeable colour difference, ΔE*ab (Sharma 2003).
JND = 2.3
#: Centre prior: Gaussian standard deviation as a share of the side (Judd et al. 2009 centre bias).
CENTRE_SIGMA = 0.25
#: Below this foreground share, the centre prior alone is used.
MIN_FOREGROUND = 0.02
#: Colour naming: weight of pixels of the border's colours, relative to the foreground.
BACKGROUND_WEIGHT = 0.1
#: A pixel channel at or above this value is clipped (8-bit sensor ceiling, JPEG ringing allowed).
CLIP_LEVEL = 250
#: Re-blurring filter of the blur-effect metric, px (the value of Crété-Roffet et al. 2007 and scikit-image).
BLUR_H_SIZE = 11
#: Grey-scale frame: 95th percentile of the channel spread at most this many levels.
GREY_P95_SPREAD = 2.0
#: Camera levels are estimated from at least this many readable images.
MIN_LEVEL_IMAGES = 20
#: Camera levels closer than this to 0 and 255 (all channels) are not applied.
LEVELS_TOLERANCE = 3.0
LEVEL_COLUMNS = ["p1_r", "p1_g", "p1_b", "p99_r", "p99_g", "p99_b"]
#: Columns of the object's palette shares (weight share of each colour name, summing to 1).
PALETTE_SHARE_COLUMNS = [f"palette_{name}" for name in COLOUR_NAMES]

QUALITY_COLUMNS = [
    "path", "readable", "error", "width", "height", "aspect", "mean_luminance", "p5_luminance",
    "p95_luminance", "saturated_share", "bright_blob_share", "laplacian_var", "entropy", "channel_spread",
    "greyscale", "sha1", "phash", "colour", "colour_share",
    # object measurements (added in 0.2)
    "object_share", "object_luminance", "object_p95_luminance", "object_saturated_share", "sharpness",
    "channel_spread_p95", "colour_2", "colour_2_share", "object_entropy", *LEVEL_COLUMNS,
    # added in 0.3: blur relative to the image's own detail, the exposure's darkest kept tones,
    # the object's palette shares and its lit-face lightness (the cluster colour is named from these)
    "blur_effect", "unclipped_p5_luminance", "colour_lit_lightness", *PALETTE_SHARE_COLUMNS,
]


def _percentiles(x: np.ndarray, qs: tuple[float, ...]) -> np.ndarray:
    """``np.percentile(x, qs, axis=0)`` (method "linear") of an array without NaN, with NumPy's arithmetic.

    One :func:`numpy.partition` for all the order statistics, then NumPy's interpolation
    (``numpy.lib._function_base_impl._lerp``) step by step: virtual index ``(n - 1) * (q / 100)``,
    ``gamma`` its fractional part, ``diff = b - a`` in the array's dtype, ``a + diff * gamma``
    (``b - diff * (1 - gamma)`` when ``gamma >= 0.5``) in float64. NumPy's own call costs
    ~0.2 ms of Python per array, more than the partition. A test checks it against NumPy's.

    Parameters
    ----------
    x : ndarray of shape (n,) or (n, c), numbers without NaN; n >= 1
    qs : tuple of float in [0, 100]

    Returns
    -------
    ndarray of shape (len(qs),) or (len(qs), c), float64
    """
    import math

    n = x.shape[0]
    picks = []
    for q in qs:
        virtual = (n - 1) * (q / 100)
        if virtual >= n - 1:
            picks.append((n - 1, n - 1, 0.0))
        else:
            lo = math.floor(virtual)
            picks.append((lo, lo + 1, virtual - lo))
    part = np.partition(x, sorted({i for lo, hi, _ in picks for i in (lo, hi)}), axis=0)
    out = np.empty((len(qs),) + x.shape[1:])
    for r, (lo, hi, gamma) in enumerate(picks):
        a, b = part[lo], part[hi]
        diff = (b - a).astype(np.float64)
        out[r] = a + diff * gamma if gamma < 0.5 else b - diff * (1 - gamma)
    return out


def _median(v: np.ndarray) -> float:
    """Median of a 1-D float array without NaN: the mean of the middle pair, as :func:`numpy.median` computes it."""
    n = v.size
    lo, hi = (n - 1) // 2, n // 2
    part = np.partition(v, [lo, hi])
    return float((part[lo] + part[hi]) / 2)


def _mad_scale(v: np.ndarray) -> float:
    med = _median(v)
    return _median(np.abs(v - med)) / 0.6745


#: Pixels whose distances to the border are computed at a time in :func:`foreground_mask`: a block of
#: 128 × 348 distances (32 px side, 356 kB) stays in the CPU cache; the whole matrix (2.8 MB, with three
#: temporaries of its size) did not, and cost more in memory traffic and page faults than in arithmetic
#: (9.7 ms against 2.3 ms CPU per image, benchmarks/decode_bench.py machine). The values do not depend on it.
_DISTANCE_BLOCK = 128


@lru_cache(maxsize=16)
def _border_ring(h: int, w: int) -> np.ndarray:
    """Read-only flat bool mask, length h*w, of the outer :data:`BORDER_SHARE` ring of an (h, w) frame."""
    yy, xx = np.mgrid[0:h, 0:w]
    ring = max(1, int(round(BORDER_SHARE * min(h, w))))
    border = ((yy < ring) | (yy >= h - ring) | (xx < ring) | (xx >= w - ring)).ravel()
    border.setflags(write=False)
    return border


def foreground_mask(rgb: np.ndarray, lab: np.ndarray | None = None) -> tuple[np.ndarray, float]:
    """Pixels that stand out from the frame's border: the background (boundary) prior (see the module notes).

    Parameters
    ----------
    rgb : ndarray of shape (h, w, 3), uint8
        A small copy (:data:`OBJECT_SIZE` px a side in :func:`image_facts`); h, w >= 3.
    lab : ndarray of shape (h, w, 3), float64, optional
        :func:`descluster.palette.rgb_to_lab` of ``rgb``, when the caller has it already.

    Returns
    -------
    mask : ndarray of shape (h, w), bool
        True = foreground; all False when under :data:`MIN_FOREGROUND` of the frame stands out.
    foreground_share : float
        Share of the pixels in the mask (0..1).
    """
    h, w = rgb.shape[:2]
    lab = (rgb_to_lab(rgb) if lab is None else np.asarray(lab, dtype=np.float64)).reshape(-1, 3)
    border = _border_ring(h, w)
    m = int(border.sum())
    k = max(1, int(np.ceil(BORDER_K_SHARE * m)))
    sq = (lab**2).sum(1)
    ref2_t = (2.0 * lab[border]).T
    sq_ref = sq[border][None, :]
    dist2 = _BorderDistances(lab, sq, sq_ref, ref2_t)
    # the border pixels' own distances set the threshold: those are needed as numbers
    d_border = np.empty(m)
    for rows, d2 in dist2.blocks(np.flatnonzero(border)):
        d_border[rows] = _kth_smallest(d2, k - 1)
    np.maximum(d_border, 0.0, out=d_border)  # after the selection: max(., 0) is monotone
    d_border = np.sqrt(d_border)
    thr = max(JND, _median(d_border) + 3.5 * _mad_scale(d_border))
    # the others only as "beyond the threshold": sqrt(max(q, 0)) > thr  <=>  q > x0 (x0 >= 0, below), and the
    # k-th smallest of a row is > x0  <=>  fewer than k of the row are <= x0; no selection needed
    x0 = _largest_square_within(thr)
    fg = np.empty(lab.shape[0], dtype=bool)
    fg[border] = d_border > thr
    # a pixel and a border pixel whose L* differ by more than thr + _L_MARGIN are beyond the threshold (a CIELAB
    # distance is at least the L* difference; the margin is far above the rounding of the expression for d2): the
    # inner pixels taken in order of L*, a block is compared only with the border pixels (in order of L*) within
    # its L* range +- that reach -- about half of them on the 2,000-image development case
    inner = np.flatnonzero(~border)
    inner = inner[np.argsort(lab[inner, 0], kind="stable")]
    by_l = np.argsort(lab[border, 0], kind="stable")
    l_ref = lab[border, 0][by_l]
    dist2 = _BorderDistances(lab, sq, sq_ref[:, by_l], np.ascontiguousarray(ref2_t[:, by_l]))
    reach = thr + _L_MARGIN
    near = np.empty(_DISTANCE_BLOCK * m, dtype=bool)
    for start in range(0, len(inner), _DISTANCE_BLOCK):
        idx = inner[start:start + _DISTANCE_BLOCK]
        lo = int(np.searchsorted(l_ref, lab[idx[0], 0] - reach, side="left"))
        hi = int(np.searchsorted(l_ref, lab[idx[-1], 0] + reach, side="right"))
        if hi - lo < k:  # fewer than k border pixels within reach of any pixel of the block
            fg[idx] = True
            continue
        d2 = dist2.block(idx, lo, hi)
        hits = np.less_equal(d2, x0, out=near[: d2.size].reshape(d2.shape))
        fg[idx] = np.add.reduce(hits.view(np.uint8), axis=1, dtype=np.int32) < k
    share = float(fg.mean())
    if share < MIN_FOREGROUND:
        return np.zeros((h, w), dtype=bool), 0.0
    return fg.reshape(h, w), share


class _BorderDistances:
    """Squared CIELAB distances of pixels to the border pixels, computed :data:`_DISTANCE_BLOCK` pixels at a time.

    A block holds ``(|x|^2 + |r|^2) - 2 x.r`` for its pixels ``x`` and every border pixel ``r``
    (or a range of them, :meth:`block`): the expression (and the order of its operations) of the
    whole distance matrix, so the numbers do not depend on the blocks; ``2 x.r`` is computed as
    ``x.(2r)`` (scaling by 2 is exact). Two buffers are reused for all blocks.
    """

    def __init__(self, lab: np.ndarray, sq: np.ndarray, sq_ref: np.ndarray, ref2_t: np.ndarray):
        self.lab, self.sq, self.sq_ref, self.ref2_t = lab, sq, sq_ref, ref2_t
        m = ref2_t.shape[1]
        self.buf, self.cross = np.empty((_DISTANCE_BLOCK, m)), np.empty((_DISTANCE_BLOCK, m))

    def blocks(self, rows: np.ndarray):
        """Yield ``(slice into rows, distances of shape (len, m))`` over ``rows`` (pixel indices); buffers reused."""
        for start in range(0, len(rows), _DISTANCE_BLOCK):
            part = slice(start, min(len(rows), start + _DISTANCE_BLOCK))
            yield part, self.block(rows[part])

    def block(self, idx: np.ndarray, lo: int = 0, hi: int | None = None) -> np.ndarray:
        """Distances of shape (len(idx), hi - lo), C-contiguous, of pixels ``idx`` (at most :data:`_DISTANCE_BLOCK`)
        to the border pixels ``lo:hi``; in the buffers, valid until the next call."""
        hi = self.ref2_t.shape[1] if hi is None else hi
        shape = (len(idx), hi - lo)
        d2 = self.buf.ravel()[: shape[0] * shape[1]].reshape(shape)
        c = self.cross.ravel()[: shape[0] * shape[1]].reshape(shape)
        # |x|^2 + |r|^2, exactly as (|x|^2 + |r|^2): addition commutes; faster with the row of the border first
        np.add(self.sq_ref[:, lo:hi], self.sq[idx, None], out=d2)
        np.matmul(self.lab[idx], self.ref2_t[:, lo:hi], out=c)
        d2 -= c
        return d2


def _kth_smallest(x: np.ndarray, kth: int) -> np.ndarray:
    """``np.partition(x, kth, axis=1)[:, kth]`` of a C-contiguous 2-D float64 array without NaN: the same numbers.

    Selected on 16-bit keys first, then exactly among the few values of the selected key: the key of a
    value is its float32 bit pattern shifted right by 15 bits (8 mantissa bits, steps of 0.4%; every
    negative value and +-0 key 0), a non-decreasing function of the value, so the ``kth`` smallest key
    is the key of the ``kth`` smallest value, and that value is the ``(kth - j)``-th smallest of the row's
    values of that key, ``j`` the number of smaller keys (sorted in float64: the row's own numbers). With
    AVX-512 a uint16 selection is ~7x faster than a float64 one (NumPy's sorting networks), and the keys
    cost little more than a copy: ~0.3 ms instead of ~0.7 ms for the 348 border pixels of a 32 px image.

    Parameters
    ----------
    x : ndarray of shape (n, m), float64, C-contiguous, no NaN
    kth : int in [0, m)

    Returns
    -------
    ndarray of shape (n,), float64
    """
    n, m = x.shape
    bits = x.astype(np.float32).view(np.int32)  # rounding to float32 is non-decreasing
    # a negative float's bits are a negative int32: key 0, as +-0
    np.maximum(bits, _constant((n, m), 0, np.int32), out=bits)
    key = np.empty((n, m), dtype=np.uint16)
    np.right_shift(bits, 15, out=key, casting="unsafe")  # bits < 2**31: the key < 2**16
    part = key.copy()
    part.partition(kth, axis=1)
    v = part[:, kth:kth + 1]
    smaller = np.add.reduce((part[:, :kth] < v).view(np.uint8), axis=1, dtype=np.intp)  # all are left of kth
    flat = np.flatnonzero(key == v)
    rows = flat // m
    vals = x.ravel()[flat]
    order = np.lexsort((vals, rows))  # by row, then by value
    sizes = np.bincount(rows, minlength=n)
    starts = np.cumsum(sizes) - sizes
    return vals[order][starts + (kth - smaller)]


#: Margin of the L* pruning in :func:`foreground_mask`, ΔE*ab: a pair whose L* differ by more than ``thr + margin`` has
#: a true squared distance above ``thr**2 + 2e-6 thr`` (> thr**2 + 4e-6, thr >= JND), while the expression for it
#: rounds by under 1e-9 (CIELAB coordinates below 200: ~10 roundings of 2^-53 relative to ``|x|^2 + |r|^2 < 2e5``),
#: so it is beyond the threshold in the computed numbers too.
_L_MARGIN = 1e-6


def _largest_square_within(thr: float) -> float:
    """The largest float64 ``x0 >= 0`` with ``sqrt(x0) <= thr`` (``thr > 0``): then ``sqrt(x) > thr`` iff ``x > x0``."""
    import math

    x0 = thr * thr
    while x0 > 0 and math.sqrt(x0) > thr:
        x0 = math.nextafter(x0, 0.0)
    while math.sqrt(math.nextafter(x0, math.inf)) <= thr:
        x0 = math.nextafter(x0, math.inf)
    return x0


def object_weights(rgb: np.ndarray, mask: np.ndarray | None = None) -> tuple[np.ndarray, float]:
    """Foreground × centre weights of a small RGB image (see the module notes).

    Parameters
    ----------
    rgb : ndarray of shape (h, w, 3), uint8
    mask : ndarray of shape (h, w), bool, optional
        From :func:`foreground_mask` (computed when absent).

    Returns
    -------
    weights : ndarray of shape (h, w), float64
        Non-negative, summing to 1; the centre prior alone when the mask is empty.
    foreground_share : float
        Share of the pixels estimated to be foreground (0 when the centre prior alone was used).
    """
    h, w = rgb.shape[:2]
    if mask is None:
        mask, share = foreground_mask(rgb)
    else:
        share = float(mask.mean())
    centre = _centre(h, w)
    weights = centre * mask if share > 0 else centre
    return weights / weights.sum(), share


def _least_directional_energy(g: np.ndarray, w: np.ndarray) -> float:
    """Weighted mean squared second difference of ``g`` along the least sharp of 4 directions (0°, 45°, 90°, 135°)."""
    twice_c = 2.0 * g[1:-1, 1:-1]
    wc = w[1:-1, 1:-1]
    total = wc.sum()
    wc = wc / total if total > 0 else wc
    pairs = [(g[1:-1, :-2], g[1:-1, 2:]), (g[:-2, 1:-1], g[2:, 1:-1]), (g[:-2, :-2], g[2:, 2:]), (g[:-2, 2:], g[2:, :-2])]
    energies = []
    d2 = np.empty_like(twice_c)
    for k, (a, b) in enumerate(pairs):
        np.add(a, b, out=d2)
        d2 -= twice_c
        if k >= 2:
            d2 *= 0.5  # diagonal steps are sqrt(2) long: squared step 2 (exact: a power of two)
        np.square(d2, out=d2)
        d2 *= wc
        energies.append(float(d2.sum()))
    return min(energies)


def centre_weights(h: int, w: int) -> np.ndarray:
    """Centre prior: Gaussian of standard deviation :data:`CENTRE_SIGMA` × side, shape (h, w), summing to 1."""
    return _centre(h, w).copy()


@lru_cache(maxsize=16)
def _centre(h: int, w: int) -> np.ndarray:
    """:func:`centre_weights`, computed once per shape and read-only."""
    yy, xx = np.mgrid[0:h, 0:w]
    cy, cx = (h - 1) / 2.0, (w - 1) / 2.0
    c = np.exp(-(((yy - cy) / (CENTRE_SIGMA * h)) ** 2 + ((xx - cx) / (CENTRE_SIGMA * w)) ** 2) / 2.0)
    c = c / c.sum()
    c.setflags(write=False)
    return c


def apply_levels(rgb: np.ndarray, levels: np.ndarray | None) -> np.ndarray:
    """Linear stretch of 8-bit pixels by camera levels (see the module notes).

    Parameters
    ----------
    rgb : ndarray of shape (..., 3), uint8
    levels : ndarray of shape (2, 3) or None
        Row 0 the black point, row 1 the white point per channel (0..255); None = unchanged.

    Returns
    -------
    ndarray of shape (..., 3), uint8
    """
    if levels is None:
        return np.asarray(rgb, dtype=np.uint8)
    lo, hi = levels[0], levels[1]
    out = (np.asarray(rgb, dtype=np.float64) - lo) * (255.0 / (hi - lo))
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)


def colour_facts(small: np.ndarray, levels: np.ndarray | None = None, mask: np.ndarray | None = None,
                 lab: np.ndarray | None = None) -> dict:
    """Colour name of the object in a small RGB copy (see the module notes).

    Weights: the centre prior, times 1 on the foreground of :func:`foreground_mask`
    and :data:`BACKGROUND_WEIGHT` on pixels of the border's colours; clipped pixels
    left out.

    Parameters
    ----------
    small : ndarray of shape (h, w, 3), uint8
        Raw pixels (clipping is judged before the levels).
    levels : ndarray of shape (2, 3) or None
        Camera levels (:func:`collection_levels`).
    mask : ndarray of shape (h, w), bool, optional
        From :func:`foreground_mask` (computed when absent).
    lab : ndarray of shape (h, w, 3), float64, optional
        :func:`descluster.palette.rgb_to_lab` of ``small``, when the caller has it already
        (used only without levels: the levels change the pixels).

    Returns
    -------
    dict
        ``colour``, ``colour_share``, ``colour_2``, ``colour_2_share``
        (:func:`descluster.palette.name_from_shares`), ``colour_lit_lightness`` (L* of the
        lit face, :func:`descluster.palette.lit_lightness`) and the palette shares
        :data:`PALETTE_SHARE_COLUMNS` (:func:`descluster.palette.palette_shares`).
    """
    h, w = small.shape[:2]
    if mask is None:
        mask, _ = foreground_mask(small, lab)
    centre = _centre(h, w).ravel()
    prior = np.where(mask.ravel(), 1.0, BACKGROUND_WEIGHT) if mask.any() else np.ones(h * w)
    weights = centre * prior * (_channel_min(small) < CLIP_LEVEL).ravel()
    if weights.sum() <= 0:  # all clipped: name what is there
        weights = centre
    px = apply_levels(small, levels).reshape(-1, 3)
    index = pixel_name_index(px)
    lightness = lab.reshape(-1, 3)[:, 0] if lab is not None and levels is None else None
    shares = palette_shares(px, weights, index=index)
    lit = lit_lightness(px, weights, index=index, lightness=lightness)
    name, share, second, second_share = name_from_shares(shares, lit)
    return {"colour": name, "colour_share": share, "colour_2": second, "colour_2_share": second_share,
            "colour_lit_lightness": lit, **{c: float(v) for c, v in zip(PALETTE_SHARE_COLUMNS, shares)}}


def collection_levels(table: pd.DataFrame) -> tuple[np.ndarray | None, str]:
    """Camera black and white points of a collection from its per-image channel percentiles.

    Parameters
    ----------
    table : DataFrame
        With the :data:`LEVEL_COLUMNS` and ``readable`` (from the first pass of
        :func:`image_quality_table`).

    Returns
    -------
    levels : ndarray of shape (2, 3), float64, or None
        Black point (row 0) and white point (row 1) per channel; None when there are
        fewer than :data:`MIN_LEVEL_IMAGES` readable images, when the points are
        within :data:`LEVELS_TOLERANCE` of 0 and 255, or when a channel's range is under 64 levels.
    description : str
        What was decided, with the numbers.
    """
    if not set(LEVEL_COLUMNS) <= set(table.columns):
        return None, "camera levels: not measured"
    ok = table["readable"].to_numpy(dtype=bool)
    v = table.loc[ok, LEVEL_COLUMNS].apply(pd.to_numeric, errors="coerce").dropna().to_numpy(dtype=np.float64)
    if v.shape[0] < MIN_LEVEL_IMAGES:
        return None, f"camera levels: not applied ({v.shape[0]} readable images, need {MIN_LEVEL_IMAGES})"
    lo = np.percentile(v[:, :3], 10, axis=0)
    hi = np.percentile(v[:, 3:], 90, axis=0)
    nums = f"black point RGB {tuple(int(round(x)) for x in lo)}, white point {tuple(int(round(x)) for x in hi)}"
    if (hi - lo).min() < 64:
        return None, f"camera levels: not applied ({nums}: a channel spans under 64 levels)"
    if lo.max() <= LEVELS_TOLERANCE and hi.min() >= 255 - LEVELS_TOLERANCE:
        return None, f"camera levels: not needed ({nums})"
    return np.vstack([lo, hi]), (f"camera levels: {nums} (10th / 90th percentile over {v.shape[0]:,} images "
                                 f"of each image's 1st / 99th percentile); colours named after stretching to 0..255")


def _small(image) -> np.ndarray:
    from PIL import Image

    return np.asarray(image.resize((OBJECT_SIZE, OBJECT_SIZE), Image.Resampling.BILINEAR), dtype=np.uint8)


#: Sobel kernels along axis 0 and axis 1, as :func:`skimage.filters.sobel` builds them (edge ``[1, 0, -1]``
#: along the axis times smoothing ``[1, 2, 1] / 4`` across it).
_SOBEL_KERNELS = (np.array([[1.0], [0.0], [-1.0]]) * (np.array([[1.0, 2.0, 1.0]]) / 4),
                  np.array([[1.0, 0.0, -1.0]]) * (np.array([[1.0], [2.0], [1.0]]) / 4))
#: The Sobel kernels' nonzero terms as :func:`scipy.ndimage.convolve` sums them: ``((row, column) offset
#: into the 1-px padded image, weight)`` in C order of the flipped kernel.
_SOBEL_TERMS = tuple(tuple(((i, j), float(wt)) for (i, j), wt in np.ndenumerate(kk[::-1, ::-1]) if wt != 0)
                     for kk in _SOBEL_KERNELS)
#: Floor of the gradient magnitudes in the blur effect (scikit-image's guard against 0 / 0).
_BLUR_EPSILON = float(np.spacing(np.float64(1)))
#: BT.601 luma weights, float32 (the full-size luma) and float64 (the small copy's).
_LUMA32 = np.array([0.299, 0.587, 0.114], dtype=np.float32)
_LUMA64 = np.array([0.299, 0.587, 0.114])


@lru_cache(maxsize=32)
def _constant(shape: tuple[int, ...], value: float, dtype=np.float64) -> np.ndarray:
    """Read-only array of ``shape`` and ``dtype`` filled with ``value``, made once per shape, value and dtype.

    For :func:`numpy.maximum`: with a scalar operand it is ~3x slower than with an array of the same values (NumPy 2.x).
    """
    out = np.full(shape, value, dtype=dtype)
    out.setflags(write=False)
    return out


def _channel_min(a: np.ndarray) -> np.ndarray:
    """``a.min(axis=-1)`` of an (..., 3) array, as two element-wise minima (a reduction over 3 is ~5x slower)."""
    return np.minimum(np.minimum(a[..., 0], a[..., 1]), a[..., 2])


def _pad1(x: np.ndarray) -> np.ndarray:
    """``np.pad(x, 1, mode="symmetric")`` of a 2-D array (SciPy's ``reflect`` edge), without ``np.pad``'s overhead."""
    h, w = x.shape
    out = np.empty((h + 2, w + 2), dtype=x.dtype)
    out[1:-1, 1:-1] = x
    out[0, 1:-1] = x[0]
    out[-1, 1:-1] = x[-1]
    out[:, 0] = out[:, 1]
    out[:, -1] = out[:, -2]
    return out


def _sobel_abs4(pad: np.ndarray, axis: int) -> np.ndarray:
    """``4 |scipy.ndimage.convolve(x, _SOBEL_KERNELS[axis], mode="reflect")|`` from ``pad = _pad1(x)``: the same sums.

    SciPy's filter adds the weighted neighbours one at a time in C order of the flipped kernel,
    skipping zero weights; so does this, on whole shifted copies of the image (its ``reflect``
    edge is :func:`_pad1`). The weights are ±1/4 and ±1/2; this sums the neighbours times
    4 × weight (±1, ±2: exact), and scaling by a power of two commutes with rounding, so every
    partial sum is exactly 4 times SciPy's (a sign flip, exact too, does not matter under ``| |``).

    Parameters
    ----------
    pad : ndarray of shape (h + 2, w + 2), float64
        The image padded by :func:`_pad1`.
    axis : {0, 1}

    Returns
    -------
    ndarray of shape (h, w), float64, non-negative
    """
    h, w = pad.shape[0] - 2, pad.shape[1] - 2
    acc = np.zeros((h, w))
    term = np.empty((h, w))
    for (i, j), weight in _SOBEL_TERMS[axis]:
        part = pad[i:i + h, j:j + w]
        if abs(weight) == 0.5:
            np.add(part, part, out=term)
            part = term
        if weight > 0:
            acc += part
        else:
            acc -= part
    return np.abs(acc, out=acc)


def _sobel_abs4_whole(pad: np.ndarray, axis: int) -> np.ndarray:
    """:func:`_sobel_abs4` of an image of whole numbers (of at most 2^48), separably: the same values.

    On whole numbers every partial sum is exact whatever its order, so the edge difference ``[1, 0, -1]``
    along ``axis`` followed by the smoothing ``[1, 2, 1]`` across it (5 array operations instead of 10)
    gives SciPy's sums, times 4, exactly.
    """
    if axis == 0:
        d = pad[2:, :] - pad[:-2, :]
        acc = d[:, :-2] + d[:, 2:]
        mid = d[:, 1:-1]
    else:
        d = pad[:, 2:] - pad[:, :-2]
        acc = d[:-2] + d[2:]
        mid = d[1:-1]
    acc += mid
    acc += mid
    return np.abs(acc, out=acc)


def _laplace(pad: np.ndarray) -> np.ndarray:
    """:func:`scipy.ndimage.laplace` (``reflect`` edges) of an image of whole numbers, from ``pad = _pad1(g)``.

    The sum of the second differences ``[1, -2, 1]`` along both axes; on whole numbers of at most 2^50
    every step is exact, so the values are SciPy's whatever the order of the sums.
    """
    g2 = 2 * pad[1:-1, 1:-1]
    return (pad[:-2, 1:-1] + pad[2:, 1:-1] - g2) + (pad[1:-1, :-2] + pad[1:-1, 2:] - g2)


def blur_effect(g: np.ndarray, pad: np.ndarray | None = None) -> float:
    """Blur effect of Crété-Roffet et al. (2007) of a 2-D grey image, the most blurred of its two axes.

    The computation of :func:`skimage.measure.blur_effect` (``h_size`` :data:`BLUR_H_SIZE`,
    ``reduce_func=max``) written out with the same operations in the same order (the Sobel
    filter as :func:`_sobel_abs4`), without its per-call conversions: per axis, the Sobel gradient magnitude
    of the image (sharp) and of its :data:`BLUR_H_SIZE`-px moving average along that axis
    (blurred), both floored at machine epsilon; ``|M1 - M2| / M1`` with ``M1`` the sum of the
    sharp magnitudes and ``M2`` the sum of their excess over the blurred ones, over the
    interior ``[2:-1, 2:-1]``. A test checks it against scikit-image's.

    Parameters
    ----------
    g : ndarray of shape (h, w), float64
        Grey levels (any scale; 0..255 in :func:`image_facts`); h, w >= 4.
    pad : ndarray of shape (h + 2, w + 2), optional
        ``_pad1(g)``, when the caller has it already.

    Returns
    -------
    float
        0 (sharp) .. 1 (fully blurred); NaN for a flat image (0 / 0).
    """
    return _blur_effect(g, pad, whole=False)


def _blur_effect(g: np.ndarray, pad: np.ndarray | None, whole: bool) -> float:
    """:func:`blur_effect`; ``whole=True``: ``g`` holds whole numbers (sharp gradients by :func:`_sobel_abs4_whole`)."""
    from scipy import ndimage

    inner = (slice(2, g.shape[0] - 1), slice(2, g.shape[1] - 1))
    out = []
    pad = _pad1(g) if pad is None else pad
    floor, zero = _constant(g.shape, 4 * _BLUR_EPSILON), _constant(g.shape, 0.0)
    for axis in (0, 1):
        blurred = ndimage.uniform_filter1d(g, BLUR_H_SIZE, axis=axis)
        # 4 x the magnitudes and 4 x the floor: M1, M2 are 4 x scikit-image's, exactly, and their ratio is the same
        sharp = _sobel_abs4_whole(pad, axis) if whole else _sobel_abs4(pad, axis)
        soft = _sobel_abs4(_pad1(blurred), axis)  # not whole numbers: SciPy's order of the sums
        np.maximum(floor, sharp, out=sharp)
        np.maximum(floor, soft, out=soft)
        excess = np.maximum(zero, np.subtract(sharp, soft, out=soft), out=soft)
        m1 = np.sum(sharp[inner])
        m2 = np.sum(excess[inner])
        out.append(np.abs(m1 - m2) / m1)
    return float(max(out))


def image_facts(image, levels: np.ndarray | None = None) -> dict:
    """Pixel facts of one decoded image.

    Parameters
    ----------
    image : PIL.Image.Image
        8-bit RGB (as returned by :meth:`ImageSource.open`).
    levels : ndarray of shape (2, 3) or None
        Camera levels for the colour name (:func:`collection_levels`).

    Returns
    -------
    dict
        Keys of :data:`QUALITY_COLUMNS` except ``path``, ``readable``, ``error``,
        ``sha1``; see the module notes for the formulas.
    """
    return _facts_and_mask(image, levels)[0]


def _facts_and_mask(image, levels: np.ndarray | None = None) -> tuple[dict, np.ndarray]:
    """:func:`image_facts` and the object mask of the small copy (:func:`foreground_mask`) it was measured with."""
    import imagehash
    from PIL import Image
    from scipy import ndimage

    w, h = image.size
    work = _bounded(image)  # statistics on a bounded copy (large images are rare and slow)
    a = np.asarray(work, dtype=np.uint8)
    cmax = np.maximum(np.maximum(a[..., 0], a[..., 1]), a[..., 2])
    cmin = _channel_min(a)
    lum = a.astype(np.float32) @ _LUMA32
    p5, p95 = _percentiles(lum.ravel(), (5, 95))
    bright = lum >= 240
    blob = 0.0
    if bright.any():
        labels, nlab = ndimage.label(bright, structure=np.ones((3, 3)))
        blob = float(np.bincount(labels.ravel())[1:].max()) / lum.size if nlab else 0.0
    grey8 = np.clip(np.rint(lum), 0, 255).astype(np.uint8)
    grey = Image.fromarray(grey8, mode="L")
    g8 = np.asarray(grey.resize((LAPLACIAN_SIZE, LAPLACIAN_SIZE), Image.Resampling.BILINEAR))
    g = g8.astype(np.float64)
    g_pad = _pad1(g)
    lap_var = float(_laplace(g_pad).var())  # g holds whole numbers (an 8-bit image resized)
    hist = np.bincount(grey8.ravel(), minlength=256) / lum.size
    hist = hist[hist > 0]
    spread = cmax.astype(np.int16) - cmin.astype(np.int16)
    # one percentile call for the spread's 95th and the channels' 1st and 99th (order statistics of whole
    # numbers, interpolated in float64 as for each array alone)
    stacked = np.empty((4, spread.size), dtype=np.int16)  # the columns contiguous: a column's selection runs ~2x faster
    stacked[:3] = a.reshape(-1, 3).T
    stacked[3] = spread.ravel()
    levels_p = _percentiles(stacked.T, (1, 95, 99))
    spread_p95 = float(levels_p[1, 3])
    p1, p99 = levels_p[0, :3], levels_p[2, :3]

    small = _small(work)
    lab = rgb_to_lab(small)  # once: the object estimate and the colour name share it
    mask, _ = foreground_mask(small, lab)
    weights, fg_share = object_weights(small, mask)
    wv = weights.ravel()
    w128 = np.asarray(Image.fromarray(weights.astype(np.float32), mode="F").resize(
        (LAPLACIAN_SIZE, LAPLACIAN_SIZE), Image.Resampling.BILINEAR), dtype=np.float64)
    w128 /= w128.sum()
    g_mean = float((w128 * g).sum())
    g_var = float((w128 * (g - g_mean) ** 2).sum())
    lap_energy = _least_directional_energy(g, w128)
    ohist = np.bincount(g8.ravel(), weights=w128.ravel(), minlength=256)  # g8: the levels of g, 0..255
    ohist = ohist[ohist > 0] / ohist.sum()
    s_lum = (small.astype(np.float64) @ _LUMA64).ravel()
    s_clip = (_channel_min(small) >= CLIP_LEVEL).ravel()
    centre = _centre(*small.shape[:2]).ravel()
    kept = ~s_clip
    unclipped_p5 = weighted_quantile(s_lum[kept], centre[kept], 0.05) if kept.any() else 255.0
    blur = _blur_effect(g, g_pad, whole=True) if g.max() > g.min() else float("nan")  # flat (std 0): no detail to judge
    return {
        "width": int(w),
        "height": int(h),
        "aspect": float(w / h),
        "mean_luminance": float(lum.mean()),
        "p5_luminance": float(p5),
        "p95_luminance": float(p95),
        "saturated_share": float(np.count_nonzero(cmin >= CLIP_LEVEL)) / cmin.size,
        "bright_blob_share": blob,
        "laplacian_var": lap_var,
        "entropy": max(0.0, float(-(hist * np.log2(hist)).sum())),
        "channel_spread": float(spread.mean()),
        "greyscale": bool(spread_p95 <= GREY_P95_SPREAD),
        "phash": str(imagehash.phash(image)),
        **colour_facts(small, levels, mask, lab),
        "object_share": fg_share,
        "object_luminance": float(wv @ s_lum),
        "object_p95_luminance": weighted_quantile(s_lum, wv, 0.95),
        "object_saturated_share": float(centre @ s_clip),
        "sharpness": lap_energy / g_var if g_var > 1e-9 else 0.0,
        "channel_spread_p95": spread_p95,
        "object_entropy": max(0.0, float(-(ohist * np.log2(ohist)).sum())),
        "blur_effect": blur,
        "unclipped_p5_luminance": float(unclipped_p5),
        **{c: float(x) for c, x in zip(LEVEL_COLUMNS, [*p1, *p99])},
    }, mask


def _short_error(exc: Exception, path: str) -> str:
    msg = str(exc)
    if msg.startswith(f"{path}: "):
        msg = msg[len(path) + 2 :]
    return msg[:200]


#: Key of a first-pass row that carries the object mask (packed bits) to the colour pass; not a column.
_MASK_KEY = "_object_mask"


def _row(source: ImageSource, path: str) -> dict:
    """Pixel facts of one image as a table row; a readable one carries its packed object mask (:data:`_MASK_KEY`)."""
    row: dict = {"path": path, "readable": False, "error": "", "sha1": ""}
    try:
        data = source.read_bytes(path)
        row["sha1"] = hashlib.sha1(data).hexdigest()
        facts, mask = _facts_and_mask(source.decode(data, path))  # the bytes read once: hashed, then decoded
        row.update(facts)
        row[_MASK_KEY] = np.packbits(mask.ravel()).tobytes()
        row["readable"] = True
    except Exception as exc:  # unreadable files are facts, not failures
        row["error"] = _short_error(exc, path)
    return row


def _colour_row(source: ImageSource, path: str, levels: np.ndarray, packed_mask: bytes | None = None) -> dict:
    """Colour facts after the camera levels; ``packed_mask`` is the first pass's object mask (the same image's).

    The mask depends on the raw pixels only, not on the levels, so the first pass's is reused
    instead of computed again.
    """
    try:
        small = _small(_bounded(source.open(path)))
        mask = None
        if packed_mask is not None:
            n = small.shape[0] * small.shape[1]
            mask = np.unpackbits(np.frombuffer(packed_mask, dtype=np.uint8), count=n).astype(bool)
            mask = mask.reshape(small.shape[:2])
        return colour_facts(small, levels, mask)
    except Exception:  # read in the first pass; a file changed since keeps its first-pass colour
        return {}


def _bounded(image):
    from PIL import Image

    if max(image.size) > 512:
        image = image.copy()
        image.thumbnail((512, 512), Image.Resampling.BILINEAR)
    return image


_WORKER_SOURCE: ImageSource | None = None


def _init_worker(source: ImageSource) -> None:
    from ..workers import exit_with_parent

    global _WORKER_SOURCE
    _WORKER_SOURCE = source
    exit_with_parent()


def _worker_row(path: str) -> dict:
    return _row(_WORKER_SOURCE, path)  # type: ignore[arg-type]


def _worker_colour(path: str, levels: np.ndarray, packed_mask: bytes | None = None) -> dict:
    return _colour_row(_WORKER_SOURCE, path, levels, packed_mask)  # type: ignore[arg-type]


def _bar(rows, total: int, desc: str, progress: bool):
    if not progress:
        return rows
    from ..progress import progress_bar

    return progress_bar(rows, total=total, desc=desc, unit="img")


def image_quality_table(source: ImageSource, paths: list[str], progress: bool = True, n_jobs: int | None = None,
                        chunksize: int = 64) -> pd.DataFrame:
    """Pixel facts of every image, one row per path in input order.

    Parameters
    ----------
    source : ImageSource
        Folder or zip holding the images.
    paths : list of str, length n
        Case paths (as in ``images_paths.csv``).
    progress : bool, default True
        Show a tqdm progress bar.
    n_jobs : int or None, default None
        Worker processes (1 = in this process); None = one per CPU (``os.cpu_count()``). The
        checks of one image are single-threaded NumPy, so the throughput grows with the workers;
        each worker reads the palette's lookup table once (a shipped 32 kB file). Fewer than
        ``4 * chunksize`` paths are checked in this process.
    chunksize : int, default 64
        Paths per task sent to a worker.

    Notes
    -----
    When :func:`collection_levels` finds camera levels, the readable images are read
    a second time to name their colours after the levels, with the object masks of
    the first pass (kept as 128 bytes an image until then; the mask does not depend on
    the levels).

    Returns
    -------
    DataFrame of shape (n, 50)
        Columns :data:`QUALITY_COLUMNS`: ``path``, ``readable`` (bool), ``error``
        (str, "" when readable), ``width``, ``height`` (int pixels, NaN when
        unreadable), ``aspect``, ``mean_luminance``, ``p5_luminance``,
        ``p95_luminance``, ``saturated_share``, ``bright_blob_share``,
        ``laplacian_var``, ``entropy``, ``channel_spread``, ``greyscale``,
        ``sha1``, ``phash``, ``colour``, ``colour_share``, ``object_share``,
        ``object_luminance``, ``object_p95_luminance``, ``object_saturated_share``,
        ``sharpness``, ``channel_spread_p95``, ``colour_2``, ``colour_2_share``,
        ``object_entropy``, ``p1_r`` .. ``p99_b``, ``blur_effect``,
        ``unclipped_p5_luminance``, ``colour_lit_lightness``, ``palette_white`` ..
        ``palette_beige`` (see :func:`image_facts`).

    Raises
    ------
    ParameterError
        If ``n_jobs`` or ``chunksize`` is not a positive integer.
    """
    if n_jobs is None:
        import os

        n_jobs = os.cpu_count() or 1
    for name, v in (("n_jobs", n_jobs), ("chunksize", chunksize)):
        if not isinstance(v, int) or isinstance(v, bool) or v < 1:
            raise ParameterError(f"{name}={v!r} must be a positive integer")
    paths = list(paths)
    executor = None
    if n_jobs > 1 and len(paths) >= 4 * chunksize:
        import multiprocessing as mp
        from concurrent.futures import ProcessPoolExecutor

        ctx = mp.get_context("spawn")  # no fork of a process that may hold threads (torch, faiss)
        executor = ProcessPoolExecutor(max_workers=n_jobs, mp_context=ctx, initializer=_init_worker, initargs=(source,))
    try:
        rows = executor.map(_worker_row, paths, chunksize=chunksize) if executor else (_row(source, p) for p in paths)
        rows = list(_bar(rows, len(paths), "image quality", progress))
        masks = [r.pop(_MASK_KEY, None) for r in rows]  # 128 bytes an image, for the colour pass
        table = pd.DataFrame(rows)
        table = table.reindex(columns=QUALITY_COLUMNS)
        table["readable"] = table["readable"].astype(bool)
        levels, _ = collection_levels(table)
        if levels is not None:  # second pass: colour names after the camera levels
            ok = table["readable"].to_numpy()
            todo = [p for p, keep in zip(paths, ok) if keep]
            todo_masks = [m for m, keep in zip(masks, ok) if keep]
            if executor:
                colours = executor.map(_worker_colour, todo, [levels] * len(todo), todo_masks, chunksize=chunksize)
            else:
                colours = (_colour_row(source, p, levels, m) for p, m in zip(todo, todo_masks))
            fixed = pd.DataFrame(list(_bar(colours, len(todo), "colour names (camera levels)", progress)),
                                 index=table.index[table["readable"].to_numpy()])
            table.update(fixed)
    finally:
        if executor is not None:
            executor.shutdown()
    table["greyscale"] = table["greyscale"].fillna(False).astype(bool)
    for col in ("error", "sha1", "phash", "colour", "colour_2"):
        table[col] = table[col].fillna("").astype(str)
    return table
