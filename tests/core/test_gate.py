import numpy as np
import pytest

from airflow_mlops.core.config import GateConfig
from airflow_mlops.core.gate import FAIL, INCONCLUSIVE, PASS, evaluate_gate


def scores(seed, n, strength):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    return y, 1 / (1 + np.exp(-(strength * (y - 0.5) * 2 + rng.normal(0, 1, n))))


def test_first_model_judged_on_minimums_only():
    y, s = scores(0, 1000, 1.0)
    config = GateConfig(minimum={"roc_auc": 0.6})
    report = evaluate_gate(config, y, s)
    assert report.verdict == PASS and report.comparison is None
    strict = evaluate_gate(GateConfig(minimum={"roc_auc": 0.99}), y, s)
    assert strict.verdict == FAIL and "below the minimum" in strict.reasons[0]


def test_better_challenger_passes_and_worse_fails():
    rng = np.random.default_rng(1)
    y = rng.integers(0, 2, 4000)
    noise = rng.normal(0, 1, 4000)
    weak = y * 0.5 + noise
    strong = y * 1.5 + noise * 0.8
    config = GateConfig(non_inferiority_margin=0.01)
    assert evaluate_gate(config, y, strong, weak).verdict == PASS
    report = evaluate_gate(config, y, weak, strong)
    assert report.verdict == FAIL and report.comparison["ci_high"] < -0.01


def test_small_holdout_is_inconclusive():
    rng = np.random.default_rng(2)
    y = rng.integers(0, 2, 60)
    a = y * 0.5 + rng.normal(0, 1, 60)
    b = y * 0.45 + rng.normal(0, 1, 60)
    assert evaluate_gate(GateConfig(non_inferiority_margin=0.01), y, b, a).verdict == INCONCLUSIVE


def test_a_slice_that_gets_clearly_worse_fails_the_gate():
    rng = np.random.default_rng(3)
    n = 6000
    y = rng.integers(0, 2, n)
    region = np.where(rng.random(n) < 0.5, "north", "south")
    noise = rng.normal(0, 1, n)
    champion = y * 1.0 + noise
    challenger = np.where(region == "north", y * 1.6 + noise, y * 0.2 + noise)  # better overall? not in south
    config = GateConfig(non_inferiority_margin=0.01, slices=["region"], min_slice_rows=100)
    report = evaluate_gate(config, y, challenger, champion, slices={"region": region})
    south = next(s for s in report.slices if s["value"] == "south")
    assert south["status"] == FAIL
    assert report.verdict == FAIL


def test_bootstrap_metric_gate_and_single_class_error():
    y, s = scores(4, 2000, 1.0)
    report = evaluate_gate(GateConfig(metric="log_loss", bootstrap_samples=200, maximum={"log_loss": 5}),
                           y, s, s)
    assert report.comparison["method"] == "paired_bootstrap" and report.verdict == PASS
    with pytest.raises(ValueError, match="one class"):
        evaluate_gate(GateConfig(), np.ones(10), np.linspace(0, 1, 10))
