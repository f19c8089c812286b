"""Canary deployment logic, pure: traffic buckets, the sample-ratio-mismatch test, guardrail comparisons and the
decision of a look. No Airflow, no I/O: ``decide(state, analysis)`` is a function of numbers.

A canary moves through ``steps`` of challenger traffic (``0.0`` = shadow: both models score, only the champion's
score is published). Both models score *every* row in batch scoring, so each look compares them on the same
entities (paired), which is far more powerful than comparing two groups of customers.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from typing import Any

import numpy as np

# Actions a look can decide.
ADVANCE, HOLD, PROMOTE, ROLLBACK, ABORT, ASK = "advance", "hold", "promote", "rollback", "abort", "ask"
ACTIONS = (ADVANCE, HOLD, PROMOTE, ROLLBACK, ABORT, ASK)
# Phases of a deployment (the state table's ``phase``).
SHADOW, CANARY, PROMOTED, ROLLED_BACK, ABORTED = "shadow", "canary", "promoted", "rolled_back", "aborted"
ACTIVE_PHASES = (SHADOW, CANARY)
PASS, FAIL, INCONCLUSIVE = "PASS", "FAIL", "INCONCLUSIVE"
# Fewer labels of the rarer class than this and no metric is compared (one positive would decide a PR curve).
MIN_PER_CLASS = 10
CHAMPION_ARM, CHALLENGER_ARM = "champion", "challenger"


def bucket(entity_id: Any, salt: str) -> float:
    """The traffic bucket of an entity, in [0, 1): the first 8 bytes of ``sha256(salt + ":" + id)`` as a big-endian
    unsigned integer, divided by 2**64.

    Stable across processes, machines and languages (never Python's ``hash()``, which is salted per process), and
    independent between deployments (each canary has its own salt). An entity is served by the challenger when
    ``bucket(id, salt) < weight``: raising the weight only adds entities, none switches back. The same function in
    another language: ``int.from_bytes(sha256(f"{salt}:{id}".encode("utf-8")).digest()[:8], "big") / 2**64``.
    """
    digest = hashlib.sha256(f"{salt}:{entity_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2.0**64


def buckets(entity_ids, salt: str) -> np.ndarray:
    """:func:`bucket` for many ids (entity ids are compared as text, as the prediction log stores them)."""
    return np.fromiter((bucket(str(value), salt) for value in entity_ids), dtype=np.float64,
                       count=len(entity_ids))


def srm_test(champion_published: int, challenger_published: int, weight: float) -> dict[str, Any]:
    """Sample-ratio mismatch: does the published split match the weight? Chi-square goodness of fit (1 df).

    A mismatch means the traffic split itself is broken (a bug in bucketing, entities dropped for one arm), so any
    metric comparison is suspect: the canary aborts. At weight 0 any published challenger score is a mismatch.
    """
    from scipy.stats import chisquare

    total = champion_published + challenger_published
    result = {"champion_published": int(champion_published), "challenger_published": int(challenger_published),
              "weight": weight, "observed_share": challenger_published / total if total else 0.0}
    if total == 0:
        return {**result, "p_value": 1.0, "statistic": 0.0}
    if weight <= 0.0 or weight >= 1.0:
        wrong = challenger_published if weight <= 0.0 else champion_published
        return {**result, "p_value": 0.0 if wrong else 1.0, "statistic": math.inf if wrong else 0.0}
    test = chisquare([champion_published, challenger_published], [total * (1 - weight), total * weight])
    return {**result, "p_value": float(test.pvalue), "statistic": float(test.statistic)}


def compare_arms(metric: str, y, champion, challenger, *, confidence: float = 0.95, seed: int = 0) -> dict[str, Any]:
    """Paired comparison of the challenger with the champion on the same labelled entities. ``improvement`` (and
    its interval) is positive when the challenger is better, whatever the metric's direction.

    ROC AUC: DeLong's test. Mean metrics (log loss, Brier, accuracy): a normal interval of the mean per-row
    difference (the paired t-interval; exact enough at the label counts a canary needs and O(n)). Others: the
    paired bootstrap.
    """
    from airflow_mlops.core.stats import _normal_quantile, _row_losses, compare, compute_metric

    y = np.asarray(y, dtype=np.int8)
    champion, challenger = np.asarray(champion, dtype=np.float64), np.asarray(challenger, dtype=np.float64)
    if metric in ("log_loss", "brier", "accuracy"):
        values = {"champion": compute_metric(metric, y, champion),
                  "challenger": compute_metric(metric, y, challenger)}
        gain = _row_losses(metric, y, champion) - _row_losses(metric, y, challenger)
        mean = float(gain.mean())
        se = float(gain.std(ddof=1) / math.sqrt(gain.size)) if gain.size > 1 else math.inf
        half = _normal_quantile(confidence) * se
        return {**values, "improvement": mean, "ci_low": mean - half, "ci_high": mean + half, "method": "paired_t"}
    comparison = compare(metric, y, champion, challenger, confidence=confidence, seed=seed)
    values = {"champion": comparison.champion, "challenger": comparison.challenger}  # computed once, by compare
    return {**values, "improvement": comparison.improvement, "ci_low": comparison.ci_low,
            "ci_high": comparison.ci_high, "method": comparison.method}


def guardrail_verdict(comparison: dict[str, Any], margin: float) -> str:
    """Non-inferiority: PASS when the interval's lower bound is above ``-margin``; FAIL when even its upper bound
    is below (clearly worse by more than the margin); otherwise INCONCLUSIVE (more labels needed). An interval that
    is not a number (the challenger's scores were not all finite) is a FAIL: such a model cannot be trusted."""
    if math.isnan(comparison["ci_low"]) or math.isnan(comparison["ci_high"]):
        return FAIL
    if comparison["ci_low"] > -margin:
        return PASS
    if comparison["ci_high"] < -margin:
        return FAIL
    return INCONCLUSIVE


def judge_guardrails(y, champion, challenger, guardrails: dict[str, float], *, min_labels: int,
                     confidence: float = 0.95, seed: int = 0, on_error=None) -> tuple[list[dict[str, Any]], int, int]:
    """Compare the arms on every guardrail when the labels allow it: ``(results, labelled, minority)``.

    ``labelled`` is 0 while fewer than :data:`MIN_PER_CLASS` labels are of the rarer class (``minority``): one
    positive would decide a precision-recall comparison. A metric that cannot be computed on these labels is
    INCONCLUSIVE (``on_error(metric, error)`` is told), never a crash of the look.
    """
    y = np.asarray(y, dtype=np.float64)
    minority = int(min((y == 1).sum(), (y != 1).sum())) if y.size else 0
    comparable = minority >= MIN_PER_CLASS
    results = []
    for metric, margin in guardrails.items():
        comparison = None
        if comparable and y.size >= min_labels:
            try:
                comparison = compare_arms(metric, y, champion, challenger, confidence=confidence, seed=seed)
            except ValueError as error:
                if on_error is not None:
                    on_error(metric, error)
        if comparison is None:
            results.append({"metric": metric, "margin": margin, "verdict": INCONCLUSIVE})
        else:
            results.append({"metric": metric, "margin": margin, "confidence": confidence, **comparison,
                            "verdict": guardrail_verdict(comparison, margin)})
    return results, (int(y.size) if comparable else 0), minority


@dataclass
class Analysis:
    """The evidence of one look (what :func:`decide` needs)."""

    labelled: int                                   # entities with a matured label scored by both arms
    srm: dict[str, Any]
    guardrails: list[dict[str, Any]] = field(default_factory=list)  # metric, margin, comparison..., verdict
    unlabelled: int = 0                             # matured predictions without a label (reported)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class CanaryState:
    """What :func:`decide` needs to know of the deployment row and the config."""

    phase: str | None
    step: int
    steps: tuple[float, ...]
    failed_looks: int
    started_at: datetime | None
    now: datetime
    min_labels: int
    failure_limit: int
    max_duration: timedelta
    early_promotion: bool = False
    on_timeout: str = ASK  # ask | rollback | promote
    srm_p_value: float = 0.001
    row_weight: float | None = None  # the weight the deployment row is at (None: trust ``steps``)

    @property
    def weight(self) -> float:
        return self.steps[self.step]

    @property
    def steps_changed(self) -> bool:
        """The config's steps no longer match the running canary (edited mid-canary)."""
        if self.step >= len(self.steps):
            return True
        return self.row_weight is not None and abs(self.steps[self.step] - self.row_weight) > 1e-9

    @property
    def last_step(self) -> bool:
        return self.step >= len(self.steps) - 1


@dataclass(frozen=True)
class Decision:
    action: str
    reason: str
    failed_look: bool = False
    next_step: int | None = None
    next_weight: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _describe(item: dict[str, Any]) -> str:
    return (f"{item['metric']} {item['challenger']:.4f} vs {item['champion']:.4f} (improvement "
            f"{item['improvement']:+.4f}, {item.get('confidence', 0.95):.0%} CI [{item['ci_low']:+.4f}, "
            f"{item['ci_high']:+.4f}], margin -{item['margin']}): {item['verdict']}")


def decide(state: CanaryState, analysis: Analysis | None) -> Decision:
    """The action of one look, with a plain-language reason that carries the numbers behind it.

    In order: no active canary -> hold (nothing to do); sample-ratio mismatch -> abort; a guardrail clearly worse
    -> a failed look, rollback at ``failure_limit`` failed looks; too few labels -> hold (saying how many are
    missing); every guardrail non-inferior -> advance, or promote after the last step (or early, when enabled and
    every guardrail is superior by its margin); still inconclusive past ``max_duration`` -> ``on_timeout``
    (ask a human, rollback or promote); otherwise hold.
    """
    if state.phase not in ACTIVE_PHASES:
        return Decision(HOLD, f"no canary is running (phase {state.phase or 'none'}): nothing to decide")
    if state.steps_changed:
        weight = f"{state.row_weight:.0%}" if state.row_weight is not None else "unknown"
        return Decision(HOLD, f"canary.steps changed while this canary runs (it is at step {state.step + 1}, weight "
                              f"{weight}; the config now lists {list(state.steps)}): looks hold until the steps are "
                              "restored or the canary is ended by hand (airflow-mlops rollback)")
    if analysis is None:
        return Decision(HOLD, "no analysis for this look")
    srm = analysis.srm
    if srm.get("p_value", 1.0) < state.srm_p_value:
        total = srm["champion_published"] + srm["challenger_published"]
        return Decision(ABORT, f"sample ratio mismatch: the challenger's score was published for "
                               f"{srm['challenger_published']} of {total} entities ({srm['observed_share']:.2%}) at "
                               f"weight {state.weight:.0%} (chi-square p = {srm['p_value']:.2g} < "
                               f"{state.srm_p_value}); the split is broken, results cannot be trusted")
    elapsed = state.now - state.started_at if state.started_at else timedelta(0)
    timed_out = elapsed > state.max_duration
    failed = [g for g in analysis.guardrails if g["verdict"] == FAIL]
    if failed and analysis.labelled >= 1:
        looks = state.failed_looks + 1
        text = "; ".join(_describe(g) for g in failed)
        if looks >= state.failure_limit:
            return Decision(ROLLBACK, f"guardrail failed on {looks} look(s), failure_limit {state.failure_limit}: "
                                      f"{text}", failed_look=True)
        return Decision(HOLD, f"failed look {looks} of {state.failure_limit} allowed before rollback: {text}",
                        failed_look=True)
    if analysis.labelled < state.min_labels:
        missing = state.min_labels - analysis.labelled
        reason = (f"{analysis.labelled} of {state.min_labels} matured labels at step {state.step + 1} "
                  f"(weight {state.weight:.0%}): {missing} more needed")
        if timed_out:
            return _timeout(state, elapsed, reason)
        return Decision(HOLD, reason)
    verdicts = {g["verdict"] for g in analysis.guardrails}
    summary = "; ".join(_describe(g) for g in analysis.guardrails) or "no guardrails configured"
    if verdicts <= {PASS}:
        superior = analysis.guardrails and all(g["ci_low"] > g["margin"] for g in analysis.guardrails)
        if state.early_promotion and superior and not state.last_step:
            return Decision(PROMOTE, f"clearly superior at step {state.step + 1} (every guardrail's lower bound "
                                     f"beats its margin, {analysis.labelled} labels), early promotion: {summary}")
        if state.last_step:
            return Decision(PROMOTE, f"last step ({state.weight:.0%}) passed with {analysis.labelled} labels: "
                                     f"{summary}")
        nxt = state.step + 1
        return Decision(ADVANCE, f"step {state.step + 1} ({state.weight:.0%}) passed with {analysis.labelled} "
                                 f"labels, advancing to {state.steps[nxt]:.0%}: {summary}",
                        next_step=nxt, next_weight=state.steps[nxt])
    if timed_out:
        return _timeout(state, elapsed, f"still inconclusive: {summary}")
    return Decision(HOLD, f"inconclusive with {analysis.labelled} labels, collecting more: {summary}")


def answered(action: str, reason: str, chosen: list[str] | None) -> tuple[str, str]:
    """The action after a human's answer to ``ask``: Promote promotes; anything else (Rollback, the timeout's
    default, no answer) rolls back. Other actions pass through."""
    if action != ASK:
        return action, reason
    if chosen == ["Promote"]:
        return PROMOTE, f"promoted by a human: {reason}"
    return ROLLBACK, f"rolled back: the question was answered {chosen or 'by nobody'}; {reason}"


def _timeout(state: CanaryState, elapsed: timedelta, reason: str) -> Decision:
    action = {"ask": ASK, "rollback": ROLLBACK, "promote": PROMOTE}[state.on_timeout]
    return Decision(action, f"running for {elapsed} > max_duration {state.max_duration} "
                            f"(on_timeout: {state.on_timeout}): {reason}")


def auc_variance_per_entity(auc: float, prevalence: float) -> float:
    """Hanley & McNeil (1982): N x Var(AUC) for N labelled entities with this share of positives (large N)."""
    q1, q2 = auc / (2 - auc), 2 * auc**2 / (1 + auc)
    return (prevalence * (q1 - auc**2) + (1 - prevalence) * (q2 - auc**2)) / (prevalence * (1 - prevalence))


def labels_needed(delta_auc: float, *, auc: float = 0.75, prevalence: float = 0.2, correlation: float = 0.7,
                  confidence: float = 0.95, power: float = 0.8) -> int:
    """Labelled entities a paired comparison needs to detect a loss of ``delta_auc`` ROC AUC: a one-sided test at
    ``confidence`` with ``power``, the Hanley & McNeil variance of each AUC, and ``correlation`` between the two
    models' AUC estimates (both score the same entities; 0 would be two separate groups). For docs/canary.md."""
    from scipy.stats import norm

    z = norm.ppf(confidence) + norm.ppf(power)
    variance_of_difference = 2 * auc_variance_per_entity(auc, prevalence) * (1 - correlation)
    return int(math.ceil(variance_of_difference * z**2 / delta_auc**2))
