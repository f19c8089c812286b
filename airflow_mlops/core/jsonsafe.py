"""Strict JSON for reports: NaN and infinities become null, numpy scalars plain numbers, unknown objects text.

``json.dumps`` writes ``NaN``/``Infinity`` by default, which is not JSON: browsers, ``jq`` and Postgres' ``json``
type reject it. Every report we store goes through :func:`strict_json`.
"""

from __future__ import annotations

import json
import math
from typing import Any


def json_safe(value: Any) -> Any:
    """A copy of ``value`` made of dicts, lists, str, int, finite float, bool and None only."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, (str, int, bool)) or value is None:
        return value
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [json_safe(v) for v in value]
    if hasattr(value, "item") and not isinstance(value, (bytes, bytearray)):
        try:
            return json_safe(value.item())  # numpy scalar
        except (ValueError, AttributeError, TypeError):
            pass
    if hasattr(value, "tolist"):
        return json_safe(value.tolist())  # numpy array
    if hasattr(value, "isoformat"):
        return value.isoformat()
    return str(value)


def strict_json(value: Any, **kwargs: Any) -> str:
    """``json.dumps`` of :func:`json_safe` with ``allow_nan=False`` (a NaN that slipped through raises)."""
    return json.dumps(json_safe(value), allow_nan=False, **kwargs)
