"""The demo's canary chapter: two more models on the same loans, each with a canary.

- ``credit_risk_canary``: its champion was trained before the drift; the challenger, trained on the drifted
  months, is clearly better. It goes through shadow mode and a 50% step to champion.
- ``credit_risk_mislabelled``: a bug in the team's label join flips 40% of the training labels (the holdout is
  clean). A deliberately loose gate lets the challenger through; the canary, judging both models on the real
  outcomes of the same loans, fails it twice and rolls it back.

Each day the day's loans arrive, ``mlops_score__<model>`` scores them with both models (publishing by bucket) and
``mlops_canary__<model>`` looks at the labels that have matured.
"""

from __future__ import annotations

from datetime import date, timedelta

from airflow_mlops.demo.environment import DemoEnvironment, grow_data, write_model
from airflow_mlops.demo.harness import run_dag

GOOD, BAD = "credit_risk_canary", "credit_risk_mislabelled"
# srm_p_value: with 300 loans a day, a correct 50% split falls below the default 0.001 in ~1 look of 430 (the
# salt is random per canary); the demo must tell the same story every time. A broken split is still far below 1e-6.
CANARY = {"canary.enabled": True, "canary.steps": [0.0, 0.5], "canary.min_labels_per_step": 300,
          "canary.label_delay": "1d", "canary.wait_for_labels": "0s", "canary.failure_limit": 2,
          "canary.labels": {"table": "loans"}, "scoring.table": "loans", "canary.srm_p_value": 1e-6}
GOOD_CANARY = {**CANARY, "canary.guardrails": {"roc_auc": 0.02, "log_loss": 0.02}}
# The loose gate (minimum 0.6, margin 0.2) stands for any gate blind spot; the canary is the safety net.
BAD_CANARY = {**CANARY, "canary.guardrails": {"roc_auc": 0.01}, "gate.non_inferiority_margin": 0.2,
              "gate.minimum": {"roc_auc": 0.6}}
MAX_DAYS = 10


def mislabelled_query(before: date) -> str:
    """The buggy label join: 40% of the loans applied before ``before`` get the opposite label."""
    return ("SELECT loan_id, applied_at, income, amount, term, purpose, region, "
            f"CASE WHEN applied_at < '{before.isoformat()}' AND CAST(substr(loan_id, -1) AS INTEGER) < 4 "
            "THEN 1 - defaulted ELSE defaulted END AS defaulted FROM loans")


def deployment(model: str):
    """The model's row in the deployment state (the demo keeps it in the data connection, SQLite)."""
    from airflow_mlops.hooks.data import SqlDataHook
    from airflow_mlops.hooks.state import StateStore

    return StateStore(SqlDataHook(data_conn_id="mlops_data").database).get(model)


def start_canaries(environment: DemoEnvironment, clean_champion: date, drifted_champion: date, challenger: date,
                   steps: list) -> None:
    """Champions for both models, then the CT runs that register the challengers and start the canaries."""
    write_model(environment, GOOD, GOOD_CANARY)
    write_model(environment, BAD, BAD_CANARY)
    steps.append((f"{GOOD}: champion trained before the drift", run_dag(f"mlops_ct__{GOOD}", clean_champion)))
    steps.append((f"{BAD}: champion", run_dag(f"mlops_ct__{BAD}", drifted_champion)))
    steps.append((f"{GOOD}: challenger trained on the drifted months", run_dag(f"mlops_ct__{GOOD}", challenger)))
    write_model(environment, BAD, {**BAD_CANARY, "data.table": None,
                                   "data.query": mislabelled_query(challenger - timedelta(days=14))})
    steps.append((f"{BAD}: challenger trained on 40% flipped labels", run_dag(f"mlops_ct__{BAD}", challenger)))


def run_canaries(environment: DemoEnvironment, start: date, drift_from: date) -> dict[str, list[dict]]:
    """Day by day: the day's loans arrive, each running canary's model scores them, its canary DAG looks."""
    looks: dict[str, list[dict]] = {GOOD: [], BAD: []}
    running = {model for model in looks if deployment(model).canary_active}
    for offset in range(1, MAX_DAYS + 1):
        day = start + timedelta(days=offset)
        grow_data(environment, day, drift_from=drift_from)
        for model in sorted(running):
            score = run_dag(f"mlops_score__{model}", day)
            look = run_dag(f"mlops_canary__{model}", day)
            looks[model].append({"day": day, "score": score["results"].get("score") or {},
                                 "analysis": look["results"].get("analyse") or {},
                                 "applied": look["results"].get("apply_decision") or {}, "state": look["state"]})
            if not deployment(model).canary_active:
                running.discard(model)
        if not running:
            break
    return looks


def canary_summary(looks: dict[str, list[dict]], out) -> None:
    for model, model_looks in looks.items():
        row = deployment(model)
        out(f"- canary of {model}: {len(model_looks)} looks; now phase {row.phase}, champion version "
            f"{row.champion} (previous {row.previous_champion})")
        for look in model_looks:
            analysis, score = look["analysis"], look["score"]
            published = (f"published champion {score.get('champion', 0)} / challenger {score.get('challenger', 0)}"
                         if score else "not scored")
            action = analysis.get("action", "no look")
            out(f"    {look['day']} step {analysis.get('step', 0) + 1} weight {score.get('weight') or 0.0:.0%} "
                f"({published}): {action.upper()} - {analysis.get('reason', '')}")


def canary_outcome_ok(looks: dict[str, list[dict]]) -> bool:
    good, bad = deployment(GOOD), deployment(BAD)
    weights = {look["score"].get("weight") for look in looks[GOOD]}
    return (good.phase == "promoted" and good.champion == "2" and {0.0, 0.5} <= weights
            and bad.phase == "rolled_back" and bad.champion == "1" and bad.challenger is None)
