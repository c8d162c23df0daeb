"""Write a synthetic VeRi-Wild-shaped case, deterministic from ``--seed``.

Layout (the descluster case layout)::

    OUT/descriptors/efficientnet-b7.pickle   416,314 × 2560 float32   (--rows N scales down)
    OUT/descriptors/osnet.pickle             × 512
    OUT/descriptors/vdc_color.pickle         × 128
    OUT/descriptors/vdc_type.pickle          × 512
    OUT/images_paths.csv                     column ``paths``: veriwild\\<part>\\<5-digit id>\\<6-digit>.jpg
    OUT/truth.csv                            planted cluster, vehicle id, outlier and duplicate flags
    OUT/row_data/veriwild.zip                (--with-images) stored, not deflated

Images (``--with-images``): one 64×64 JPEG per row, a jittered shot of a demo crop of the row's
cluster's vehicle type (:func:`row_image`); planted duplicates share their source's bytes, planted
outliers are noise, and no other two rows share bytes.

Model: every vehicle id (4–16 images, consecutive rows) belongs to one of
``--clusters`` clusters; a row's latent vector (rank 32) is its cluster centre +
an id offset + row noise, shared by all descriptor kinds. Each kind maps the
latent through its own random linear map, adds its own noise and applies ReLU
(plus ~1 % dead, always-zero columns, as in real CNN features). Planted
outliers (``--outlier-share``) get a latent 6× wider than the data; planted
near-duplicates (``--duplicate-share``, groups of 2–4 rows within one
8192-row block) copy their source's pre-activation plus noise 1/25 of the usual row noise.

Pickles are plain NumPy-array pickles (``pickle.dump(array, protocol=4)``): the
array is first generated chunk-wise into a ``.npy`` memory map, then pickled,
which holds one in-memory copy (4.3 GB for the widest kind at full scale).
``--format npy`` writes the ``.npy`` files and skips the copy.

Usage::

    python benchmarks/make_case.py /tmp/bigcase                # full size, ~6.5 GB
    python benchmarks/make_case.py /tmp/small --rows 5000 --with-images
"""

from __future__ import annotations

import argparse
import io
import os
import pickle
import shutil
import sys
import time
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm import tqdm

from descluster.io.atomic import atomic_path, write_csv

FULL_ROWS = 416_314
KINDS = {"efficientnet-b7": 2560, "osnet": 512, "vdc_color": 128, "vdc_type": 512}
RANK = 32
BLOCK = 8192  # generation block: fixed, so the output depends on the seed only
REPO = Path(__file__).resolve().parents[1]
DEMO = REPO / "data" / "tiny-vehicles"


def plan_rows(n: int, clusters: int, outlier_share: float, duplicate_share: float, seed: int) -> pd.DataFrame:
    """Row plan: vehicle id, cluster, outlier flag and duplicate group/source of every row.

    Returns
    -------
    DataFrame with n rows and columns vehicle_id, cluster, is_outlier, duplicate_group, duplicate_of.
    """
    rng = np.random.default_rng([seed, 0])
    sizes = rng.integers(4, 17, size=n // 4 + 2)
    vid = np.repeat(np.arange(len(sizes)), sizes)[:n]
    weights = rng.dirichlet(np.full(clusters, 2.0))
    id_cluster = rng.choice(clusters, size=len(sizes), p=weights)
    cluster = id_cluster[vid]
    is_out = np.zeros(n, bool)
    n_out = int(round(outlier_share * n))
    is_out[rng.choice(n, size=n_out, replace=False)] = True
    group = np.full(n, -1, np.int64)
    source = np.full(n, -1, np.int64)
    g = 0
    for start in range(0, n, BLOCK):
        stop = min(start + BLOCK, n)
        want = int(round(duplicate_share * (stop - start)))
        free = rng.permutation(np.flatnonzero(~is_out[start:stop])) + start
        pos = 0
        while want >= 2 and pos + 2 <= len(free):
            size = int(min(rng.integers(2, 5), want, len(free) - pos))
            if size < 2:
                break
            members = np.sort(free[pos : pos + size])
            group[members] = g
            source[members[1:]] = members[0]
            g += 1
            pos += size
            want -= size
    return pd.DataFrame({"vehicle_id": vid + 1, "cluster": cluster, "is_outlier": is_out,
                         "duplicate_group": group, "duplicate_of": source})


def latent(plan: pd.DataFrame, clusters: int, seed: int) -> np.ndarray:
    """Latent rows (n, RANK) float32 shared by all descriptor kinds."""
    rng = np.random.default_rng([seed, 1])
    centres = rng.normal(size=(clusters, RANK)) * 2.0
    n_ids = int(plan.vehicle_id.max()) + 1
    id_off = rng.normal(size=(n_ids, RANK)) * 0.6
    n = len(plan)
    Z = centres[plan.cluster.to_numpy()] + id_off[plan.vehicle_id.to_numpy()] + rng.normal(size=(n, RANK)) * 0.4
    out = plan.is_outlier.to_numpy()
    Z[out] = rng.normal(size=(int(out.sum()), RANK)) * 6.0 * 2.0
    return Z.astype(np.float32)


def write_kind(target: Path, kind_index: int, d: int, Z: np.ndarray, plan: pd.DataFrame, seed: int,
               bar: tqdm) -> None:
    """Generate one descriptor kind block by block into a ``.npy`` memory map at ``target``."""
    n = Z.shape[0]
    rng = np.random.default_rng([seed, 2, kind_index])
    W = (rng.normal(size=(RANK, d)) / np.sqrt(RANK)).astype(np.float32)
    bias = rng.normal(size=d).astype(np.float32) * 0.5
    bias[rng.choice(d, size=max(1, d // 100), replace=False)] = -1e4  # dead ReLU columns
    src = plan.duplicate_of.to_numpy()
    mm = np.lib.format.open_memmap(target, mode="w+", dtype=np.float32, shape=(n, d))
    for start in range(0, n, BLOCK):
        stop = min(start + BLOCK, n)
        r = np.random.default_rng([seed, 3, kind_index, start])
        pre = Z[start:stop] @ W
        pre += bias
        pre += r.standard_normal(pre.shape, dtype=np.float32) * np.float32(0.5)
        dup = np.flatnonzero(src[start:stop] >= 0)
        if dup.size:
            base = pre[src[start:stop][dup] - start]
            pre[dup] = base + r.standard_normal(base.shape, dtype=np.float32) * np.float32(0.02)  # 1/25 of the row noise
        np.maximum(pre, 0, out=pre)
        mm[start:stop] = pre
        bar.update(stop - start)
    mm.flush()
    del mm


def case_paths(plan: pd.DataFrame) -> list[str]:
    """Windows-style VeRi-Wild paths ``veriwild\\<part>\\<id:05d>\\<row:06d>.jpg``."""
    vid = plan.vehicle_id.to_numpy()
    part = vid // 10_000 + 1
    return [f"veriwild\\{p}\\{v:05d}\\{i + 1:06d}.jpg" for i, (p, v) in enumerate(zip(part, vid))]


def base_pool(seed: int) -> list[list[str]]:
    """Demo crop paths per vehicle type (sorted types), each list in a seeded random order."""
    labels = pd.read_csv(DEMO / "labels.csv")
    rng = np.random.default_rng([seed, 4])
    pool = []
    for vtype in sorted(labels.vehicle_type.unique()):
        rows = labels[labels.vehicle_type == vtype].path.to_numpy()
        pool.append([str(p) for p in rows[rng.permutation(len(rows))]])
    return pool


def row_image(j: int, cluster: int, outlier: bool, pool: list[list[str]], seed: int, cache: dict) -> bytes:
    """JPEG bytes (64×64, quality 85) of row ``j``'s image; a function of ``j`` only, so copies share bytes.

    A planted outlier is its own uniform-noise image. Any other row shows a demo crop of its
    cluster's vehicle type (``pool[cluster % len(pool)][j % len(...)]``) as another shot of it
    would: a random crop of 85-100 % of each side (a shift or zoom), a brightness gain of
    0.92-1.08 and Gaussian noise of 2 levels, then the resize to 64×64. The pool holds 800 crops per
    type, so rows share a crop only every 800 rows of a type, and even those differ in pixels
    and bytes: only planted duplicates are byte-identical.
    """
    from PIL import Image

    rng = np.random.default_rng([seed, 5, j])
    if outlier:
        img = Image.fromarray(rng.integers(0, 256, size=(64, 64, 3), dtype=np.uint8))
    else:
        crops = pool[cluster % len(pool)]
        p = crops[j % len(crops)]
        if p not in cache:
            with Image.open(DEMO / p) as im:
                cache[p] = im.convert("RGB")
        src = cache[p]
        w, h = src.size
        cw, ch = (int(round(s * f)) for s, f in zip((w, h), rng.uniform(0.85, 1.0, size=2)))
        x0, y0 = int(rng.integers(0, w - cw + 1)), int(rng.integers(0, h - ch + 1))
        a = np.asarray(src.crop((x0, y0, x0 + cw, y0 + ch)).resize((64, 64)), dtype=np.float32)
        a = a * rng.uniform(0.92, 1.08) + rng.normal(0.0, 2.0, size=a.shape)
        img = Image.fromarray(np.clip(np.rint(a), 0, 255).astype(np.uint8))
    buf = io.BytesIO()
    img.save(buf, format="JPEG", quality=85)
    return buf.getvalue()


def write_zip(target: Path, paths: list[str], plan: pd.DataFrame, seed: int) -> None:
    """Zip (stored) with one thumbnail per path (:func:`row_image`): cluster -> vehicle type,
    planted duplicates share their source's bytes, planted outliers are noise, every other row is distinct."""
    pool = base_pool(seed)
    cl = plan.cluster.to_numpy()
    src = plan.duplicate_of.to_numpy()
    out = plan.is_outlier.to_numpy()
    cache: dict = {}
    with atomic_path(target) as tmp, zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_STORED) as zf:
        for i in tqdm(range(len(paths)), desc="images", unit="img", mininterval=1.0):
            j = int(src[i]) if src[i] >= 0 else i
            data = row_image(j, int(cl[j]), bool(out[j]), pool, seed, cache)
            zf.writestr(zipfile.ZipInfo(paths[i].replace("\\", "/"), date_time=(2024, 1, 1, 0, 0, 0)), data)


def pickle_array(npy: Path, target: Path) -> None:
    """Pickle the array in ``npy`` (protocol 4, plain ndarray) atomically; holds one in-memory copy."""
    arr = np.asarray(np.load(npy, mmap_mode="r"))
    with atomic_path(target) as tmp, open(tmp, "wb") as fh:
        pickle.dump(np.ndarray.view(arr, np.ndarray), fh, protocol=4)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("out", type=Path, help="case folder to write (created)")
    ap.add_argument("--rows", type=int, default=FULL_ROWS, help=f"rows (default {FULL_ROWS:,}, VeRi-Wild)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--clusters", type=int, default=60)
    ap.add_argument("--outlier-share", type=float, default=0.005)
    ap.add_argument("--duplicate-share", type=float, default=0.005)
    ap.add_argument("--format", choices=("pickle", "npy"), default="pickle")
    ap.add_argument("--with-images", action="store_true", help="also write row_data/veriwild.zip")
    ap.add_argument("--kinds", default=",".join(f"{k}={d}" for k, d in KINDS.items()),
                    help="descriptor kinds as name=width,...")
    a = ap.parse_args(argv)
    if a.rows < 10:
        ap.error(f"--rows={a.rows} must be at least 10")
    for name in ("outlier_share", "duplicate_share"):
        if not 0 <= getattr(a, name) < 0.5:
            ap.error(f"--{name.replace('_', '-')}={getattr(a, name)} must be in [0, 0.5)")
    kinds = {k: int(v) for k, v in (item.split("=") for item in a.kinds.split(","))}
    t0 = time.perf_counter()
    out: Path = a.out
    (out / "descriptors").mkdir(parents=True, exist_ok=True)
    plan = plan_rows(a.rows, a.clusters, a.outlier_share, a.duplicate_share, a.seed)
    Z = latent(plan, a.clusters, a.seed)
    paths = case_paths(plan)
    write_csv(out / "images_paths.csv", pd.DataFrame({"paths": paths}))
    write_csv(out / "truth.csv", pd.concat([pd.DataFrame({"path": paths}), plan], axis=1))
    gen = out / ".gen"
    gen.mkdir(exist_ok=True)
    with tqdm(total=a.rows * len(kinds), desc="descriptors", unit="row", mininterval=1.0) as bar:
        for i, (kind, d) in enumerate(kinds.items()):
            if a.format == "npy":
                with atomic_path(out / "descriptors" / f"{kind}.npy") as tmp:
                    write_kind(Path(str(tmp) + ".npy"), i, d, Z, plan, a.seed, bar)
                    os.replace(str(tmp) + ".npy", tmp)
            else:
                npy = gen / f"{kind}.npy"
                write_kind(npy, i, d, Z, plan, a.seed, bar)
                bar.set_postfix_str(f"pickling {kind}")
                pickle_array(npy, out / "descriptors" / f"{kind}.pickle")
                npy.unlink()
    shutil.rmtree(gen, ignore_errors=True)
    if a.with_images:
        write_zip(out / "row_data" / "veriwild.zip", paths, plan, a.seed)
    size = sum(f.stat().st_size for f in out.rglob("*") if f.is_file())
    print(f"wrote {out}: {a.rows:,} rows, kinds {kinds}, {int(plan.is_outlier.sum())} outliers, "
          f"{int((plan.duplicate_group >= 0).sum())} rows in {plan.duplicate_group.max() + 1} duplicate groups; "
          f"{size / 1e9:.2f} GB in {time.perf_counter() - t0:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
