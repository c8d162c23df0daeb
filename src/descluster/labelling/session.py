"""A labelling session beside a results folder: tasks, questions, answers, undo, progress.

>>> s = Session("OUT")                                   # OUT/labels.sqlite, created if absent
>>> s.add_task("vehicle_type", ["car", "bus"])
>>> q = s.next_question("vehicle_type")                  # Question: <= 64 image rows + proposal
>>> s.answer(q.id, label="car", marks={q.shown[3]: "bus"})
>>> s.progress("vehicle_type")["estimated_accuracy"]
>>> s.undo("vehicle_type")

State lives only in the decisions log (:mod:`descluster.labelling.store`);
everything else (propagated labels, the next question) is computed from it.
``refit="sync"`` refits the propagation after every answer before returning
(simulations, tests); ``refit="background"`` returns at once and refits in a
worker thread, the next question using the newest finished fit (the local app:
an answer then costs a SQLite commit plus the question choice, O(n) NumPy work).
The fit is a pure function of the answers (no warm start), so a replayed log
gives the same labels.
"""

from __future__ import annotations

import logging
import threading
import zlib
from dataclasses import dataclass

import numpy as np
import pandas as pd

from ..errors import LabellingError
from .estimate import Calibration, estimate_accuracy
from .questions import MAX_SHOWN, PolicyContext, Question, make_policy, new_question_id
from .spaces import ResultsData
from .state import JUNK, SOURCES, TaskState
from .store import DecisionLog, LogEntry

__all__ = ["Session", "Prediction", "DB_NAME"]

log = logging.getLogger("descluster")

#: File name of the session database inside the results folder.
DB_NAME = "labels.sqlite"

#: Label source codes beyond :data:`SOURCES` (computed, never stored).
IDENTITY_SOURCE = 3


#: The names of :data:`~descluster.labelling.propagate.PROPAGATIONS`, here so that opening a session (what
#: the app's first page waits for) accepts a name without importing scikit-learn (about 2 s); a test keeps
#: the two equal.
PROPAGATION_NAMES = ("smoothed", "logistic", "spreading", "knn")


def _checked_propagation(propagation):
    """A known propagation name as given; anything else through
    :func:`~descluster.labelling.propagate.make_propagation` (an instance cloned, or its
    :class:`~descluster.errors.ParameterError` naming the valid ones)."""
    if isinstance(propagation, str) and propagation in PROPAGATION_NAMES:
        return propagation
    from .propagate import make_propagation

    return make_propagation(propagation)


@dataclass
class Prediction:
    """Propagated labels of one task at one state version.

    Attributes
    ----------
    version : int
        ``TaskState.version`` they were computed from.
    space : str
    proba : ndarray of shape (n_samples, n_classes), float32
    by_identity : ndarray of shape (n_samples,), bool
        Rows labelled from answered images of their identity.
    description : str
    pred : ndarray of shape (n_samples,), int32
        ``argmax`` of ``proba`` (-1 where no label reached the row).
    conf : ndarray of shape (n_samples,), float32
        ``max`` of ``proba``.
    """

    version: int
    space: str
    proba: np.ndarray
    by_identity: np.ndarray
    description: str
    pred: np.ndarray = None
    conf: np.ndarray = None

    def __post_init__(self):
        if self.conf is None:
            self.conf = self.proba.max(axis=1) if self.proba.shape[1] else np.zeros(self.proba.shape[0], np.float32)
        if self.pred is None:
            self.pred = np.where(self.conf > 0, self.proba.argmax(axis=1), -1).astype(np.int32)


def _check_name(what: str, value) -> str:
    if not isinstance(value, str) or not value.strip() or value != value.strip() or len(value) > 200:
        raise LabellingError(f"{what} {value!r} must be a non-empty string without surrounding spaces (<= 200 characters)")
    if any(ord(ch) < 32 for ch in value):
        raise LabellingError(f"{what} {value!r} contains control characters")
    return value


class Session:
    """The labelling engine on one results folder.

    Parameters
    ----------
    results : str, PathLike or ResultsData
        A ``descluster run`` output folder.
    db : str or PathLike, optional
        Session database; default ``RESULTS/labels.sqlite``; ``":memory:"`` for a throw-away one.
    policy : QuestionPolicy, optional
        What to ask next (default :class:`~descluster.labelling.questions.DefaultPolicy`).
    propagation : str or Propagation, default "smoothed"
        See :data:`~descluster.labelling.propagate.PROPAGATIONS`.
    refit : {"sync", "background"}
    space_choice : bool, default True
        Choose each task's space from its answers; False keeps the recommended space.
    random_state : int, default 0
    images : str or PathLike, optional
        Image folder or zip, if not the one in ``manifest.json``.

    Raises
    ------
    CaseError
        The results folder is incomplete.
    LabellingError
        The database belongs to other images or is not a labelling database.
    """

    def __init__(self, results, db=None, policy=None, propagation="smoothed", refit: str = "sync",
                 space_choice: bool = True, random_state: int = 0, images=None):
        if refit not in ("sync", "background"):
            raise LabellingError(f"refit={refit!r}: use 'sync' or 'background'")
        self.results = results if isinstance(results, ResultsData) else ResultsData(results, images=images)
        self.db_path = str(db) if db is not None else str(self.results.root / DB_NAME)
        self.log = DecisionLog(self.db_path, fingerprint=self.results.fingerprint)
        self.policy = make_policy(policy)
        self.propagation = _checked_propagation(propagation)
        self.refit = refit
        self.space_choice = bool(space_choice)
        self.random_state = int(random_state)
        self._lock = threading.RLock()
        self._tasks: dict[str, TaskState] = {}
        self._entries: dict[str, list[LogEntry]] = {}
        self._undone: set[int] = set()
        self._last = 0
        self._predictions: dict[str, Prediction] = {}
        self._operators: dict[str, object] = {}
        self._identity_index = None
        self._worker: threading.Thread | None = None
        self._dirty: set[str] = set()
        self._cluster_text: dict[str, dict[int, str]] = {}
        self._calibrations: dict[str, tuple] = {}
        self._scalings: dict[str, tuple] = {}
        self._core_cache: dict[tuple, list] = {}
        self.sync()

    # ------------------------------------------------------------------ log folding
    def sync(self) -> int:
        """Apply entries appended since the last sync (also by other processes); returns how many."""
        with self._lock:
            new = self.log.since(self._last)
            rebuild: dict[str, int] = {}
            for e in new:
                self._last = e.id
                if e.kind == "undo":
                    self._undone.add(int(e.payload["target"]))
                    rebuild[e.task] = e.id
                    continue
                if e.kind == "add_task":
                    self._entries.setdefault(e.task, [])
                self._entries.setdefault(e.task, []).append(e)
                if e.task in rebuild:
                    continue
                if e.kind == "add_task" and e.task not in self._tasks:
                    self._tasks[e.task] = TaskState(e.task, self.results.n_samples)
                self._tasks[e.task].apply(e)
            for task in rebuild:
                st = self._fold(task)
                st.version = max(st.version, rebuild[task], max((e.id for e in self._entries[task]), default=0))
                self._tasks[task] = st
            return len(new)

    def _fold(self, task: str) -> TaskState:
        st = TaskState(task, self.results.n_samples)
        for e in self._entries.get(task, []):
            if e.id not in self._undone:
                st.apply(e)
        return st

    def replay(self) -> dict[str, TaskState]:
        """Every task's state rebuilt from the database alone (a fresh fold of the whole log)."""
        entries = self.log.since(0)
        undone = {int(e.payload["target"]) for e in entries if e.kind == "undo"}
        states: dict[str, TaskState] = {}
        for e in entries:
            if e.kind == "undo" or e.id in undone:
                continue
            if e.kind == "add_task":
                states.setdefault(e.task, TaskState(e.task, self.results.n_samples))
            states[e.task].apply(e)
        return states

    def _state(self, task: str) -> TaskState:
        self.sync()
        if task not in self._tasks:
            raise LabellingError(f"no task {task!r} in {self.db_path}; tasks: {sorted(self._tasks)} "
                                 "(create it with add_task)")
        return self._tasks[task]

    def state(self, task: str) -> TaskState:
        """The live state of ``task`` (read-only by convention)."""
        with self._lock:
            return self._state(task)

    def close(self) -> None:
        """Wait for a background refit and close the database."""
        worker = self._worker
        if worker is not None:
            worker.join()
        self.log.close()

    # ------------------------------------------------------------------ tasks
    def tasks(self) -> list[dict]:
        """One dict per task: ``name``, ``classes``, ``identity``, ``decisions``, ``labelled_share``."""
        with self._lock:
            self.sync()
            return [{"name": t.name, "classes": list(t.classes), "identity": t.identity,
                     "decisions": t.n_decisions, "labelled_share": float(t.labelled.mean())}
                    for t in self._tasks.values()]

    def add_task(self, name: str, classes=(), identity: bool = False) -> dict:
        """Create a task (an attribute with its own class list).

        Parameters
        ----------
        name : str
            Task name (a column of labels.csv).
        classes : sequence of str
            Initial classes; more can be added later (:meth:`add_class`).
        identity : bool
            The attribute is the same on every image of one object identity (see
            :mod:`descluster.labelling.identity`); needs identities in the paths.

        Raises
        ------
        LabellingError
            Name taken or invalid, duplicate classes, ``identity`` without identities.
        """
        _check_name("task name", name)
        classes = [_check_name("class", c) for c in classes]
        if len(set(classes)) != len(classes):
            raise LabellingError(f"task {name!r}: duplicate classes in {classes}")
        if identity and self.results.identities is None:
            raise LabellingError(f"task {name!r}: identity=True but the image paths of {self.results.root} encode no "
                                 "object identity (<part>/<object id>/<image>)")
        with self._lock:
            self.sync()
            if name in self._tasks:
                raise LabellingError(f"task {name!r} exists already in {self.db_path}")
            self.log.append(name, "add_task", {"classes": classes, "identity": bool(identity)})
            self.sync()
            return self.tasks()[[t["name"] for t in self.tasks()].index(name)]

    def add_class(self, task: str, cls: str) -> list[str]:
        """Add a class to a task; returns the task's classes.

        Raises
        ------
        LabellingError
            Unknown task, invalid or existing class.
        """
        _check_name("class", cls)
        with self._lock:
            st = self._state(task)
            if cls in st.classes:
                raise LabellingError(f"task {task!r} has class {cls!r} already")
            self.log.append(task, "add_class", {"class": cls})
            self.sync()
            return list(self._tasks[task].classes)

    # ------------------------------------------------------------------ propagation
    def _space_key(self, st: TaskState) -> str:
        return st.space or self.results.recommended

    def _operator(self, key: str):
        """The graph operator of a space, its rows ordered by the study's clusters (memory locality)."""
        if key not in self._operators:
            from .propagate import graph_operator

            graph = self.results.graph(key)
            clusters = self.results.clusterings.get(key, self.results.clusterings[self.results.recommended])
            self._operators[key] = graph_operator(graph, self.results.n_samples,
                                                  order=np.argsort(clusters, kind="stable"))
        return self._operators[key]

    def _scaling(self, key: str):
        if key not in self._scalings:
            from .propagate import isotropic_params

            self._scalings[key] = isotropic_params(self.results.space(key))
        return self._scalings[key]

    def _identities(self):
        if self._identity_index is None and self.results.identities is not None:
            from .identity import IdentityIndex

            self._identity_index = IdentityIndex(self.results.identities)
        return self._identity_index

    def _space_choice_due(self, st: TaskState) -> bool:
        """Whether the task's labelled rows have doubled since its space was last chosen."""
        if not self.space_choice or len(self.results.candidates) < 2:
            return False
        n_lab = int(st.labelled.sum())
        return np.unique(st.label[st.labelled]).size >= 2 and n_lab >= max(2 * st.space_labelled, 12)

    def _choose_space(self, task: str) -> None:
        """Re-choose the task's space (see :func:`~descluster.labelling.propagate.choose_space`); logged."""
        with self._lock:
            st = self._state(task)
            if not self._space_choice_due(st):
                return
            rows = np.flatnonzero(st.labelled)
            labels, current, version = st.label[rows].copy(), self._space_key(st), st.version
        from .propagate import choose_space

        choice = choose_space(self.results.space_rows, rows, labels, current=current,
                              random_state=self.random_state, keys=self.results.candidates)
        with self._lock:
            if self._state(task).version != version:
                return  # answers came in meanwhile: the next refit chooses again
            self.log.append(task, "space", {"key": choice["key"], "reason": choice["reason"],
                                            "scores": choice["scores"], "n_labelled": int(rows.size)})
            self.sync()

    def _compute(self, task: str) -> Prediction | None:
        self._choose_space(task)
        with self._lock:
            st = self._state(task)
            version, key = st.version, self._space_key(st)
            y = st.label.copy()
            source = st.source.copy()
            identity = st.identity
            n_classes = len(st.classes)
        if not (y >= 0).any() or n_classes == 0:
            return None
        from .propagate import LogisticPropagation, make_propagation

        X = self.results.space(key)
        prop = make_propagation(self.propagation)
        kwargs = {"operator": self._operator(key)} if prop.needs_graph else {}
        if isinstance(prop, LogisticPropagation):
            kwargs["scaling"] = self._scaling(key)
        prop.fit(X, y, n_classes=n_classes, **kwargs)
        proba = prop.proba_
        by_identity = np.zeros(y.shape[0], bool)
        text = f"{prop.description_} in {key}"
        index = self._identities() if identity else None
        if index is not None:
            proba, by_identity = index.spread(proba, y, source > 0)
            text += f"; identity spreading over {index.names_.size:,} identities"
        return Prediction(version=version, space=key, proba=proba, by_identity=by_identity, description=text)

    def refresh(self, task: str) -> Prediction | None:
        """Refit the propagation of ``task`` now (synchronously) and return it."""
        pred = self._compute(task)
        with self._lock:
            old = self._predictions.get(task)
            if pred is None:
                self._predictions.pop(task, None)
            elif old is None or old.version <= pred.version:  # a slower, older fit never replaces a newer one
                self._predictions[task] = pred
            return self._predictions.get(task)

    def _background(self) -> None:
        while True:
            with self._lock:
                if not self._dirty:
                    self._worker = None
                    return
                task = self._dirty.pop()
            try:
                self.refresh(task)
            except Exception:  # a failed background fit keeps the previous one; logged, never raised into the app
                log.exception("background refit of task %r failed", task)

    def _schedule(self, task: str) -> None:
        if self.refit == "sync":
            self.refresh(task)
            return
        with self._lock:
            self._dirty.add(task)
            if self._worker is None:
                self._worker = threading.Thread(target=self._background, name="descluster-refit", daemon=True)
                self._worker.start()

    def prediction(self, task: str, fresh: bool = False) -> Prediction | None:
        """The newest propagated labels of ``task``.

        Parameters
        ----------
        fresh : bool
            Refit now if the answers changed since the last fit. In ``sync`` mode this
            is always done; in ``background`` mode the default returns the newest
            finished fit (None before the first) and schedules a refit, so a question
            never waits for a fit.
        """
        with self._lock:
            st = self._state(task)
            pred = self._predictions.get(task)
            stale = pred is None or pred.version != st.version
        if stale and (fresh or self.refit == "sync"):
            return self.refresh(task)
        if stale:
            self._schedule(task)
        return pred

    # ------------------------------------------------------------------ questions
    def _cluster_descriptions(self, key: str) -> dict[int, str]:
        if key not in self._cluster_text:
            text = {}
            path = self.results.root / "cluster_facts.csv"
            if key == self.results.recommended and path.is_file():
                facts = pd.read_csv(path)
                for _, r in facts.iterrows():
                    bits = [str(r[c]) for c in ("imagenet", "colours", "light") if c in facts and pd.notna(r.get(c))]
                    if bits:
                        text[int(r["cluster"])] = "Looks like: " + "; ".join(bits)
            self._cluster_text[key] = text
        return self._cluster_text[key]

    def next_question(self, task: str) -> Question | None:
        """The question to ask next for ``task`` (the open one if any), or None when every image has an answer.

        Raises
        ------
        LabellingError
            Unknown task.
        """
        with self._lock:
            st = self._state(task)
            open_q = self.log.open_question(task)
            if open_q is not None:
                return Question.from_dict(open_q)
        pred = self.prediction(task)
        with self._lock:
            st = self._state(task)
            key = pred.space if pred is not None else self._space_key(st)
            index = self._identities() if st.identity else None
            conflicts = (index.conflicts(st.label, st.source > 0, len(st.classes), skip=st.asked_identities, limit=1)
                         if index is not None else [])
            rng = np.random.default_rng([self.random_state, zlib.crc32(task.encode("utf-8")), st.version])
            ctx = PolicyContext(state=st, proba=None if pred is None else pred.proba, space=key,
                                X=self.results.space(key), clusters=self.results.clusterings.get(key),
                                identities=self.results.identities if st.identity else None, conflicts=conflicts, rng=rng,
                                cluster_text=self._cluster_descriptions(key),
                                pred=None if pred is None else pred.pred, conf=None if pred is None else pred.conf,
                                calibration=self.calibration(task, key), cores=self._cores(key))
            q = self.policy.next(ctx)
            if q is None:
                return None
            self.log.put_question(q.id, task, q.to_dict())
            return q

    def _cores(self, key: str) -> list | None:
        """Cluster cores of a space's clustering (computed once per space and core size)."""
        from .questions import cluster_cores

        size = getattr(self.policy, "core_size", None)
        clusters = self.results.clusterings.get(key)
        if size is None or clusters is None:
            return None
        if (key, size) not in self._core_cache:
            self._core_cache[(key, size)] = cluster_cores(self.results.space(key), clusters, size)
        return self._core_cache[(key, size)]

    def calibration(self, task: str, space: str | None = None) -> Calibration:
        """The task's :class:`~descluster.labelling.estimate.Calibration` under ``space`` (cached per state)."""
        with self._lock:
            st = self._state(task)
            key = space or self._space_key(st)
            hit = self._calibrations.get(task)
            if hit is None or hit[0] != (st.version, key):
                hit = ((st.version, key), Calibration(st, key))
                self._calibrations[task] = hit
            return hit[1]

    def ask_group(self, task: str, rows, description: str = "", shown=None) -> Question:
        """Make a question of any group of rows (the app's lasso); it becomes the task's open question.

        Parameters
        ----------
        rows : sequence of int
            Members (any number); the answer applies to all.
        shown : sequence of int, optional
            Members to show (default a seeded sample of at most 64).

        Raises
        ------
        LabellingError
            Unknown task, empty group or rows out of range.
        """
        with self._lock:
            st = self._state(task)
            rows = np.unique(np.asarray(list(rows), dtype=np.int64))
            if rows.size == 0 or rows.min() < 0 or rows.max() >= st.n_samples:
                raise LabellingError(f"ask_group: rows must be non-empty and within 0..{st.n_samples - 1}")
            if shown is None:
                rng = np.random.default_rng([self.random_state, st.version, rows.size])
                shown = np.sort(rng.choice(rows, size=min(MAX_SHOWN, rows.size), replace=False))
            shown = np.asarray(list(shown), dtype=np.int64)
            if shown.size > MAX_SHOWN or not np.isin(shown, rows).all():
                raise LabellingError(f"ask_group: at most {MAX_SHOWN} shown rows, all members of the group")
            pred = self._predictions.get(task)
            prop, conf = None, None
            if pred is not None:
                c = int(np.bincount(pred.proba[rows].argmax(axis=1), minlength=len(st.classes)).argmax())
                prop, conf = st.classes[c], float(pred.proba[shown, c].mean())
            self.log.close_open_questions(task)
            q = Question(new_question_id(), task, "custom", rows.tolist(), shown.tolist(), prop, conf,
                         description=description or f"{rows.size:,} images chosen by hand ({shown.size} shown)",
                         reason="asked by the team", meta={"space": self._space_key(st)})
            self.log.put_question(q.id, task, q.to_dict())
            return q

    def question(self, question_id: str) -> tuple[str, Question]:
        """``(status, question)`` of a question issued in this session (``open``, ``answered``, ``skipped``,
        ``superseded``).

        Raises
        ------
        LabellingError
            Unknown question id.
        """
        got = self.log.get_question(str(question_id))
        if got is None:
            raise LabellingError(f"question {question_id!r} is unknown to {self.db_path}")
        return got[0], Question.from_dict(got[1])

    def _question(self, question_id: str) -> Question:
        got = self.log.get_question(str(question_id))
        if got is None:
            raise LabellingError(f"question {question_id!r} is unknown to {self.db_path}")
        status, payload = got
        if status != "open":
            raise LabellingError(f"question {question_id!r} is {status} already; ask for the next question")
        return Question.from_dict(payload)

    def answer(self, question_id: str, label: str | None = None, marks: dict | None = None, split: bool = False,
               junk: bool = False) -> dict:
        """Answer a question: name it (with images marked as not belonging), split it, or mark it junk.

        Parameters
        ----------
        question_id : str
        label : str, optional
            The group's class (applies to every member, also those not shown).
        marks : dict of int -> str, optional
            Shown rows that do not belong, each with its class (one decision each).
        split : bool
            The group is mixed: it is sub-clustered and the parts are asked next (the policy's
            :meth:`~descluster.labelling.questions.QuestionPolicy.split`; a sub-group split
            past its ``split_depth`` queues none, its images go back to review).
        junk : bool
            The group is junk (the class :data:`~descluster.labelling.state.JUNK`).

        Returns
        -------
        dict
            ``entry`` (log id), ``decisions`` (counted), ``action``, ``subgroups`` (for a split).

        Raises
        ------
        LabellingError
            Unknown or closed question, not exactly one of label/split/junk, unknown
            class, marked rows that were not shown, marks with a split.
        """
        with self._lock:
            q = self._question(question_id)
            st = self._state(q.task)
            actions = [label is not None, bool(split), bool(junk)]
            if sum(actions) != 1:
                raise LabellingError(f"question {q.id}: give exactly one of label=..., split=True or junk=True")
            marks = dict(marks or {})
            if split and marks:
                raise LabellingError(f"question {q.id}: a split takes no marks (the sub-groups are asked next)")
            shown = set(q.shown)
            bad = [r for r in marks if int(r) not in shown]
            if bad:
                raise LabellingError(f"question {q.id}: marked rows {bad[:5]} were not shown")
            for c in list(marks.values()) + ([label] if label is not None else []):
                if c != JUNK:
                    st.class_index(c)
            payload = {"question": q.to_dict(), "action": "split" if split else ("junk" if junk else "name"),
                       "label": label, "marks": [[int(r), str(c)] for r, c in sorted(marks.items())]}
            if split:
                X = self.results.space(self._space_key(st))
                rows = np.asarray(q.rows, dtype=np.int64)
                order = np.argsort(rows)
                parts = self.policy.split(q, np.asarray(X[rows[order]]), random_state=self.random_state,
                                          released=st.released[rows[order]])
                payload["subgroups"] = [sorted(rows[order][p].tolist()) for p in parts]
            n = 1 + len(marks)
            entry = self.log.append(q.task, "answer", payload, n_decisions=n, question=(q.id, "answered"))
            self.sync()
        self._schedule(q.task)
        return {"entry": entry.id, "decisions": n, "action": payload["action"],
                "subgroups": len(payload.get("subgroups", []))}

    def skip(self, question_id: str) -> None:
        """Skip a question (no decision counted); a skipped sub-group goes to the back of the queue."""
        with self._lock:
            q = self._question(question_id)
            self.log.append(q.task, "skip", {"question": q.to_dict()}, question=(q.id, "skipped"))
            self.sync()

    def undo(self, task: str) -> dict | None:
        """Undo the newest answer or skip of ``task``; returns what was undone (None if nothing).

        The undo is itself an entry of the log; the open question is withdrawn.
        """
        with self._lock:
            self._state(task)
            target = next((e for e in reversed(self._entries.get(task, []))
                           if e.kind in ("answer", "skip") and e.id not in self._undone), None)
            if target is None:
                return None
            self.log.close_open_questions(task)
            self.log.append(task, "undo", {"target": target.id})
            self.sync()
        self._schedule(task)
        return {"entry": target.id, "kind": target.kind, "decisions": target.n_decisions,
                "action": target.payload.get("action")}

    # ------------------------------------------------------------------ reading results
    def labels(self, task: str) -> pd.DataFrame:
        """Final label of every row: columns ``label`` (str, "" when none), ``confidence`` (float), ``source``.

        ``source`` is ``given`` (shown and answered), ``group`` (member of a named
        group, not shown), ``identity`` (from answered images of its identity),
        ``propagated`` or ``none``. Refits first if the answers changed since the last fit.
        """
        pred = self.prediction(task, fresh=True)
        with self._lock:
            st = self._state(task)
            n = st.n_samples
            classes = np.array(list(st.classes) + [""], dtype=object)
            label = np.full(n, -1, np.int64)
            conf = np.zeros(n, np.float32)
            source = np.full(n, "none", dtype=object)
            if pred is not None:
                reached = pred.proba.sum(axis=1) > 0
                label[reached] = pred.proba[reached].argmax(axis=1)
                conf[reached] = pred.proba[reached].max(axis=1)
                source[reached] = "propagated"
                source[pred.by_identity] = "identity"
            ans = st.labelled
            label[ans] = st.label[ans]
            conf[ans] = np.where(st.source[ans] == 1, 1.0, st.group_share[ans])
            for code, name in SOURCES.items():
                if code:
                    source[st.source == code] = name
            return pd.DataFrame({"label": classes[label], "confidence": conf.astype(np.float64), "source": source})

    def progress(self, task: str) -> dict:
        """Progress of ``task``: decisions, labelled share, estimated accuracy with interval, space.

        Returns
        -------
        dict
            ``decisions``, ``n_samples``, ``labelled`` (rows with an answer), ``labelled_share``,
            ``given`` (shown and answered), ``estimated_accuracy``, ``interval`` ([low, high], 95 %),
            ``estimate_method``, ``n_checked``, ``space``, ``space_reason``, ``propagation``,
            ``classes`` (class -> rows with that final label), ``pending`` (split sub-groups waiting),
            ``fit_version`` / ``version`` (the state the propagated figures come from / the current one).
            In ``background`` mode the figures come from the newest finished fit.
        """
        pred = self.prediction(task)
        with self._lock:
            st = self._state(task)
            est = estimate_accuracy(st, None if pred is None else pred.conf,
                                    prediction=None if pred is None else pred.pred,
                                    space=None if pred is None else pred.space,
                                    calibration=None if pred is None else self.calibration(task, pred.space))
            counts = {}
            if pred is not None:
                final = np.where(st.labelled, st.label, pred.pred)
                counts = {st.classes[int(c)]: int(v) for c, v in zip(*np.unique(final[final >= 0], return_counts=True))}
            return {"task": task, "decisions": int(st.n_decisions), "n_samples": int(st.n_samples),
                    "labelled": int(st.labelled.sum()), "labelled_share": float(st.labelled.mean()),
                    "given": int((st.source == 1).sum()),
                    "estimated_accuracy": est["estimate"], "interval": [est["low"], est["high"]],
                    "unchecked_classes": [st.classes[c] for c in est.get("unchecked", []) if c >= 0],
                    "estimate_method": est["method"], "n_checked": est["n_checked"],
                    "space": self._space_key(st), "space_reason": st.space_reason or
                    f"{self._space_key(st)}: the study's recommended space (no choice made from answers yet)",
                    "propagation": None if pred is None else pred.description,
                    "classes": counts, "pending": len(st.pending),
                    "fit_version": None if pred is None else pred.version, "version": st.version}

    def decisions(self, task: str | None = None) -> pd.DataFrame:
        """The decisions log as a table: ``id, ts, task, kind, n_decisions, undone, payload`` (JSON text)."""
        import json

        rows = []
        for e in self.log.since(0):
            if task is None or e.task == task:
                rows.append({"id": e.id, "ts": e.ts, "task": e.task, "kind": e.kind, "n_decisions": e.n_decisions,
                             "undone": e.id in self._undone, "payload": json.dumps(e.payload, separators=(",", ":"))})
        return pd.DataFrame(rows, columns=["id", "ts", "task", "kind", "n_decisions", "undone", "payload"])

    @property
    def paths(self) -> list[str]:
        """Image path of every row."""
        return self.results.paths

    def __repr__(self) -> str:
        return f"Session({str(self.results.root)!r}, db={self.db_path!r}, tasks={sorted(self._tasks)})"

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False

