"""The champion/challenger evaluation gate: a verdict from minimums, a paired test and slice checks.

PASS         all minimums hold, lower bound of the improvement > -margin, and every slice is non-inferior.
FAIL         a minimum fails, or the upper bound of the improvement < -margin (overall or on a slice).
INCONCLUSIVE anything else: the interval straddles -margin (too little data to tell).
The first model (no champion) is judged on the minimums only.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from airflow_mlops.core.config import GateConfig
from airflow_mlops.core.stats import PairedComparison, compare, compute_metrics

PASS, FAIL, INCONCLUSIVE = "PASS", "FAIL", "INCONCLUSIVE"


@dataclass
class GateReport:
    verdict: str
    reasons: list[str]
    metric: str
    margin: float
    confidence: float
    n_holdout: int
    challenger_metrics: dict[str, float]
    champion_metrics: dict[str, float] | None = None
    comparison: dict[str, Any] | None = None
    minimums: list[dict[str, Any]] = field(default_factory=list)
    slices: list[dict[str, Any]] = field(default_factory=list)
    champion_version: str | None = None
    challenger_run_id: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {key: value for key, value in self.__dict__.items()}


def _judge(comparison: PairedComparison, margin: float) -> str:
    if comparison.ci_low > -margin:
        return PASS
    if comparison.ci_high < -margin:
        return FAIL
    return INCONCLUSIVE


def _check_limits(config: GateConfig, metrics: dict[str, float]) -> list[dict[str, Any]]:
    checks = []
    for name, limit in config.minimum.items():
        value = metrics[name]
        checks.append({"metric": name, "kind": "minimum", "limit": limit, "value": value,
                       "ok": bool(np.isfinite(value) and value >= limit)})
    for name, limit in config.maximum.items():
        value = metrics[name]
        checks.append({"metric": name, "kind": "maximum", "limit": limit, "value": value,
                       "ok": bool(np.isfinite(value) and value <= limit)})
    return checks


def _slice_checks(config: GateConfig, y, champion, challenger, slices: dict[str, np.ndarray]) -> list[dict]:
    results = []
    for column, values in slices.items():
        levels, codes = np.unique(np.asarray(values).astype(str), return_inverse=True)
        for code, level in enumerate(levels):
            mask = codes == code
            rows, labels = int(mask.sum()), y[mask]
            entry: dict[str, Any] = {"column": column, "value": str(level), "n": rows}
            if rows < config.min_slice_rows or labels.min() == labels.max():
                entry.update(status="SKIPPED", reason=f"fewer than {config.min_slice_rows} rows or one class only")
            else:
                comparison = compare(config.metric, labels, champion[mask], challenger[mask],
                                     confidence=config.confidence, samples=config.bootstrap_samples)
                entry.update(comparison.to_dict(), status=_judge(comparison, config.non_inferiority_margin))
            results.append(entry)
    return results


def evaluate_gate(config: GateConfig, y, challenger, champion=None, *, slices: dict[str, Any] | None = None,
                  seed: int = 0) -> GateReport:
    """Judge the challenger (and the champion, if any) scored on the same holdout rows."""
    y = np.asarray(y, dtype=np.int8)
    challenger = np.asarray(challenger, dtype=np.float64)
    if y.size == 0:
        raise ValueError("the holdout is empty: nothing to evaluate the challenger on")
    if y.min() == y.max():
        raise ValueError("the holdout holds one class only: ROC AUC and the gate are undefined")
    metrics_needed = sorted({config.metric, *config.minimum, *config.maximum})
    challenger_metrics = compute_metrics(y, challenger, metrics_needed)
    report = GateReport(verdict=PASS, reasons=[], metric=config.metric, margin=config.non_inferiority_margin,
                        confidence=config.confidence, n_holdout=int(y.size),
                        challenger_metrics=challenger_metrics)
    report.minimums = _check_limits(config, challenger_metrics)
    failed = [c for c in report.minimums if not c["ok"]]
    for check in failed:
        word = "below the minimum" if check["kind"] == "minimum" else "above the maximum"
        report.reasons.append(f"{check['metric']} = {check['value']:.4f} is {word} {check['limit']}")

    if champion is None:
        report.verdict = FAIL if failed else PASS
        if not failed:
            report.reasons.append("first model: judged on the minimums only")
        return report

    champion = np.asarray(champion, dtype=np.float64)
    if champion.shape != challenger.shape:
        raise ValueError("champion and challenger must be scored on the same holdout rows")
    report.champion_metrics = compute_metrics(y, champion, metrics_needed)
    comparison = compare(config.metric, y, champion, challenger, confidence=config.confidence,
                         samples=config.bootstrap_samples, seed=seed)
    report.comparison = comparison.to_dict()
    overall = _judge(comparison, config.non_inferiority_margin)
    bound = f"[{comparison.ci_low:+.4f}, {comparison.ci_high:+.4f}]"
    report.reasons.append(
        f"{config.metric} improvement {comparison.improvement:+.4f}, {config.confidence:.0%} CI {bound} "
        f"({comparison.method}) vs margin -{config.non_inferiority_margin}: {overall}")

    report.slices = _slice_checks(config, y, champion, challenger, slices or {})
    slice_states = {s["status"] for s in report.slices}
    for entry in report.slices:
        if entry["status"] in (FAIL, INCONCLUSIVE):
            report.reasons.append(f"slice {entry['column']}={entry['value']}: {entry['status']} "
                                  f"(improvement {entry['improvement']:+.4f}, "
                                  f"CI [{entry['ci_low']:+.4f}, {entry['ci_high']:+.4f}])")
    if failed or overall == FAIL or FAIL in slice_states:
        report.verdict = FAIL
    elif overall == INCONCLUSIVE or INCONCLUSIVE in slice_states:
        report.verdict = INCONCLUSIVE
    else:
        report.verdict = PASS
    return report

