"""Drift statistics against scipy and published examples; error rates and detection power by simulation."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats
from scipy.spatial.distance import jensenshannon

from airflow_mlops.core.drift import (DRIFT, INSUFFICIENT, NO_DRIFT, DriftInputError, DriftSettings,
                                      adjust_p_values, category_counts, chi2_table, cohens_h, detect_drift,
                                      jensen_shannon, ks_wasserstein, performance_drift, score_drift)
from airflow_mlops.core.stats import metric_interval


def _mixed(rng, n, *, shift=0.0, scale=1.0, new_category=0.0, null_rate=0.0):
    frame = pd.DataFrame({
        "x": rng.normal(shift, scale, n),
        "y": rng.gamma(2.0, 1.0, n),
        "k": rng.integers(0, 5, n),  # discrete numeric: ties everywhere
        "colour": rng.choice(["red", "green", "blue"], n, p=[0.5, 0.3, 0.2]),
        "flag": rng.choice(["yes", "no"], n),
    })
    if new_category:
        frame.loc[rng.random(n) < new_category, "colour"] = "violet"
    if null_rate:
        frame.loc[rng.random(n) < null_rate, "y"] = np.nan
    return frame


def _run(ref, cur, **settings):
    return detect_drift(ref, cur, categorical=["colour", "flag"], settings=DriftSettings(**settings))


# --- known answers ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("n1,n2,discrete", [(50, 70, False), (1000, 300, False), (20_000, 15_000, False),
                                            (500, 800, True), (3000, 2000, True)])
def test_ks_and_wasserstein_equal_scipy(n1, n2, discrete):
    rng = np.random.default_rng(n1 + n2)
    a, b = (rng.integers(0, 8, n1), rng.integers(0, 8, n2)) if discrete else (rng.normal(0, 1, n1),
                                                                             rng.normal(0.02, 1.03, n2))
    a, b = a.astype(float), b.astype(float)
    statistic, p_value, distance = ks_wasserstein(a, b)
    expected = stats.ks_2samp(a, b, method="asymp")
    assert statistic == pytest.approx(expected.statistic, abs=1e-12)
    assert p_value == pytest.approx(expected.pvalue, rel=1e-9, abs=1e-300)
    assert distance == pytest.approx(stats.wasserstein_distance(a, b), rel=1e-9)


def test_ks_far_tail_uses_the_limiting_distribution_within_massarts_bound():
    rng = np.random.default_rng(4)
    for shift in (0.03, 0.05, 0.3):
        a, b = rng.normal(0, 1, 60_000), rng.normal(shift, 1, 50_000)
        statistic, p_value, _ = ks_wasserstein(a, b)
        expected = stats.ks_2samp(a, b, method="asymp")
        en = round(60_000 * 50_000 / 110_000)
        if en * statistic**2 >= 10:  # both below 2 exp(-2 n D^2) <= 4.1e-9 (Massart 1990)
            assert p_value <= 2 * np.exp(-2 * en * statistic**2) and expected.pvalue <= 4.2e-9
            assert abs(p_value - expected.pvalue) <= 4.2e-9
        else:
            assert p_value == pytest.approx(expected.pvalue, rel=1e-9)


def test_chi2_equals_scipy_with_yates_for_two_categories_and_counts_unseen_categories():
    ref = np.array(["a"] * 40 + ["b"] * 60)
    cur = np.array(["a"] * 55 + ["b"] * 35 + ["c"] * 10)
    categories, table = category_counts(ref, cur)
    assert categories == ["a", "b", "c"]
    assert table.tolist() == [[40, 60, 0], [55, 35, 10]]
    expected = stats.chi2_contingency(table)
    assert chi2_table(table) == pytest.approx((expected.statistic, expected.pvalue))
    two = np.array([[40, 60], [55, 45]])
    # Yates' continuity correction is on for one degree of freedom (as alibi-detect calls scipy).
    assert chi2_table(two)[0] == pytest.approx(stats.chi2_contingency(two, correction=True).statistic)
    assert chi2_table(two)[0] < stats.chi2_contingency(two, correction=False).statistic


def test_histogram_chart_equals_numpy_on_clipped_values():
    from airflow_mlops.core.drift import _numeric_chart

    rng = np.random.default_rng(7)
    a, b = np.sort(rng.normal(0, 1, 5000)), np.sort(rng.normal(0.5, 2, 3000))
    chart = _numeric_chart(a, b)
    edges = np.array(chart["edges"])
    for sample, shares in ((a, chart["reference"]), (b, chart["current"])):
        expected = np.histogram(np.clip(sample, edges[0], edges[-1]), bins=edges)[0] / sample.size
        assert np.allclose(shares, expected, atol=2 / sample.size)
        assert sum(shares) == pytest.approx(1.0, abs=1e-4)  # shares are rounded to 6 decimals


def test_jensen_shannon_distance_and_cohens_h():
    table = np.array([[10, 30, 60], [30, 30, 40]])
    assert jensen_shannon(table) == pytest.approx(jensenshannon([0.1, 0.3, 0.6], [0.3, 0.3, 0.4], base=2))
    assert jensen_shannon(np.array([[5, 0], [0, 5]])) == pytest.approx(1.0)
    assert jensen_shannon(np.array([[5, 5], [50, 50]])) == pytest.approx(0.0)
    # Cohen (1988): h = |2 asin sqrt(p1) - 2 asin sqrt(p2)|; 0.2 -> 0.5 is h = 0.6435.
    assert cohens_h(0.2, 0.5) == pytest.approx(0.6435, abs=1e-4)
    assert cohens_h(0.3, 0.3) == 0.0


def test_benjamini_hochberg_on_the_papers_example():
    # Benjamini & Hochberg (1995), section 4: 15 p-values; at q = 0.05 BH rejects 4, Bonferroni 3.
    p = [0.0001, 0.0004, 0.0019, 0.0095, 0.0201, 0.0278, 0.0298, 0.0344, 0.0459, 0.3240, 0.4262, 0.5719,
         0.6528, 0.7590, 1.0000]
    shuffled = np.random.default_rng(1).permutation(p)
    adjusted = adjust_p_values(shuffled, "bh")
    assert np.allclose(adjusted, stats.false_discovery_control(shuffled, method="bh"))
    assert int((adjust_p_values(p, "bh") <= 0.05).sum()) == 4
    assert int((adjust_p_values(p, "bonferroni") <= 0.05).sum()) == 3
    assert np.array_equal(adjust_p_values(p, "none"), np.array(p))
    with pytest.raises(ValueError, match="unknown correction"):
        adjust_p_values(p, "holm")


def test_metric_interval_matches_delong_and_covers_the_true_auc():
    from scipy.stats import norm

    from airflow_mlops.core.stats import delong_test

    rng = np.random.default_rng(3)
    y = rng.integers(0, 2, 400)
    s = rng.normal(y * 1.0, 1.0)
    value, low, high = metric_interval("roc_auc", y, s)
    se = np.sqrt(delong_test(y, s, s)["covariance"][0][0])
    assert value == pytest.approx(stats.mannwhitneyu(s[y == 1], s[y == 0]).statistic / (y.sum() * (400 - y.sum())))
    assert high - low == pytest.approx(2 * 1.959964 * se, rel=1e-5)
    # Binormal model with separation d: the true AUC is Phi(d / sqrt 2). The 95% interval should cover it
    # in about 95% of samples (binomial sd over 300 repetitions: 1.3 points).
    truth = norm.cdf(1.0 / np.sqrt(2))
    covered = 0
    for _ in range(300):
        y = rng.integers(0, 2, 300)
        _, low, high = metric_interval("roc_auc", y, rng.normal(y * 1.0, 1.0))
        covered += low <= truth <= high
    assert 0.90 <= covered / 300 <= 0.99
    value, low, high = metric_interval("brier", y, np.clip(rng.normal(0.5, 0.1, y.size), 0, 1), samples=300)
    assert low <= value <= high


# --- error rates and detection ---------------------------------------------------------------------------

def test_no_false_alarms_on_samples_from_one_distribution():
    # Under the global null BH controls the chance of flagging any feature at q. 300 seeded repetitions of
    # 5 features with no effect-size floor: the rate must stay within q + 3 binomial standard deviations.
    rng = np.random.default_rng(11)
    any_flagged = dataset = 0
    repetitions = 300
    for _ in range(repetitions):
        report = _run(_mixed(rng, 400), _mixed(rng, 300), min_effect_size=0.0)
        any_flagged += bool(report.drifted_features)
        dataset += report.dataset_drift
        assert report.status in (DRIFT, NO_DRIFT)
    bound = 0.05 + 3 * np.sqrt(0.05 * 0.95 / repetitions)
    assert any_flagged / repetitions <= bound
    assert dataset / repetitions <= bound


@pytest.mark.parametrize("change,feature,signal", [
    ({"shift": 0.5}, "x", "distribution"),
    ({"scale": 2.0}, "x", "distribution"),   # same mean, twice the spread
    ({"new_category": 0.3}, "colour", "distribution"),
    ({"null_rate": 0.2}, "y", "null_rate"),
])
def test_detects_known_changes(change, feature, signal):
    rng = np.random.default_rng(5)
    report = _run(_mixed(rng, 3000), _mixed(rng, 2000, **change), drift_share=0.2)
    drifted = {item.feature: item for item in report.features if item.status == DRIFT}
    assert list(drifted) == [feature]
    assert drifted[feature].signals == [signal]
    assert report.dataset_drift and report.status == DRIFT
    assert report.share == pytest.approx(1 / 5)
    if change.get("new_category"):
        assert "violet" in drifted[feature].chart["categories"]


def test_infinities_are_their_own_signal_and_never_mask_drift():
    """inf made the Wasserstein effect size NaN, which read as "below min_effect_size": a shifted feature with a
    few infinities reported no drift, and the JSON report held NaN (not JSON)."""
    import json

    rng = np.random.default_rng(6)
    ref, cur = _mixed(rng, 3000), _mixed(rng, 2000, shift=0.8)
    cur.loc[cur.sample(20, random_state=1).index, "x"] = np.inf
    report = _run(ref, cur, drift_share=0.2)
    (x,) = [item for item in report.features if item.feature == "x"]
    assert x.status == DRIFT and "distribution" in x.signals and np.isfinite(x.effect_size)
    assert x.n_current == 1980 and x.nonfinite_rate_current == pytest.approx(0.01)
    # Infinities alone (the rest unchanged) are a drift of their own, like a change in missing values.
    same = _mixed(np.random.default_rng(7), 2000)
    same.loc[same.sample(200, random_state=2).index, "y"] = -np.inf
    (y,) = [item for item in _run(ref, same, drift_share=0.2).features if item.feature == "y"]
    assert y.signals == ["non_finite"] and "non-finite (inf) rate 0.0% -> 10.0%" in y.reason
    p_value = stats.chi2_contingency([[0, 3000], [200, 1800]]).pvalue
    assert y.nonfinite_p_value == pytest.approx(p_value)
    text = json.dumps(report.to_dict(), allow_nan=False)  # strict JSON
    assert "NaN" not in text and "Infinity" not in text


def test_trivial_shift_on_large_samples_is_significant_but_not_drift():
    rng = np.random.default_rng(8)
    ref = pd.DataFrame({"x": rng.normal(0, 1, 200_000)})
    cur = pd.DataFrame({"x": rng.normal(0.03, 1, 200_000)})
    report = detect_drift(ref, cur, settings=DriftSettings(min_effect_size=0.1))
    (item,) = report.features
    assert item.p_adjusted < 1e-6 and item.effect_size < 0.1
    assert item.status == NO_DRIFT and "below min_effect_size" in item.reason
    assert detect_drift(ref, cur, settings=DriftSettings(min_effect_size=0.0)).dataset_drift


def test_drift_share_decides_dataset_drift():
    rng = np.random.default_rng(9)
    ref, cur = _mixed(rng, 2000), _mixed(rng, 2000, shift=1.0)
    assert not _run(ref, cur, drift_share=0.5).dataset_drift
    assert _run(ref, cur, drift_share=0.2).dataset_drift


def test_score_and_performance_drift():
    rng = np.random.default_rng(4)
    settings = DriftSettings()
    assert score_drift(rng.beta(2, 5, 2000), rng.beta(2, 5, 2000), settings)["drift"] is False
    shifted = score_drift(rng.beta(2, 5, 2000), rng.beta(4, 4, 2000), settings)
    assert shifted["drift"] is True and shifted["mean_current"] > shifted["mean_reference"]
    y = rng.integers(0, 2, 3000)
    good = rng.normal(y * 1.2, 1.0)
    holdout_auc = metric_interval("roc_auc", y, good)[0]
    same = performance_drift("roc_auc", y, good, holdout_auc, margin=0.02)
    assert same["status"] == NO_DRIFT and same["ci_low"] <= holdout_auc <= same["ci_high"]
    worse = performance_drift("roc_auc", y, rng.normal(y * 0.3, 1.0), holdout_auc, margin=0.02)
    assert worse["drift"] is True and worse["ci_high"] < holdout_auc - 0.02
    unlabelled = performance_drift("roc_auc", np.full(50, np.nan), good[:50], holdout_auc, margin=0.02)
    assert unlabelled["status"] == INSUFFICIENT and unlabelled["n_labelled"] == 0
    loss = performance_drift("log_loss", y, 1 / (1 + np.exp(-good)), 0.3, margin=0.02)
    assert loss["drift"] is True and loss["ci_low"] > 0.32  # lower is better: the whole interval is worse


# --- bad input -------------------------------------------------------------------------------------------

def test_different_columns_and_dtypes_are_named():
    ref = pd.DataFrame({"a": [1.0, 2.0], "b": ["x", "y"]})
    with pytest.raises(DriftInputError, match=r"only in reference \['b'\], only in current \['c'\]"):
        detect_drift(ref, pd.DataFrame({"a": [1.0], "c": [1]}))
    with pytest.raises(DriftInputError, match="'b' is object in reference but float64 in current"):
        detect_drift(ref, pd.DataFrame({"a": [1.0], "b": [0.5]}))
    with pytest.raises(DriftInputError, match=r"current data has no column\(s\) \['b'\]"):
        detect_drift(ref, pd.DataFrame({"a": [1.0]}), features=["a", "b"])


def test_empty_and_small_windows_are_insufficient_data_not_drift():
    rng = np.random.default_rng(2)
    ref = _mixed(rng, 1000)
    for current in (ref.iloc[:0], _mixed(rng, 50, shift=5.0)):
        report = _run(ref, current)
        assert report.status == INSUFFICIENT and not report.dataset_drift
        assert "fewer than min_sample_size 100" in report.reasons[0]
        assert {item.status for item in report.features} == {INSUFFICIENT}


def test_all_missing_constant_and_single_value_features():
    rng = np.random.default_rng(6)
    n = 500
    ref = pd.DataFrame({"gone": rng.normal(0, 1, n), "never": np.full(n, np.nan), "const": np.ones(n),
                        "moved": np.ones(n), "ok": rng.normal(0, 1, n)})
    cur = pd.DataFrame({"gone": np.full(n, np.nan), "never": np.full(n, np.nan), "const": np.ones(n),
                        "moved": np.full(n, 3.0), "ok": rng.normal(0, 1, n)})
    report = detect_drift(ref, cur, settings=DriftSettings(drift_share=0.5))
    items = {item.feature: item for item in report.features}
    assert items["gone"].status == DRIFT and items["gone"].signals == ["null_rate"]
    assert "null rate 0.0% -> 100.0%" in items["gone"].reason
    assert items["never"].status == INSUFFICIENT
    assert items["const"].status == NO_DRIFT and items["const"].p_value == 1.0 and items["const"].effect_size == 0
    assert items["moved"].status == DRIFT and items["moved"].effect_size > 1
    assert items["ok"].status == NO_DRIFT
    assert report.share == pytest.approx(2 / 4)  # the untestable feature is not counted
    assert report.dataset_drift


def test_unknown_backend_is_a_clear_error():
    rng = np.random.default_rng(1)
    with pytest.raises(ValueError, match="unknown drift backend 'evidently'"):
        _run(_mixed(rng, 200), _mixed(rng, 200), backend="evidently")


# --- alibi-detect backend --------------------------------------------------------------------------------

@pytest.mark.alibi
def test_builtin_p_values_equal_alibi_detect():
    pytest.importorskip("alibi_detect")
    rng = np.random.default_rng(12)
    ref = _mixed(rng, 3000, null_rate=0.05)
    cur = _mixed(rng, 2500, shift=0.05, new_category=0.02, null_rate=0.06)
    # The mixed group goes through TabularDrift, the numeric feature with missing values through KSDrift,
    # and the all-categorical frame through ChiSquareDrift.
    for columns in (list(ref.columns), ["colour", "flag"]):
        builtin = _run(ref[columns], cur[columns], backend="builtin")
        alibi = _run(ref[columns], cur[columns], backend="alibi")
        assert [f.feature for f in alibi.features] == [f.feature for f in builtin.features]
        for ours, theirs in zip(builtin.features, alibi.features, strict=True):
            assert ours.test and ours.p_value is not None
            assert abs(ours.p_value - theirs.p_value) <= 1e-6, ours.feature
            assert theirs.statistic == pytest.approx(ours.statistic, rel=1e-5)
            assert (ours.status, ours.effect_size) == (theirs.status, theirs.effect_size)
        assert alibi.summary() | {"backend": "builtin"} == builtin.summary()


def test_integer_categories_with_a_missing_value_are_one_category():
    """A float64 column (one NULL) and an int column with the same values drifted with JS distance 1.0."""
    rng = np.random.default_rng(3)
    ref = pd.DataFrame({"term": rng.choice([36, 60], 2000).astype("float64")})
    ref.loc[0, "term"] = np.nan
    cur = pd.DataFrame({"term": rng.choice([36, 60], 2000)})
    (item,) = detect_drift(ref, cur, categorical=["term"]).features
    assert item.status == NO_DRIFT and item.chart["categories"] == ["36", "60"]
