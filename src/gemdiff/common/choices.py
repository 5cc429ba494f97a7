"""Checking a mode switch once, where the object that uses it is built."""

from __future__ import annotations

from typing import get_args

from gemdiff.common.errors import GemdiffError


def check_choice(name: str, value: str, options: type) -> str:
    """Raise a clear error unless ``value`` is one of the ``Literal`` options."""
    valid = get_args(options)
    if value not in valid:
        raise GemdiffError(f"{name}={value!r} is not one of {', '.join(map(repr, valid))}")
    return value
