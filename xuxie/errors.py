"""User-facing errors.

Anything the user can fix (a bad path, a bad option value, a damaged model directory) raises
:class:`XuxieError` with one line saying what is wrong and what to do. The CLI prints that line
and exits with code 2; the Python API lets it propagate (it is a ``ValueError``).
"""

from __future__ import annotations


class XuxieError(ValueError):
    """A problem with the user's input, explained in one line."""

    exit_code = 2
