"""Pre-filter demo crops of one evaluation part for labelling their colour by eye.

Used to extend ``benchmarks/data/tiny_vehicles_colours.csv`` (issue 12): the
held-out half of the demo crops held too few labelled vehicles of the rare
colours (19 red, 10 blue, 4 orange, ...) to measure a false-flag rate of 2%.
This script does NOT name colours and does not use the tool's colour naming
or outlier output; it only ranks crops so that a person can look at the likely
ones first. The colour of each crop is then decided by eye on the contact
sheets, and crops that are ambiguous are left out.

Pre-filter (CIE 1976 L*a*b*, D65, :func:`skimage.color.rgb2lab`): for every
crop of the part that is not a motorbike (folder ``bike/``, as in the 600-crop
sample) and not in the 600-crop sample, take the central 50% of the crop (rows and
columns from 25% to 75%) and the 95th percentile of a* (redness), of b*
(yellowness) and of -b* (blueness) and the 5th percentile of a* (greenness)
over its pixels. A high percentile, not the mean, because the centre of many
crops is the vehicle's dark windows and roof: on the 448 labelled crops of the
600-crop sample the mean a* of the centre was under 10 for 23 of the 37 red
ones (under 5 for 10). On the same 448 crops the 95th percentile of a* was > 5
for all 37 red and 3 orange crops and for 10 of 398 white, silver, grey, black
and blue ones, and 15 of the 16 blue crops fell in ``blue`` or ``red``; the 2
green crops fell in no rule (the green set below is a ranking, not checked).
A crop is a candidate of (first rule that holds)

* ``red``    95th percentile of a* > 5 (red, pink, orange, some brown),
* ``warm``   95th percentile of b* > 10 (yellow, brown, beige, some orange),
* ``blue``   95th percentile of -b* > 10 (blue, purple; the shade of the road
  is slightly blue, so many silver and grey crops come too: the eye decides),
* ``green``  the 36 remaining crops of lowest 5th percentile of a*;

then 150 of the remaining crops are drawn at random (``random``, ``--seed``),
and of those still left, the crops with 3 < 95th percentile of a* <= 5 form
``red-low``: a check of what the red cut misses. Motorbikes (folder ``bike/``)
are a pool of their own, with the candidate sets ``moto-red`` (95th percentile
of a* > 5) and ``moto-blue`` (95th percentile of -b* > 10); their colour is the
colour of the bike's body (tank, fairing), not of the rider's clothes. (The
development motorbike sample, ``60 random motorbike crops (seed 5)``, was drawn
from all motorbikes; its crops that fall in this part are shown but marked
``labelled_before`` and not labelled again.)

The cuts were read off the labelled 600-crop sample (development and held-out
labels alike; they only choose which crops a person looks at, not a colour).
Which crops belong to a part is decided by :func:`outliers_eval._part_of`
(the hand-labelled part, else a hash of the path), so labelling a crop with
its own part does not move it to the other half.

Writes ``<out>/candidates.csv`` (path, set, the centre statistics, sheet, tile,
labelled_before) and
contact sheets ``<out>/<set>_<nn>.png``: 6x6 tiles of the full crop at 128 px,
each with its tile number. Run:
``python benchmarks/colour_candidates.py --part held-out --out /work/scratch/sheets``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image, ImageDraw

sys.path.insert(0, str(Path(__file__).resolve().parent))
from outliers_eval import DEMO, LABELS, _part_of  # noqa: E402

TILE, GRID, STRIP = 128, 6, 16


def centre_stats(path: Path) -> dict[str, float]:
    """Percentiles of the central 50% of an image in CIELAB (D65): a95, b95, bneg95 (of -b*), a05; mean L."""
    from skimage.color import rgb2lab

    a = np.asarray(Image.open(path).convert("RGB"), dtype=np.float64) / 255.0
    h, w = a.shape[:2]
    lab = rgb2lab(a[h // 4: h - h // 4, w // 4: w - w // 4]).reshape(-1, 3)
    return {"L": float(lab[:, 0].mean()), "a95": float(np.percentile(lab[:, 1], 95)),
            "b95": float(np.percentile(lab[:, 2], 95)), "bneg95": float(np.percentile(-lab[:, 2], 95)),
            "a05": float(np.percentile(lab[:, 1], 5))}


def which_set(s: dict[str, float]) -> str:
    """The candidate set of a crop's centre statistics (see the module docstring), or ''; green is chosen later."""
    if s["a95"] > 5:
        return "red"
    if s["b95"] > 10:
        return "warm"
    if s["bneg95"] > 10:
        return "blue"
    return ""


def sheet(paths: list[str], dst: Path) -> None:
    """Contact sheet: GRID x GRID tiles of the full crops at TILE px, numbered from 1."""
    rows = int(np.ceil(len(paths) / GRID))
    im = Image.new("RGB", (GRID * TILE, rows * (TILE + STRIP)), (255, 255, 255))
    d = ImageDraw.Draw(im)
    for i, p in enumerate(paths):
        x, y = (i % GRID) * TILE, (i // GRID) * (TILE + STRIP)
        im.paste(Image.open(DEMO / p).convert("RGB").resize((TILE, TILE), Image.Resampling.LANCZOS), (x, y + STRIP))
        d.text((x + 3, y + 2), f"{i + 1}", fill=(0, 0, 0))
    dst.parent.mkdir(parents=True, exist_ok=True)
    im.save(dst)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--part", default="held-out")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--random", type=int, default=150)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()

    hand = pd.read_csv(LABELS)
    moto_before = set(hand.loc[hand["sample"].str.startswith("60 random motorbike"), "path"])
    hand = hand[hand["sample"].str.startswith("600")]  # the crops labelled before this script (fixed pool)
    labelled = dict(zip(hand["path"], hand["part"]))
    mine = [p for p in pd.read_csv(DEMO / "labels.csv")["path"]
            if _part_of(p, labelled) == args.part and p not in labelled]
    paths = [p for p in mine if not p.startswith("bike/")]
    stats = pd.DataFrame([{"path": p, **centre_stats(DEMO / p)} for p in paths])
    stats["set"] = [which_set(r) for r in stats.to_dict(orient="records")]
    rest = stats[stats["set"] == ""]
    stats.loc[rest.nsmallest(36, "a05").index, "set"] = "green"
    rest = stats.index[stats["set"] == ""]
    pick = np.random.default_rng(args.seed).choice(rest, size=min(args.random, len(rest)), replace=False)
    stats.loc[pick, "set"] = "random"
    stats.loc[(stats["set"] == "") & (stats["a95"] > 3) & (stats["a95"] <= 5), "set"] = "red-low"
    moto = pd.DataFrame([{"path": p, **centre_stats(DEMO / p)} for p in mine if p.startswith("bike/")])
    moto["set"] = np.where(moto["a95"] > 5, "moto-red", np.where(moto["bneg95"] > 10, "moto-blue", ""))
    out = pd.concat([stats[stats["set"] != ""], moto[moto["set"] != ""]])
    key = {"red": ("a95", False), "warm": ("b95", False), "blue": ("bneg95", False), "green": ("a05", True),
           "red-low": ("a95", False), "moto-red": ("a95", False), "moto-blue": ("bneg95", False)}
    order = {s: out[out["set"] == s].sort_values(k, ascending=asc) for s, (k, asc) in key.items()}
    order["random"] = stats.loc[list(pick)]
    parts = []
    for s, g in order.items():
        g = g.copy()
        g["sheet"] = [f"{s}_{i // GRID**2:02d}" for i in range(len(g))]
        g["tile"] = [i % GRID**2 + 1 for i in range(len(g))]
        for name, gg in g.groupby("sheet"):
            sheet(gg["path"].tolist(), args.out / f"{name}.png")
        parts.append(g)
    res = pd.concat(parts)
    res["labelled_before"] = res["path"].isin(moto_before)  # in the development motorbike sample: not appended
    res.to_csv(args.out / "candidates.csv", index=False)
    print(f"{len(paths)} non-motorbike and {len(moto)} motorbike crops of '{args.part}' not in the 600-crop sample")
    print(res["set"].value_counts().to_string())


if __name__ == "__main__":
    main()
