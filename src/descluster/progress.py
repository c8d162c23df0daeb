"""Progress display: stage lines with wall time, and progress bars that suit terminals and logs.

:func:`stage` reports when each pipeline stage starts and ends, with row counts,
to standard error via the ``descluster`` logger. :func:`progress_bar` is the one
way long loops (image scans, neighbour searches, extraction) show progress: a
tqdm bar on a terminal; when standard error is not a terminal (a log file, CI,
``2> run.log``) the same bar in tqdm's non-terminal mode, writing a plain log line
only every :data:`LOG_INTERVAL_S` seconds (none for a loop shorter than that),
instead of one ``\\r``-line per update. :class:`WorkerProgress` feeds one such bar
from worker processes (the k sweeps), so a long sweep shows its k and elapsed time.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
import time
from contextlib import contextmanager
from typing import Iterable, Iterator

log = logging.getLogger("descluster")

#: Seconds between two progress lines when standard error is not a terminal.
LOG_INTERVAL_S = 30.0


def configure_logging(verbose: bool = True) -> None:
    """Send ``descluster`` log records to stderr as ``[descluster] message`` lines."""
    if log.handlers:
        return
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("[descluster] %(message)s"))
    log.addHandler(handler)
    log.setLevel(logging.INFO if verbose else logging.WARNING)


@contextmanager
def stage(name: str, rows: int | None = None) -> Iterator[None]:
    """Log the start and the end of a stage with its duration (s) and rows/s.

    Parameters
    ----------
    name : str
        Stage name as shown to the user.
    rows : int, optional
        Rows processed, for the throughput.
    """
    what = f"{name} ({rows:,} rows)" if rows else name
    log.info("%s ...", what)
    t0 = time.perf_counter()
    yield
    dt = time.perf_counter() - t0
    rate = f", {rows / dt:,.0f} rows/s" if rows and dt > 0 else ""
    log.info("%s done in %.1f s%s", what, dt, rate)


def stderr_is_terminal() -> bool:
    """Whether standard error is an interactive terminal (False for files, pipes and closed streams)."""
    try:
        return bool(sys.stderr.isatty())
    except (AttributeError, ValueError):
        return False


class _LogLines:
    """A file-like target for tqdm that turns each refresh into one ``descluster`` log record."""

    def __init__(self) -> None:
        self._last = ""

    def write(self, text: str) -> None:
        line = text.strip("\r\n ")
        if line and line != self._last:  # tqdm repeats the final state when it closes
            self._last = line
            log.info(line)

    def flush(self) -> None:
        pass


def progress_bar(iterable: Iterable | None = None, *, total: int | None = None, desc: str = "", unit: str = "it",
                 initial: int = 0, leave: bool = True, disable: bool = False):
    """A tqdm progress bar that does not flood a log.

    On a terminal this is ``tqdm.auto.tqdm``. Otherwise it is tqdm in non-terminal
    mode: the status goes to the ``descluster`` logger as a plain line
    (``image quality: 1,200/4,800 (25%), 00:31 elapsed, 00:93 left``) at most every
    :data:`LOG_INTERVAL_S` seconds, first after that delay, and a last line when the
    loop ends; a loop shorter than the interval writes nothing (its stage line says
    how long it took).

    Parameters
    ----------
    iterable : iterable, optional
        Wrapped as by ``tqdm(iterable)``.
    total : int, optional
        Expected number of updates.
    desc, unit : str
        Label and unit of the count.
    initial : int, default 0
        Starting count (e.g. work already done by an interrupted run).
    leave : bool, default True
        Keep the finished bar on the terminal.
    disable : bool, default False
        Show nothing.

    Returns
    -------
    tqdm.tqdm
        Use as the iterable, or call ``update``/``set_postfix_str``/``close``.
    """
    if disable or stderr_is_terminal():
        from tqdm.auto import tqdm

        return tqdm(iterable, total=total, desc=desc, unit=unit, initial=initial, leave=leave, disable=disable,
                    dynamic_ncols=True)
    from tqdm import tqdm

    where = "{n_fmt}/{total_fmt} ({percentage:.0f}%), {elapsed} elapsed, {remaining} left" if total \
        else "{n_fmt} {unit}, {elapsed} elapsed"
    return tqdm(iterable, total=total, desc=desc, unit=unit, initial=initial, leave=True, file=_LogLines(),
                mininterval=LOG_INTERVAL_S, maxinterval=LOG_INTERVAL_S, delay=LOG_INTERVAL_S, ascii=True,
                bar_format="{desc}: " + where + "{postfix}")


class WorkerProgress:
    """One progress bar in this process, fed by worker processes through an append-only file.

    Workers receive :attr:`queue` (the path of a temporary file, which pickles to
    joblib/loky workers as a string) and call :func:`report_progress` with it; each
    report is one short line appended with ``O_APPEND`` (atomic for lines this
    short), and a thread here reads new lines twice a second onto the bar (count and
    a postfix text such as the current k and the sweep's elapsed time). No process or
    pipe is started, so nothing depends on how the caller's main module is guarded.
    Lines logged inside the ``with`` block are printed above a terminal bar instead
    of through it.

    Parameters
    ----------
    total : int
        Expected number of reported steps (e.g. k values over all sweeps).
    desc, unit : str
        Label and unit of the bar.
    disable : bool, default False
        No bar and no file (:attr:`queue` is None).

    Attributes
    ----------
    queue : str or None
        Path that workers report to.
    bar : tqdm.tqdm or None
    """

    #: Seconds between two reads of the progress file.
    POLL_S = 0.5

    def __init__(self, total: int, desc: str, unit: str = "it", disable: bool = False):
        self.total, self.desc, self.unit, self.disable = total, desc, unit, disable
        self.queue: str | None = None
        self.bar = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._redirect = None
        self._offset = 0

    def __enter__(self) -> "WorkerProgress":
        if self.disable:
            return self
        import tempfile

        fd, self.queue = tempfile.mkstemp(prefix="descluster-progress-", suffix=".txt")
        os.close(fd)
        self.bar = progress_bar(total=self.total, desc=self.desc, unit=self.unit)
        if stderr_is_terminal():
            from tqdm.contrib.logging import logging_redirect_tqdm

            self._redirect = logging_redirect_tqdm(loggers=[log])
            self._redirect.__enter__()
        self._thread = threading.Thread(target=self._poll, name="descluster-progress", daemon=True)
        self._thread.start()
        return self

    def _read(self) -> None:
        try:
            with open(self.queue, "rb") as fh:
                fh.seek(self._offset)
                data = fh.read()
        except OSError:
            return
        end = data.rfind(b"\n") + 1  # complete lines only; a line being written is read next time
        self._offset += end
        for line in data[:end].decode("utf-8", "replace").splitlines():
            steps, _, text = line.partition("\t")
            if text:
                self.bar.set_postfix_str(text, refresh=False)
            self.bar.update(int(steps) if steps.isdigit() else 0)

    def _poll(self) -> None:
        while not self._stop.wait(self.POLL_S):
            self._read()

    def __exit__(self, *exc) -> None:
        if self.disable:
            return
        self._stop.set()
        self._thread.join(timeout=10)
        self._read()
        self.bar.close()
        if self._redirect is not None:
            self._redirect.__exit__(None, None, None)
        try:
            os.remove(self.queue)
        except OSError:
            pass


def report_progress(queue: str | None, steps: int, text: str = "") -> None:
    """Report ``steps`` done (and a status text) to a :class:`WorkerProgress`; no-op if ``queue`` is None.

    Parameters
    ----------
    queue : str or None
        :attr:`WorkerProgress.queue` (a file path).
    steps : int, >= 0
    text : str
        Shown after the count (tabs and newlines are replaced by spaces).
    """
    if queue is None:
        return
    line = f"{int(steps)}\t{' '.join(str(text).split())}\n".encode("utf-8")
    try:
        fd = os.open(queue, os.O_WRONLY | os.O_APPEND)
        try:
            os.write(fd, line)
        finally:
            os.close(fd)
    except OSError:  # the parent's bar is gone: progress is not worth a failure
        pass
