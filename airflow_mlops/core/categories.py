"""One text label per category value, the same at training, scoring and drift.

A column of integer categories (``term``: 36, 60) becomes float64 as soon as one value is missing, and then
prints ``36.0``: a model trained on such a window would learn ``'36.0'`` while live integers read ``'36'``, an
unknown category; the drift check would see two categories where there is one. So a number with an integral value
is labelled as the integer (``36.0`` -> ``'36'``), a boolean as ``'True'``/``'False'``, anything else as ``str``.
"""

from __future__ import annotations

import math
from typing import Any


def category_label(value: Any) -> str:
    if isinstance(value, bool) or type(value).__name__ == "bool_":
        return "True" if value else "False"
    if isinstance(value, float) or type(value).__name__.startswith("float"):
        number = float(value)
        if math.isfinite(number) and number.is_integer():
            return str(int(number))
        return str(number)
    if hasattr(value, "item") and not isinstance(value, (str, bytes)):
        return category_label(value.item())  # numpy scalars
    return str(value)


def category_labels(series):
    """``series`` as object labels (missing stays ``NaN``), computed once per distinct value."""
    import numpy as np
    import pandas as pd

    if series.dtype == object and pd.api.types.infer_dtype(series, skipna=True) in ("string", "empty"):
        return series.where(series.notna(), np.nan)  # text already: nothing to relabel (ids, mostly)
    codes, uniques = pd.factorize(series)
    labels = np.array([category_label(value) for value in uniques] + [np.nan], dtype=object)
    return pd.Series(labels[codes], index=series.index, dtype=object)
