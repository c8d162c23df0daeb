"""Time the Dask engine against the local one on synthetic cases: a k-means study with one scaler.

For every case folder given (``benchmarks/make_case.py --format npy``) and every engine asked for, a
fresh subprocess runs, per descriptor kind, what ``descluster run --algorithms kmeans --preprocessing
standard`` runs for it: scale + PCA (variance target 0.90), the k-means sweep over ``--ks``, k chosen by
:func:`descluster.cluster.selection.choose_k`, and the chosen k's labels. The Dask engine starts a
``distributed.LocalCluster`` of ``--workers`` one-thread worker processes; the descriptors are read by
the workers from the ``.npy`` files (or the ``.zarr`` stores of ``descluster convert``, preferred where
present), the reduced space is written by them to a Zarr store (``--scratch``)
and the sweep reads it from there, so no process holds the rows. Peak resident memory is sampled every
0.2 s for the client (the subprocess) and for each worker process (RSS; a worker restarted by its nanny
counts as a new process). ``--kill-case`` also runs the Dask engine once more on that case and kills
one worker process (SIGKILL) when the first sweep reaches ``--kill-at`` k values, and records whether
the run finished and whether its chosen k and labels equal those of the undisturbed Dask run.

Prints a table and writes ``benchmarks/results/dask_bench.json`` (or ``--out``) with the load average
before and after each run. The machine may be shared: compare ratios, and read the load average.

Usage::

    python benchmarks/make_case.py /tmp/r104k --rows 104000 --format npy --kinds osnet=512,vdc_color=128
    python benchmarks/dask_bench.py /tmp/r104k --engines local,dask --kill-case /tmp/r104k
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from machine import machine_facts  # noqa: E402  (benchmarks/machine.py)

REPO = Path(__file__).resolve().parents[1]


class PeakMemory:
    """Peak RSS of this process and of every descendant process, sampled in a thread (psutil)."""

    def __init__(self, interval: float = 0.2):
        import psutil

        self._psutil, self.interval = psutil, interval
        self.me = psutil.Process()
        self.client_peak = 0
        self.children: dict[int, dict] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        ps = self._psutil
        while not self._stop.is_set():
            try:
                self.client_peak = max(self.client_peak, self.me.memory_info().rss)
                for ch in self.me.children(recursive=True):
                    try:
                        rss = ch.memory_info().rss
                        cmd = " ".join(ch.cmdline())[-80:]
                    except (ps.NoSuchProcess, ps.AccessDenied):
                        continue
                    rec = self.children.setdefault(ch.pid, {"peak": 0, "cmd": cmd})
                    rec["peak"] = max(rec["peak"], rss)
            except ps.NoSuchProcess:
                pass
            self._stop.wait(self.interval)

    def __enter__(self) -> "PeakMemory":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()


def _worker_pids(engine) -> list[int]:
    """Process ids of the Dask workers (not their nannies)."""
    return sorted(engine.client.run(os.getpid).values())


def one_run(case: Path, engine_name: str, ks: list[int], workers: int, scratch: Path, kill_at: int | None,
            kinds: list[str] | None) -> dict:
    """The study of one case on one engine in this process (see the module docstring)."""
    from descluster.cluster.algorithms import KMeansAdapter
    from descluster.cluster.selection import choose_k
    from descluster.engine.local import LocalEngine

    stores = {p.stem: p for p in (case / "descriptors").glob("*.zarr")}  # `descluster convert` stores first
    files = sorted([stores.get(f.stem, f) for f in (case / "descriptors").glob("*.npy")]
                   + [p for stem, p in stores.items() if not (case / "descriptors" / f"{stem}.npy").exists()])
    if kinds:
        files = [f for f in files if f.stem in kinds]
    out = {"case": str(case), "engine": engine_name, "ks": [ks[0], ks[-1]], "kinds": {}}
    killed = {"done": False}
    with PeakMemory() as mem:
        t_all = time.perf_counter()
        if engine_name == "dask":
            from descluster.engine.dask import DaskEngine

            engine = DaskEngine(n_workers=workers, threads_per_worker=1, processes=True)
            out["cluster"] = engine.describe()
        else:
            engine = LocalEngine()
        try:
            for f in files:
                if f.suffix == ".zarr":
                    from descluster.io.zarr_store import ZarrDescriptor

                    X = ZarrDescriptor(f)
                else:
                    X = np.load(f, mmap_mode="r")
                rec = {"rows": int(X.shape[0]), "dims": int(X.shape[1]), "file": f.name}
                t0 = time.perf_counter()
                kw = dict(variance_target=0.90, max_components=256, random_state=0, descriptor=f.stem)
                if engine_name == "dask":
                    sp = engine.reduce_descriptor(X, "standard", store=scratch / f"{f.stem}.zarr", **kw)
                else:
                    sp = engine.reduce_descriptor(X, "standard", moments=engine.raw_moments(X), **kw)
                rec["reduce_s"] = round(time.perf_counter() - t0, 2)
                rec["components"] = int(sp.n_components)
                t0 = time.perf_counter()

                def progress(done, total, k, _engine=engine):
                    if kill_at and done == kill_at and not killed["done"] and engine_name == "dask":
                        pid = _worker_pids(_engine)[0]
                        os.kill(pid, signal.SIGKILL)
                        killed.update(done=True, pid=pid, at_k=k, kind=f.stem)

                X_red = str(scratch / f"{f.stem}.zarr") if engine_name == "dask" else sp.X
                res = engine.sweep(X_red, KMeansAdapter(random_state=0), ks, 0, 5000, 10_000, progress)
                rec["sweep_s"] = round(time.perf_counter() - t0, 2)
                k, _ = choose_k(res.table, total_inertia=res.total_inertia)
                labels = res.labels_for(k)
                rec["chosen_k"] = int(k)
                rec["labels_sha"] = __import__("hashlib").sha256(np.asarray(labels, np.int64).tobytes()).hexdigest()[:16]
                rec["labels_head"] = np.asarray(labels[:2000], np.int64).tolist()
                rec["calinski_harabasz"] = [round(float(v), 3) for v in res.table["calinski_harabasz"]]
                out["kinds"][f.stem] = rec
                del sp, res, labels
        finally:
            if engine_name == "dask":
                out["workers_at_end"] = len(engine.client.scheduler_info()["workers"])
            engine.close()
        out["total_s"] = round(time.perf_counter() - t_all, 2)
    out["client_peak_mb"] = round(mem.client_peak / 2**20, 1)
    workers_mem = {pid: r for pid, r in mem.children.items() if "nanny" not in r["cmd"]}
    out["process_peaks_mb"] = sorted((round(r["peak"] / 2**20, 1) for r in workers_mem.values()), reverse=True)
    out["worker_peak_mb"] = out["process_peaks_mb"][0] if out["process_peaks_mb"] else None
    if kill_at:
        out["killed"] = killed
    return out


def _table(rows: list[dict]) -> str:
    head = f"{'case':>10} {'engine':>10} {'kind':>16} {'rows':>9} {'dims':>5} {'pcs':>4} {'reduce s':>9} " \
           f"{'sweep s':>8} {'k':>3} {'client MB':>10} {'worker MB':>10} {'load':>5}"
    lines = [head, "-" * len(head)]
    for r in rows:
        if "error" in r:
            lines.append(f"{Path(r['case']).name:>10} {r['engine']:>10} error: {r['error'][:80]}")
            continue
        for kind, rec in r["kinds"].items():
            lines.append(f"{Path(r['case']).name:>10} {r['label']:>10} {kind:>16} {rec['rows']:>9,} {rec['dims']:>5} "
                         f"{rec['components']:>4} {rec['reduce_s']:>9.1f} {rec['sweep_s']:>8.1f} {rec['chosen_k']:>3} "
                         f"{r['client_peak_mb']:>10.0f} {str(r['worker_peak_mb'] or '-'):>10} "
                         f"{r['load_before'][0]:>5.1f}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("cases", nargs="*", type=Path,
                    help="case folders (descriptors/*.npy, or the *.zarr stores of `descluster convert`)")
    ap.add_argument("--engines", default="local,dask")
    ap.add_argument("--ks", default="2-10", help="k range, e.g. 2-10 (default %(default)s)")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--kinds", default="", help="descriptor kinds to use (default: all)")
    ap.add_argument("--kill-case", type=Path, help="also run the dask engine here and kill a worker mid-sweep")
    ap.add_argument("--kill-at", type=int, default=3, help="k values done before the kill (default %(default)s)")
    ap.add_argument("--scratch", type=Path, default=None, help="folder for the reduced Zarr stores (default: temp)")
    ap.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results" / "dask_bench.json")
    ap.add_argument("--one", nargs=2, metavar=("CASE", "ENGINE"), help=argparse.SUPPRESS)
    ap.add_argument("--kill", type=int, default=0, help=argparse.SUPPRESS)
    ap.add_argument("--result", type=Path, help=argparse.SUPPRESS)
    a = ap.parse_args(argv)
    lo, hi = (int(v) for v in a.ks.split("-"))
    ks = list(range(lo, hi + 1))
    kinds = [k for k in a.kinds.split(",") if k]
    if a.one:
        with tempfile.TemporaryDirectory(dir=a.scratch) as tmp:
            res = one_run(Path(a.one[0]), a.one[1], ks, a.workers, Path(tmp), a.kill or None, kinds)
        a.result.write_text(json.dumps(res))
        return 0
    plan = [(c, e, 0) for c in a.cases for e in a.engines.split(",")]
    if a.kill_case:
        plan.append((a.kill_case, "dask", a.kill_at))
    rows = []
    env = {**os.environ, "PYTHONPATH": str(REPO / "src")}
    for case, eng, kill in plan:
        with tempfile.NamedTemporaryFile(suffix=".json", delete=False) as fh:
            result = Path(fh.name)
        cmd = [sys.executable, __file__, "--one", str(case), eng, "--ks", a.ks, "--workers", str(a.workers),
               "--kill", str(kill), "--result", str(result), "--kinds", a.kinds]
        if a.scratch:
            cmd += ["--scratch", str(a.scratch)]
        load0 = os.getloadavg()
        t0 = time.perf_counter()
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
        if proc.returncode == 0:
            r = json.loads(result.read_text())
        else:
            r = {"case": str(case), "engine": eng, "error": proc.stderr[-2000:]}
        r.update(label=eng + ("+kill" if kill else ""), load_before=list(load0), load_after=list(os.getloadavg()),
                 wall_s=round(time.perf_counter() - t0, 1), returncode=proc.returncode)
        result.unlink(missing_ok=True)
        rows.append(r)
        print(_table([r]).splitlines()[-1] if "error" not in r else r["error"][-500:], flush=True)
    # the killed run against the undisturbed dask run of the same case
    for r in rows:
        if r.get("killed") and "kinds" in r:
            ref = next((x for x in rows if x["label"] == "dask" and x["case"] == r["case"] and "kinds" in x), None)
            if ref is not None:
                r["same_as_undisturbed"] = {kind: rec["chosen_k"] == ref["kinds"][kind]["chosen_k"]
                                            and rec["labels_sha"] == ref["kinds"][kind]["labels_sha"]
                                            for kind, rec in r["kinds"].items()}
    for r in rows:  # local vs dask labels on the first 2,000 rows (ARI), where both ran
        if r["label"] == "dask" and "kinds" in r:
            ref = next((x for x in rows if x["label"] == "local" and x["case"] == r["case"] and "kinds" in x), None)
            if ref is not None:
                from sklearn.metrics import adjusted_rand_score

                r["ari_vs_local_first_2000"] = {
                    kind: round(float(adjusted_rand_score(ref["kinds"][kind]["labels_head"], rec["labels_head"])), 4)
                    for kind, rec in r["kinds"].items()}
    for r in rows:
        for rec in r.get("kinds", {}).values():
            rec.pop("labels_head", None)
    print()
    print(_table(rows))
    for r in rows:
        if "killed" in r:
            print(f"killed worker: {r['killed']}; run finished: {r['returncode'] == 0}; workers at end: "
                  f"{r.get('workers_at_end')}; same k and labels as the undisturbed run: {r.get('same_as_undisturbed')}")
        if "ari_vs_local_first_2000" in r:
            print(f"{Path(r['case']).name}: ARI dask vs local (first 2,000 rows): {r['ari_vs_local_first_2000']}")
    facts = machine_facts() | {"note": "shared machine (several sessions); RSS peaks sampled every 0.2 s"}
    a.out.parent.mkdir(parents=True, exist_ok=True)
    old = json.loads(a.out.read_text()) if a.out.is_file() else {"runs": []}
    old["runs"] = [x for x in old.get("runs", []) if (x["case"], x["label"]) not in {(r["case"], r["label"]) for r in rows}]
    old["runs"] += rows
    old["machine"] = facts
    a.out.write_text(json.dumps(old, indent=1))
    print(f"wrote {a.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
