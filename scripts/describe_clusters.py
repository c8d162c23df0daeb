"""Render each cluster of a finished run as a grid of images under its automatic description.

For checking the words against the pictures (issue 12): does the description name
the colour most of the vehicles in the grid have? Reads ``clusters.csv`` of a
results folder, the case (``labels.csv``, ``meta/imagenet.csv``) and the images;
computes the pixel table with the current code (cached next to the output), the
cluster facts (:func:`descluster.interpret.cluster_facts`), and writes one PNG per
sheet of clusters plus ``cluster_facts.csv``.

Run: ``python scripts/describe_clusters.py RESULTS CASE IMAGES OUT [--per-sheet 4] [--tiles 16]``,
e.g. ``python scripts/describe_clusters.py /work/demo-out /work/demo-out/case data/tiny-vehicles docs/``.
"""

from __future__ import annotations

import argparse
import textwrap
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image, ImageDraw, ImageFont


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("results", type=Path)
    parser.add_argument("case", type=Path)
    parser.add_argument("images", type=Path)
    parser.add_argument("out", type=Path)
    parser.add_argument("--per-sheet", type=int, default=4)
    parser.add_argument("--tiles", type=int, default=16)
    parser.add_argument("--name", default="clusters-described")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    from descluster.case import load_case
    from descluster.interpret import cluster_facts
    from descluster.io.images import ImageSource
    from descluster.outliers.pixels import image_quality_table
    from descluster.report.grids import image_grid
    from descluster.results import Choice, RunResult

    clusters = pd.read_csv(args.results / "clusters.csv")
    case = load_case(args.case)
    paths = list(case.paths)
    labels = clusters.set_index("path").loc[paths, "cluster"].to_numpy()
    source = ImageSource(args.images)
    args.out.mkdir(parents=True, exist_ok=True)
    qfile = args.out / f"{args.name}-quality.csv"
    if qfile.exists():
        quality = pd.read_csv(qfile, keep_default_na=False, na_values=[""])
    else:
        quality = image_quality_table(source, paths, progress=True, n_jobs=2)
        quality.to_csv(qfile, index=False)
    choice = Choice("recommended", "", "", int(labels.max()) + 1, labels, "from clusters.csv", pd.DataFrame())
    result = RunResult(paths=paths, spaces={}, choices={"rec": choice}, study=pd.DataFrame(), comparison=pd.DataFrame(),
                       recommended="rec", recommendation="", per_descriptor={}, quality=quality,
                       imagenet=case.imagenet, labels=case.labels)
    facts = cluster_facts(result)
    facts.to_csv(args.out / f"{args.name}.csv", index=False)

    rng = np.random.default_rng(args.seed)
    font = ImageFont.load_default(size=13)
    blocks = []
    for row in facts.itertuples():
        idx = np.flatnonzero(labels == row.cluster)
        pick = rng.choice(idx, size=min(args.tiles, idx.size), replace=False)
        grid = image_grid(source, [paths[i] for i in pick], 8, 88, [quality["colour"].iloc[i] for i in pick])
        text = textwrap.wrap(f"cluster {row.cluster} ({row.size} images): {row.description}".replace("×", "x"), 110)
        block = Image.new("RGB", (max(grid.width, 900), grid.height + 18 * len(text) + 12), "white")
        d = ImageDraw.Draw(block)
        for j, line in enumerate(text):
            d.text((4, 4 + 18 * j), line, fill="black", font=font)
        block.paste(grid, (0, 18 * len(text) + 8))
        blocks.append(block)
    for s in range(0, len(blocks), args.per_sheet):
        part = blocks[s:s + args.per_sheet]
        sheet = Image.new("RGB", (max(b.width for b in part), sum(b.height + 10 for b in part)), (235, 235, 235))
        y = 0
        for b in part:
            sheet.paste(b, (0, y))
            y += b.height + 10
        sheet.save(args.out / f"{args.name}-{s // args.per_sheet + 1}.png")
    print(facts[["cluster", "size", "colour", "colour_share", "description"]].to_string())


if __name__ == "__main__":
    main()
