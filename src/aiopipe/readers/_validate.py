"""Constructor argument checks shared by the readers."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__ = ["check_count", "check_storage_options"]


def check_count(name: str, value: object, *, minimum: int) -> int:
    """``value`` as an int of at least ``minimum``, or a ValueError saying what was given."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"{name} must be an int >= {minimum}, got {value!r}")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")
    return value


def check_storage_options(options: Mapping[str, Any] | None) -> Mapping[str, Any] | None:
    """A reader's ``storage_options=``, checked now (at build time) rather than at the first URL."""
    if options is None:
        return None
    from ..remote._options import check_storage_options as check

    return check(options)
