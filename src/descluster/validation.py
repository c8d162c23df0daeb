"""Up-front parameter checks shared by every estimator: one message format everywhere.

Each check raises :class:`~descluster.errors.ParameterError` naming the parameter, the
value given and the valid range, and returns the value normalised to a Python type.
"""

from __future__ import annotations

import math
import numbers
from typing import Any

from .errors import ParameterError


def check_int(name: str, value: Any, low: int, high: float | None = None, allow_none: bool = False) -> int | None:
    """Return ``value`` as ``int`` if it is an integer in ``[low, high]`` (``high=None``: no bound).

    Raises
    ------
    ParameterError
        If ``value`` is not an integer (bools are refused) or is out of range.
    """
    if value is None and allow_none:
        return None
    top = math.inf if high is None else high
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or not (low <= value <= top):
        rng = f">= {low}" if top == math.inf else f"in [{low}, {high}]"
        raise ParameterError(f"{name}={value!r} is invalid: expected an integer {rng}" + (" or None" if allow_none else ""))
    return int(value)


def check_float(name: str, value: Any, low: float, high: float, low_open: bool = True) -> float:
    """Return ``value`` as ``float`` if it lies in ``(low, high]`` (or ``[low, high]``).

    Raises
    ------
    ParameterError
        If ``value`` is not a real number or is out of range.
    """
    ok = isinstance(value, numbers.Real) and not isinstance(value, bool)
    ok = ok and (value > low if low_open else value >= low) and value <= high
    if not ok:
        raise ParameterError(f"{name}={value!r} is out of range: must be in {'(' if low_open else '['}{low}, {high}]")
    return float(value)
