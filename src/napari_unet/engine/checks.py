"""Checks of settings given by a user, each raising a UNetError that names the setting."""

import math
from numbers import Integral, Real

from .errors import UNetError


def is_whole(value) -> bool:
    """Whether ``value`` is an integer (Python or NumPy), not a bool."""
    return isinstance(value, Integral) and not isinstance(value, bool)


def whole_number(what: str, value, low: int = 1, high: int | None = None) -> int:
    """``value`` as an int in ``low..high`` (no upper bound when ``high`` is None)."""
    if is_whole(value) and low <= value and (high is None or value <= high):
        return int(value)
    bound = f"of at least {low}" if high is None else f"from {low} to {high}"
    raise UNetError(f"the {what} must be a whole number {bound}, not {value!r}")


def number(what: str, value, low: float, high: float = math.inf, above: bool = False) -> float:
    """``value`` as a finite float in ``low..high`` (``low`` excluded when ``above``)."""
    try:
        finite = isinstance(value, Real) and not isinstance(value, bool) and math.isfinite(value)
    except OverflowError:  # an int too large for a float
        finite = False
    if finite and (low < value if above else low <= value) and value <= high:
        return float(value)
    bound = f"above {low}" if above else f"from {low}"
    bound += "" if high == math.inf else f" to {high}"
    raise UNetError(f"the {what} must be a number {bound}, not {value!r}")
