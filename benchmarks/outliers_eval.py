"""Evaluate the outlier step against injected bad images (precision, recall, precision@N).

Builds an image folder from the built-in demo data (``data/tiny-vehicles``,
4,800 clean vehicle crops) plus known bad images:

- made from randomly chosen demo images (``--per-kind`` of each):
  ``over-exposed`` (×2.5 gain + 40, clipped), ``dark`` (×0.2),
  ``blurred`` (Gaussian blur, radius 3 px), ``background`` (a 25×25 corner
  crop, where a vehicle crop shows road/background, upscaled to 100×100),
  ``greyscale`` (luma only);
- ``non-vehicle``: real photos shipped with scikit-image (``skimage.data``),
  each as a whole-frame resize and as a centre crop, at 100×100.

It then extracts descriptors with :func:`descluster.extract.extract_case` (all
default backbones), reduces each kind as the pipeline does
(:func:`descluster.preprocess.reduce_descriptor`, ``standard`` scaling, 90%
variance), computes the pixel table, runs :func:`descluster.outliers.find_outliers`
and prints, per injected kind, the recall of the flagged set and the share of
that kind within the top N of the ranking (N = number injected), with the
overall precision, recall and precision@N, and the clean images that were
flagged. Results go to ``benchmarks/results/outliers_eval.json``.

Run: ``python benchmarks/outliers_eval.py [--workdir DIR] [--per-kind 25]``.
The work folder is kept, so a second run reuses the extracted descriptors.
"""

from __future__ import annotations

import argparse
import json
import shutil
import time
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image, ImageFilter

REPO = Path(__file__).resolve().parents[1]
DEMO = REPO / "data" / "tiny-vehicles"
RESULTS = REPO / "benchmarks" / "results" / "outliers_eval.json"
SIZE = (100, 100)

PHOTOS = [
    "astronaut", "coffee", "chelsea", "rocket", "hubble_deep_field", "immunohistochemistry", "retina",
    "colorwheel", "camera", "moon", "coins", "brick", "grass", "gravel", "clock", "page", "cell",
]


def _defects() -> dict:
    """Kind -> function (PIL RGB 100×100 -> PIL RGB)."""

    def over(im):
        a = np.asarray(im, dtype=np.float64) * 2.5 + 40
        return Image.fromarray(np.clip(a, 0, 255).astype(np.uint8))

    def dark(im):
        return Image.fromarray((np.asarray(im, dtype=np.float64) * 0.2).astype(np.uint8))

    def blur(im):
        return im.filter(ImageFilter.GaussianBlur(3))

    def background(im, _corner=[0]):
        w, h = im.size
        c = _corner[0] % 4
        _corner[0] += 1
        x = 0 if c in (0, 2) else w - w // 4
        y = 0 if c in (0, 1) else h - h // 4
        return im.crop((x, y, x + w // 4, y + h // 4)).resize(SIZE, Image.Resampling.BILINEAR)

    def grey(im):
        return im.convert("L").convert("RGB")

    return {"over-exposed": over, "dark": dark, "blurred": blur, "background": background, "greyscale": grey}


def _photos() -> list[tuple[str, Image.Image]]:
    import skimage.data

    out = []
    for name in PHOTOS:
        a = getattr(skimage.data, name)()
        if a.dtype != np.uint8:
            a = (a.astype(np.float64) / max(a.max(), 1) * 255).astype(np.uint8)
        im = Image.fromarray(a).convert("RGB")
        out.append((f"{name}_whole", im.resize(SIZE, Image.Resampling.LANCZOS)))
        w, h = im.size
        s = min(w, h) // 2
        out.append((f"{name}_centre", im.crop(((w - s) // 2, (h - s) // 2, (w + s) // 2, (h + s) // 2)).resize(SIZE, Image.Resampling.LANCZOS)))
    return out


def build_images(root: Path, per_kind: int, seed: int) -> dict[str, str]:
    """Write clean + injected images under ``root``; return injected path -> kind."""
    truth: dict[str, str] = {}
    labels = pd.read_csv(DEMO / "labels.csv")
    for rel in labels["path"]:
        dst = root / "clean" / rel
        if not dst.exists():
            dst.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(DEMO / rel, dst)
    rng = np.random.default_rng(seed)
    defects = _defects()
    sources = rng.choice(len(labels), size=per_kind * len(defects), replace=False)
    for k, (kind, fn) in enumerate(defects.items()):
        for j, i in enumerate(sources[k * per_kind : (k + 1) * per_kind]):
            rel = f"injected/{kind}/{kind}_{j:03d}.jpg"
            dst = root / rel
            if not dst.exists():
                dst.parent.mkdir(parents=True, exist_ok=True)
                fn(Image.open(DEMO / labels["path"][i]).convert("RGB")).save(dst, quality=92)
            truth[rel] = kind
    for name, im in _photos():
        rel = f"injected/non-vehicle/{name}.jpg"
        dst = root / rel
        if not dst.exists():
            dst.parent.mkdir(parents=True, exist_ok=True)
            im.save(dst, quality=92)
        truth[rel] = "non-vehicle"
    return truth


def evaluate(table: pd.DataFrame, truth: dict[str, str]) -> dict:
    """Precision/recall of ``flagged`` and precision@N of ``rank`` against ``truth``."""
    kind = table["path"].map(truth).fillna("clean")
    injected = kind != "clean"
    flagged = table["flagged"].to_numpy(dtype=bool)
    n_inj = int(injected.sum())
    top = table["rank"].to_numpy() <= n_inj
    tp = int((flagged & injected).sum())
    out = {
        "n_images": int(len(table)),
        "n_injected": n_inj,
        "n_flagged": int(flagged.sum()),
        "precision": tp / max(int(flagged.sum()), 1),
        "recall": tp / max(n_inj, 1),
        "precision_at_n": int((top & injected).sum()) / max(n_inj, 1),
        "per_kind": {},
    }
    for k in sorted(set(truth.values())):
        m = (kind == k).to_numpy()
        out["per_kind"][k] = {
            "n": int(m.sum()),
            "recall": float((flagged & m).sum() / max(m.sum(), 1)),
            "in_top_n": float((top & m).sum() / max(m.sum(), 1)),
            "missed": table.loc[m & ~flagged, "path"].tolist(),
        }
    fp = table.loc[flagged & ~injected.to_numpy(), ["path", "rank", "flagged_by", "reason"]]
    out["flagged_clean"] = fp.sort_values("rank").to_dict(orient="records")
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/descluster_outliers_eval"))
    parser.add_argument("--per-kind", type=int, default=25)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--preprocessing", default="standard")
    args = parser.parse_args()

    from descluster.extract import extract_case
    from descluster.io.atomic import write_json
    from descluster.io.images import ImageSource
    from descluster.outliers import find_outliers, image_quality_table
    from descluster.preprocess import reduce_descriptor

    timings = {}
    images = args.workdir / "images"
    case_dir = args.workdir / "case"
    truth = build_images(images, args.per_kind, args.seed)
    t = time.perf_counter()
    extract_case(images, case_dir, progress=True)
    timings["extract_s"] = time.perf_counter() - t
    paths = pd.read_csv(case_dir / "images_paths.csv")["paths"].astype(str).tolist()
    imagenet_file = case_dir / "meta" / "imagenet.csv"
    imagenet = pd.read_csv(imagenet_file) if imagenet_file.exists() else None

    t = time.perf_counter()
    spaces = {}
    for f in sorted((case_dir / "descriptors").glob("*.npy")):
        X = np.load(f, allow_pickle=False)
        spaces[f.stem] = reduce_descriptor(X, args.preprocessing, 0.90, descriptor=f.stem).X
    timings["reduce_s"] = time.perf_counter() - t

    t = time.perf_counter()
    quality = image_quality_table(ImageSource(images), paths, progress=True, n_jobs=2)
    timings["quality_s"] = time.perf_counter() - t
    t = time.perf_counter()
    rep = find_outliers(spaces, paths, quality=quality, imagenet=imagenet, random_state=args.seed, progress=True)
    timings["outliers_s"] = time.perf_counter() - t

    res = evaluate(rep.table, truth)
    # ablations: what each family of checks finds on its own
    by = rep.table["flagged_by"].fillna("")
    only_desc = find_outliers(spaces, paths, random_state=args.seed, progress=False).table
    res["descriptor_only"] = {k: v for k, v in evaluate(only_desc, truth).items() if k != "flagged_clean"}
    res["pixel_flag_count"] = int(by.str.contains("pixel:").sum())
    res["thresholds"] = rep.thresholds
    res["flag_rule"] = rep.flag_rule
    res["spaces"] = {k: list(v.shape) for k, v in spaces.items()}
    res["timings"] = {k: round(v, 1) for k, v in timings.items()}
    res["settings"] = {"per_kind": args.per_kind, "seed": args.seed, "preprocessing": args.preprocessing}
    write_json(RESULTS, res)

    print(f"\n{res['n_images']:,} images, {res['n_injected']} injected; spaces {res['spaces']}")
    print(f"{'kind':<14}{'n':>5}{'recall':>9}{'in top N':>10}  (descriptor-only recall)")
    for k, v in res["per_kind"].items():
        d = res["descriptor_only"]["per_kind"][k]["recall"]
        print(f"{k:<14}{v['n']:>5}{v['recall']:>9.2f}{v['in_top_n']:>10.2f}  ({d:.2f})")
    print(f"flagged {res['n_flagged']}: precision {res['precision']:.3f}, recall {res['recall']:.3f}, "
          f"precision@N {res['precision_at_n']:.3f}")
    print(f"descriptor-only: flagged {res['descriptor_only']['n_flagged']}, precision "
          f"{res['descriptor_only']['precision']:.3f}, recall {res['descriptor_only']['recall']:.3f}")
    print(f"clean images flagged ({len(res['flagged_clean'])}):")
    for r in res["flagged_clean"][:30]:
        print(f"  {r['path']}: {r['reason']}  [{r['flagged_by']}]")
    for k, v in res["per_kind"].items():
        if v["missed"]:
            print(f"missed {k}: {v['missed'][:10]}")
    print(json.dumps(res["timings"]))


if __name__ == "__main__":
    main()
