"""The state of one labelling task: a fold of its entries in the decisions log.

:class:`TaskState` is built only by :meth:`TaskState.apply` on log entries in
order, so replaying the log of a task rebuilds exactly the state that the live
session held (tests check this). An undo entry removes its target from the
task's effective entries and the state is rebuilt from the rest.

What an answer does (``payload["action"]``):

``name``   every member of the question's group gets the name: shown members
           as ``given``, members not shown as ``group`` (a group label never
           replaces an earlier ``given`` label of an image it did not show); each
           image marked as not belonging gets the class given for it (``given``).
``junk``   the same with the reserved class :data:`JUNK` (an outlier class of its own).
``split``  the group's sub-groups (computed when the answer was given and stored
           in the payload; none when the policy splits no deeper) join the task's
           queue of pending groups, one level deeper than the group.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..errors import LabellingError
from .store import LogEntry

__all__ = ["TaskState", "JUNK", "SOURCES"]

#: Reserved class of groups marked as junk.
JUNK = "junk"

#: Label sources by code: 0 none (propagated or unlabelled), 1 shown and answered, 2 member of a named group not shown.
SOURCES = {0: "propagated", 1: "given", 2: "group"}


@dataclass
class TaskState:
    """Everything known about one task after the entries applied so far.

    Attributes
    ----------
    name : str
    n_samples : int
    classes : list of str
        In order of addition; a class's index never changes.
    identity : bool
        Spread labels to all images of an object identity (identity-invariant attribute).
    label : ndarray of shape (n_samples,), int32
        Class index from an answer, ``-1`` where none.
    source : ndarray of shape (n_samples,), int8
        :data:`SOURCES` code of ``label``.
    group_share : ndarray of shape (n_samples,), float32
        For ``group`` labels, the share of the group's shown images that had the name.
    released : ndarray of shape (n_samples,), bool
        Rows of a group split past the policy's ``split_depth``: sent back to review once.
    n_decisions : int
        Human decisions in the effective entries.
    pending : list of dict
        Sub-groups waiting to be asked: ``id`` (str), ``rows`` (list of int), ``parent`` (question id),
        ``depth`` (int, 1 for the parts of a group that was not itself a sub-group).
    asked_clusters : set of tuple (str, int)
        ``(space, cluster)`` already asked (or skipped).
    asked_identities : set of str
        Identities whose conflict question was answered or skipped.
    samples : list of dict
        Answered probability-sampled questions: ``rows``, ``pred``, ``conf``, ``correct``
        (lists per shown row), ``pi`` (inclusion probability of each row), ``stratum`` (class
        index), ``population`` (rows it was drawn from), ``entry`` (log id), ``decisions``
        (decisions made before it).
    open_samples : list of dict
        Sampled questions answered "split": recorded in ``samples`` once all their rows are answered.
    space : str or None
        Space chosen for the task (``space`` entries); None = the recommended one.
    space_reason : str
    space_labelled : int
        Labelled rows when the space was last chosen.
    entries : list of LogEntry
        Effective entries (undone ones removed), in order.
    version : int
        Id of the newest log entry that changed the task (an undo included), so it only
        grows: the cache key of propagated labels.
    """

    name: str
    n_samples: int
    classes: list = field(default_factory=list)
    identity: bool = False
    label: np.ndarray = None
    source: np.ndarray = None
    group_share: np.ndarray = None
    released: np.ndarray = None
    n_decisions: int = 0
    pending: list = field(default_factory=list)
    asked_clusters: set = field(default_factory=set)
    asked_identities: set = field(default_factory=set)
    samples: list = field(default_factory=list)
    open_samples: list = field(default_factory=list)
    space: str | None = None
    space_reason: str = ""
    space_labelled: int = 0
    entries: list = field(default_factory=list)
    version: int = 0

    def __post_init__(self):
        if self.label is None:
            self.label = np.full(self.n_samples, -1, np.int32)
        if self.source is None:
            self.source = np.zeros(self.n_samples, np.int8)
        if self.group_share is None:
            self.group_share = np.zeros(self.n_samples, np.float32)
        if self.released is None:
            self.released = np.zeros(self.n_samples, bool)

    # ------------------------------------------------------------------ queries
    def class_index(self, cls: str) -> int:
        """Index of class ``cls``.

        Raises
        ------
        LabellingError
            Unknown class (lists the task's classes).
        """
        try:
            return self.classes.index(cls)
        except ValueError:
            raise LabellingError(f"task {self.name!r} has no class {cls!r}; its classes are {self.classes} "
                                 "(add it with add_class)") from None

    @property
    def labelled(self) -> np.ndarray:
        """Boolean mask (n_samples,) of rows with a label from an answer."""
        return self.label >= 0

    def snapshot(self) -> dict:
        """Plain-data copy of the state (for equality checks and debugging)."""
        return {"name": self.name, "classes": list(self.classes), "identity": self.identity,
                "label": self.label.tolist(), "source": self.source.tolist(),
                "group_share": np.round(self.group_share, 6).tolist(), "released": self.released.tolist(),
                "n_decisions": self.n_decisions,
                "pending": [dict(g) for g in self.pending], "asked_clusters": sorted(self.asked_clusters),
                "asked_identities": sorted(self.asked_identities),
                "samples": [dict(s) for s in self.samples],
                "open_samples": [dict(s) for s in self.open_samples], "space": self.space, "space_reason": self.space_reason,
                "space_labelled": self.space_labelled, "entries": [e.id for e in self.entries]}

    # ------------------------------------------------------------------ folding
    def apply(self, entry: LogEntry) -> None:
        """Apply one effective log entry (``add_task``, ``add_class``, ``answer``, ``skip``, ``space``).

        Raises
        ------
        LabellingError
            Malformed payload (names the entry id).
        """
        p = entry.payload
        try:
            if entry.kind == "add_task":
                for c in p.get("classes", []):
                    if c not in self.classes:
                        self.classes.append(c)
                self.identity = bool(p.get("identity", False))
            elif entry.kind == "add_class":
                if p["class"] not in self.classes:
                    self.classes.append(p["class"])
            elif entry.kind == "answer":
                self._answer(entry)
            elif entry.kind == "skip":
                self._settle(p["question"], skipped=True)
            elif entry.kind == "space":
                self.space, self.space_reason = p["key"], p.get("reason", "")
                self.space_labelled = int(p.get("n_labelled", 0))
            else:
                raise LabellingError(f"unknown entry kind {entry.kind!r}")
        except (KeyError, TypeError, IndexError, ValueError) as exc:
            raise LabellingError(f"decisions log entry {entry.id} ({entry.kind}) of task {self.name!r} is malformed: "
                                 f"{type(exc).__name__}: {exc}") from exc
        self.n_decisions += int(entry.n_decisions)
        self.entries.append(entry)
        self.version = max(self.version + 1, int(entry.id))

    def _settle(self, q: dict, skipped: bool = False) -> None:
        """Bookkeeping common to every answer or skip of question ``q``."""
        meta = q.get("meta", {})
        if q["kind"] == "cluster":
            self.asked_clusters.add((meta["space"], int(meta["cluster"])))
        if q["kind"] == "identity":
            self.asked_identities.add(str(meta["identity"]))
        if q["kind"] == "subgroup":
            keep = [g for g in self.pending if g["id"] != meta["group"]]
            if skipped and len(keep) < len(self.pending):
                moved = [g for g in self.pending if g["id"] == meta["group"]]
                keep = keep + moved  # a skipped sub-group goes to the back of the queue
            self.pending = keep

    def _answer(self, entry: LogEntry) -> None:
        p = entry.payload
        q = p["question"]
        rows = np.asarray(q["rows"], dtype=np.int64)
        shown = np.asarray(q["shown"], dtype=np.int64)
        action = p["action"]
        decisions_before = self.n_decisions
        self._settle(q)
        sample = q.get("meta", {}).get("sample")
        if action == "split":
            depth = int(q.get("meta", {}).get("depth", 0)) + 1
            for i, sub in enumerate(p["subgroups"]):
                self.pending.append({"id": f"{q['id']}/{i}", "rows": [int(r) for r in sub], "parent": q["id"],
                                     "depth": depth})
            if not p["subgroups"]:
                self.released[rows] = True
            if sample is not None:  # its truth is known once every sub-group is answered
                self.open_samples.append({"rows": shown.tolist(), "sample": sample, "entry": entry.id,
                                          "decisions": decisions_before})
            return
        if action not in ("name", "junk"):
            raise ValueError(f"unknown action {action!r}")
        if action == "junk" and JUNK not in self.classes:
            self.classes.append(JUNK)
        cls = self.class_index(JUNK if action == "junk" else p["label"])
        marks = {int(r): self.class_index(c) for r, c in p.get("marks", [])}
        unshown = np.setdiff1d(rows, shown, assume_unique=False)
        unshown = unshown[self.source[unshown] != 1]
        share = 1.0 - len(marks) / max(len(shown), 1)
        self.label[unshown] = cls
        self.source[unshown] = 2
        self.group_share[unshown] = share
        self.label[shown] = cls
        self.source[shown] = 1
        self.group_share[shown] = 0.0
        for r, c in marks.items():
            self.label[r] = c
        if sample is not None:
            self._record_sample(shown, sample, entry.id, decisions_before)
        still = []
        for o in self.open_samples:
            r = np.asarray(o["rows"], dtype=np.int64)
            if (self.source[r] == 1).all():
                self._record_sample(r, o["sample"], o["entry"], o["decisions"])
            else:
                still.append(o)
        self.open_samples = still

    def _record_sample(self, rows: np.ndarray, sample: dict, entry_id: int, decisions: int) -> None:
        truth = self.label[rows]
        pred = np.asarray(sample["pred"], dtype=np.int64)
        pi = sample.get("pi") or [len(rows) / max(int(sample["population"]), 1)] * len(rows)
        self.samples.append({"rows": rows.tolist(), "pred": pred.tolist(), "conf": list(sample["conf"]),
                             "correct": (truth == pred).astype(int).tolist(), "pi": [float(v) for v in pi],
                             "stratum": int(sample["stratum"]), "population": int(sample["population"]),
                             "space": sample.get("space"), "entry": entry_id, "decisions": decisions})
