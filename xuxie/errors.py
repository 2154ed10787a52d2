"""User-facing errors and warnings, and the rule every number obeys.

Anything the user can fix (a bad path, a bad option value, a damaged model directory) raises
:class:`XuxieError` with one line saying what is wrong and what to do. The CLI prints that line
and exits with code 2; the Python API lets it propagate (it is a ``ValueError``).
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable, Mapping
from typing import Any


class XuxieError(ValueError):
    """A problem with the user's input, explained in one line."""

    exit_code = 2


class XuxieWarning(UserWarning):
    """Something the user should know that does not stop the work (the CLI prints one line)."""


SEED_RANGE = (0, 2**63 - 1)  # torch and numpy both take it, with room for the offsets added to seeds


def check_count(value: Any, what: str, noun: str = "whole number") -> int:
    """A count given in Python (samples, a length, an n-gram size): a whole number of at least 1,
    as an int. A bool is refused although Python counts it as one; numpy integers are accepted."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
        raise XuxieError(f"{what} must be a positive {noun}, got {value!r}")
    return int(value)


def check_numbers(values: Mapping[str, Any], flag: Callable[[str], str] = str) -> None:
    """The rules every number obeys, whichever command or call it came through: a float is finite
    (NaN would slip through every ``x > 0`` check, infinity would run forever or overflow), and a
    seed lies in :data:`SEED_RANGE`. ``flag`` turns a name into what the user typed (``--top-p``)."""
    for name, value in values.items():
        if isinstance(value, float) and not math.isfinite(value):
            raise XuxieError(f"{flag(name)} must be a finite number, got {value}")
        if name == "seed" and isinstance(value, int) and not SEED_RANGE[0] <= value <= SEED_RANGE[1]:
            raise XuxieError(f"{flag(name)} must be a whole number from {SEED_RANGE[0]} to {SEED_RANGE[1]}, got {value}")
