"""Progress display for pipeline stages: one line per stage with wall time and throughput.

Long inner loops (k sweeps, image scans, neighbour searches) show their own
tqdm bars; this module reports when each stage starts and ends, with row counts,
to standard error via the ``descluster`` logger.
"""

from __future__ import annotations

import logging
import sys
import time
from contextlib import contextmanager
from typing import Iterator

log = logging.getLogger("descluster")


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
