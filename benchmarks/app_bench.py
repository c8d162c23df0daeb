"""Time the labelling web app (``descluster serve``) as a browser would use it, on the real server.

Starts ``python -m descluster serve`` in a subprocess on a free port and measures, over HTTP
(token in the ``X-Descluster-Token`` header):

* ``url_s``: process start -> the URL printed (the server listens then; the session opens in a
  background thread after it);
* ``loading_page_s``: process start -> the first answer to ``GET /`` (the self-reloading "loading N
  images" page while the session opens, else the task list);
* ``first_page_s``: process start -> the task list (``GET /`` answered 200: the first page usable);
  ``first_page_after_url_s`` the same from the moment the URL is printed (what a user opening it waits);
* ``first_question_s``: the first ``GET /api/question`` of a new task (cluster cores of the space);
* ``answer_next_ms``: ``POST /api/answer`` -> the next question in its response, median and p95
  over ``--answers`` answers (the annotator names each group by the majority study cluster of its
  shown rows, mod ``--classes``; the server refits in its background thread meanwhile);
* ``map_s``: map meta + points + current labels (what the map view fetches);
* ``clusters_page_s``: the cluster view (``GET /clusters``); ``drill_down_s``: opening the largest
  study cluster (``drill_down_rows`` rows) in it, i.e. dividing it into sub-clusters on first use
  (``drill_down_links``: the sub-clusters that can be opened further);
* ``rss_mb``: the server's peak resident memory, sampled after every request (psutil).

Either on an existing results folder (``--results OUT``; it is copied first, so nothing is written
into it) or on a synthetic one of ``--rows`` rows built by ``labelling_bench.build_results`` (no
images there: thumbnails are not timed at that size). Prints a table and appends the run to
``benchmarks/results/app_bench.json`` (or ``--out``): ``{"runs": [...]}``, one dict per run, oldest
first, each with the figures above and ``run_id`` (timestamp, commit, rows), ``timestamp`` (UTC,
ISO 8601), ``git_commit`` / ``git_dirty`` (of this checkout; None outside git), ``label`` (``--label``)
and ``load_average``; no run replaces another (:func:`append_run`). Then prints one line per stored run.

Usage::

    python benchmarks/app_bench.py --results /work/demo-out          # the demo run
    python benchmarks/app_bench.py --rows 416314 --answers 30 --label "busy machine"  # synthetic, VeRi-Wild size
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
sys.path.insert(0, str(Path(__file__).resolve().parent))


REPO = Path(__file__).resolve().parents[1]
#: Columns of the table of stored runs printed after each run: (heading, result key).
RUN_TABLE = (("timestamp", "timestamp"), ("commit", "git_commit"), ("rows", "rows"), ("answers", "answers"),
             ("url s", "url_s"), ("task list s", "first_page_s"), ("1st question s", "first_question_s"),
             ("answer ms med", "answer_next_ms_median"), ("p95", "answer_next_ms_p95"), ("RSS MB", "rss_mb"),
             ("load 1 min", "load_average"), ("label", "label"))


def git_facts(repo: Path = REPO) -> dict:
    """``git_commit`` (HEAD, 40 hex digits) and ``git_dirty`` (tracked files changed) of ``repo``; None each
    when git or the repository is not there."""
    def git(*args):
        try:
            r = subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True, timeout=30)
        except (OSError, subprocess.SubprocessError):
            return None
        return r.stdout.strip() if r.returncode == 0 else None

    commit = git("rev-parse", "HEAD")
    status = git("status", "--porcelain", "--untracked-files=no") if commit else None
    return {"git_commit": commit, "git_dirty": None if status is None else bool(status)}


def read_runs(dest: Path) -> list[dict]:
    """The runs stored in ``dest`` (oldest first); ``[]`` when it does not exist.

    Reads the current layout ``{"runs": [...]}`` and the older one (a dict keyed by the row count, one
    run per count, which a new run at the same count overwrote): each of its entries becomes a run with
    ``run_id`` ``"rows-<N>"`` and ``timestamp`` / ``git_commit`` None (not recorded then).

    Raises
    ------
    ValueError
        ``dest`` is not JSON or neither layout.
    """
    if not dest.is_file():
        return []
    doc = json.loads(dest.read_text())
    if isinstance(doc, dict) and isinstance(doc.get("runs"), list):
        return list(doc["runs"])
    if isinstance(doc, dict) and all(isinstance(v, dict) and "rows" in v for v in doc.values()):
        runs = []
        for key, r in doc.items():
            run = {"run_id": f"rows-{key}", "timestamp": None, "git_commit": None, "git_dirty": None,
                   "label": "older file: one run per row count"}
            run.update(r)
            runs.append(run)
        return runs
    raise ValueError(f"{dest}: neither {{'runs': [...]}} nor a dict of runs keyed by rows")


def append_run(dest: Path, result: dict) -> list[dict]:
    """Append ``result`` to the runs of ``dest`` (:func:`read_runs`) and write them back atomically.

    A ``run_id`` a stored run has already gets ``-2``, ``-3``, ... appended, so no run replaces
    another. Returns the runs now stored, oldest first.

    Raises
    ------
    ValueError
        From :func:`read_runs` (nothing written then).
    """
    from descluster.io.atomic import write_text

    runs = read_runs(dest)
    taken = {r.get("run_id") for r in runs}
    run_id, n = result["run_id"], 1
    while run_id in taken:
        n += 1
        run_id = f"{result['run_id']}-{n}"
    runs.append({**result, "run_id": run_id})
    dest.parent.mkdir(parents=True, exist_ok=True)
    write_text(dest, json.dumps({"runs": runs}, indent=2) + "\n")
    return runs


def runs_table(runs: list[dict]) -> str:
    """The stored runs as a fixed-width text table (:data:`RUN_TABLE`), one line per run."""
    def cell(r, key):
        v = r.get(key)
        if key == "git_commit" and v:
            return v[:10] + ("+" if r.get("git_dirty") else "")
        if key == "load_average" and isinstance(v, list) and v:
            return f"{v[0]:.1f}"
        if key == "timestamp" and v:
            return v[:19]
        return "-" if v is None else str(v)

    rows = [[h for h, _ in RUN_TABLE]] + [[cell(r, k) for _, k in RUN_TABLE] for r in runs]
    widths = [max(len(row[i]) for row in rows) for i in range(len(RUN_TABLE))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip() for row in rows)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Client:
    """Minimal HTTP client with the token header (standard library only)."""

    def __init__(self, base: str, token: str):
        self.base, self.token = base, token

    def call(self, path: str, body: dict | None = None) -> tuple[int, bytes]:
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.base + path, data=data, method="GET" if body is None else "POST",
                                     headers={"x-descluster-token": self.token, "content-type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=600) as r:
                return r.status, r.read()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read()

    def json(self, path: str, body: dict | None = None) -> dict:
        status, raw = self.call(path, body)
        if status != 200:
            raise RuntimeError(f"{path}: HTTP {status}: {raw[:300]!r}")
        return json.loads(raw)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--results", type=Path, help="existing results folder (copied first)")
    ap.add_argument("--rows", type=int, default=104_078, help="synthetic rows when no --results (default 104,078)")
    ap.add_argument("--dims", type=int, default=128)
    ap.add_argument("--answers", type=int, default=30)
    ap.add_argument("--classes", type=int, default=10)
    ap.add_argument("--out", default=str(Path(__file__).parent / "results" / "app_bench.json"))
    ap.add_argument("--label", default="", help="free text stored with the run (e.g. 'before', 'busy machine')")
    args = ap.parse_args(argv)

    import psutil

    from machine import machine_facts

    with tempfile.TemporaryDirectory(prefix="app-bench-") as tmp:
        out = Path(tmp) / "out"
        t0 = time.perf_counter()
        if args.results is not None:
            shutil.copytree(args.results, out, symlinks=True, ignore=shutil.ignore_patterns("labels.sqlite*", "exports"))
            source = str(args.results)
        else:
            from labelling_bench import build_results

            build_results(out, args.rows, args.dims)
            source = f"synthetic ({args.rows:,} rows x {args.dims} dims, labelling_bench.build_results)"
        build_s = time.perf_counter() - t0
        study = pd.read_csv(out / "clusters.csv")["cluster"].to_numpy()
        port = _free_port()
        env = dict(os.environ, PYTHONUNBUFFERED="1", PYTHONPATH=str(Path(__file__).resolve().parents[1] / "src"))
        start = time.perf_counter()
        proc = subprocess.Popen([sys.executable, "-m", "descluster", "serve", str(out), "--port", str(port)],
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
        ps = psutil.Process(proc.pid)
        peak = [0]

        def sample():
            try:
                peak[0] = max(peak[0], ps.memory_info().rss)
            except psutil.Error:
                pass

        try:
            url = None
            for line in proc.stdout:
                m = re.search(r"open: (http://\S+)", line)
                if m:
                    url = m.group(1)
                    break
            if url is None:
                raise RuntimeError("the server printed no URL")
            url_s = time.perf_counter() - start
            base, token = url.split("/?token=")
            c = Client(base, token)
            t_url = time.perf_counter()
            loading_page_s, loading_seen = None, False
            while True:
                try:
                    status, page = c.call("/")
                except OSError:
                    time.sleep(0.02)
                    continue
                if loading_page_s is None:
                    loading_page_s = time.perf_counter() - start
                if status != 503:
                    break
                loading_seen = True
                time.sleep(0.05)
            first_page_s = time.perf_counter() - start
            first_page_request_s = time.perf_counter() - t_url
            assert status == 200, (status, page[:300])
            sample()
            classes = [f"c{i}" for i in range(args.classes)]
            c.json("/api/tasks", {"name": "bench", "classes": classes})
            t = time.perf_counter()
            payload = c.json("/api/question?task=bench")
            first_question_s = time.perf_counter() - t
            sample()
            lat, kinds = [], []
            for _ in range(args.answers):
                q = payload["question"]
                if q is None:
                    break
                rows = np.array([s["row"] for s in q["shown"]])
                truth = study[rows] % args.classes
                major = int(np.bincount(truth, minlength=args.classes).argmax())
                marks = [[int(r), classes[int(v)]] for r, v in zip(rows, truth) if v != major]
                t = time.perf_counter()
                payload = c.json("/api/answer", {"task": "bench", "question": q["id"], "action": "name",
                                                 "label": classes[major], "marks": marks})
                lat.append(1000 * (time.perf_counter() - t))
                kinds.append(q["kind"])
                sample()
            t = time.perf_counter()
            meta = c.json("/api/map/meta")
            c.call("/api/map/points")
            c.call("/api/map/labels?task=bench")
            map_s = time.perf_counter() - t
            sample()
            t = time.perf_counter()
            status, _ = c.call("/clusters?task=bench")
            clusters_s = time.perf_counter() - t
            assert status == 200, status
            sample()
            sizes = np.bincount(study[study >= 0])
            top = int(sizes.argmax())  # the largest study cluster: the slowest to divide
            t = time.perf_counter()
            status, body = c.call(f"/clusters?task=bench&path={top}")
            drill_s = time.perf_counter() - t
            assert status == 200, (status, body[:300])
            drill_groups = body.count(b"look inside") or None
            sample()
            progress = c.json("/api/progress?task=bench")
            time.sleep(1.0)
            sample()
        finally:
            proc.kill()
            proc.wait()
    lat = np.asarray(lat)
    stamp = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
    git = git_facts()
    result = {"run_id": f"{stamp}-{(git['git_commit'] or 'nogit')[:10]}-{int(study.size)}", "timestamp": stamp,
              **git, "label": args.label, "source": source, "rows": int(study.size), "build_s": round(build_s, 2), "url_s": round(url_s, 3),
              "loading_page_s": round(loading_page_s, 3), "loading_page_seen": loading_seen,
              "first_page_s": round(first_page_s, 3), "first_page_after_url_s": round(first_page_request_s, 3),
              "first_question_s": round(first_question_s, 3),
              "answers": int(lat.size), "question_kinds": sorted(set(kinds)),
              "answer_next_ms_median": round(float(np.median(lat)), 1) if lat.size else None,
              "answer_next_ms_p95": round(float(np.percentile(lat, 95)), 1) if lat.size else None,
              "answer_next_ms_max": round(float(lat.max()), 1) if lat.size else None,
              "map_s": round(map_s, 3), "map_how": meta["how"],
              "clusters_page_s": round(clusters_s, 3), "drill_down_s": round(drill_s, 3),
              "drill_down_rows": int(sizes[top]), "drill_down_links": drill_groups,
              "rss_mb": round(peak[0] / 2**20, 1),
              "decisions": progress["decisions"], "labelled_share": round(progress["labelled_share"], 4),
              "load_average": list(os.getloadavg()), "machine": machine_facts()}
    width = max(len(k) for k in result)
    for k, v in result.items():
        if k != "machine":
            print(f"{k:<{width}}  {v}")
    dest = Path(args.out)
    runs = append_run(dest, result)
    print(f"written: {dest} ({len(runs)} runs stored)")
    print(runs_table(runs))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
