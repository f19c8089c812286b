"""Durations written as ``180d``, ``12h``, ``2w`` in model configs."""

from __future__ import annotations

import re
from datetime import timedelta

_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}
_PATTERN = re.compile(r"^\s*([0-9]+)\s*([smhdw])\s*\Z")  # ASCII digits: "٦٠d" is not a duration
MAX_DURATION = timedelta(days=100 * 366)  # beyond any window or timeout a config means


def parse_duration(value: str | int | timedelta) -> timedelta:
    """Turn ``"30d"`` into ``timedelta(days=30)``; a bare integer counts days. Negative, absurdly long or
    malformed values raise ``ValueError`` with the value as written."""
    if isinstance(value, timedelta):
        parsed = value
    elif isinstance(value, bool) or not isinstance(value, (int, str)):
        raise ValueError(f"expected a duration such as '30d', got {value!r}")
    elif isinstance(value, int):
        if value < 0:
            raise ValueError(f"a duration cannot be negative, got {value!r}")
        parsed = _build(value, "d", value)
    else:
        match = _PATTERN.match(value)
        if not match:
            raise ValueError(f"expected a duration such as '30d', '12h' or '2w', got {value!r}")
        parsed = _build(int(match.group(1)), match.group(2), value)
    if parsed < timedelta(0):
        raise ValueError(f"a duration cannot be negative, got {value!r}")
    if parsed > MAX_DURATION:
        raise ValueError(f"{value!r} is longer than 100 years")
    return parsed


def _build(amount: int, unit: str, written) -> timedelta:
    try:
        return timedelta(**{_UNITS[unit]: amount})
    except OverflowError:
        raise ValueError(f"{written!r} is longer than 100 years") from None


def positive_duration(value: str | int | timedelta) -> timedelta:
    parsed = parse_duration(value)
    if parsed <= timedelta(0):
        raise ValueError(f"must be longer than zero, got {value!r}")
    return parsed


def format_duration(value: timedelta) -> str:
    seconds = int(value.total_seconds())
    for suffix, size in (("w", 604800), ("d", 86400), ("h", 3600), ("m", 60)):
        if seconds and seconds % size == 0:
            return f"{seconds // size}{suffix}"
    return f"{seconds}s"
