"""Load a descriptor matrix from a pickle without running code from the file.

A pickle is a small program: loading one may call any importable function
(``os.system``, ``subprocess.Popen``, ...), so ``pickle.load`` on a file from
elsewhere is remote code execution (see the warning at the top of the Python
``pickle`` documentation). :func:`load_array` therefore uses a restricted
:class:`pickle.Unpickler` whose ``find_class`` admits only the few globals that
a NumPy ``ndarray`` pickle needs, as written by NumPy 1.x (``numpy.core...``)
and NumPy 2.x (``numpy._core...``), under every pickle protocol (2–5). Any
other global is refused with :class:`~descluster.errors.UnsafePickleError`
*before* it is imported or called, so nothing from the file runs. This is the
approach the Python documentation recommends ("Restricting Globals") and the
one PyTorch's ``weights_only`` loader takes.

A plain list of lists of numbers needs no globals and is accepted as data.

``trust=True`` (the CLI's ``--trust-pickle``) falls back to plain ``pickle`` so
that files holding a pandas DataFrame or another array-like can be read; use
it only for files you made yourself.
"""

from __future__ import annotations

import numbers
import os
import pickle
from pathlib import Path
from typing import Any, Callable

import numpy as np

from ..errors import CaseError, UnsafePickleError

try:  # NumPy >= 2
    from numpy._core import multiarray as _multiarray
    from numpy._core import numeric as _numeric
except ImportError:  # pragma: no cover - NumPy 1.x
    from numpy.core import multiarray as _multiarray  # type: ignore[no-redef]
    from numpy.core import numeric as _numeric  # type: ignore[no-redef]

__all__ = ["ALLOWED_GLOBALS", "RestrictedUnpickler", "load_array"]

_LATIN1 = {"latin1", "latin-1", "latin_1", "iso-8859-1", "iso8859-1", "l1"}


def _latin1_encode(text: str, encoding: str = "utf-8", errors: str = "strict") -> bytes:
    """Stand-in for ``_codecs.encode`` that only does what NumPy pickles need.

    Protocol-2 pickles written by Python 3 store ``bytes`` as
    ``_codecs.encode(<str>, "latin1")``; any other codec is refused.
    """
    if not isinstance(text, str) or str(encoding).lower() not in _LATIN1:
        raise UnsafePickleError(
            f"_codecs.encode called with encoding {encoding!r}: only 'latin1' (bytes in protocol-2 pickles) is allowed"
        )
    return text.encode("latin1", errors)


def _allowed() -> dict[tuple[str, str], Any]:
    table: dict[tuple[str, str], Any] = {
        ("numpy", "ndarray"): np.ndarray,
        ("numpy", "dtype"): np.dtype,
        ("_codecs", "encode"): _latin1_encode,
    }
    for pkg in ("numpy.core", "numpy._core"):  # NumPy 1.x and 2.x module names
        table[(f"{pkg}.multiarray", "_reconstruct")] = _multiarray._reconstruct
        table[(f"{pkg}.multiarray", "scalar")] = _multiarray.scalar
        table[(f"{pkg}.numeric", "_frombuffer")] = _numeric._frombuffer  # protocol 5
    return table


#: ``(module, name) -> object`` admitted by :class:`RestrictedUnpickler`.
ALLOWED_GLOBALS: dict[tuple[str, str], Any] = _allowed()


class RestrictedUnpickler(pickle.Unpickler):
    """A :class:`pickle.Unpickler` that only admits NumPy-array globals.

    Parameters
    ----------
    file : binary file object
        Open for reading.
    source : str
        File name used in error messages.

    Raises
    ------
    UnsafePickleError
        From :meth:`find_class`, for any global not in :data:`ALLOWED_GLOBALS`
        (the message names ``module.name`` and the file). Nothing is imported.

    Notes
    -----
    Method: "Restricting Globals" in the Python ``pickle`` documentation.
    ``numpy.core.*`` names (NumPy 1.x) are mapped onto the current NumPy's
    objects, so NumPy-1 pickles load under NumPy 2 without the deprecated shim.
    """

    def __init__(self, file, source: str):
        super().__init__(file)
        self.source = source

    def find_class(self, module: str, name: str) -> Any:  # noqa: D401 - pickle API
        """Return the allowed object for ``module.name`` or raise ``UnsafePickleError``."""
        obj = ALLOWED_GLOBALS.get((module, name))
        if obj is not None:
            return obj
        if module.split(".", 1)[0] == "pandas":
            raise UnsafePickleError(
                f"{self.source}: the pickle holds a pandas object (asks for {module}.{name}), not a NumPy array; "
                "pandas pickles can run code when loaded, so they are refused unless you trust the file: "
                "rerun with --trust-pickle (only for files you made yourself), or save the matrix with numpy.save as .npy"
            )
        raise UnsafePickleError(
            f"{self.source}: the pickle asks for {module}.{name}, which is not needed for a NumPy array; "
            "refused without running it (use --trust-pickle only for files you made yourself)"
        )

    def persistent_load(self, pid: Any) -> Any:
        """Refuse persistent ids (a NumPy array pickle has none)."""
        raise UnsafePickleError(f"{self.source}: the pickle uses persistent id {pid!r}; refused")


def load_array(path: str | os.PathLike, trust: bool = False) -> np.ndarray:
    """Load a 2-D numeric matrix from a pickle file.

    Parameters
    ----------
    path : str or PathLike
        A pickle of a NumPy array (NumPy 1.x or 2.x, protocol 2–5) or of a list
        of equal-length lists of numbers.
    trust : bool, default False
        If True, use plain :func:`pickle.load` and accept anything
        :func:`numpy.asarray` turns into an array (e.g. a pandas DataFrame).
        Off by default because unpickling an untrusted file can run arbitrary
        code on this machine.

    Returns
    -------
    ndarray
        As stored (any numeric dtype; lists become float64). Shape and dtype
        are checked by :func:`descluster.io.descriptors.validate_matrix`, not here.

    Raises
    ------
    UnsafePickleError
        ``trust=False`` and the pickle asks for a global outside the
        NumPy-array allow-list (names ``module.name`` and the file).
    CaseError
        The file is not a readable pickle, holds something other than an array
        or a list of lists, or the lists are ragged (names the first ragged row
        and its length) or non-numeric.
    """
    path = Path(path)
    try:
        with open(path, "rb") as fh:
            if trust:
                obj = pickle.load(fh)  # noqa: S301 - explicit user opt-in (--trust-pickle)
            else:
                obj = RestrictedUnpickler(fh, str(path)).load()
    except UnsafePickleError:
        raise
    except FileNotFoundError as exc:
        raise CaseError(f"{path}: descriptor file not found") from exc
    except Exception as exc:  # truncated or corrupt stream, wrong format
        raise CaseError(f"{path}: cannot read pickle ({type(exc).__name__}: {exc})") from exc
    return _as_array(obj, path, trust)


def _as_array(obj: Any, path: Path, trust: bool) -> np.ndarray:
    if isinstance(obj, np.ndarray):
        return obj
    if isinstance(obj, (list, tuple)):
        return _rows_to_array(obj, path)
    if trust:
        try:
            return np.asarray(obj)
        except Exception as exc:
            raise CaseError(f"{path}: cannot turn the pickled {type(obj).__name__} into an array: {exc}") from exc
    raise CaseError(
        f"{path}: the pickle holds a {type(obj).__name__}, expected a NumPy array or a list of lists of numbers"
    )


def _rows_to_array(rows: list | tuple, path: Path) -> np.ndarray:
    """Check a list of lists for equal lengths and numeric entries; return float64 (n, d)."""
    if rows and all(isinstance(r, numbers.Real) for r in rows):
        return np.asarray(rows, dtype=np.float64)  # 1-D: rejected with its shape later
    width: int | None = None
    for i, row in enumerate(rows):
        if not isinstance(row, (list, tuple, np.ndarray)):
            raise CaseError(f"{path}: row {i} is a {type(row).__name__}, expected a list of numbers")
        if width is None:
            width = len(row)
        elif len(row) != width:
            raise CaseError(
                f"{path}: ragged rows: row {i} has {len(row)} values but row 0 has {width}; "
                "every row must have the same number of features"
            )
    try:
        return np.asarray(rows, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        bad: Callable[[Any], bool] = lambda v: not isinstance(v, numbers.Real)  # noqa: E731
        where = next(
            ((i, j, v) for i, row in enumerate(rows) for j, v in enumerate(row) if bad(v)),
            None,
        )
        detail = f"row {where[0]}, column {where[1]} is {where[2]!r}" if where else str(exc)
        raise CaseError(f"{path}: non-numeric value in the list of lists: {detail}") from exc
