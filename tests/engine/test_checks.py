"""Checks of the settings a user gives: whole numbers and numbers within bounds, and the Bound
of a setting, checked the same way from the Python API and the command line."""

import math
import re
from dataclasses import dataclass, fields

import numpy as np
import pytest

from napari_unet.engine.checks import (
    Bound,
    bound,
    check_fields,
    field_bound,
    is_whole,
    number,
    whole_number,
)
from napari_unet.engine.errors import UNetError


def refused(message: str):
    return pytest.raises(UNetError, match=re.escape(message))


def test_whole_numbers_are_integers_of_any_kind_but_not_bools():
    assert is_whole(3) and is_whole(-2) and is_whole(np.int64(3)) and is_whole(np.uint8(0))
    for value in (True, False, 3.0, np.float32(3), "3", None, [3]):
        assert not is_whole(value), value


def test_a_whole_number_is_a_plain_int_within_its_bounds():
    assert whole_number("depth", 1) == 1
    assert type(whole_number("depth", np.int16(5), 1, 5)) is int
    assert whole_number("seed", 2**70, 0) == 2**70  # no upper bound
    with refused("the depth must be a whole number from 1 to 5, not 6"):
        whole_number("depth", 6, 1, 5)
    with refused("the width must be a whole number of at least 1, not 0"):
        whole_number("width", 0)
    with refused("the width must be a whole number of at least 1, not 2.0"):
        whole_number("width", 2.0)


def test_a_number_is_a_finite_float_within_its_bounds():
    assert number("sigma", 2, 0) == 2.0 and type(number("sigma", 2, 0)) is float
    assert number("fraction", 0, 0, 1) == 0.0 and number("fraction", 1, 0, 1) == 1.0
    with refused("the rate must be a number above 0, not 0"):
        number("rate", 0, 0, above=True)
    with refused("the fraction must be a number from 0 to 1, not 1.5"):
        number("fraction", 1.5, 0, 1)
    for value in (math.nan, math.inf, -math.inf, True, "1", None, 10**400):
        with pytest.raises(UNetError, match="the x must be a number from 0"):
            number("x", value, 0)


def test_an_int_bound_takes_whole_numbers_in_its_range_that_are_multiples():
    patch = Bound("patch size", int, 16, 4096, multiple=16)
    assert patch.check(64) == 64 and type(patch.check(np.int32(64))) is int
    with refused("the patch size must be a multiple of 16, not 50"):
        patch.check(50)
    with refused("the patch size must be a whole number from 16 to 4096, not 8"):
        patch.check(8)
    with refused("the patch size must be a whole number from 16 to 4096, not 4112"):
        patch.check(4112)
    with refused("the patch size must be a whole number from 16 to 4096, not 64.0"):
        patch.check(64.0)
    with refused("the patch size must be a whole number from 16 to 4096, not None"):
        patch.check(None)
    assert Bound("seed").check(0) == 0  # by default: a whole number of at least 0
    with refused("the seed must be a whole number of at least 0, not -1"):
        Bound("seed").check(-1)


def test_a_float_bound_takes_finite_numbers_above_or_from_its_low_end():
    rate = Bound("learning rate", float, 0, 1, above=True)
    assert rate.check(1) == 1.0 and type(rate.check(1)) is float
    assert rate.check(1e-9) == 1e-9
    with refused("the learning rate must be a number above 0 to 1, not 0"):
        rate.check(0)
    with refused("the learning rate must be a number above 0 to 1, not 2"):
        rate.check(2)
    limit = Bound("time limit", float, 0, above=True)  # no upper bound
    assert limit.check(1e9) == 1e9
    with refused("the time limit must be a number above 0, not inf"):
        limit.check(math.inf)
    weight = Bound("w0", float, 0)
    assert weight.check(0) == 0.0
    with refused("the w0 must be a number from 0, not nan"):
        weight.check(math.nan)


def test_an_optional_setting_may_be_none_and_others_may_not():
    axis = Bound("channel axis", int, -4, 3, optional=True)
    assert axis.check(None) is None and axis.check(-4) == -4 and axis.check(3) == 3
    with refused("the channel axis must be a whole number from -4 to 3, not 4"):
        axis.check(4)
    assert Bound("report interval", float, 0, 60, optional=True).check(None) is None
    with refused("the number of steps must be a whole number of at least 1, not None"):
        Bound("number of steps", int, 1).check(None)


def test_command_line_text_is_read_as_the_kind_of_the_bound_then_checked():
    steps = Bound("number of steps", int, 1)
    sigma = Bound("sigma", float, 0, above=True)
    assert steps.parse("20") == 20 and type(steps.parse("20")) is int
    assert sigma.parse("2.5") == 2.5 and sigma.parse("1e-3") == 0.001
    with refused("the number of steps must be a whole number of at least 1, not '2.5'"):
        steps.parse("2.5")
    with refused("the number of steps must be a whole number of at least 1, not 0"):
        steps.parse("0")
    with refused("the sigma must be a number above 0, not 'x'"):
        sigma.parse("x")
    with refused("the sigma must be a number above 0, not nan"):
        sigma.parse("nan")
    with refused("the patch size must be a multiple of 16, not 40"):
        Bound("patch size", int, 16, multiple=16).parse("40")


@dataclass
class Settings:
    steps: int | None = bound(100, Bound("number of steps", int, 1, optional=True))
    rate: float = bound(1e-3, Bound("learning rate", float, 0, 1, above=True), help="step size")
    name: str = "anything"


def test_the_bounded_fields_of_a_settings_class_are_checked_and_found():
    check_fields(Settings())
    check_fields(Settings(steps=None, name=None))
    with refused("the number of steps must be a whole number of at least 1, not 0"):
        check_fields(Settings(steps=0))
    with refused("the learning rate must be a number above 0 to 1, not 2.0"):
        check_fields(Settings(rate=2.0))
    assert field_bound(Settings, "rate") == Bound("learning rate", float, 0, 1, above=True)
    assert [f.metadata.get("help") for f in fields(Settings)] == [None, "step size", None]
    assert Settings().steps == 100 and Settings().rate == 1e-3
