"""The machine facts that every benchmark result records, in one place.

Benchmarks on a shared 2-core machine are only comparable with the load, the CPU count and
the BLAS that ran beside them; faiss-cpu ships its own OpenBLAS, so faiss is imported before
the libraries are listed (threadpoolctl lists only what the process has loaded).

Usage (a benchmark script; its folder is on ``sys.path``)::

    from machine import machine_facts
    facts = machine_facts()          # at the start; add facts["load_avg_end"] at the end
"""

from __future__ import annotations

import os
import platform
import sys
from pathlib import Path


def machine_facts() -> dict:
    """CPU count, RAM, load average, BLAS/OpenMP libraries (threadpoolctl) and library versions.

    Returns
    -------
    dict
        ``python``, ``platform``, ``cpu_count`` (int), ``ram_gb`` (float), ``load_avg_start``
        (list of 3 floats, :func:`os.getloadavg`), ``numpy``, ``scipy``, ``sklearn``, ``faiss``
        (version strings; ``faiss`` is None where faiss-cpu is not installed), ``blas`` (list of
        dict, one per loaded BLAS/OpenMP library: :func:`descluster.preprocess.blas_info`) and
        ``OPENBLAS_NUM_THREADS`` (the environment value or None).
    """
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
    import numpy as np
    import psutil
    import scipy
    import sklearn

    from descluster.preprocess import blas_info

    try:
        import faiss
        faiss_version = faiss.__version__
    except ImportError:  # pragma: no cover - faiss-cpu is a declared dependency
        faiss_version = None
    return {"python": platform.python_version(), "platform": platform.platform(), "cpu_count": os.cpu_count(),
            "ram_gb": round(psutil.virtual_memory().total / 2**30, 1), "load_avg_start": list(os.getloadavg()),
            "numpy": np.__version__, "scipy": scipy.__version__, "sklearn": sklearn.__version__,
            "faiss": faiss_version, "blas": blas_info(),
            "OPENBLAS_NUM_THREADS": os.environ.get("OPENBLAS_NUM_THREADS")}
