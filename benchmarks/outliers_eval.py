"""Evaluate the outlier step on junk it was not built from, at a realistic prevalence.

Two collections are built, a **development** part (used while the code was
written) and a **held-out** part (run once the rules were fixed), each from
its own half of the 4,800 real demo crops (``data/tiny-vehicles``, one
daytime camera) and its own real photos. In each part, about 9% of the images
are junk (``DEFECTS``), and a few hundred hard negatives must stay unflagged:

Junk (must be flagged)
    ``background``   dense group: 50 crops of road/kerb from the corners of this
                     part's bike and car crops, upscaled to 100×100 (the
                     background texture of the same camera);
    ``empty-frames`` dense group: 40 frames of one camera (folder ``cam_empty/``)
                     showing an empty scene (dev: scikit-learn's ``china.jpg``,
                     held-out: scikit-image's ``rocket``) with small shifts, gain drift,
                     sensor noise and JPEG;
    ``non-vehicle``  real photos shipped in scikit-image / scikit-learn (dev:
                     astronaut, immunohistochemistry, chelsea, camera, coins;
                     held-out: retina, hubble_deep_field, flower, moon, page), random
                     crops at several scales;
    ``over-exposed`` 30 crops: half a blown-out frame (gain 3-4, offset 60-90), half
                     a sun-glare bloom whose clipped core covers the centre. (The first
                     version, gain 2.2-3 and offset 30-60, left dark vehicles visible on a
                     blown-out road -- like a studio shot, and by the object rule not
                     over-exposed; it was replaced after the development run, before the
                     held-out part was built.);
    ``dark``         30 crops under-exposed so the object is hidden (×0.06-0.14, noise);
    ``blurred``      30 crops: Gaussian blur (radius 2.5-4 px) or motion blur (9-13 px);
    ``greyscale``    30 grey-scale (infra-red-like) frames, half with a small coloured
                     time stamp (< 1% of the pixels).

Hard negatives (must NOT be flagged; their colour is the hand label of the source)
    ``night``        60 night-dark copies of hand-labelled vehicles under a street
                     lamp (gamma 1.5, light falling off from the vehicle to 12% at the
                     frame's edge, mean luma under 60, blue tint, sensor noise): dark
                     frames whose vehicle is still visible;
    ``studio``       40 studio-like copies: the vehicle cut out by its colour distance
                     to the crop's border, on a pure white (255) backdrop with a
                     white margin (a white-background studio shot);
    ``clean``        every real crop of the part.

Colour classes: demo crops labelled by eye (``benchmarks/data/tiny_vehicles_colours.csv``:
white, silver, grey, black, red, blue, ...): 448 of 600 random non-motorbike crops
(152 left out as ambiguous, e.g. trucks whose cab and load differ in colour), split
into a development and a held-out half, and 51 of 60 motorbikes (development only,
used to choose the colour weighting; not colour classes here). Silver and grey count as one class.
That held-out half had too few crops of the rare colours to measure a 2% rate (19 red
images, 10 blue, 4 orange), so 476 more held-out crops were labelled by eye (issue 12), in
a pass that did not look at the outlier output: ``benchmarks/colour_candidates.py`` ranks
the unlabelled held-out crops by CIELAB percentiles of the crop's centre (red, warm, blue
and green candidates, motorbikes apart) and draws 150 of the others at random; each crop
was looked at on a contact sheet (825 shown; 10 were already in the motorbike sample; of
the other 815, 339 were left out as ambiguous: two-colour trucks, a rider hiding the bike,
too dark). Added: 115 red (37 of them motorbikes), 37
blue, 18 yellow, 7 green, 5 orange, 4 brown, 1 beige, 151 white, 117 silver/grey, 21
black; the ``sample`` column says how each row was picked. (Those candidate sets are
not a random sample, so they measure rates per colour, not the colour mix. The labeller of
this pass, relabelling 36 first-pass held-out crops blind, agreed on 29 of the 35 not left
out: 4 differed at the white/silver edge, 2 dark blue ones read black and white.) The extra
labels add no image: the night and studio copies are still made from the 600-crop sample,
so every image and flag of the held-out part is as before, only more of its clean images
have a colour class.

No threshold of the outlier step was set on these images: the rules' cuts come
from robust statistics of each collection and from published values (see
``descluster.outliers.quality``). The rules were revised after runs on the
development part: grey-scale frames allow a 5% overlay (99th -> 95th percentile;
the time stamps), sharpness is taken along the least sharp direction (motion
blur), relative rules got an effect size (1/4 of the median) besides the robust
z, studio backdrops are left out of entropy, clipping is weighed with the centre
prior, all descriptor kinds must agree (was 2 of 3), and a "no vehicle" group
does not flag members that show a vehicle themselves; the over-exposure
generator was changed (above). The held-out part was built and run once after
these changes (a later fix of the logit clip in ``vehicle.py`` left its flags
unchanged).

Second revision (issue 12, after the held-out run missed blurred images, Hubble
star-field crops, and flagged studio shots and rare red lorries): the held-out
misses were looked at to find their causes, then the rules were changed and
checked on the development part, and the held-out part run once more. The
changes use published or physical anchors, none set from held-out values:
``blurred`` is the blur effect of Crété-Roffet et al. (2007) -- the image
against a re-blurred copy of itself -- in the high tail and >= 0.5 (the motion
blurs it missed sat inside the clean images' spread of the old sharpness ratio);
``over-exposed`` also needs the darkest kept tones (5th percentile of the
unclipped pixels) lighter than middle grey, luma 118 (studio shots clipped
51-57% of the centre but kept dark tyres and glass); ``low-information`` also
needs the whole frame under 4 bits (a truck's plain side panel filled the
centre); descriptor agreement does not flag an image with vehicle share >= 0.5
(rare vehicles), and an image with vehicle share under 50/1000 (a uniform head)
is flagged by detectors in 2 kinds (the image-level no-vehicle cut had fallen
to 1e-5 and never fired). The evaluation itself (images, kinds, scoring) is
unchanged. Run time on the shared 2-core machine: 14 min from scratch (extraction
650 s), 2.5-3.5 min per part when descriptors are cached (pixel table ~2 min). The colour-naming design (centre prior with the background at 0.1,
lit-face quantile, the survey prototypes used) was chosen on the development
labels; the held-out half measures it.

Descriptors come from the same extractors as the tool
(:func:`descluster.extract.extract_case`, all default backbones), reduced as the
pipeline does (:func:`descluster.preprocess.reduce_descriptor`, ``standard``, 90%
variance). The work folder (default ``benchmarks/.cache/outliers_eval``, git-ignored)
keeps images, descriptors (per image content) and pixel tables, so a rerun only
repeats the outlier step.

Run: ``python benchmarks/outliers_eval.py [--parts development,held-out]``.
Writes ``benchmarks/results/outliers_eval.json`` and prints a table.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import shutil
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image, ImageDraw, ImageFilter

sys.path.insert(0, str(Path(__file__).resolve().parent))
from machine import machine_facts  # noqa: E402  (benchmarks/machine.py)

REPO = Path(__file__).resolve().parents[1]
DEMO = REPO / "data" / "tiny-vehicles"
LABELS = REPO / "benchmarks" / "data" / "tiny_vehicles_colours.csv"
RESULTS = REPO / "benchmarks" / "results" / "outliers_eval.json"
SIZE = (100, 100)
PARTS = ("development", "held-out")

#: Per part: non-vehicle photos (skimage.data names, or "sklearn:<file>") and the empty camera scene.
SOURCES = {
    "development": {"photos": ["astronaut", "immunohistochemistry", "chelsea", "camera", "coins"],
                    "empty_scene": "sklearn:china.jpg"},
    "held-out": {"photos": ["retina", "hubble_deep_field", "sklearn:flower.jpg", "moon", "page"],
                 "empty_scene": "rocket"},
}
COUNTS = {"background": 50, "empty-frames": 40, "over-exposed": 30, "dark": 30, "blurred": 30, "greyscale": 30,
          "night": 60, "studio": 40}
CROPS_PER_COLOUR_PHOTO, CROPS_PER_GREY_PHOTO = 8, 4
DEFECTS = ("background", "empty-frames", "non-vehicle", "over-exposed", "dark", "blurred", "greyscale")
NEGATIVES = ("clean", "night", "studio")
#: The motorbike colour labels used to choose the colour weighting (not part of the colour classes).
DEV_MOTORBIKES = "60 random motorbike crops (seed 5)"
#: Targets of issue 12.
TARGETS = {"recall_per_kind": 0.9, "precision": 0.8, "max_false_flag_rate_per_colour": 0.02}


# --------------------------------------------------------------------------- sources
def _photo(name: str) -> Image.Image:
    if name.startswith("sklearn:"):
        from sklearn.datasets import load_sample_image

        a = load_sample_image(name.split(":", 1)[1])
    else:
        import skimage.data

        a = getattr(skimage.data, name)()
    if a.dtype != np.uint8:
        a = (a.astype(np.float64) / max(float(a.max()), 1.0) * 255).astype(np.uint8)
    return Image.fromarray(a).convert("RGB")


def _is_grey(im: Image.Image) -> bool:
    a = np.asarray(im, dtype=np.int16)
    return int((a.max(axis=2) - a.min(axis=2)).max()) == 0


def _part_of(path: str, labelled: dict[str, str]) -> str:
    if path in labelled:
        return labelled[path]
    return PARTS[int(hashlib.sha1(path.encode()).hexdigest(), 16) % 2]


def _save(im: Image.Image, dst: Path, quality: int = 92) -> None:
    dst.parent.mkdir(parents=True, exist_ok=True)
    im.convert("RGB").save(dst, quality=quality)


# --------------------------------------------------------------------------- transforms
def _over_global(im, rng):
    a = np.asarray(im, dtype=np.float64) * rng.uniform(3.0, 4.0) + rng.uniform(60, 90)
    return Image.fromarray(np.clip(a, 0, 255).astype(np.uint8))


def _over_glare(im, rng):
    a = np.asarray(im, dtype=np.float64)
    h, w = a.shape[:2]
    cy, cx = h / 2 + rng.uniform(-8, 8), w / 2 + rng.uniform(-8, 8)
    r = rng.uniform(0.35, 0.5) * min(h, w)
    yy, xx = np.mgrid[0:h, 0:w]
    bloom = np.exp(-(((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * r**2)))[..., None]
    return Image.fromarray(np.clip(a + rng.uniform(300, 420) * bloom, 0, 255).astype(np.uint8))


def _dark(im, rng):
    a = np.asarray(im, dtype=np.float64) * rng.uniform(0.06, 0.14) + rng.normal(0, 1.5, (*im.size[::-1], 3))
    return Image.fromarray(np.clip(a, 0, 255).astype(np.uint8))


def _blur(im, rng, motion: bool):
    if not motion:
        return im.filter(ImageFilter.GaussianBlur(rng.uniform(2.5, 4.0)))
    from scipy import ndimage

    length = int(rng.integers(9, 14))
    k = np.zeros((length, length))
    k[length // 2, :] = 1.0
    k = ndimage.rotate(k, rng.uniform(0, 180), reshape=False, order=1)
    k /= k.sum()
    a = np.asarray(im, dtype=np.float64)
    out = np.stack([ndimage.convolve(a[..., c], k, mode="nearest") for c in range(3)], axis=-1)
    return Image.fromarray(np.clip(out, 0, 255).astype(np.uint8))


def _greyscale(im, rng, stamp: bool):
    g = im.convert("L").convert("RGB")
    if stamp:  # a small yellow time stamp, as infra-red cameras overlay (< 1% of the pixels)
        d = ImageDraw.Draw(g)
        d.text((2, 2), f"{int(rng.integers(0, 24)):02d}:{int(rng.integers(0, 60)):02d}", fill=(255, 220, 0))
    return g


def _night(im, rng):
    """A vehicle under a street lamp at night: light falls off from the vehicle to the frame's edge."""
    a = (np.asarray(im, dtype=np.float64) / 255.0) ** 1.5
    h, w = a.shape[:2]
    yy, xx = np.mgrid[0:h, 0:w]
    r2 = ((yy - h / 2) / h) ** 2 + ((xx - w / 2) / w) ** 2
    lamp = 0.12 + rng.uniform(0.55, 0.75) * np.exp(-r2 / (2 * 0.3**2))
    a = a * lamp[..., None] * np.array([0.85, 0.92, 1.08]) * 255
    lum = (a @ np.array([0.299, 0.587, 0.114])).mean()
    a *= min(1.0, rng.uniform(40, 58) / max(lum, 1e-6))  # mean luma under 60: night-dark
    a += rng.normal(0, 2.0, a.shape)
    return Image.fromarray(np.clip(a, 0, 255).astype(np.uint8))


def _studio(im, rng):
    """Vehicle cut out by colour distance to the border (CIELAB), on a white backdrop with a white margin."""
    from skimage.color import rgb2lab

    a = np.asarray(im, dtype=np.uint8)
    lab = rgb2lab(a / 255.0)
    border = np.concatenate([lab[:6].reshape(-1, 3), lab[-6:].reshape(-1, 3), lab[:, :6].reshape(-1, 3),
                             lab[:, -6:].reshape(-1, 3)])
    d = np.sqrt(((lab[..., None, :] - np.median(border, axis=0)) ** 2).sum(-1))[..., 0]
    out = a.copy()
    out[d < 14.0] = 255
    canvas = Image.new("RGB", (int(im.width * 1.4), int(im.height * 1.4)), (255, 255, 255))
    canvas.paste(Image.fromarray(out), ((canvas.width - im.width) // 2, (canvas.height - im.height) // 2))
    return canvas.resize(SIZE, Image.Resampling.LANCZOS)


def _background(im, rng):
    w, h = im.size
    s = int(rng.integers(22, 30))
    corner = int(rng.integers(0, 4))
    x = 0 if corner in (0, 2) else w - s
    y = 0 if corner in (0, 1) else h - s
    return im.crop((x, y, x + s, y + s)).resize(SIZE, Image.Resampling.BILINEAR)


def _empty_frame(scene, rng):
    w, h = scene.size
    side = int(0.6 * min(w, h))
    x0, y0 = (w - side) // 2 + int(rng.integers(-8, 9)), (h - side) // 2 + int(rng.integers(-8, 9))
    a = np.asarray(scene.crop((x0, y0, x0 + side, y0 + side)).resize(SIZE, Image.Resampling.BILINEAR), dtype=np.float64)
    a = a * rng.uniform(0.85, 1.15) + rng.normal(0, 3.0, a.shape)
    return Image.fromarray(np.clip(a, 0, 255).astype(np.uint8))


def _photo_crop(photo, rng):
    w, h = photo.size
    side = int(rng.uniform(0.3, 0.9) * min(w, h))
    x, y = int(rng.integers(0, w - side + 1)), int(rng.integers(0, h - side + 1))
    return photo.crop((x, y, x + side, y + side)).resize(SIZE, Image.Resampling.LANCZOS)


# --------------------------------------------------------------------------- building
def build_part(root: Path, part: str, seed: int) -> pd.DataFrame:
    """Write the images of one part under ``root``; return the truth table (path, kind, junk, colour, source)."""
    labels = pd.read_csv(DEMO / "labels.csv")
    hand = pd.read_csv(LABELS)
    hand = hand[hand["sample"] != DEV_MOTORBIKES]  # the development motorbike labels are for colour naming only
    labelled = dict(zip(hand["path"], hand["part"]))
    first = set(hand.loc[hand["sample"].str.startswith("600"), "path"])  # the first 600-crop sample
    colour = dict(zip(hand["path"], hand["colour"].replace({"silver": "silver/grey", "grey": "silver/grey"})))
    mine = [p for p in labels["path"] if _part_of(p, labelled) == part]
    rng = np.random.default_rng(seed + (0 if part == PARTS[0] else 1000))
    rows = []
    for rel in mine:  # the real crops of this part
        dst = root / rel
        if not dst.exists():
            dst.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(DEMO / rel, dst)
        rows.append((rel, "clean", False, colour.get(rel, ""), rel))
    folders = sorted({p.split("/", 1)[0] for p in mine})

    def make(kind: str, sources: list[str], fn, n: int) -> None:
        pick = rng.choice(len(sources), size=n, replace=len(sources) < n)
        for j, i in enumerate(pick):
            src = sources[int(i)]
            folder = src.split("/", 1)[0] if kind in ("night", "studio") else folders[int(rng.integers(len(folders)))]
            rel = f"{folder}/{kind}_{j:03d}.jpg"
            dst = root / rel
            im = fn(Image.open(DEMO / src).convert("RGB"), j)
            if not dst.exists():
                _save(im, dst)
            rows.append((rel, kind, kind in DEFECTS, colour.get(src, ""), src))

    small = [p for p in mine if p.split("/", 1)[0] in ("bike", "car")]
    make("background", small, lambda im, j: _background(im, rng), COUNTS["background"])
    make("over-exposed", mine, lambda im, j: _over_global(im, rng) if j % 2 else _over_glare(im, rng), COUNTS["over-exposed"])
    make("dark", mine, lambda im, j: _dark(im, rng), COUNTS["dark"])
    make("blurred", mine, lambda im, j: _blur(im, rng, motion=bool(j % 2)), COUNTS["blurred"])
    make("greyscale", mine, lambda im, j: _greyscale(im, rng, stamp=bool(j % 2)), COUNTS["greyscale"])
    mine_labelled = [p for p in mine if p in first]  # night/studio sources: the 600-crop sample, as in every run
    make("night", mine_labelled, lambda im, j: _night(im, rng), COUNTS["night"])
    make("studio", mine_labelled, lambda im, j: _studio(im, rng), COUNTS["studio"])

    scene_name = SOURCES[part]["empty_scene"]
    scene = _photo(scene_name)
    for j in range(COUNTS["empty-frames"]):
        rel = f"cam_empty/frame_{j:04d}.jpg"
        im = _empty_frame(scene, rng)
        if not (root / rel).exists():
            _save(im, root / rel, quality=85)
        rows.append((rel, "empty-frames", True, "", scene_name))
    for name in SOURCES[part]["photos"]:
        photo = _photo(name)
        for j in range(CROPS_PER_GREY_PHOTO if _is_grey(photo) else CROPS_PER_COLOUR_PHOTO):
            rel = f"{folders[int(rng.integers(len(folders)))]}/photo_{name.replace(':', '_').split('.')[0]}_{j}.jpg"
            im = _photo_crop(photo, rng)
            if not (root / rel).exists():
                _save(im, root / rel)
            rows.append((rel, "non-vehicle", True, "", name))
    return pd.DataFrame(rows, columns=["path", "kind", "junk", "colour", "source"])


# --------------------------------------------------------------------------- scoring
def evaluate(table: pd.DataFrame, truth: pd.DataFrame, quality: pd.DataFrame) -> dict:
    """Recall per junk kind, precision of the flagged set, false flags per negative kind and colour class."""
    t = table.merge(truth, on="path", how="left", validate="one_to_one")
    flagged = t["flagged"].to_numpy(dtype=bool)
    junk = t["junk"].to_numpy(dtype=bool)
    tp = int((flagged & junk).sum())
    out = {"n_images": int(len(t)), "n_junk": int(junk.sum()), "junk_share": float(junk.mean()),
           "n_flagged": int(flagged.sum()), "precision": tp / max(int(flagged.sum()), 1), "recall": tp / max(int(junk.sum()), 1),
           "per_kind": {}, "false_flags": {}, "false_flags_by_colour": {}}
    by = t["flagged_by"].fillna("").astype(str)
    for k in DEFECTS:
        m = (t["kind"] == k).to_numpy()
        if not m.any():
            continue
        how = by[m & flagged].str.split(";").explode().str.split(":").str[0].value_counts().to_dict()
        out["per_kind"][k] = {"n": int(m.sum()), "recall": float((flagged & m).sum() / m.sum()),
                              "flagged_by_family": {str(a): int(b) for a, b in how.items()},
                              "missed": t.loc[m & ~flagged, "path"].head(8).tolist()}
    for k in NEGATIVES:
        m = (t["kind"] == k).to_numpy()
        rules = by[m & flagged].str.split(";").explode().value_counts().head(8).to_dict()
        out["false_flags"][k] = {"n": int(m.sum()), "flagged": int((flagged & m).sum()),
                                 "rate": float((flagged & m).sum() / max(m.sum(), 1)), "by": rules,
                                 "examples": t.loc[m & flagged, ["path", "reason"]].head(6).to_dict(orient="records")}
    neg = t["kind"].isin(NEGATIVES).to_numpy()
    for c in sorted(set(t.loc[neg & (t["colour"].fillna("") != ""), "colour"])):
        m = neg & (t["colour"] == c).to_numpy()
        out["false_flags_by_colour"][c] = {"n": int(m.sum()), "flagged": int((flagged & m).sum()),
                                           "rate": float((flagged & m).sum() / m.sum())}
    # colour names of the hand-labelled clean crops (the first-pass colour of the pixel table)
    hand = pd.read_csv(LABELS)
    q = quality[["path", "colour"]].merge(hand, on="path", suffixes=("_named", ""))
    merge = {"silver": "silver/grey", "grey": "silver/grey"}
    out["colour_naming"] = {}
    for sample, g in q.groupby("sample"):
        named, true = g["colour_named"].replace(merge), g["colour"].replace(merge)
        out["colour_naming"][sample] = {"n": int(len(g)), "accuracy_silver_grey_as_one": float((named == true).mean()),
                                        "confusion": {str(k): v for k, v in pd.crosstab(true, named).to_dict().items()}}
    out["targets"] = {
        "recall_per_kind": all(v["recall"] >= TARGETS["recall_per_kind"] for v in out["per_kind"].values()),
        "precision": out["precision"] >= TARGETS["precision"],
        "false_flags_per_colour": all(v["rate"] <= TARGETS["max_false_flag_rate_per_colour"]
                                      for v in out["false_flags_by_colour"].values()),
    }
    return out


def _sha1(path: Path) -> str:
    return hashlib.sha1(path.read_bytes()).hexdigest()


def cached_descriptors(images: Path, paths: list[str], cache: Path) -> tuple[dict[str, np.ndarray], pd.DataFrame]:
    """Descriptors and ImageNet rows of ``paths``, extracted once per image content (sha1) and kept in ``cache``.

    Images not in the cache are copied to a temporary folder (same relative paths)
    and run through :func:`descluster.extract.extract_case`; so regenerating a few
    injected images does not re-extract the whole collection.
    """
    from descluster.extract import extract_case

    cache.mkdir(parents=True, exist_ok=True)
    keys_file = cache / "keys.csv"
    keys = pd.read_csv(keys_file)["sha1"].tolist() if keys_file.exists() else []
    mats = {f.stem: np.load(f) for f in cache.glob("*.npy")}
    net = pd.read_csv(cache / "imagenet.csv") if (cache / "imagenet.csv").exists() else pd.DataFrame()
    digests = [_sha1(images / p) for p in paths]
    known = set(keys)
    todo = sorted({(d, p) for d, p in zip(digests, paths) if d not in known}, key=lambda x: x[1])
    todo = list({d: p for d, p in todo}.items())
    if todo:
        tmp = cache / "tmp"
        shutil.rmtree(tmp, ignore_errors=True)
        for _, p in todo:
            (tmp / "images" / p).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(images / p, tmp / "images" / p)
        extract_case(tmp / "images", tmp / "case", progress=True)
        got = pd.read_csv(tmp / "case" / "images_paths.csv")["paths"].astype(str).tolist()
        by_path = {p: d for d, p in todo}
        new_keys = [by_path[p] for p in got]
        for f in sorted((tmp / "case" / "descriptors").glob("*.npy")):
            X = np.load(f)
            mats[f.stem] = np.vstack([mats[f.stem], X]) if f.stem in mats else X
            np.save(cache / f.name, mats[f.stem])
        rows = pd.read_csv(tmp / "case" / "meta" / "imagenet.csv").drop(columns=["path"])
        net = pd.concat([net, rows], ignore_index=True)
        net.to_csv(cache / "imagenet.csv", index=False)
        keys += new_keys
        pd.DataFrame({"sha1": keys}).to_csv(keys_file, index=False)
        shutil.rmtree(tmp)
    row = {k: i for i, k in enumerate(keys)}
    idx = np.array([row[d] for d in digests])
    imagenet = net.iloc[idx].reset_index(drop=True)
    imagenet.insert(0, "path", paths)
    return {k: v[idx] for k, v in mats.items()}, imagenet


def run_part(work: Path, part: str, seed: int) -> dict:
    from descluster.io.images import ImageSource
    from descluster.outliers import find_outliers, image_quality_table
    from descluster.preprocess import reduce_descriptor

    images = work / part / "images"
    timings = {}
    t0 = time.perf_counter()
    truth = build_part(images, part, seed)
    timings["build_s"] = time.perf_counter() - t0
    paths = sorted(truth["path"])
    t0 = time.perf_counter()
    raw, imagenet = cached_descriptors(images, paths, work / "descriptor_cache")
    timings["extract_s"] = time.perf_counter() - t0
    qfile = work / part / "quality.csv"
    t0 = time.perf_counter()
    if qfile.exists():
        quality = pd.read_csv(qfile, keep_default_na=False, na_values=[""])
        quality["readable"] = quality["readable"].astype(bool)
    else:
        quality = image_quality_table(ImageSource(images), paths, progress=True, n_jobs=2)
        quality.to_csv(qfile, index=False)
    timings["quality_s"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    spaces = {k: reduce_descriptor(X, "standard", 0.90, descriptor=k).X for k, X in sorted(raw.items())}
    timings["reduce_s"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    rep = find_outliers(spaces, paths, quality=quality, imagenet=imagenet, random_state=seed, progress=False)
    timings["outliers_s"] = time.perf_counter() - t0
    res = evaluate(rep.table, truth, quality)
    groups = []
    for space, det in rep.groups.items():
        g = det.groups_[det.groups_["flagged"]]
        for r in g.itertuples():
            labels = det.sub_labels_ if r.level == "sub-cluster" else None
            members = [paths[i] for i in np.flatnonzero(labels == r.group)] if labels is not None else []
            kinds = truth.set_index("path").loc[members, "kind"].value_counts().to_dict() if members else {}
            groups.append({"space": space, "level": r.level, "group": int(r.group), "size": int(r.size),
                           "reason": r.reason, "members_by_kind": kinds})
    res["flagged_groups"] = groups
    res["thresholds"] = rep.thresholds
    res["flag_rule"] = rep.flag_rule
    res["spaces"] = {k: list(v.shape) for k, v in spaces.items()}
    res["timings"] = {k: round(v, 1) for k, v in timings.items()}
    rep.table.merge(truth, on="path").to_csv(work / part / "outliers_scored.csv", index=False)
    return res


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--workdir", type=Path, default=REPO / "benchmarks" / ".cache" / "outliers_eval")
    parser.add_argument("--parts", default=",".join(PARTS))
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    from descluster.io.atomic import write_json

    parts = [p for p in args.parts.split(",") if p]
    old = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
    res = {"parts": {k: v for k, v in old.get("parts", {}).items() if k in PARTS}, "targets": TARGETS,
           "settings": {"seed": args.seed, "counts": COUNTS, "sources": SOURCES},
           "machine": machine_facts()}
    for part in parts:
        res["parts"][part] = run_part(args.workdir, part, args.seed)
    write_json(RESULTS, res)
    for part, r in res["parts"].items():
        print(f"\n== {part}: {r['n_images']:,} images, {r['n_junk']} junk ({r['junk_share']:.1%}); "
              f"flagged {r['n_flagged']}: precision {r['precision']:.3f}, recall {r['recall']:.3f}")
        print(f"{'junk kind':<14}{'n':>5}{'recall':>8}  flagged by (families)")
        for k, v in r["per_kind"].items():
            print(f"{k:<14}{v['n']:>5}{v['recall']:>8.2f}  {v['flagged_by_family']}")
        print(f"{'negatives':<14}{'n':>5}{'flagged':>8}{'rate':>8}  top rules")
        for k, v in r["false_flags"].items():
            print(f"{k:<14}{v['n']:>5}{v['flagged']:>8}{v['rate']:>8.1%}  {v['by']}")
        print(f"{'colour class':<14}{'n':>5}{'flagged':>8}{'rate':>8}")
        for k, v in r["false_flags_by_colour"].items():
            print(f"{k:<14}{v['n']:>5}{v['flagged']:>8}{v['rate']:>8.1%}")
        for sample, v in r["colour_naming"].items():
            print(f"colour names right (silver = grey) on {v['n']} hand-labelled crops of '{sample}': "
                  f"{v['accuracy_silver_grey_as_one']:.1%}")
        print("targets met:", r["targets"])
        print(json.dumps(r["timings"]))


if __name__ == "__main__":
    main()
