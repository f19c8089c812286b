"""Durations written as ``180d``, ``12h``, ``2w`` in model configs."""

from __future__ import annotations

import re
from datetime import timedelta

_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}
_PATTERN = re.compile(r"^\s*(\d+)\s*([smhdw])\s*$")


def parse_duration(value: str | int | timedelta) -> timedelta:
    """Turn ``"30d"`` into ``timedelta(days=30)``; a bare integer counts days."""
    if isinstance(value, timedelta):
        return value
    if isinstance(value, bool):
        raise ValueError(f"expected a duration such as '30d', got {value!r}")
    if isinstance(value, int):
        return timedelta(days=value)
    match = _PATTERN.match(str(value))
    if not match:
        raise ValueError(f"expected a duration such as '30d', '12h' or '2w', got {value!r}")
    amount, unit = int(match.group(1)), match.group(2)
    return timedelta(**{_UNITS[unit]: amount})


def format_duration(value: timedelta) -> str:
    seconds = int(value.total_seconds())
    for suffix, size in (("w", 604800), ("d", 86400), ("h", 3600), ("m", 60)):
        if seconds and seconds % size == 0:
            return f"{seconds // size}{suffix}"
    return f"{seconds}s"
