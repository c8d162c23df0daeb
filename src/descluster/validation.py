"""Parameter checks shared by every estimator and by ``RunConfig``: one message format everywhere.

Two ways in, one implementation:

- functions :func:`check_int`, :func:`check_float`, :func:`check_choice`,
  :func:`check_names` and :func:`check_bool` for one value;
- declarative constraints (:class:`Int`, :class:`Real`, :class:`OneOf`,
  :class:`NamesOf`, :class:`Bool`, :class:`Optional`) checked together by
  :func:`validate_params`, which is what estimators call at the start of ``fit``
  (scikit-learn convention: ``__init__`` stores parameters unchanged) and what
  ``RunConfig`` sections call when built.

Each check raises :class:`~descluster.errors.ParameterError` naming the parameter,
the value given and the valid range or names, and returns the value normalised
to a plain Python type. Valid names can be given as a callable (e.g. the keys of
a registry), read when the check runs, so they are never copied.
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Mapping

from .errors import ParameterError

__all__ = ["MAX_SEED", "check_int", "check_float", "check_choice", "check_names", "check_bool", "Int", "Real", "OneOf",
           "NamesOf", "Bool", "Optional", "validate_params"]


#: Largest seed: NumPy's legacy ``RandomState`` and scikit-learn's ``random_state`` take seeds in [0, 2**32 - 1].
MAX_SEED = 2**32 - 1


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
    ok = isinstance(value, numbers.Real) and not isinstance(value, bool) and not math.isnan(value)
    ok = ok and (value > low if low_open else value >= low) and value <= high
    if not ok:
        raise ParameterError(f"{name}={value!r} is out of range: must be in {'(' if low_open else '['}{low}, {high}]")
    return float(value)


def _names(valid: Iterable[str] | Callable[[], Iterable[str]]) -> list[str]:
    return list(valid() if callable(valid) else valid)


def check_choice(name: str, value: Any, valid: Iterable[str] | Callable[[], Iterable[str]]) -> str:
    """Return ``value`` if it is one of ``valid`` (a collection, or a callable returning one).

    Raises
    ------
    ParameterError
        Naming the value and listing the valid names.
    """
    names = _names(valid)
    if not isinstance(value, str) or value not in names:
        raise ParameterError(f"{name}={value!r} is unknown; valid: {', '.join(names)}")
    return value


def check_names(name: str, values: Any, valid: Iterable[str] | Callable[[], Iterable[str]],
                allow_empty: bool = False) -> tuple[str, ...]:
    """Return ``values`` (a string of comma-separated names or a sequence) as a tuple of valid names.

    Raises
    ------
    ParameterError
        Unknown names (listed with the valid ones), or an empty list when not allowed.
    """
    if isinstance(values, str):
        values = [v.strip() for v in values.split(",") if v.strip()]
    try:
        values = tuple(values)
    except TypeError:
        raise ParameterError(f"{name}={values!r} is invalid: expected a list of names") from None
    names = _names(valid)
    bad = [v for v in values if v not in names]
    if bad or (not values and not allow_empty):
        raise ParameterError(f"{name}={list(values)!r}: unknown {bad}; valid: {', '.join(names)}")
    return values


def check_bool(name: str, value: Any) -> bool:
    """Return ``value`` if it is a bool (NumPy bools accepted).

    Raises
    ------
    ParameterError
        For anything else (``0``/``1`` and strings included).
    """
    if isinstance(value, bool) or type(value).__name__ == "bool_":
        return bool(value)
    raise ParameterError(f"{name}={value!r} is invalid: expected true or false")


# --------------------------------------------------------------------------- constraints


@dataclass(frozen=True)
class Int:
    """An integer in ``[low, high]`` (``high=None``: unbounded)."""

    low: int
    high: float | None = None

    def check(self, name: str, value: Any) -> int:
        """See :func:`check_int`."""
        return check_int(name, value, self.low, self.high)


@dataclass(frozen=True)
class Real:
    """A real number in ``(low, high]`` (``low_open=False``: ``[low, high]``)."""

    low: float
    high: float = math.inf
    low_open: bool = True

    def check(self, name: str, value: Any) -> float:
        """See :func:`check_float`."""
        return check_float(name, value, self.low, self.high, self.low_open)


@dataclass(frozen=True)
class OneOf:
    """One name of ``valid`` (a collection or a callable returning one, e.g. a registry's keys)."""

    valid: Any

    def check(self, name: str, value: Any) -> str:
        """See :func:`check_choice`."""
        return check_choice(name, value, self.valid)


@dataclass(frozen=True)
class NamesOf:
    """A tuple of names of ``valid``; empty only when ``allow_empty``."""

    valid: Any
    allow_empty: bool = False

    def check(self, name: str, value: Any) -> tuple[str, ...]:
        """See :func:`check_names`."""
        return check_names(name, value, self.valid, self.allow_empty)


@dataclass(frozen=True)
class Bool:
    """``True`` or ``False``."""

    def check(self, name: str, value: Any) -> bool:
        """See :func:`check_bool`."""
        return check_bool(name, value)


@dataclass(frozen=True)
class Optional:
    """``None``, or a value meeting ``inner``."""

    inner: Any

    def check(self, name: str, value: Any) -> Any:
        """``None`` unchanged, else ``inner.check``."""
        return None if value is None else self.inner.check(name, value)


def validate_params(params: Mapping[str, Any] | Any, constraints: Mapping[str, Any], owner: str = "") -> dict[str, Any]:
    """Check every parameter named in ``constraints``; return them normalised.

    Parameters
    ----------
    params : mapping or object
        Parameter values, by name (an object's attributes are read when it is not a mapping).
    constraints : mapping of str -> constraint
        :class:`Int`, :class:`Real`, :class:`OneOf`, :class:`NamesOf`, :class:`Bool` or
        :class:`Optional`; parameters not named here are not checked.
    owner : str
        Prefix of the names in messages (e.g. ``"KMeansAdapter."``).

    Returns
    -------
    dict of str -> value

    Raises
    ------
    ParameterError
        For the first parameter that fails its constraint (named with ``owner``).
    """
    get = params.get if isinstance(params, Mapping) else (lambda n: getattr(params, n))
    return {name: rule.check(f"{owner}{name}", get(name)) for name, rule in constraints.items()}
