"""The labelling web app's pages and API: Starlette routes over a :class:`~descluster.labelling.Session`.

``descluster serve OUT`` (:func:`descluster.app.server.serve`) opens the engine on a results folder
(``OUT/labels.sqlite``, WAL, every answer committed before the response: see
:mod:`descluster.labelling.store`) and serves, to this machine only unless
``--host`` says otherwise, and only with the printed token
(:mod:`descluster.app.security`):

- ``/`` tasks with their progress (labelled share, estimated accuracy with
  its 95 % interval, decisions) and a form to create one;
- ``/question?task=T`` the engine's next question as a grid of up to 64
  thumbnails, answered by keyboard; ``/map?task=T`` the run's 2-D map
  (canvas) coloured by current label or confidence, with a lasso;
  ``/clusters?task=T`` the study's clusters; ``/export?task=T`` the exports
  of :mod:`descluster.labelling.export` and the decisions log;
- ``/api/...`` JSON (and two binary arrays for the map) behind those pages;
  ``/thumb/<row>`` a JPEG thumbnail of one row, read through
  :class:`~descluster.io.images.ImageSource` (folder or zip, never unpacked)
  and kept in a bounded in-memory cache.

No silent overwrite between tabs: a state change names the question its page
shows (``question``); when that question is no longer open (answered, undone or
superseded elsewhere) the change is refused with ``409`` and the page reloads
the current question.
"""

from __future__ import annotations

import io
import json
import logging
import math
import re
import threading
from collections import OrderedDict
from pathlib import Path

import numpy as np

from ..errors import DesclusterError, ImageReadError, LabellingError, UnsafePathError
from ..labelling.session import Session
from .security import static_file

__all__ = ["LabellingApp", "build_routes", "THUMB_SIZE", "MAP_SOURCE_FALLBACK"]

log = logging.getLogger("descluster")

#: Longer side of a served thumbnail, pixels.
THUMB_SIZE = 128
#: Thumbnail cache size, bytes of JPEG data.
THUMB_CACHE_BYTES = 64 << 20
#: Images nearest the centre and at the edge of each cluster on the cluster view.
N_CLUSTER_IMAGES = 8
#: Smallest group the cluster view offers to divide (``split_group`` tries k >= 2 from 8 rows).
MIN_DRILL = 8
#: Larger groups are divided on a uniform sample of this many rows, every member then going to its
#: nearest sub-cluster mean (the sweep's 29 k-means fits are linear and its silhouette quadratic in the
#: rows: 5,000 rows took 18 s, 2,000 took 7 s on a 2-core machine at load 8.6; k <= 30 leaves >= 66 rows
#: per sub-cluster on average at 2,000).
DRILL_SAMPLE = 2_000
#: How the map is made when the run's cached 2-D map is not found.
MAP_SOURCE_FALLBACK = "the first two components of the recommended space (the run's 2-D map was not found in its cache)"
#: Most vertices of a lasso polygon.
MAX_POLYGON = 2000
#: Largest JSON body accepted, bytes.
MAX_BODY = 1 << 20


def _plain(obj):
    """JSON default: NumPy scalars and arrays, paths, NaN-free floats."""
    if isinstance(obj, np.integer):
        return int(obj)
    if isinstance(obj, np.floating):
        v = float(obj)
        return v if math.isfinite(v) else None
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"{type(obj).__name__} is not JSON-serialisable")


def _clean(obj):
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, dict):
        return {k: _clean(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_clean(v) for v in obj]
    return obj


class RefitErrors(logging.Handler):
    """Keeps the newest background-refit failure of each task (the engine logs them and keeps the old fit).

    Attributes
    ----------
    errors : dict of str -> str
        Task -> ``"ExceptionType: message"`` of its newest failed refit; cleared by :meth:`clear`.
    """

    PREFIX = "background refit of task "

    def __init__(self):
        super().__init__(level=logging.ERROR)
        self.errors: dict[str, str] = {}

    def emit(self, record: logging.LogRecord) -> None:
        if not str(record.msg).startswith(self.PREFIX) or not record.args:
            return
        exc = record.exc_info[1] if record.exc_info else None
        self.errors[str(record.args[0])] = f"{type(exc).__name__}: {exc}" if exc is not None else record.getMessage()

    def clear(self, task: str) -> None:
        """Forget the failure of ``task`` (a later refit succeeded)."""
        self.errors.pop(task, None)


class LabellingApp:
    """State of one running app: the session, the image source, caches and the page templates.

    Parameters
    ----------
    results : str or PathLike
        A ``descluster run`` results folder.
    images : str or PathLike, optional
        Image folder or zip, if not the one in ``manifest.json``.
    db : str or PathLike, optional
        Session database (default ``RESULTS/labels.sqlite``).
    refit : {"background", "sync"}
        Passed to :class:`~descluster.labelling.Session`; the app uses ``background``
        so an answer never waits for a refit.

    Raises
    ------
    CaseError, LabellingError
        From the session (incomplete results folder, foreign database).
    """

    def __init__(self, results, images=None, db=None, refit: str = "background"):
        import pandas as pd

        from .server import template_env

        self.session = Session(results, db=db, refit=refit, images=images)
        self.refit_errors = RefitErrors()
        log.addHandler(self.refit_errors)
        self.data = self.session.results
        self.root = self.data.root
        self._mutate = threading.Lock()
        self._thumbs: OrderedDict[int, bytes] = OrderedDict()
        self._thumb_bytes = 0
        self._thumb_lock = threading.Lock()
        self._map: tuple[np.ndarray, str] | None = None
        self._clusters: list[dict] | None = None
        self._subclusters: dict[str, list[dict]] = {}
        self._map_lock = threading.Lock()
        try:
            self.source = self.data.image_source()
            self.source_error = None
        except DesclusterError as exc:
            self.source, self.source_error = None, str(exc)
        facts = self.root / "cluster_facts.csv"
        self.facts: dict[int, str] = {}
        if facts.is_file():
            table = pd.read_csv(facts)
            if {"cluster", "description"} <= set(table.columns):
                self.facts = {int(c): str(d) for c, d in zip(table["cluster"], table["description"]) if pd.notna(d)}
        self.env = template_env()

    def close(self) -> None:
        """Close the session and stop collecting refit errors."""
        log.removeHandler(self.refit_errors)
        self.session.close()

    def warm(self) -> None:
        """Load the recommended space, its kNN graph and the map ahead of the first question (errors logged)."""
        try:
            self.data.space(self.data.recommended)
            self.data.graph(self.data.recommended)
            self.map_points()
        except Exception:  # warming is an optimisation: the request that needs it reports the error
            log.exception("warming the labelling app failed")

    # ------------------------------------------------------------------ pieces
    def task_names(self) -> list[str]:
        """Names of the session's tasks, in creation order."""
        return [t["name"] for t in self.session.tasks()]

    def progress(self, task: str) -> dict:
        """The engine's progress dict of ``task`` (JSON-ready), plus ``refit_error``: the newest failed
        background refit when the figures come from an older fit (None otherwise)."""
        p = json.loads(json.dumps(self.session.progress(task), default=_plain))
        if p.get("fit_version") is not None and p["fit_version"] == p.get("version"):
            self.refit_errors.clear(task)
        p["refit_error"] = self.refit_errors.errors.get(task)
        return _clean(p)

    def question_json(self, q) -> dict | None:
        """A question for the page: shown rows with paths, proposal, texts, the cluster's description."""
        if q is None:
            return None
        meta = dict(q.meta)
        cluster_text = ""
        if "cluster" in meta and meta.get("space") == self.data.recommended:
            cluster_text = self.facts.get(int(meta["cluster"]), "")
        return _clean({"id": q.id, "task": q.task, "kind": q.kind, "n_rows": len(q.rows),
                       "shown": [{"row": int(r), "path": self.data.paths[int(r)]} for r in q.shown],
                       "proposed": q.proposed, "confidence": q.confidence, "description": q.description,
                       "reason": q.reason, "cluster_description": cluster_text,
                       "classes": list(self.session.state(q.task).classes)})

    def thumbnail(self, row: int) -> bytes:
        """JPEG bytes of the thumbnail of ``row`` (cached).

        Raises
        ------
        LabellingError
            Row out of range or no image source.
        UnsafePathError, ImageReadError
            From :class:`~descluster.io.images.ImageSource`.
        """
        if not 0 <= row < self.data.n_samples:
            raise LabellingError(f"row {row} is outside 0..{self.data.n_samples - 1}")
        with self._thumb_lock:
            hit = self._thumbs.get(row)
            if hit is not None:
                self._thumbs.move_to_end(row)
                return hit
        if self.source is None:
            raise LabellingError(self.source_error or "no image folder or zip")
        im = self.source.thumbnail(self.data.paths[row], THUMB_SIZE)
        buf = io.BytesIO()
        im.save(buf, format="JPEG", quality=85)
        data = buf.getvalue()
        with self._thumb_lock:
            if row not in self._thumbs:
                self._thumbs[row] = data
                self._thumb_bytes += len(data)
                while self._thumb_bytes > THUMB_CACHE_BYTES and self._thumbs:
                    _, old = self._thumbs.popitem(last=False)
                    self._thumb_bytes -= len(old)
        return data

    def map_points(self) -> tuple[np.ndarray, str]:
        """The run's 2-D map: ``(Y, how)``, Y of shape (n_samples, 2), float32.

        The map the run drew (its stage cache, entry ``embedding`` of the
        recommended space), else :data:`MAP_SOURCE_FALLBACK`.
        """
        with self._map_lock:
            if self._map is None:
                self._map = self._load_map()
            return self._map

    def _load_map(self) -> tuple[np.ndarray, str]:
        from ..cache import StageCache, stable_hash

        rec = self.data.recommended
        labels = self.data.clusterings[rec]
        model = self.root / "model" / "model.json"
        fingerprint = None
        if model.is_file():
            try:
                spaces = json.loads(model.read_text()).get("spaces", [])
                fingerprint = next((s["id"]["fingerprint"] for s in spaces if s.get("key") == rec), None)
            except (ValueError, KeyError, TypeError):
                fingerprint = None
        params_doc = self.data.manifest.get("parameters", {})
        method = params_doc.get("embedding", {}).get("method")
        if fingerprint is not None and method is not None:
            params = {"space": fingerprint, "method": method, "seed": params_doc.get("seed", 0),
                      "labels": stable_hash(np.bincount(labels + 1).tolist())}
            cache = StageCache(self.root / ".cache")
            entry = cache.load("embedding", cache.key("embedding", params)) if cache.has("embedding", params) else None
            if entry is not None and entry.arrays.get("Y") is not None and entry.arrays["Y"].shape == (self.data.n_samples, 2):
                return np.ascontiguousarray(entry.arrays["Y"], dtype=np.float32), str(entry.meta.get("how", method))
        X = self.data.space(rec)
        Y = np.zeros((self.data.n_samples, 2), np.float32)
        Y[:, : min(2, X.shape[1])] = X[:, :2]
        return Y, MAP_SOURCE_FALLBACK

    def final_labels(self, task: str) -> tuple[np.ndarray, np.ndarray, list[str]]:
        """Current label (class index, -1 none) and confidence of every row, and the classes.

        Answered rows keep their answer (confidence 1 when shown); the others take
        the newest finished propagation (none before the first fit).
        """
        pred = self.session.prediction(task)
        st = self.session.state(task)
        if pred is not None and pred.pred.shape[0] == st.n_samples:
            label, conf = pred.pred.copy(), pred.conf.astype(np.float32).copy()
        else:
            label, conf = np.full(st.n_samples, -1, np.int32), np.zeros(st.n_samples, np.float32)
        ans = st.labelled
        label[ans] = st.label[ans]
        conf[ans] = np.where(st.source[ans] == 1, 1.0, st.group_share[ans])
        return label, conf, list(st.classes)

    def _group(self, gid: str, members: np.ndarray, X, description: str = "") -> dict:
        """``cluster`` (id), ``size``, ``description``, ``centre``/``edge`` rows (nearest/farthest from the mean),
        ``members`` of one group of rows."""
        Xc = np.asarray(X[members], dtype=np.float32)
        d = np.linalg.norm(Xc - Xc.mean(axis=0), axis=1)
        by = np.argsort(d, kind="stable")
        k = min(N_CLUSTER_IMAGES, members.size)
        return {"cluster": gid, "size": int(members.size), "description": description,
                "centre": members[by[:k]].tolist(), "edge": members[by[::-1][:k]].tolist(), "members": members,
                "drill": members.size >= MIN_DRILL}

    def clusters(self) -> list[dict]:
        """The recommended clustering, largest first: one :meth:`_group` dict per cluster."""
        with self._map_lock:
            if self._clusters is None:
                rec = self.data.recommended
                labels = self.data.clusterings[rec]
                X = self.data.space(rec)
                order = np.argsort(labels, kind="stable")
                bounds = np.flatnonzero(np.diff(labels[order])) + 1
                out = [self._group(str(int(labels[m[0]])), m, X, self.facts.get(int(labels[m[0]]), ""))
                       for m in np.split(order, bounds)]
                out.sort(key=lambda r: (-r["size"], int(r["cluster"])))
                self._clusters = out
            return self._clusters

    def subclusters(self, path: str) -> list[dict]:
        """The drill-down tree: the sub-clusters of group ``path`` ("3", "3/1", ...), largest first.

        The study writes one flat clustering; a group is sub-clustered on demand in the
        recommended space with the honest k rule of a split
        (:func:`descluster.labelling.questions.split_group`), once per path (cached); a group
        of more than ``DRILL_SAMPLE`` rows on a uniform sample of that many, each member then
        assigned to the nearest sub-cluster mean.

        Raises
        ------
        LabellingError
            A path that names no group, or a group too small to divide (fewer than ``MIN_DRILL`` rows).
        """
        from ..labelling.questions import split_group
        from ..rows import nearest_centroid, sample_rows

        parent = path.rsplit("/", 1)[0] if "/" in path else None
        siblings = self.clusters() if parent is None else self.subclusters(parent)
        group = next((g for g in siblings if g["cluster"] == path), None)
        if group is None:
            raise LabellingError(f"no cluster {path!r} in the drill-down tree")
        if not group["drill"]:
            raise LabellingError(f"cluster {path!r} has {group['size']} images: too few to divide")
        with self._map_lock:
            if path not in self._subclusters:
                X = self.data.space(self.data.recommended)
                members = np.sort(group["members"])
                if members.size <= DRILL_SAMPLE:
                    parts = split_group(np.asarray(X[members]), random_state=0, n_init=1)
                else:  # fit on a uniform sample, every member to its nearest sub-cluster mean
                    Xs = np.asarray(X[members[sample_rows(members.size, DRILL_SAMPLE, 0)]], dtype=np.float32)
                    centres = np.stack([Xs[p].mean(axis=0) for p in split_group(Xs, random_state=0, n_init=1)])
                    near = nearest_centroid(X[members], centres)
                    parts = [np.flatnonzero(near == j) for j in range(len(centres)) if (near == j).any()]
                out = [self._group(f"{path}/{i}", members[p], X) for i, p in enumerate(parts)]
                out.sort(key=lambda r: -r["size"])
                self._subclusters[path] = out
            return self._subclusters[path]

    def page(self, name: str, **context) -> str:
        """Render template ``name`` (autoescaped)."""
        return self.env.get_template(name).render(**context)


# ---------------------------------------------------------------------- the Starlette app
def build_routes(app: LabellingApp):
    """The Starlette application serving ``app``: pages, ``/api``, thumbnails, static files and exports.

    Parameters
    ----------
    app : LabellingApp
        The opened session and its caches.

    Returns
    -------
    starlette.applications.Starlette
        Not access-controlled by itself: :func:`descluster.app.server.create_app` wraps it in
        :class:`~descluster.app.security.AccessControl`.
    """
    from starlette.applications import Starlette
    from starlette.responses import FileResponse, HTMLResponse, PlainTextResponse, RedirectResponse, Response
    from starlette.routing import Route

    S = app.session

    def js(obj, status: int = 200) -> Response:
        return Response(json.dumps(_clean(obj), default=_plain, ensure_ascii=False), status_code=status,
                        media_type="application/json")

    def fail(status: int, message: str) -> Response:
        return js({"error": message}, status)

    def task_of(request) -> str:
        task = request.query_params.get("task", "")
        if task not in app.task_names():
            raise LabellingError(f"no task {task!r}; tasks: {app.task_names()}")
        return task

    async def body(request) -> dict:
        raw = await request.body()
        if len(raw) > MAX_BODY:
            raise LabellingError("request body too large")
        try:
            data = json.loads(raw or b"{}")
        except ValueError as exc:
            raise LabellingError(f"request body is not JSON ({exc})") from exc
        if not isinstance(data, dict):
            raise LabellingError("request body must be a JSON object")
        return data

    def guarded(fn):
        """Map engine errors to HTTP: stale question 409, bad input 400, unsafe path 403."""
        async def endpoint(request):
            try:
                return await fn(request)
            except Stale as exc:
                return fail(409, str(exc))
            except UnsafePathError as exc:
                return fail(403, str(exc))
            except DesclusterError as exc:
                return fail(400, str(exc))
        return endpoint

    def check_open(task: str, question_id) -> None:
        """Refuse (409) a change made from a page whose question is no longer the task's open one."""
        if question_id in (None, ""):
            open_q = S.log.open_question(task)
            if open_q is not None:
                raise Stale(f"task {task!r} has an open question {open_q['id']} this page did not show; reload")
            return
        try:
            status, q = S.question(str(question_id))
        except LabellingError as exc:
            raise Stale(str(exc)) from exc
        if q.task != task:
            raise Stale(f"question {question_id} belongs to task {q.task!r}, not {task!r}")
        if status != "open":
            raise Stale(f"question {question_id} is {status} already (another tab or an undo); "
                        "the page shows the current question")

    def next_payload(task: str) -> dict:
        q = S.next_question(task)
        return {"question": app.question_json(q), "progress": app.progress(task)}

    # -------------------------------------------------------------- pages
    def render(name: str, view: str, task: str | None = None, **extra) -> HTMLResponse:
        tasks = S.tasks()
        data = {"view": view, "task": task, "n_samples": app.data.n_samples, **extra}
        return HTMLResponse(app.page(name, view=view, task=task, tasks=tasks, data=data,
                                     root=str(app.root), n_samples=app.data.n_samples, **extra))

    async def home(request):
        rows = []
        for t in S.tasks():
            p = await run(app.progress, t["name"])
            rows.append({**t, "progress": p})
        return render("tasks.html", "tasks", rows=rows, images=str(app.data.image_root or ""),
                      image_error=app.source_error or "")

    def task_page(template: str, view: str):
        async def page(request):
            task = request.query_params.get("task", "")
            if task not in app.task_names():
                return RedirectResponse("/", status_code=303)
            return render(template, view, task)
        return page

    async def clusters_page(request):
        task = request.query_params.get("task", "")
        if task not in app.task_names():
            return RedirectResponse("/", status_code=303)
        path = request.query_params.get("path", "")
        if path and not re.fullmatch(r"\d+(/\d+)*", path):
            raise LabellingError(f"path {path!r}: cluster ids separated by '/', e.g. 3/1")
        rows = await run(cluster_rows, task, path)
        trail = [] if not path else ["/".join(path.split("/")[: i + 1]) for i in range(path.count("/") + 1)]
        return render("clusters.html", "clusters", task, clusters=rows, space=app.data.recommended,
                      path=path, trail=trail)

    def cluster_rows(task: str, path: str = "") -> list[dict]:
        label, conf, classes = app.final_labels(task)
        out = []
        for c in (app.subclusters(path) if path else app.clusters()):
            lab = label[c["members"]]
            lab = lab[lab >= 0]
            if lab.size:
                counts = np.bincount(lab, minlength=len(classes))
                top = int(counts.argmax())
                purity, name = float(counts[top] / lab.size), classes[top]
            else:
                purity, name = None, ""
            out.append({"cluster": c["cluster"], "size": c["size"], "description": c["description"],
                        "centre": c["centre"], "edge": c["edge"], "purity": purity, "label": name,
                        "reached": int(lab.size), "drill": c["drill"]})
        return out

    # -------------------------------------------------------------- API
    async def api_tasks(request):
        if request.method == "GET":
            return js({"tasks": S.tasks()})
        data = await body(request)
        name, classes = data.get("name"), data.get("classes", [])
        if isinstance(classes, str):
            classes = [c.strip() for c in classes.split(",") if c.strip()]
        if not isinstance(classes, list):
            raise LabellingError("classes must be a list of strings")
        with app._mutate:
            task = S.add_task(name, classes)
        return js({"task": task})

    async def api_classes(request):
        data = await body(request)
        with app._mutate:
            classes = S.add_class(str(data.get("task", "")), data.get("class"))
        return js({"classes": classes})

    async def api_question(request):
        task = task_of(request)
        return js(await run(next_payload, task))

    async def api_progress(request):
        return js(app.progress(task_of(request)))

    def task_post(work):
        """A POST handler: the JSON body's ``task`` must exist; ``work(task, data)`` runs off the event loop."""
        async def handler(request):
            data = await body(request)
            task = str(data.get("task", ""))
            if task not in app.task_names():
                raise LabellingError(f"no task {task!r}")
            return js(await run(work, task, data))
        return handler

    def do_answer(task: str, data: dict) -> dict:
        qid = data.get("question")
        action = data.get("action")
        with app._mutate:
            check_open(task, qid)
            if action == "skip":
                S.skip(qid)
                result = {"action": "skip"}
            elif action in ("name", "split", "junk"):
                marks = data.get("marks") or []
                if not isinstance(marks, list) or not all(
                        isinstance(m, list) and len(m) == 2 and isinstance(m[0], int) and not isinstance(m[0], bool)
                        for m in marks):
                    raise LabellingError("marks must be a list of [row, class] pairs, each row an integer")
                result = S.answer(qid, label=data.get("label") if action == "name" else None,
                                  marks={int(r): str(c) for r, c in marks}, split=action == "split",
                                  junk=action == "junk")
            else:
                raise LabellingError(f"action {action!r}: use name, split, junk or skip")
        return {"result": result, **next_payload(task)}

    api_answer = task_post(do_answer)

    def do_undo(task: str, data: dict) -> dict:
        with app._mutate:
            check_open(task, data.get("question"))
            undone = S.undo(task)
        return {"undone": undone, **next_payload(task)}

    api_undo = task_post(do_undo)

    async def api_map_meta(request):
        Y, how = await run(app.map_points)
        lo, hi = Y.min(axis=0), Y.max(axis=0)
        return js({"n": int(Y.shape[0]), "how": how, "bounds": [float(lo[0]), float(lo[1]), float(hi[0]), float(hi[1])]})

    async def api_map_points(request):
        Y, _ = await run(app.map_points)
        return Response(Y.astype("<f4").tobytes(), media_type="application/octet-stream")

    async def api_map_labels(request):
        task = task_of(request)
        label, conf, classes = await run(app.final_labels, task)
        codes = np.where(label >= 0, np.minimum(label + 1, 255), 0).astype(np.uint8)
        c8 = np.clip(np.round(conf * 255), 0, 255).astype(np.uint8)
        return Response(np.concatenate([codes, c8]).tobytes(), media_type="application/octet-stream",
                        headers={"x-classes": json.dumps(classes, ensure_ascii=True)})

    def do_lasso(task: str, data: dict) -> dict:
        from matplotlib.path import Path as Polygon

        poly = data.get("polygon")
        if not isinstance(poly, list) or not 3 <= len(poly) <= MAX_POLYGON:
            raise LabellingError(f"polygon must be a list of 3..{MAX_POLYGON} [x, y] points")
        try:
            P = np.asarray(poly, dtype=np.float64).reshape(-1, 2)
        except (TypeError, ValueError) as exc:
            raise LabellingError(f"polygon: not [x, y] numbers ({exc})") from exc
        Y, _ = app.map_points()
        rows = np.flatnonzero(Polygon(P).contains_points(Y))
        if rows.size == 0:
            raise LabellingError("the lasso holds no image")
        action = data.get("action", "ask")
        with app._mutate:
            q = S.ask_group(task, rows, description=f"{rows.size:,} images lassoed on the map")
            if action == "label":
                S.answer(q.id, label=data.get("label"))
            elif action != "ask":
                raise LabellingError(f"action {action!r}: use ask or label")
        return {"rows": int(rows.size), "question": app.question_json(q) if action == "ask" else None,
                "progress": app.progress(task)}

    api_lasso = task_post(do_lasso)

    async def thumb(request):
        try:
            row = int(request.path_params["row"])
        except ValueError:
            return PlainTextResponse("not found", status_code=404)
        try:
            data = await run(app.thumbnail, row)
        except UnsafePathError as exc:
            return PlainTextResponse(str(exc), status_code=403)
        except (ImageReadError, LabellingError) as exc:
            return PlainTextResponse(str(exc), status_code=404)
        return Response(data, media_type="image/jpeg", headers={"cache-control": "private, max-age=3600"})

    async def static(request):
        got = static_file(request.path_params["name"])
        if got is None:
            return PlainTextResponse("not found", status_code=404)
        return Response(got[0], media_type=got[1], headers={"cache-control": "private, max-age=60"})

    EXPORTS = {"labels.csv": "text/csv", "label_studio.json": "application/json", "images.zip": "application/zip",
               "decisions.csv": "text/csv"}

    def do_export(kind: str, tasks) -> Path:
        from ..io.atomic import write_csv
        from ..labelling.export import export_image_folders, export_label_studio, export_labels_csv

        folder = app.root / "exports"
        folder.mkdir(exist_ok=True)
        target = folder / kind
        if kind == "labels.csv":
            return export_labels_csv(S, target, tasks)
        if kind == "label_studio.json":
            return export_label_studio(S, target, tasks)
        if kind == "images.zip":
            return export_image_folders(S, target, tasks, mode="zip")
        write_csv(target, S.decisions(tasks[0] if tasks else None))
        return target

    async def export(request):
        kind = request.path_params["kind"]
        if kind not in EXPORTS:
            return PlainTextResponse("not found", status_code=404)
        task = request.query_params.get("task")
        tasks = None
        if task:
            tasks = [task_of(request)]
        path = await run(do_export, kind, tasks)
        return FileResponse(path, media_type=EXPORTS[kind], filename=kind)

    routes = [
        Route("/", home),
        Route("/question", task_page("question.html", "question")),
        Route("/map", task_page("map.html", "map")),
        Route("/clusters", guarded(clusters_page)),
        Route("/export", task_page("export.html", "export")),
        Route("/api/tasks", guarded(api_tasks), methods=["GET", "POST"]),
        Route("/api/classes", guarded(api_classes), methods=["POST"]),
        Route("/api/question", guarded(api_question)),
        Route("/api/progress", guarded(api_progress)),
        Route("/api/answer", guarded(api_answer), methods=["POST"]),
        Route("/api/undo", guarded(api_undo), methods=["POST"]),
        Route("/api/lasso", guarded(api_lasso), methods=["POST"]),
        Route("/api/map/meta", guarded(api_map_meta)),
        Route("/api/map/points", guarded(api_map_points)),
        Route("/api/map/labels", guarded(api_map_labels)),
        Route("/thumb/{row}", thumb),
        Route("/static/{name}", static),
        Route("/export/{kind}", guarded(export)),
    ]
    return Starlette(routes=routes)


class Stale(LabellingError):
    """A change made from a page showing a question that is no longer open (HTTP 409)."""


async def run(fn, *args):
    """Run blocking engine work in Starlette's thread pool."""
    from starlette.concurrency import run_in_threadpool

    return await run_in_threadpool(fn, *args)
