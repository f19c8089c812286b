"""The ``alibi`` drift backend: per-feature p-values from alibi-detect (extra ``alibi``).

Features go through alibi-detect's ``TabularDrift`` (KS for numeric columns, chi-square for categorical ones,
which it wants as integer codes: we encode the union of both samples' categories), or ``KSDrift`` /
``ChiSquareDrift`` when a group is all numeric / all categorical. A detector works on one matrix and cannot drop
missing values per column, so features are grouped by their number of non-missing values: without missing
values that is one detector for all; a feature with missing values gets a detector of its own.
Only the p-values and statistics come from alibi-detect; effect sizes, the null-rate signal, the correction
and the decision are the shared code in :mod:`airflow_mlops.core.drift`, so both backends give one report shape.
"""

from __future__ import annotations

import numpy as np

from airflow_mlops.core.drift_types import CATEGORICAL, Samples


def _encode(ref: np.ndarray, cur: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    import pandas as pd

    codes, _ = pd.factorize(np.concatenate([ref, cur]), sort=True)
    codes = codes.astype(np.float64)
    return codes[:ref.size], codes[ref.size:]


def _detector(columns: list[tuple[str, np.ndarray, np.ndarray]]) -> tuple[np.ndarray, np.ndarray]:
    """(statistics, p-values) from the alibi-detect detector that fits the columns: ``KSDrift`` when all are
    numeric, ``ChiSquareDrift`` when all are categorical, ``TabularDrift`` for a mix."""
    import os

    # alibi-detect imports transformers, which prints an advisory about missing PyTorch/TensorFlow on every
    # import; tabular tests need neither, and the line would land in our CLI's stderr.
    os.environ.setdefault("TRANSFORMERS_NO_ADVISORY_WARNINGS", "1")
    from alibi_detect.cd import ChiSquareDrift, KSDrift, TabularDrift

    x_ref = np.column_stack([ref for _, ref, _ in columns])
    x_cur = np.column_stack([cur for _, _, cur in columns])
    categorical = {index for index, (kind, _, _) in enumerate(columns) if kind == CATEGORICAL}
    if not categorical:
        detector = KSDrift(x_ref, p_val=0.05)
    elif len(categorical) == len(columns):
        detector = ChiSquareDrift(x_ref, p_val=0.05)
    else:
        detector = TabularDrift(x_ref, p_val=0.05, categories_per_feature={index: None for index in categorical})
    data = detector.predict(x_cur, drift_type="feature", return_p_val=True, return_distance=True)["data"]
    return np.asarray(data["distance"], dtype=np.float64), np.asarray(data["p_val"], dtype=np.float64)


def _prepared(kind: str, ref: np.ndarray, cur: np.ndarray) -> tuple[str, np.ndarray, np.ndarray]:
    if kind == CATEGORICAL:
        return (kind, *_encode(ref, cur))
    return kind, ref.astype(np.float64), cur.astype(np.float64)


def alibi_tests(samples: Samples) -> dict[str, tuple[float, float]]:
    import warnings

    results: dict[str, tuple[float, float]] = {}
    # Equal lengths on both sides means no value was dropped as missing: one matrix for all of them.
    lengths = {}
    for name, (_, ref, cur) in samples.items():
        lengths.setdefault((ref.size, cur.size), []).append(name)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # alibi-detect warns about every feature it assumes numeric
        for names in lengths.values():
            columns = [_prepared(*samples[name]) for name in names]
            statistics, p_values = _detector(columns)
            results.update({name: (float(s), float(p)) for name, s, p in zip(names, statistics, p_values, strict=True)})
    return results
