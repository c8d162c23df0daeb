"""Worker processes that end when the process that started them dies.

joblib/loky and :class:`concurrent.futures.ProcessPoolExecutor` workers outlive a parent
killed with ``kill -9`` or by the out-of-memory killer: they are re-parented and keep
computing (and holding memory) for a run nobody waits for. :func:`exit_with_parent`,
called once at the start of a worker's task or in a pool initializer, starts a daemon
thread that polls the parent's process id and ends the worker when it changes.
"""

from __future__ import annotations

import os
import threading
import time

__all__ = ["exit_with_parent"]

_watching: set[int] = set()
_lock = threading.Lock()


def exit_with_parent(interval: float = 1.0) -> None:
    """End this process (``os._exit(1)``) soon after its parent process dies.

    Idempotent per process: later calls return at once. Meant for worker processes; in
    the main process it watches the shell, which is harmless.

    Parameters
    ----------
    interval : float
        Seconds between checks of ``os.getppid()``.
    """
    pid = os.getpid()
    with _lock:
        if pid in _watching:
            return
        _watching.add(pid)
    parent = os.getppid()

    def watch() -> None:
        while True:
            time.sleep(interval)
            if os.getppid() != parent:
                os._exit(1)

    threading.Thread(target=watch, name="descluster-exit-with-parent", daemon=True).start()
