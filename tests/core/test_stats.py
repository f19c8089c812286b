"""Known-answer tests of the gate statistics: hand-computed DeLong, the quadratic textbook form,
scikit-learn's metrics, and the bootstrap's agreement with the normal approximation."""

import numpy as np
import pytest
from sklearn import metrics as skm

from airflow_mlops.core.stats import compare, compute_metric, delong_test, paired_bootstrap, roc_auc


def delong_textbook(y, a, b):
    """DeLong et al. (1988) with the explicit placement matrix psi(x, y): O(m*n), independent code."""
    y = np.asarray(y)
    out = []
    for s in (a, b):
        pos, neg = s[y == 1], s[y == 0]
        psi = (pos[:, None] > neg[None, :]) + 0.5 * (pos[:, None] == neg[None, :])
        out.append((psi.mean(), psi.mean(axis=1), psi.mean(axis=0)))
    m, n = (y == 1).sum(), (y == 0).sum()
    v10 = np.vstack([o[1] for o in out])
    v01 = np.vstack([o[2] for o in out])
    s = np.cov(v10) / m + np.cov(v01) / n
    return out[0][0], out[1][0], s


def test_delong_hand_computed_example():
    # y = [0, 0, 1, 1], one score: AUC 0.75; components V10 = [0.5, 1], V01 = [1, 0.5] -> var = 0.125/2*2.
    y = np.array([0, 0, 1, 1])
    a = np.array([0.1, 0.4, 0.35, 0.8])
    result = delong_test(y, a, a)
    assert result["auc_a"] == pytest.approx(0.75)
    assert result["covariance"][0][0] == pytest.approx(0.125)
    assert result["diff"] == 0 and result["p_value"] == 1.0


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_delong_fast_equals_textbook_with_ties(seed):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, 400)
    a = np.round(y * 0.8 + rng.normal(size=400), 1)   # rounding makes ties
    b = np.round(y * 1.1 + rng.normal(size=400), 1)
    fast = delong_test(y, a, b)
    auc_a, auc_b, cov = delong_textbook(y, a, b)
    assert fast["auc_a"] == pytest.approx(auc_a, abs=1e-12)
    assert fast["auc_b"] == pytest.approx(auc_b, abs=1e-12)
    np.testing.assert_allclose(fast["covariance"], cov, atol=1e-12)
    assert fast["auc_a"] == pytest.approx(skm.roc_auc_score(y, a))


def test_delong_p_value_and_interval_are_consistent():
    rng = np.random.default_rng(3)
    y = rng.integers(0, 2, 2000)
    a = y * 0.5 + rng.normal(size=2000)
    b = y * 1.0 + rng.normal(size=2000)
    result = delong_test(y, a, b, confidence=0.95)
    from scipy.stats import norm

    assert result["p_value"] == pytest.approx(2 * norm.sf(abs(result["diff"] / result["se"])))
    low, high = result["ci"]
    assert low > 0 and result["p_value"] < 0.05  # b is clearly better
    assert high - low == pytest.approx(2 * 1.959964 * result["se"], rel=1e-5)


@pytest.mark.parametrize("metric, reference", [
    ("roc_auc", skm.roc_auc_score), ("average_precision", skm.average_precision_score),
    ("log_loss", skm.log_loss), ("brier", skm.brier_score_loss),
    ("accuracy", lambda y, p: skm.accuracy_score(y, p >= 0.5)), ("f1", lambda y, p: skm.f1_score(y, p >= 0.5)),
])
def test_metrics_match_scikit_learn(metric, reference):
    rng = np.random.default_rng(4)
    y = rng.integers(0, 2, 500)
    p = np.clip(0.3 * y + rng.uniform(0, 0.7, 500), 0.001, 0.999).round(2)
    assert compute_metric(metric, y, p) == pytest.approx(reference(y, p), abs=1e-12)


def test_roc_auc_single_class_is_nan():
    assert np.isnan(roc_auc(np.ones(5), np.arange(5)))


def test_bootstrap_mean_metric_matches_normal_approximation():
    rng = np.random.default_rng(5)
    n = 5000
    y = rng.integers(0, 2, n)
    champion = np.clip(0.5 + 0.2 * (y - 0.5) + rng.normal(0, 0.15, n), 0.01, 0.99)
    challenger = np.clip(champion + 0.05 * (y - 0.5) + rng.normal(0, 0.02, n), 0.01, 0.99)
    result = paired_bootstrap("brier", y, champion, challenger, samples=2000, seed=1)
    gain = (champion - y) ** 2 - (challenger - y) ** 2
    assert result.improvement == pytest.approx(gain.mean(), abs=1e-12)
    se = gain.std(ddof=1) / np.sqrt(n)
    assert result.ci_low == pytest.approx(gain.mean() - 1.96 * se, abs=0.25 * se)
    assert result.ci_high == pytest.approx(gain.mean() + 1.96 * se, abs=0.25 * se)


def test_bootstrap_is_seeded_and_oriented():
    rng = np.random.default_rng(6)
    y = rng.integers(0, 2, 300)
    good = np.clip(y * 0.6 + rng.uniform(0, 0.4, 300), 0, 1)
    bad = rng.uniform(0, 1, 300)
    first = paired_bootstrap("average_precision", y, bad, good, samples=200, seed=9)
    again = paired_bootstrap("average_precision", y, bad, good, samples=200, seed=9)
    assert first == again
    assert first.ci_low > 0  # challenger (good) better: positive improvement
    worse = paired_bootstrap("log_loss", y, good, bad, samples=200, seed=9)
    assert worse.ci_high < 0  # lower-is-better metric, challenger worse: negative improvement


def test_compare_uses_delong_for_auc_only():
    rng = np.random.default_rng(7)
    y = rng.integers(0, 2, 200)
    a, b = rng.uniform(size=200), rng.uniform(size=200)
    assert compare("roc_auc", y, a, b).method == "delong"
    assert compare("log_loss", y, a, b, samples=100).method == "paired_bootstrap"
