"""Bring raw rows to the types the config declares, and say which values could not be read.

Sources in the wild hold ``'n/a'`` in a numeric column, ``inf`` from a division, booleans or integers in a
column the config calls categorical. The snapshot a model trains on must be typed (Parquet refuses a column of
floats and strings), and a value that cannot be read must never quietly become a missing value that training
imputes. So:
* numeric features and the target become float64; a value present in the source that is not a finite number
  (text, ``inf``) marks its row *rejected*, with the column and the value in the reason;
* categorical features keep their values when the column holds one Python type (so expectations such as
  ``value_set: [36, 60]`` still see integers) and become text when types are mixed (``3`` and ``"A"``);
* a missing value stays missing (that is what ``expect_column_values_to_not_be_null`` is for).
Rejected rows are returned with a ``_mlops_reason`` column; the caller fails the run or quarantines them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from airflow_mlops.core.config import DataConfig

REASON_COLUMN = "_mlops_reason"
_EXAMPLES = 3


@dataclass
class Coerced:
    frame: Any                       # the typed rows that can be used
    rejected: Any                    # the rows that cannot, as read, with REASON_COLUMN
    problems: list[str] = field(default_factory=list)  # one line per column: what and how many
    counts: dict[str, int] = field(default_factory=dict)


def _examples(values) -> str:
    shown = list(dict.fromkeys(repr(v) for v in values))[:_EXAMPLES]
    return ", ".join(shown)


def _numeric(series):
    """(float64 values, mask of present values that are not finite numbers)."""
    import numpy as np
    import pandas as pd

    if pd.api.types.is_bool_dtype(series):
        return series.astype("float64"), pd.Series(False, index=series.index)
    if pd.api.types.is_datetime64_any_dtype(series) or pd.api.types.is_timedelta64_dtype(series):
        # a time is not a number (NaT would silently become -9.2e18): every present value is unreadable
        return pd.Series(np.nan, index=series.index), series.notna()
    try:
        converted = pd.to_numeric(series, errors="coerce")
    except (TypeError, ValueError, ArithmeticError):  # Decimal('sNaN') and other values that raise
        converted = pd.to_numeric(series.astype(str), errors="coerce")
    if converted.dtype == object:  # e.g. Decimal objects from a database
        converted = pd.to_numeric(converted.astype(str), errors="coerce")
    converted = converted.astype("float64")
    unreadable = series.notna() & converted.isna()
    infinite = pd.Series(np.isinf(converted.to_numpy()), index=series.index)
    return converted.where(~infinite, np.nan), unreadable | infinite


def _categorical(series):
    present = series.dropna()
    if series.dtype != object or present.map(type).nunique() <= 1:
        return series
    return series.astype(str).astype(object).where(series.notna(), None)


def coerce_to_config(frame, data: DataConfig) -> Coerced:
    """Typed rows + rejected rows (see the module docstring). ``frame`` is not modified."""
    import pandas as pd

    typed = frame.copy()
    reasons = pd.Series("", index=frame.index, dtype=object)
    problems, counts = [], {}
    numeric = [c for c in [*data.numeric, data.target] if c in frame.columns]
    for column in numeric:
        values, bad = _numeric(frame[column])
        typed[column] = values
        if bad.any():
            raw = frame.loc[bad, column]
            counts[column] = int(bad.sum())
            problems.append(f"{column}: {len(raw)} value(s) that are not finite numbers "
                            f"(e.g. {_examples(raw.tolist())})")
            reasons.loc[bad] = reasons.loc[bad] + column + " = " + raw.astype(str).str.slice(0, 40) + "; "
    for column in data.categorical:
        if column in frame.columns:
            typed[column] = _categorical(frame[column])
    bad_rows = reasons != ""
    rejected = frame.loc[bad_rows].assign(**{REASON_COLUMN: reasons[bad_rows].str.rstrip("; ")
                                             .radd("not a finite number: ")})
    return Coerced(typed.loc[~bad_rows], rejected, problems, counts)



def numeric_columns(frame, columns) -> tuple[Any, dict[str, int]]:
    """``frame`` with ``columns`` as float64 for a drift comparison: text that is not a number becomes missing
    and is counted per column (the report says so); infinities stay, they are a drift signal of their own."""
    import pandas as pd

    typed, counts = frame.copy(), {}
    for column in columns:
        if column not in frame.columns:
            continue
        raw = frame[column]
        if pd.api.types.is_bool_dtype(raw):
            typed[column] = raw.astype("float64")
            continue
        values = pd.to_numeric(raw, errors="coerce")
        if values.dtype == object:
            values = pd.to_numeric(values.astype(str), errors="coerce")
        values = values.astype("float64")
        unreadable = raw.notna() & values.isna()
        typed[column] = values
        if unreadable.any():
            counts[column] = int(unreadable.sum())
    return typed, counts
