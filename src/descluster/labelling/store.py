"""The decisions log of a labelling session, in SQLite (``OUT/labels.sqlite``).

Every change to a session is one appended row of the ``decisions`` table
(``id``, UTC timestamp, task, kind, JSON payload, human decisions it counts);
nothing is ever updated or deleted there, so the state of every task is a
fold of the log in ``id`` order (:mod:`descluster.labelling.state`) and an
undo is itself a row (``kind = "undo"``, ``payload = {"target": id}``).
Issued but unanswered questions live in a separate ``questions`` table: they
are not state (a restarted session may ask them again), only what lets an
answer refer to a question by its id from another process or browser tab.

Durability: the database runs in write-ahead-log mode (``PRAGMA
journal_mode=WAL``) with ``synchronous=FULL``, and every append is its own
committed transaction, so a process killed with ``kill -9`` right after
:meth:`DecisionLog.append` returned loses nothing (SQLite documentation,
"Write-Ahead Logging", https://sqlite.org/wal.html, and "PRAGMA synchronous").
A second process sees new rows through :meth:`DecisionLog.since`.
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterator

from ..errors import LabellingError
from ..io.atomic import json_default

__all__ = ["DecisionLog", "LogEntry", "SCHEMA_VERSION"]

#: Version of the table layout, stored in ``meta``; a different one is refused.
SCHEMA_VERSION = 1

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS decisions (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    ts TEXT NOT NULL,
    task TEXT NOT NULL,
    kind TEXT NOT NULL,
    payload TEXT NOT NULL,
    n_decisions INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS decisions_task ON decisions (task, id);
CREATE TABLE IF NOT EXISTS questions (
    id TEXT PRIMARY KEY,
    task TEXT NOT NULL,
    ts TEXT NOT NULL,
    status TEXT NOT NULL,
    payload TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS questions_open ON questions (task, status);
"""


@dataclass(frozen=True)
class LogEntry:
    """One row of the decisions log.

    Attributes
    ----------
    id : int
        Position in the log (1, 2, ...), strictly increasing.
    ts : str
        UTC time of the append, ISO 8601 with microseconds.
    task : str
        Task the entry belongs to.
    kind : str
        ``add_task``, ``add_class``, ``answer``, ``skip``, ``space`` or ``undo``.
    payload : dict
        Kind-specific content (JSON).
    n_decisions : int
        Human decisions this entry counts (an answer: 1 + images marked).
    """

    id: int
    ts: str
    task: str
    kind: str
    payload: dict
    n_decisions: int


def _dumps(obj: Any) -> str:
    return json.dumps(obj, default=json_default, separators=(",", ":"), allow_nan=False)


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="microseconds")


class DecisionLog:
    """Append-only decisions log plus the open-questions table, in one SQLite file.

    Parameters
    ----------
    path : str or PathLike
        Database file (created with its folder), or ``":memory:"`` for a
        throw-away session (simulations, tests).
    fingerprint : dict, optional
        What the session labels (e.g. number of rows and the SHA-256 of the
        image paths). Stored on creation; on reopening a different value is an
        error, so a log is never applied to other images.

    Raises
    ------
    LabellingError
        If the file is not a descluster labelling database, has another schema
        version, or belongs to other images (names the file and both values).
    """

    def __init__(self, path: str | os.PathLike, fingerprint: dict | None = None):
        self.path = str(path)
        if self.path != ":memory:":
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.RLock()
        try:
            self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
            self._db.execute("PRAGMA busy_timeout = 10000")
            if self.path != ":memory:":
                self._db.execute("PRAGMA journal_mode = WAL")
            self._db.execute("PRAGMA synchronous = FULL")
            self._db.executescript(_SCHEMA)
        except sqlite3.DatabaseError as exc:
            raise LabellingError(f"{self.path} is not a readable SQLite labelling database: {exc}") from exc
        meta = dict(self._db.execute("SELECT key, value FROM meta").fetchall())
        if "schema" not in meta:
            with self._transaction():
                self._db.execute("INSERT OR IGNORE INTO meta VALUES ('schema', ?)", (str(SCHEMA_VERSION),))
                if fingerprint is not None:
                    self._db.execute("INSERT OR IGNORE INTO meta VALUES ('fingerprint', ?)", (_dumps(fingerprint),))
            meta = dict(self._db.execute("SELECT key, value FROM meta").fetchall())
        if meta.get("schema") != str(SCHEMA_VERSION):
            raise LabellingError(f"{self.path}: labelling database schema {meta.get('schema')!r}, "
                                 f"this descluster reads schema {SCHEMA_VERSION}")
        if fingerprint is not None and "fingerprint" in meta and json.loads(meta["fingerprint"]) != json.loads(_dumps(fingerprint)):
            raise LabellingError(f"{self.path} belongs to other images: stored {meta['fingerprint']}, "
                                 f"this results folder has {_dumps(fingerprint)}; move the file away to start a new session")

    # ------------------------------------------------------------------ plumbing
    def _transaction(self):
        db = self._db

        class _Tx:
            def __enter__(self_inner):
                db.execute("BEGIN IMMEDIATE")
                return db

            def __exit__(self_inner, exc_type, exc, tb):
                db.execute("ROLLBACK" if exc_type else "COMMIT")
                return False

        return _Tx()

    def close(self) -> None:
        """Close the connection (a WAL checkpoint happens on the last close)."""
        with self._lock:
            self._db.close()

    # ------------------------------------------------------------------ decisions
    def append(self, task: str, kind: str, payload: dict, n_decisions: int = 0,
               expect_last: int | None = None, question: tuple[str, str] | None = None) -> LogEntry:
        """Append one entry in its own committed transaction and return it.

        Parameters
        ----------
        task, kind : str
        payload : dict
            JSON-serialisable (NumPy scalars and arrays are converted).
        n_decisions : int
            Human decisions the entry counts.
        expect_last : int, optional
            The caller's last seen entry id: if another process appended since,
            nothing is written and :class:`LabellingError` is raised, so a stale
            view never silently overwrites newer answers.
        question : (str, str), optional
            ``(question id, new status)``: in the same transaction the question must
            still be ``open`` and gets the new status, so one question is answered once
            even from two processes or browser tabs.

        Raises
        ------
        LabellingError
            On ``expect_last`` mismatch (names both ids), or a question that is unknown
            or no longer open (names it and its status).
        """
        text = _dumps(payload)
        ts = _now()
        with self._lock, self._transaction() as db:
            if expect_last is not None:
                last = db.execute("SELECT COALESCE(MAX(id), 0) FROM decisions").fetchone()[0]
                if last != expect_last:
                    raise LabellingError(f"{self.path}: the session changed elsewhere (log at entry {last}, "
                                         f"this view at {expect_last}); reload and answer again")
            if question is not None:
                row = db.execute("SELECT status FROM questions WHERE id = ?", (question[0],)).fetchone()
                if row is None:
                    raise LabellingError(f"question {question[0]!r} is unknown to {self.path}")
                if row[0] != "open":
                    raise LabellingError(f"question {question[0]!r} is {row[0]} already (another tab or process "
                                         "answered it, or an undo replaced it); ask for the next question")
                db.execute("UPDATE questions SET status = ? WHERE id = ?", (question[1], question[0]))
            cur = db.execute("INSERT INTO decisions (ts, task, kind, payload, n_decisions) VALUES (?, ?, ?, ?, ?)",
                             (ts, task, kind, text, int(n_decisions)))
            entry_id = int(cur.lastrowid)
        return LogEntry(entry_id, ts, task, kind, json.loads(text), int(n_decisions))

    def since(self, after: int = 0) -> list[LogEntry]:
        """Entries with ``id > after``, in log order."""
        with self._lock:
            rows = self._db.execute("SELECT id, ts, task, kind, payload, n_decisions FROM decisions WHERE id > ? "
                                    "ORDER BY id", (int(after),)).fetchall()
        return [LogEntry(int(r[0]), r[1], r[2], r[3], json.loads(r[4]), int(r[5])) for r in rows]

    def entries(self) -> Iterator[LogEntry]:
        """Every entry in log order."""
        yield from self.since(0)

    def last_id(self) -> int:
        """Id of the newest entry (0 for an empty log)."""
        with self._lock:
            return int(self._db.execute("SELECT COALESCE(MAX(id), 0) FROM decisions").fetchone()[0])

    # ------------------------------------------------------------------ questions
    def put_question(self, question_id: str, task: str, payload: dict) -> None:
        """Store an issued question (status ``open``)."""
        with self._lock, self._transaction() as db:
            db.execute("INSERT OR REPLACE INTO questions (id, task, ts, status, payload) VALUES (?, ?, ?, 'open', ?)",
                       (question_id, task, _now(), _dumps(payload)))

    def get_question(self, question_id: str) -> tuple[str, dict] | None:
        """``(status, payload)`` of a stored question, or None."""
        with self._lock:
            row = self._db.execute("SELECT status, payload FROM questions WHERE id = ?", (question_id,)).fetchone()
        return None if row is None else (row[0], json.loads(row[1]))

    def open_question(self, task: str) -> dict | None:
        """Payload of the newest open question of ``task``, or None."""
        with self._lock:
            row = self._db.execute("SELECT payload FROM questions WHERE task = ? AND status = 'open' "
                                   "ORDER BY ts DESC LIMIT 1", (task,)).fetchone()
        return None if row is None else json.loads(row[0])

    def close_question(self, question_id: str, status: str) -> None:
        """Set a question's status (``answered``, ``skipped``, ``superseded``)."""
        with self._lock, self._transaction() as db:
            db.execute("UPDATE questions SET status = ? WHERE id = ?", (status, question_id))

    def close_open_questions(self, task: str, status: str = "superseded") -> None:
        """Close every open question of ``task`` (after an undo the queue is recomputed)."""
        with self._lock, self._transaction() as db:
            db.execute("UPDATE questions SET status = ? WHERE task = ? AND status = 'open'", (status, task))
