"""Checks of settings given by a user, each raising a UNetError that names the setting."""

import math
from dataclasses import dataclass, field, fields
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


@dataclass(frozen=True)
class Bound:
    """The range of one setting, checked the same way from the API and the command line.

    ``kind`` is int or float; ``low``..``high`` (``low`` excluded when ``above``); whole numbers
    may have to be a ``multiple`` of something; ``optional`` settings may be None (automatic).
    """

    what: str
    kind: type = int
    low: float = 0
    high: float | None = None
    above: bool = False
    multiple: int = 1
    optional: bool = False

    def check(self, value):
        """``value`` as the setting's type, or a UNetError naming the setting."""
        if value is None and self.optional:
            return None
        if self.kind is float:
            high = math.inf if self.high is None else self.high
            return number(self.what, value, self.low, high, self.above)
        value = whole_number(self.what, value, int(self.low), self.high)
        if value % self.multiple:
            raise UNetError(f"the {self.what} must be a multiple of {self.multiple}, not {value}")
        return value

    def parse(self, text: str):
        """A command-line value: ``text`` read as a number, then checked."""
        try:
            value = self.kind(text)
        except (TypeError, ValueError, OverflowError):
            value = text
        return self.check(value)


def bound(default, check: Bound, **metadata):
    """A dataclass field whose values ``check`` bounds (see :func:`check_fields`)."""
    return field(default=default, metadata={"bound": check, **metadata})


def check_fields(settings) -> None:
    """Check every field of a settings dataclass that has a :class:`Bound`."""
    for item in fields(settings):
        if "bound" in item.metadata:
            item.metadata["bound"].check(getattr(settings, item.name))


def field_bound(settings_class, name: str) -> Bound:
    """The Bound of field ``name`` of a settings dataclass."""
    return next(f for f in fields(settings_class) if f.name == name).metadata["bound"]
