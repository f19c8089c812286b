"""Checks that make training fail with a clear cause instead of a library's stack trace.

They run on the extracted window before any model is fitted. Expectation-based validation (Great
Expectations) is separate: that is about business rules; these are about whether training is possible.
"""

from __future__ import annotations

from airflow_mlops.core.config import DataConfig
from airflow_mlops.core.errors import DataProblem


__all__ = ["DataProblem", "check_training_frame", "target_problems"]


def missing_columns(columns, data: DataConfig) -> list[str]:
    wanted = [data.timestamp_column, data.entity_id, data.target, *data.features]
    present = set(columns)
    return [c for c in wanted if c not in present]


def check_columns(columns, data: DataConfig, source: str) -> None:
    missing = missing_columns(columns, data)
    if missing:
        raise DataProblem([f"{source} has no column(s) {missing} named in the config"])


def target_problems(frame, target: str) -> list[str]:
    import numpy as np
    import pandas as pd

    series = frame[target]
    if not (pd.api.types.is_numeric_dtype(series) or pd.api.types.is_bool_dtype(series)):
        return [f"target {target!r} has dtype {series.dtype}; expected 0/1 labels"]
    values = pd.to_numeric(series, errors="coerce").astype("float64").to_numpy()
    problems = []
    bad = int((~np.isfinite(values)).sum())
    if bad:
        problems.append(f"target {target!r} has {bad} NaN/inf value(s)")
    finite = values[np.isfinite(values)]
    labels = set(np.unique(finite).tolist())
    if labels - {0.0, 1.0}:
        shown = sorted(labels - {0.0, 1.0})[:5]
        problems.append(f"target {target!r} must be binary 0/1; found {shown}")
    elif len(labels) < 2:
        problems.append(f"target {target!r} has a single class {sorted(labels)}: a classifier cannot be trained")
    return problems


def feature_problems(frame, data: DataConfig) -> list[str]:
    import pandas as pd

    problems = []
    for column in data.features:
        series = frame[column]
        if series.isna().all():
            problems.append(f"feature {column!r} is entirely null")
            continue
        if series.nunique(dropna=True) < 2:
            problems.append(f"feature {column!r} is constant ({series.dropna().iloc[0]!r}): it carries no signal")
        if column in data.numeric and not (pd.api.types.is_numeric_dtype(series)
                                           or pd.api.types.is_bool_dtype(series)):
            converted = pd.to_numeric(series, errors="coerce")
            if converted.isna().sum() > series.isna().sum():
                problems.append(f"numeric feature {column!r} has dtype {series.dtype} with non-numeric values; "
                                "list it under 'categorical' or fix the source")
    return problems


def check_training_frame(frame, data: DataConfig, *, what: str = "training data") -> None:
    check_columns(frame.columns, data, what)
    if len(frame) == 0:
        raise DataProblem([f"{what} is empty: no rows in the window"])
    problems = target_problems(frame, data.target) + feature_problems(frame, data)
    if len(frame) < data.min_rows:
        problems.append(f"{what} has {len(frame)} rows, fewer than data.min_rows={data.min_rows}")
    if problems:
        raise DataProblem([f"{what}: {p}" for p in problems])
