"""Data drift between a reference sample and a current window (builtin backend: numpy + scipy).

Per feature, on the non-missing values:
* numeric: two-sample Kolmogorov-Smirnov test (asymptotic p-value, as alibi-detect computes it) and the
  Wasserstein-1 distance divided by the reference's standard deviation as effect size;
* categorical: chi-square test of the 2 x k contingency table over the union of categories (so a category
  never seen in the reference counts; Yates' correction when k = 2, as scipy and alibi-detect do) and the
  Jensen-Shannon distance (base 2, in [0, 1]) as effect size.
Missing values are their own signal: the null rates are compared with a 2 x 2 chi-square test and Cohen's h.

All p-values of one report form one family, corrected with Benjamini-Hochberg (or Bonferroni). A feature drifts
when a corrected p-value is below ``p_value`` AND its effect size reaches ``min_effect_size``: with 100k rows a
shift nobody cares about is still "significant". The data set drifts when the share of tested features that
drift reaches ``drift_share``. Too few rows gives ``insufficient_data``, never drift.

The statistics backend is pluggable (``backend="alibi"`` takes the per-feature p-values from alibi-detect);
everything else (effect sizes, nulls, correction, decision, charts) is shared, so both give the same report.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field
from typing import Any
from collections.abc import Callable, Sequence

import numpy as np

from airflow_mlops.core.drift_types import CATEGORICAL, DRIFT, INSUFFICIENT, NO_DRIFT, NUMERIC, Samples
from airflow_mlops.core.errors import DriftInputError

__all__ = ["CATEGORICAL", "DRIFT", "INSUFFICIENT", "NO_DRIFT", "NUMERIC", "DriftInputError", "DriftReport",
           "DriftSettings", "detect_drift"]

_CHART_BINS = 20
_CHART_CATEGORIES = 15


@dataclass(frozen=True)
class DriftSettings:
    """The knobs of a drift check (``drift:`` in the model config has the same names)."""

    p_value: float = 0.05
    correction: str = "bh"  # bh | bonferroni | none
    drift_share: float = 0.5
    min_effect_size: float = 0.1
    min_sample_size: int = 100
    backend: str = "builtin"  # builtin | alibi

    @classmethod
    def from_config(cls, drift_config) -> DriftSettings:
        return cls(**{name: getattr(drift_config, name) for name in cls.__dataclass_fields__})


@dataclass
class FeatureDrift:
    feature: str
    kind: str
    status: str = NO_DRIFT
    test: str = ""
    statistic: float | None = None
    p_value: float | None = None
    p_adjusted: float | None = None
    effect_metric: str = ""
    effect_size: float | None = None
    n_reference: int = 0
    n_current: int = 0
    null_rate_reference: float = 0.0
    null_rate_current: float = 0.0
    null_p_value: float | None = None
    null_p_adjusted: float | None = None
    null_effect_size: float | None = None  # Cohen's h
    nonfinite_rate_reference: float = 0.0
    nonfinite_rate_current: float = 0.0
    nonfinite_p_value: float | None = None
    nonfinite_p_adjusted: float | None = None
    nonfinite_effect_size: float | None = None  # Cohen's h
    signals: list[str] = field(default_factory=list)  # "distribution", "null_rate", "non_finite"
    reason: str = ""
    chart: dict[str, Any] = field(default_factory=dict)


@dataclass
class DriftReport:
    status: str
    dataset_drift: bool
    share: float
    n_reference: int
    n_current: int
    settings: dict[str, Any]
    features: list[FeatureDrift]
    reasons: list[str] = field(default_factory=list)
    prediction: dict[str, Any] | None = None
    performance: dict[str, Any] | None = None

    @property
    def drifted_features(self) -> list[str]:
        return [f.feature for f in self.features if f.status == DRIFT]

    @property
    def performance_drift(self) -> bool:
        return bool(self.performance and self.performance.get("drift"))

    def summary(self) -> dict[str, Any]:
        """The small part of the report that goes into XCom, asset event extras and the history table."""
        return {"status": self.status, "dataset_drift": self.dataset_drift,
                "performance_drift": self.performance_drift,
                "prediction_drift": bool(self.prediction and self.prediction.get("drift")),
                "share": round(self.share, 6), "drifted_features": self.drifted_features,
                "n_reference": self.n_reference, "n_current": self.n_current,
                "backend": self.settings.get("backend")}

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe (strict JSON: NaN and infinities become None)."""
        from airflow_mlops.core.jsonsafe import json_safe

        payload = asdict(self)
        payload.update(drifted_features=self.drifted_features, performance_drift=self.performance_drift)
        return json_safe(payload)


# --- input checks ----------------------------------------------------------------------------------------

def _is_numeric(series) -> bool:
    import pandas as pd

    return pd.api.types.is_numeric_dtype(series) and not pd.api.types.is_bool_dtype(series)


def feature_kinds(reference, current, features: Sequence[str] | None = None,
                  categorical: Sequence[str] = ()) -> dict[str, str]:
    """``{feature: numeric|categorical}``; raises :class:`DriftInputError` on mismatched columns or dtypes.

    Without an explicit feature list every column is compared and both frames must have the same columns.
    Listed categorical features are compared as strings; a numeric feature must be numeric on both sides.
    """
    if features is None:
        missing_cur = [c for c in reference.columns if c not in current.columns]
        missing_ref = [c for c in current.columns if c not in reference.columns]
        if missing_cur or missing_ref:
            raise DriftInputError("reference and current have different columns: "
                                  f"only in reference {missing_cur}, only in current {missing_ref}")
        features = list(reference.columns)
    else:
        for name, frame in (("reference", reference), ("current", current)):
            missing = [c for c in features if c not in frame.columns]
            if missing:
                raise DriftInputError(f"the {name} data has no column(s) {missing}; it has {list(frame.columns)}")
    if not features:
        raise DriftInputError("no features to compare")
    kinds, problems = {}, []
    for column in features:
        ref_numeric, cur_numeric = _is_numeric(reference[column]), _is_numeric(current[column])
        if column in categorical:
            kinds[column] = CATEGORICAL
        elif ref_numeric == cur_numeric:
            kinds[column] = NUMERIC if ref_numeric else CATEGORICAL
        # An all-missing column has no dtype of its own (object); judge it by the other side.
        elif (ref_numeric or reference[column].isna().all()) and (cur_numeric or current[column].isna().all()):
            kinds[column] = NUMERIC
        else:
            problems.append(f"{column!r} is {reference[column].dtype} in reference but {current[column].dtype} "
                            "in current")
    if problems:
        raise DriftInputError("incompatible dtypes: " + "; ".join(problems))
    return kinds


def numeric_values(series) -> tuple[np.ndarray, int, int]:
    """(the finite values as floats, the number of missing ones, the number of infinite ones).

    Infinities are kept out of the distribution test (they would make the Wasserstein effect size NaN, which
    read as "below min_effect_size" and hid the drift) and counted as a signal of their own.
    """
    import pandas as pd

    values = pd.to_numeric(series, errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
    missing = np.isnan(values)
    infinite = np.isinf(values)
    bad = missing | infinite
    return (values[~bad] if bad.any() else values), int(missing.sum()), int(infinite.sum())


def category_codes(reference, current) -> tuple[list[str], np.ndarray, np.ndarray, int, int]:
    """Categories of both samples as text (union, sorted), each sample's non-missing values as indexes into
    them, and each sample's number of missing values. Hashes each column once and labels only the distinct
    values (values with one label, like 1, 1.0 and "1", are one category; see core.categories)."""
    import pandas as pd

    from airflow_mlops.core.categories import category_label

    factorized = [pd.factorize(pd.Series(sample, copy=False)) for sample in (reference, current)]
    labels = sorted({category_label(value) for _, uniques in factorized for value in uniques})
    index = {label: position for position, label in enumerate(labels)}
    out = []
    for codes, uniques in factorized:
        mapping = np.array([index[category_label(value)] for value in uniques], dtype=np.int64)
        out.append((mapping[codes[codes >= 0]], int((codes < 0).sum())))
    (ref, ref_missing), (cur, cur_missing) = out
    return labels, ref, cur, ref_missing, cur_missing


# --- statistics ------------------------------------------------------------------------------------------

def union_ecdfs(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Both empirical CDFs (right-continuous) at the distinct values of the union of two *sorted* samples."""
    both = np.concatenate([a, b])
    # Two sorted runs: the stable sort (timsort) merges them in linear time.
    order = np.argsort(both, kind="stable")
    merged = both[order]
    from_a = np.cumsum(order < a.size)
    # Last position of each distinct value: ties share the CDF value taken after all of them.
    last = np.append(np.flatnonzero(np.diff(merged)), merged.size - 1)
    count_a = from_a[last]
    return merged[last], count_a / a.size, (last + 1 - count_a) / b.size


_FAR_TAIL = 10.0  # n * D^2 beyond which both the exact and the limiting p-value are below 2 exp(-20) = 4.1e-9


def ks_p_value(statistic: float, n1: int, n2: int) -> float:
    """Asymptotic two-sided KS p-value, as ``scipy.stats.ks_2samp(method="asymp")``: the one-sample
    Kolmogorov distribution at n = round(n1 n2 / (n1 + n2)).

    In the far tail scipy's finite-n value costs up to ~80 ms per call at n = 50,000 (a large drift on a large
    window), while it and the limiting distribution (``kstwobign``) are both below Massart's bound
    2 exp(-2 n D^2) < 4.1e-9 there: we use the limiting one, which differs by less than that.
    """
    from scipy.stats import distributions

    m, n = sorted([float(n1), float(n2)], reverse=True)
    en = np.round(m * n / (m + n))
    if en * statistic**2 >= _FAR_TAIL:
        return float(distributions.kstwobign.sf(np.sqrt(en) * statistic))
    return float(np.clip(distributions.kstwo.sf(statistic, en), 0, 1))


def ks_wasserstein_sorted(a: np.ndarray, b: np.ndarray) -> tuple[float, float, float]:
    """(KS statistic, asymptotic two-sided p-value, Wasserstein-1 distance) of two sorted samples."""
    values, cdf_a, cdf_b = union_ecdfs(a, b)
    diffs = cdf_a - cdf_b
    statistic = float(max(np.clip(-diffs.min(), 0, 1), diffs.max()))
    p_value = ks_p_value(statistic, a.size, b.size)
    distance = float(np.sum(np.abs(diffs[:-1]) * np.diff(values)))
    return statistic, p_value, distance


def ks_wasserstein(reference: np.ndarray, current: np.ndarray) -> tuple[float, float, float]:
    """(KS statistic, asymptotic two-sided p-value, Wasserstein-1 distance), sharing one merge.

    Same statistic and p-value as ``scipy.stats.ks_2samp(a, b, method="asymp")`` (which alibi-detect calls)
    and the same distance as ``scipy.stats.wasserstein_distance(a, b)``.
    """
    return ks_wasserstein_sorted(np.sort(reference), np.sort(current))


def normalised_wasserstein(distance: float, reference: np.ndarray, current: np.ndarray) -> float:
    """Wasserstein distance in units of the reference's standard deviation (pooled if the reference is
    constant; 0 when both samples are the same constant)."""
    scale = float(np.std(reference))
    if scale == 0.0:
        scale = float(np.std(np.concatenate([reference, current])))
    return distance / scale if scale > 0 else 0.0


def counts_table(k: int, reference_codes: np.ndarray, current_codes: np.ndarray) -> np.ndarray:
    """The 2 x k table of category counts from category indexes."""
    return np.vstack([np.bincount(reference_codes, minlength=k), np.bincount(current_codes, minlength=k)])


def category_counts(reference, current) -> tuple[list[str], np.ndarray]:
    """Categories (union of both samples' non-missing values, sorted, as text) and the 2 x k table of counts."""
    labels, ref, cur, _, _ = category_codes(reference, current)
    return labels, counts_table(len(labels), ref, cur)


def chi2_table(table: np.ndarray) -> tuple[float, float]:
    """scipy's ``chi2_contingency`` (Yates' correction for one degree of freedom), as alibi-detect uses it."""
    from scipy.stats import chi2_contingency

    result = chi2_contingency(table)
    return float(result.statistic), float(result.pvalue)


def jensen_shannon(table: np.ndarray) -> float:
    """Jensen-Shannon distance (base 2: 0 = same proportions, 1 = disjoint) of the two rows' proportions."""
    from scipy.spatial.distance import jensenshannon

    return float(jensenshannon(table[0] / table[0].sum(), table[1] / table[1].sum(), base=2))


def cohens_h(p1: float, p2: float) -> float:
    """Effect size of a difference between two proportions: |2 asin sqrt(p2) - 2 asin sqrt(p1)|."""
    return float(abs(2 * np.arcsin(np.sqrt(p2)) - 2 * np.arcsin(np.sqrt(p1))))


def adjust_p_values(p_values: Sequence[float], method: str) -> np.ndarray:
    """Family-wise adjusted p-values: Benjamini-Hochberg step-up (``bh``), ``bonferroni`` or ``none``."""
    p = np.asarray(p_values, dtype=np.float64)
    m = p.size
    if m == 0 or method == "none":
        return p.copy()
    if method == "bonferroni":
        return np.minimum(p * m, 1.0)
    if method != "bh":
        raise ValueError(f"unknown correction {method!r}; use bh, bonferroni or none")
    order = np.argsort(p)
    scaled = p[order] * m / np.arange(1, m + 1)
    # q_(i) = min over j >= i of p_(j) m / j: a running minimum from the largest p-value down.
    adjusted_sorted = np.minimum(np.minimum.accumulate(scaled[::-1])[::-1], 1.0)
    adjusted = np.empty(m)
    adjusted[order] = adjusted_sorted
    return adjusted


# --- backends ----------------------------------------------------------------------------------------



def backend_tests(name: str) -> Callable[[Samples], dict[str, tuple[float, float]]] | None:
    """Per-feature (statistic, p-value) from another library, or None for the builtin statistics."""
    if name == "builtin":
        return None
    if name == "alibi":
        from airflow_mlops.core.drift_alibi import alibi_tests

        return alibi_tests
    raise ValueError(f"unknown drift backend {name!r}; use builtin or alibi")


# --- charts (small, for the HTML report) -----------------------------------------------------------------

def _numeric_chart(a: np.ndarray, b: np.ndarray) -> dict[str, Any]:
    """Shares per bin between the union's 1st and 99th percentiles (outer bins take the tails); a and b are
    sorted, so the counts are binary searches, not a pass over the data."""
    def at(q: float, x: np.ndarray) -> float:
        return float(x[int(q * (x.size - 1))])

    low, high = min(at(0.01, a), at(0.01, b)), max(at(0.99, a), at(0.99, b))
    if low == high:
        low, high = min(a[0], b[0]), max(a[-1], b[-1])
        high = high if high > low else low + 1.0
    edges = np.linspace(low, high, _CHART_BINS + 1)
    shares = []
    for x in (a, b):
        cuts = np.searchsorted(x, edges[1:-1], side="left")
        shares.append(np.diff(np.concatenate([[0], cuts, [x.size]])) / x.size)
    return {"type": "histogram", "edges": edges.round(6).tolist(),
            "reference": shares[0].round(6).tolist(), "current": shares[1].round(6).tolist()}


def _categorical_chart(categories: list[str], table: np.ndarray) -> dict[str, Any]:
    shares = table / np.maximum(table.sum(axis=1, keepdims=True), 1)
    top = np.argsort(-(shares[0] + shares[1]), kind="stable")[:_CHART_CATEGORIES]
    return {"type": "bars", "categories": [categories[i] for i in top],
            "reference": shares[0][top].round(6).tolist(), "current": shares[1][top].round(6).tolist()}


# --- the report ------------------------------------------------------------------------------------------

def detect_drift(reference, current, *, features: Sequence[str] | None = None, categorical: Sequence[str] = (),
                 settings: DriftSettings = DriftSettings()) -> DriftReport:
    """Compare ``current`` with ``reference`` (pandas DataFrames) feature by feature; see the module doc."""
    kinds = feature_kinds(reference, current, features, categorical)
    n_ref, n_cur = len(reference), len(current)
    report = DriftReport(INSUFFICIENT, False, 0.0, n_ref, n_cur, asdict(settings),
                         [FeatureDrift(f, k) for f, k in kinds.items()])
    small = [f"{name} has {n} rows" for name, n in (("reference", n_ref), ("current window", n_cur))
             if n < settings.min_sample_size]
    if small:
        report.reasons.append(f"insufficient data: {' and '.join(small)}, fewer than min_sample_size "
                              f"{settings.min_sample_size}; drift is not assessed")
        for item in report.features:
            item.status, item.reason = INSUFFICIENT, "not assessed: too few rows"
        return report

    from concurrent.futures import ThreadPoolExecutor

    # numpy and scipy release the GIL while sorting and multiplying: features are compared in parallel.
    workers = max(1, min(len(report.features), os.cpu_count() or 1))
    with ThreadPoolExecutor(max_workers=workers) as pool:
        compared = list(pool.map(lambda item: _compare_feature(item, reference[item.feature],
                                                               current[item.feature], settings),
                                 report.features))
    samples: Samples = {item.feature: sample for item, (sample, _) in zip(report.features, compared, strict=True)
                        if sample is not None}
    rate_tests = {item.feature: rates for item, (_, rates) in zip(report.features, compared, strict=True)}

    external = backend_tests(settings.backend)
    if external is not None and samples:
        by_name = {item.feature: item for item in report.features}
        for name, (statistic, p_value) in external(samples).items():
            by_name[name].statistic, by_name[name].p_value = statistic, p_value

    _decide(report, rate_tests, settings)
    return report


def _rate_test(k_ref: int, n_ref: int, k_cur: int, n_cur: int) -> tuple[float | None, float | None]:
    """(chi-square p-value, Cohen's h) of two proportions k/n; (None, None) when neither or both are all."""
    if not 0 < k_ref + k_cur < n_ref + n_cur:
        return None, None
    p_value = chi2_table(np.array([[k_ref, n_ref - k_ref], [k_cur, n_cur - k_cur]]))[1]
    return p_value, cohens_h(k_ref / n_ref, k_cur / n_cur)


def _compare_feature(item: FeatureDrift, ref_col, cur_col, settings: DriftSettings):
    """Fill in one feature's statistics; returns (its sample for another backend or None,
    ``{signal: p-value}`` of the missing-value and non-finite-value rates)."""
    n_ref, n_cur = len(ref_col), len(cur_col)
    ref_inf = cur_inf = 0
    if item.kind == NUMERIC:
        (ref, ref_nulls, ref_inf), (cur, cur_nulls, cur_inf) = numeric_values(ref_col), numeric_values(cur_col)
    else:
        labels, ref, cur, ref_nulls, cur_nulls = category_codes(ref_col, cur_col)
    item.null_rate_reference, item.null_rate_current = ref_nulls / n_ref, cur_nulls / n_cur
    item.nonfinite_rate_reference, item.nonfinite_rate_current = ref_inf / n_ref, cur_inf / n_cur
    null_p, item.null_effect_size = _rate_test(ref_nulls, n_ref, cur_nulls, n_cur)
    inf_p, item.nonfinite_effect_size = _rate_test(ref_inf, n_ref, cur_inf, n_cur)
    rates = {signal: p for signal, p in (("null_rate", null_p), ("non_finite", inf_p)) if p is not None}
    item.n_reference, item.n_current = ref.size, cur.size
    if min(ref.size, cur.size) < settings.min_sample_size:
        item.reason = (f"distribution not compared: {ref.size} reference and {cur.size} current values "
                       f"are present, min_sample_size is {settings.min_sample_size}")
        return None, rates
    if item.kind == NUMERIC:
        ref, cur = np.sort(ref), np.sort(cur)
        item.statistic, item.p_value, distance = ks_wasserstein_sorted(ref, cur)
        item.test, item.effect_metric = "ks", "wasserstein_norm"
        item.effect_size = normalised_wasserstein(distance, ref, cur)
        item.chart = _numeric_chart(ref, cur)
    else:
        table = counts_table(len(labels), ref, cur)
        item.statistic, item.p_value = chi2_table(table)
        item.test, item.effect_metric = "chi2", "jensen_shannon"
        item.effect_size = jensen_shannon(table)
        item.chart = _categorical_chart(labels, table)
    return (item.kind, ref, cur), rates


def _decide(report: DriftReport, rate_tests: dict[str, dict[str, float]], settings: DriftSettings) -> None:
    """Correct all p-values of the report as one family and set each feature's and the data set's status."""
    family = [(item, "distribution", item.p_value) for item in report.features if item.p_value is not None]
    family += [(item, signal, p) for item in report.features
               for signal, p in rate_tests.get(item.feature, {}).items()]
    adjusted = adjust_p_values([p for _, _, p in family], settings.correction)
    for (item, signal, p_value), q_value in zip(family, adjusted, strict=True):
        if signal == "distribution":
            item.p_adjusted = float(q_value)
            effect = item.effect_size
        elif signal == "null_rate":
            item.null_p_value, item.null_p_adjusted = float(p_value), float(q_value)
            effect = item.null_effect_size
        else:
            item.nonfinite_p_value, item.nonfinite_p_adjusted = float(p_value), float(q_value)
            effect = item.nonfinite_effect_size
        effect = effect if effect is not None and np.isfinite(effect) else 0.0
        if q_value < settings.p_value and effect >= settings.min_effect_size:
            item.signals.append(signal)

    tested = [item for item in report.features
              if item.p_value is not None or item.null_p_value is not None or item.nonfinite_p_value is not None]
    for item in report.features:
        if item.signals:
            item.status = DRIFT
            item.reason = _drift_reason(item)
        elif item not in tested:
            item.status = INSUFFICIENT
            item.reason = item.reason or "not assessed"
        elif not item.reason:
            item.reason = "no significant change" if _max_q(item) >= settings.p_value else (
                f"significant but below min_effect_size {settings.min_effect_size}")
    if not tested:
        report.status = INSUFFICIENT
        report.reasons.append("no feature had enough non-missing values to compare")
        return
    drifted = [item.feature for item in report.features if item.status == DRIFT]
    report.share = len(drifted) / len(tested)
    report.dataset_drift = report.share >= settings.drift_share
    report.status = DRIFT if report.dataset_drift else NO_DRIFT
    report.reasons.append(
        f"{len(drifted)} of {len(tested)} features drifted ({report.share:.0%}; dataset drift at "
        f">= {settings.drift_share:.0%})" + (f": {', '.join(drifted)}" if drifted else ""))


def _max_q(item: FeatureDrift) -> float:
    values = [q for q in (item.p_adjusted, item.null_p_adjusted, item.nonfinite_p_adjusted) if q is not None]
    return min(values) if values else 1.0


def _drift_reason(item: FeatureDrift) -> str:
    parts = []
    if "distribution" in item.signals:
        parts.append(f"{item.test} p={item.p_value:.3g} (adjusted {item.p_adjusted:.3g}), "
                     f"{item.effect_metric}={item.effect_size:.3f}")
    if "null_rate" in item.signals:
        parts.append(f"null rate {item.null_rate_reference:.1%} -> {item.null_rate_current:.1%} "
                     f"(adjusted p={item.null_p_adjusted:.3g}, Cohen's h={item.null_effect_size:.3f})")
    if "non_finite" in item.signals:
        parts.append(f"non-finite (inf) rate {item.nonfinite_rate_reference:.1%} -> "
                     f"{item.nonfinite_rate_current:.1%} (adjusted p={item.nonfinite_p_adjusted:.3g}, "
                     f"Cohen's h={item.nonfinite_effect_size:.3f})")
    return "; ".join(parts)


# --- prediction and performance drift --------------------------------------------------------------------

def score_drift(reference_scores, current_scores, settings: DriftSettings = DriftSettings()) -> dict[str, Any]:
    """Drift of the model's score distribution (KS + normalised Wasserstein), judged like one feature."""
    ref = np.asarray(reference_scores, dtype=np.float64)
    cur = np.asarray(current_scores, dtype=np.float64)
    ref, cur = np.sort(ref[np.isfinite(ref)]), np.sort(cur[np.isfinite(cur)])
    if min(ref.size, cur.size) < settings.min_sample_size:
        return {"status": INSUFFICIENT, "drift": False, "n_reference": int(ref.size), "n_current": int(cur.size)}
    statistic, p_value, distance = ks_wasserstein_sorted(ref, cur)
    effect = normalised_wasserstein(distance, ref, cur)
    drift = p_value < settings.p_value and effect >= settings.min_effect_size
    return {"status": DRIFT if drift else NO_DRIFT, "drift": bool(drift), "test": "ks", "statistic": statistic,
            "p_value": p_value, "effect_metric": "wasserstein_norm", "effect_size": effect,
            "n_reference": int(ref.size), "n_current": int(cur.size), "chart": _numeric_chart(ref, cur),
            "mean_reference": float(ref.mean()), "mean_current": float(cur.mean())}


def performance_drift(metric: str, labels, scores, reference_value: float, *, margin: float,
                      confidence: float = 0.95, min_sample_size: int = 100, seed: int = 0) -> dict[str, Any]:
    """The metric on labelled rows of the window, with a confidence interval, against the champion's holdout
    value. Drift when the whole interval is worse than the holdout value by more than ``margin``."""
    from airflow_mlops.core.config import HIGHER_IS_BETTER
    from airflow_mlops.core.stats import metric_interval

    y = np.asarray(labels, dtype=np.float64)
    s = np.asarray(scores, dtype=np.float64)
    known = ~np.isnan(y)
    y, s = y[known].astype(np.int8), s[known]
    result: dict[str, Any] = {"metric": metric, "reference_value": reference_value, "margin": margin,
                              "confidence": confidence, "n_labelled": int(y.size)}
    if y.size < min_sample_size or np.unique(y).size < 2:
        return {**result, "status": INSUFFICIENT, "drift": False,
                "reason": f"{y.size} labelled rows (both classes needed, min_sample_size {min_sample_size})"}
    value, low, high = metric_interval(metric, y, s, confidence=confidence, seed=seed)
    if HIGHER_IS_BETTER[metric]:
        drift = high < reference_value - margin
    else:
        drift = low > reference_value + margin
    return {**result, "status": DRIFT if drift else NO_DRIFT, "drift": bool(drift), "value": value,
            "ci_low": low, "ci_high": high,
            "reason": f"{metric} {value:.4f} [{low:.4f}, {high:.4f}] on the window vs {reference_value:.4f} "
                      f"on the champion's holdout (margin {margin})"}
