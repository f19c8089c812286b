"""Canary logic against known answers: the bucket function, the traffic split, the SRM test, the paired
comparisons, the power formula, and decide() over every state and verdict."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from datetime import datetime, timedelta

import numpy as np
import pytest
from scipy import stats

from airflow_mlops.core.canary import (ABORT, ADVANCE, ASK, FAIL, HOLD, INCONCLUSIVE, MIN_PER_CLASS, PASS, PROMOTE,
                                       ROLLBACK, Analysis, CanaryState, auc_variance_per_entity, bucket, buckets,
                                       compare_arms, decide, guardrail_verdict, judge_guardrails, labels_needed,
                                       srm_test)

IDS = [f"loan-{i}" for i in range(20_000)]


def test_bucket_is_the_documented_sha256_formula():
    for entity, salt in (("loan-1", "a1b2"), (12345, "salt"), ("ünïcode", "x"), ("", "")):
        digest = hashlib.sha256(f"{salt}:{entity}".encode()).digest()
        assert bucket(entity, salt) == int.from_bytes(digest[:8], "big") / 2**64
    assert bucket("loan-1", "a") != bucket("loan-1", "b")  # each canary has its own split
    assert 0.0 <= min(buckets(IDS, "s")) and max(buckets(IDS, "s")) < 1.0


def test_buckets_are_stable_across_processes_unlike_hash():
    code = ("import json, sys; from airflow_mlops.core.canary import buckets; "
            "ids = [f'loan-{i}' for i in range(200)]; print(json.dumps([list(buckets(ids, 'salt')), hash(ids[0])]))")
    runs = [json.loads(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                                      env={"PYTHONHASHSEED": seed, "PATH": ""}).stdout) for seed in ("1", "2")]
    assert runs[0][0] == runs[1][0] == list(buckets([f"loan-{i}" for i in range(200)], "salt"))
    assert runs[0][1] != runs[1][1]  # Python's hash() would have split the traffic differently per process


@pytest.mark.parametrize("weight", [0.05, 0.25, 0.5])
def test_the_split_follows_the_weight_within_binomial_bounds_and_only_grows(weight):
    values = buckets(IDS, "canary-7")
    n = len(IDS)
    served = int((values < weight).sum())
    assert abs(served - n * weight) < 5 * np.sqrt(n * weight * (1 - weight))
    smaller = values < weight / 2
    assert np.all((values < weight)[smaller])  # raising the weight only adds entities


def test_srm_equals_scipy_and_catches_a_skewed_split():
    assert srm_test(5000, 5000, 0.5)["p_value"] == pytest.approx(1.0)
    expected = stats.chisquare([4800, 5200], [5000, 5000]).pvalue
    assert srm_test(4800, 5200, 0.5)["p_value"] == pytest.approx(expected)
    assert srm_test(9050, 950, 0.1)["p_value"] == pytest.approx(stats.chisquare([9050, 950], [9000, 1000]).pvalue)
    skewed = srm_test(5300, 4700, 0.5)
    assert skewed["p_value"] < 1e-8 and skewed["observed_share"] == pytest.approx(0.47)
    assert srm_test(1000, 1, 0.0)["p_value"] == 0.0 and srm_test(1000, 0, 0.0)["p_value"] == 1.0
    state = _state()
    decision = decide(state, Analysis(labelled=5000, srm=skewed, guardrails=[_guardrail(PASS)]))
    assert decision.action == ABORT and "sample ratio mismatch" in decision.reason and "47.00%" in decision.reason


def test_paired_comparisons_equal_their_known_forms():
    from airflow_mlops.core.stats import delong_test

    rng = np.random.default_rng(3)
    y = rng.integers(0, 2, 3000)
    champion = np.clip(0.3 * y + rng.normal(0.35, 0.2, 3000), 0.01, 0.99)
    challenger = np.clip(champion + rng.normal(0, 0.05, 3000), 0.01, 0.99)
    auc = compare_arms("roc_auc", y, champion, challenger)
    reference = delong_test(y, champion, challenger)
    assert auc["improvement"] == pytest.approx(reference["diff"]) and auc["ci_low"] == pytest.approx(reference["ci"][0])
    loss = compare_arms("log_loss", y, champion, challenger)
    gain = (-(y * np.log(champion) + (1 - y) * np.log(1 - champion))) - (
        -(y * np.log(challenger) + (1 - y) * np.log(1 - challenger)))
    t = stats.ttest_1samp(gain, 0)
    assert loss["improvement"] == pytest.approx(gain.mean())
    half = stats.norm.ppf(0.975) * gain.std(ddof=1) / np.sqrt(gain.size)
    assert loss["ci_low"] == pytest.approx(gain.mean() - half) and t.pvalue > 0  # the same interval, normal form


def test_hanley_mcneil_variance_matches_simulation_and_pairing_needs_fewer_labels():
    """Hanley & McNeil derived the AUC variance for exponential scores: simulate exactly that."""
    rng = np.random.default_rng(11)
    auc, prevalence, n = 0.75, 0.2, 2000
    positives, negatives = int(n * prevalence), n - int(n * prevalence)
    estimates = []
    for _ in range(400):
        pos = rng.exponential(1.0 / (1 - auc), positives)   # P(pos > neg) = auc for these rates
        neg = rng.exponential(1.0 / auc, negatives)
        estimates.append(stats.mannwhitneyu(pos, neg).statistic / (positives * negatives))
    assert np.mean(estimates) == pytest.approx(auc, abs=0.005)
    assert np.var(estimates) * n == pytest.approx(auc_variance_per_entity(auc, prevalence), rel=0.15)
    unpaired, paired = labels_needed(0.01, correlation=0.0), labels_needed(0.01, correlation=0.8)
    assert paired == pytest.approx(unpaired * 0.2, rel=0.01) and labels_needed(0.02) < labels_needed(0.01)


def _state(**overrides) -> CanaryState:
    values = {"phase": "canary", "step": 1, "steps": (0.0, 0.05, 0.25), "failed_looks": 0,
              "started_at": datetime(2025, 1, 1), "now": datetime(2025, 1, 10), "min_labels": 500,
              "failure_limit": 2, "max_duration": timedelta(days=28), "early_promotion": False, "on_timeout": "ask"}
    return CanaryState(**{**values, **overrides})


def _guardrail(verdict: str, *, ci_low: float | None = None) -> dict:
    low = {PASS: -0.004, FAIL: -0.05, INCONCLUSIVE: -0.02}[verdict] if ci_low is None else ci_low
    high = {PASS: 0.02, FAIL: -0.02, INCONCLUSIVE: 0.01}[verdict]
    return {"metric": "roc_auc", "margin": 0.01, "champion": 0.75, "challenger": 0.75 + (low + high) / 2,
            "improvement": (low + high) / 2, "ci_low": low, "ci_high": high, "verdict": verdict}


BALANCED = {"p_value": 0.6, "champion_published": 950, "challenger_published": 50, "observed_share": 0.05}


@pytest.mark.parametrize("state, labelled, verdicts, action, reason", [
    # not running
    (_state(phase="promoted"), 1000, [PASS], HOLD, "no canary is running"),
    (_state(phase=None), 1000, [PASS], HOLD, "no canary is running"),
    # too few labels: hold, saying how many are missing
    (_state(), 120, [PASS], HOLD, "120 of 500 matured labels at step 2 (weight 5%): 380 more needed"),
    (_state(step=0), 0, [], HOLD, "0 of 500 matured labels at step 1 (weight 0%): 500 more needed"),
    # every guardrail passes: advance, or promote after the last step
    (_state(step=0), 600, [PASS], ADVANCE, "step 1 (0%) passed with 600 labels, advancing to 5%"),
    (_state(), 600, [PASS, PASS], ADVANCE, "advancing to 25%"),
    (_state(step=2), 600, [PASS], PROMOTE, "last step (25%) passed with 600 labels"),
    # a clearly worse guardrail is a failed look; failure_limit of them roll back
    (_state(), 600, [FAIL], HOLD, "failed look 1 of 2 allowed before rollback"),
    (_state(failed_looks=1), 600, [FAIL, PASS], ROLLBACK, "guardrail failed on 2 look(s), failure_limit 2"),
    (_state(failed_looks=1), 100, [FAIL], ROLLBACK, "guardrail failed on 2 look(s)"),
    # inconclusive: hold; past max_duration: on_timeout
    (_state(), 600, [INCONCLUSIVE], HOLD, "inconclusive with 600 labels, collecting more"),
    (_state(), 600, [PASS, INCONCLUSIVE], HOLD, "inconclusive with 600 labels"),
    (_state(now=datetime(2025, 2, 15)), 600, [INCONCLUSIVE], ASK, "> max_duration 28 days"),
    (_state(now=datetime(2025, 2, 15), on_timeout="rollback"), 600, [INCONCLUSIVE], ROLLBACK, "on_timeout: rollback"),
    (_state(now=datetime(2025, 2, 15), on_timeout="promote"), 10, [], PROMOTE, "10 of 500 matured labels"),
    (_state(now=datetime(2025, 2, 15)), 600, [PASS], ADVANCE, "advancing"),  # a passing step is never held back
])
def test_decide_over_states_and_verdicts(state, labelled, verdicts, action, reason):
    decision = decide(state, Analysis(labelled=labelled, srm=BALANCED, guardrails=[_guardrail(v) for v in verdicts]))
    assert decision.action == action and reason in decision.reason, decision.reason
    assert decision.failed_look == (FAIL in verdicts and state.phase in ("canary", "shadow"))


def test_early_promotion_needs_every_guardrail_superior_by_its_margin():
    superior = [_guardrail(PASS, ci_low=0.02)]
    assert decide(_state(step=0), Analysis(600, BALANCED, superior)).action == ADVANCE
    early = decide(_state(step=0, early_promotion=True), Analysis(600, BALANCED, superior))
    assert early.action == PROMOTE and "early promotion" in early.reason
    merely_fine = decide(_state(step=0, early_promotion=True), Analysis(600, BALANCED, [_guardrail(PASS)]))
    assert merely_fine.action == ADVANCE


def test_guardrail_verdicts():
    assert guardrail_verdict({"ci_low": -0.005, "ci_high": 0.02}, 0.01) == PASS
    assert guardrail_verdict({"ci_low": -0.05, "ci_high": -0.011}, 0.01) == FAIL
    assert guardrail_verdict({"ci_low": -0.02, "ci_high": 0.001}, 0.01) == INCONCLUSIVE


def test_a_humans_answer_to_ask():
    from airflow_mlops.core.canary import answered

    assert answered(ASK, "why", ["Promote"]) == (PROMOTE, "promoted by a human: why")
    assert answered(ASK, "why", ["Rollback"])[0] == ROLLBACK
    assert answered(ASK, "why", None) == (ROLLBACK, "rolled back: the question was answered by nobody; why")
    assert answered(HOLD, "why", ["Promote"]) == (HOLD, "why")


@pytest.mark.parametrize("steps,row_weight", [((0.0, 0.5), 0.05), ((0.0,), 0.05), ((0.0, 0.05), 0.05)])
def test_steps_edited_while_a_canary_runs_hold_instead_of_promoting_or_crashing(steps, row_weight):
    """The row is at step 2 (5%); the YAML's steps were edited. [0, 0.5] would read step 2 as the last (50%) step
    and promote on evidence gathered at 5%; [0] would index past the end."""
    analysis = Analysis(labelled=900, srm=srm_test(855, 45, 0.05), guardrails=[_guardrail(PASS)])
    decision = decide(_state(step=1, steps=steps, row_weight=row_weight), analysis)
    if steps == (0.0, 0.05):  # unchanged steps: the last step passed
        assert decision.action == PROMOTE
    else:
        assert decision.action == HOLD and decision.reason.startswith("canary.steps changed while this canary runs")


def test_an_interval_that_is_not_a_number_fails_the_guardrail():
    # A challenger with one NaN score among 500: every metric's interval is NaN; it must never sit INCONCLUSIVE
    # until a timeout (on_timeout: promote would promote it).
    rng = np.random.default_rng(3)
    y = (rng.random(500) < 0.3).astype(int)
    champion = np.clip(0.3 + 0.3 * y + rng.normal(0, 0.2, 500), 0.01, 0.99)
    challenger = champion.copy()
    challenger[7] = np.nan
    for metric in ("roc_auc", "log_loss", "brier"):
        comparison = compare_arms(metric, y, champion, challenger)
        assert guardrail_verdict(comparison, 0.01) == FAIL, metric
    assert guardrail_verdict({"ci_low": -np.inf, "ci_high": np.inf}, 0.01) == INCONCLUSIVE  # n = 1: just unknown


def test_a_rare_class_is_not_compared_until_each_class_has_enough_labels():
    rng = np.random.default_rng(4)
    champion, challenger = rng.random(500), rng.random(500)  # two random models
    errors = []
    for positives, comparable in ((1, False), (MIN_PER_CLASS - 1, False), (MIN_PER_CLASS, True)):
        y = np.zeros(500)
        y[:positives] = 1
        results, labelled, minority = judge_guardrails(
            y, champion, challenger, {"roc_auc": 0.01, "average_precision": 0.01, "f1": 0.01}, min_labels=300,
            on_error=lambda metric, error: errors.append(metric))
        assert minority == positives and (labelled == 500) is comparable
        if not comparable:  # one positive used to crash DeLong, or decide a PR comparison with a narrow interval
            assert {r["verdict"] for r in results} == {INCONCLUSIVE} and all("ci_low" not in r for r in results)
    assert errors == []
    # Below min_labels nothing is compared either, however balanced.
    results, labelled, _ = judge_guardrails(np.arange(100) % 2, champion[:100], challenger[:100], {"roc_auc": 0.01},
                                            min_labels=300)
    assert labelled == 100 and results[0]["verdict"] == INCONCLUSIVE and "ci_low" not in results[0]
