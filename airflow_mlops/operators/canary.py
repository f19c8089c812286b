"""Canary deployment: start it from the CT DAG, analyse each look, decide, apply the decision atomically.

* ``RouteChallengerOperator`` (CT DAG): promote | start the canary | ask for approval, visibly, on the gate's
  decision and ``canary.enabled``.
* ``StartCanaryOperator``: compare-and-set into the deployment state (shadow at the first step), emits an event on
  ``mlops://<model>/canary`` so the canary DAG looks at once.
* ``CanaryAnalysisOperator``: one look: the step's matured labels joined with both arms' scores (paired), the
  sample-ratio-mismatch test of the published split, one non-inferiority comparison per guardrail, the decision
  (:func:`airflow_mlops.core.canary.decide`) with its reason; stored in ``mlops_canary_analysis``.
* ``CanaryApprovalOperator``: a human answers Promote / Rollback when the decision is ``ask`` (times out to Rollback).
* ``CanaryDecisionOperator``: applies the decision to the deployment row the look was taken on (compare-and-set on
  its row version; a concurrent decision wins or loses whole) and reconciles the aliases. ``dry_run`` reports only.
* ``RollbackOperator``: ends a running canary, or else restores the previous champion; the same atomic path as the
  CLI.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from airflow.providers.standard.operators.branch import BaseBranchOperator
from airflow.providers.standard.operators.hitl import HITLOperator

from airflow_mlops.operators.base import MLOpsBaseOperator, task_boundary
from airflow_mlops.task_context import ModelConfigMixin


class RouteChallengerOperator(ModelConfigMixin, BaseBranchOperator):
    """After registration: ``promote`` (gate PASS, no canary, or the first model), ``start_canary`` (gate PASS,
    canary enabled) or ``approve_challenger`` (the gate asks a human). Anything else follows no branch."""

    template_fields = ("config", "gate")
    ui_color = "#f5f5f5"

    def __init__(self, *, config: str | dict, gate: Any, promote_task: str = "promote",
                 canary_task: str | None = None, approval_task: str | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.config = config
        self.gate = gate
        self.promote_task = promote_task
        self.canary_task = canary_task
        self.approval_task = approval_task

    @task_boundary
    def choose_branch(self, context) -> list[str]:
        decision = self.gate.get("decision")
        if decision == "promote":
            # The first model has nothing to be compared with live: it is promoted, not canaried.
            canary = self.canary_task and self.model_config.canary.enabled and self.gate.get("champion_version")
            branch = self.canary_task if canary else self.promote_task
        elif decision == "approve" and self.approval_task:
            # promote waits for the answer (it is downstream of the approval too); Reject skips it
            self.log.info("Gate decision approve: asking a human")
            return [self.approval_task, self.promote_task]
        else:
            branch = None
        self.log.info("Gate decision %s: %s", decision, branch or "nothing to do")
        return [branch] if branch else []


class StartCanaryOperator(MLOpsBaseOperator):
    """Start a canary of the registered challenger (refused, changing nothing, while one runs).

    :param gate: the gate's result (the champion it compared against). :param registration: the register result.
    """

    template_fields = (*MLOpsBaseOperator.template_fields, "gate", "registration")
    ui_color = "#fff8e1"

    def __init__(self, *, gate: Any, registration: Any, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.gate = gate
        self.registration = registration

    @task_boundary
    def execute(self, context) -> dict[str, Any]:
        from airflow_mlops.task_context import actor

        config = self.model_config
        version = str(self.registration["version"])
        self.mlflow_hook.verify_version(config.registered_model_name, version,
                                        allow_pickle=config.training.allow_pickle)
        transition = self.deployments().start_canary(
            challenger=version, expected_champion=self.gate.get("champion_version"), steps=config.canary.steps,
            actor=actor(context), reason="; ".join(self.gate.get("reasons") or []))
        row = transition.deployment
        self.log.info("Canary of %s v%s against v%s: %s at %.0f%%", config.model, row.challenger, row.champion,
                      row.phase, 100 * (row.weight or 0))
        return {"canary_id": row.canary_id, "challenger": row.challenger, "champion": row.champion,
                "phase": row.phase, "weight": row.weight, "started": transition.applied}


def canary_state(config, row, now):
    from datetime import datetime

    from airflow_mlops.core.canary import CanaryState

    started = datetime.fromisoformat(row.canary_started_at) if row.canary_started_at else None
    canary = config.canary
    return CanaryState(phase=row.phase, step=row.step or 0, steps=tuple(canary.steps),
                       failed_looks=row.failed_looks or 0, started_at=started, now=now,
                       min_labels=canary.min_labels_per_step, failure_limit=canary.failure_limit,
                       max_duration=canary.max_duration, early_promotion=canary.early_promotion,
                       on_timeout=canary.on_timeout, srm_p_value=canary.srm_p_value,
                       row_weight=None if row.weight is None else float(row.weight))


class CanaryAnalysisOperator(MLOpsBaseOperator):
    """One look at a running canary: evidence, verdicts, the decision and its reason (stored, not yet applied).

    :param window_end: the look's data time (templated); defaults to the run's data interval end. Predictions
        count once ``label_delay`` has passed since they were scored.
    :return: the decision (``action``, ``reason``), the row version it was taken on, and the evidence.
    """

    template_fields = (*MLOpsBaseOperator.template_fields, "window_end")
    ui_color = "#fff3e0"

    def __init__(self, *, window_end: Any = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.window_end = window_end

    @task_boundary
    def execute(self, context) -> dict[str, Any]:
        from datetime import datetime, timezone

        import numpy as np
        from airflow.sdk.exceptions import AirflowSkipException

        from airflow_mlops.core.canary import (CHALLENGER_ARM, CHAMPION_ARM, MIN_PER_CLASS, Analysis, decide,
                                               judge_guardrails, srm_test)
        from airflow_mlops.hooks.canary import LabelSource, look_evidence, store_analysis
        from airflow_mlops.hooks.data import SqlDataHook
        from airflow_mlops.task_context import resolve_window_end, run_identity

        config = self.model_config
        canary = config.canary
        deployments = self.deployments()
        deployments.reconcile()  # a crash between a decision and its alias move heals here
        row = deployments.current()
        if not row.canary_active:
            raise AirflowSkipException(f"no canary of {config.model} is running (phase {row.phase or 'none'})")
        end = resolve_window_end(self.window_end, context, config.model)
        state = deployments.state
        labels = LabelSource.of(config, SqlDataHook(data_conn_id=config.data.conn_id).database)
        evidence = look_evidence(state, labels, config.model, row.canary_id, row.step, end - canary.label_delay)
        counts, pairs = evidence.published, evidence.pairs
        srm = srm_test(counts[CHAMPION_ARM], counts[CHALLENGER_ARM], float(row.weight or 0.0))
        y = pairs["label"].astype("float64").to_numpy() if len(pairs) else np.array([])
        guardrails, labelled, minority = judge_guardrails(
            y, pairs["champion"], pairs["challenger"], canary.guardrails, min_labels=canary.min_labels_per_step,
            confidence=canary.confidence, seed=config.training.seed,
            on_error=lambda metric, error: self.log.warning("%s cannot be compared on these labels: %s", metric,
                                                            error))
        comparable = labelled > 0
        analysis = Analysis(labelled=labelled, srm=srm,
                            guardrails=[g for g in guardrails if "ci_low" in g], unlabelled=evidence.unlabelled)
        decision = decide(canary_state(config, row, datetime.now(timezone.utc)), analysis)
        reason = decision.reason
        if len(pairs) and not comparable:
            reason += (f" (only {minority} of the {len(pairs)} matured labels are of the rarer class: at least "
                       f"{MIN_PER_CLASS} of each class are needed to compare the models)")
        if analysis.unlabelled:
            reason += (f" ({analysis.unlabelled} matured prediction(s) have no label yet: late outcomes, or "
                       "canary.labels does not match the logged entity ids)")
        look = "/".join(run_identity(context))
        # One row per guardrail metric (a "-" row when none could be compared), sharing the look's fields.
        shared = {"model": config.model, "canary_id": row.canary_id, "look": look, "step": row.step,
                  "weight": row.weight, "n_labelled": int(len(pairs)), "srm_p_value": srm["p_value"],
                  "decision": decision.action, "reason": reason[:4000],
                  "created_at": datetime.now(timezone.utc).isoformat()}
        stored = [{**shared, "metric": g["metric"], "champion_value": g.get("champion"),
                   "challenger_value": g.get("challenger"), "estimate": g.get("improvement"),
                   "ci_low": g.get("ci_low"), "ci_high": g.get("ci_high"), "margin": g["margin"],
                   "method": g.get("method"), "n_champion_published": counts[CHAMPION_ARM],
                   "n_challenger_published": counts[CHALLENGER_ARM], "verdict": g["verdict"]}
                  for g in guardrails] or [{**shared, "metric": "-"}]
        store_analysis(state, stored, model=config.model, canary_id=row.canary_id, look=look)
        self.log.info("Canary look of %s: %s: %s", config.model, decision.action, reason)
        return {"action": decision.action, "reason": reason, "row_version": row.row_version,
                "canary_id": row.canary_id, "step": row.step, "weight": row.weight, "failed_look": decision.failed_look,
                "next_step": decision.next_step, "next_weight": decision.next_weight, "labelled": int(len(pairs)),
                "unlabelled": analysis.unlabelled, "srm": srm, "guardrails": guardrails, "champion": row.champion,
                "challenger": row.challenger, "dry_run": canary.dry_run}


class CanaryApprovalOperator(ModelConfigMixin, HITLOperator):
    """Ask a human (Promote / Rollback) when a look decided ``ask``; any other decision goes through without
    asking. Unanswered after ``canary.approval_timeout``, the answer is Rollback."""

    PROMOTE, ROLLBACK = "Promote", "Rollback"

    def __init__(self, *, config: str | dict, analysis_task_id: str = "analyse", **kwargs: Any) -> None:
        kwargs.setdefault("subject", "Promote the canary's challenger?")
        kwargs.setdefault("body", "The canary is still inconclusive past canary.max_duration: "
                                  "{{ ti.xcom_pull(task_ids='" + analysis_task_id + "')['reason'] }}")
        kwargs.setdefault("response_timeout", timedelta(days=3))
        super().__init__(options=[self.PROMOTE, self.ROLLBACK], defaults=[self.ROLLBACK], **kwargs)
        self.config = config
        self.analysis_task_id = analysis_task_id

    def execute(self, context):
        analysis = context["ti"].xcom_pull(task_ids=self.analysis_task_id) or {}
        if analysis.get("action") != "ask":
            return {"chosen_options": [], "auto": True}
        return super().execute(context)


class CanaryDecisionOperator(MLOpsBaseOperator):
    """Apply a look's decision (or a human's answer to ``ask``) to the deployment it was taken on.

    :param analysis: the analysis result. :param approval: the approval task's result (for ``ask``).
    """

    template_fields = (*MLOpsBaseOperator.template_fields, "analysis", "approval")
    ui_color = "#ffe0b2"

    def __init__(self, *, analysis: Any, approval: Any = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.analysis = analysis
        self.approval = approval

    @task_boundary
    def execute(self, context) -> dict[str, Any]:
        from airflow.sdk.exceptions import AirflowSkipException

        from airflow_mlops.task_context import actor

        analysis = self.analysis
        if not analysis:
            raise AirflowSkipException("no analysis: no canary is running")
        from airflow_mlops.core.canary import answered

        chosen = (self.approval or {}).get("chosen_options") if isinstance(self.approval, dict) else None
        action, reason = answered(analysis["action"], analysis["reason"], chosen)
        if analysis.get("dry_run"):
            self.log.warning("dry_run: the decision %s is reported, not applied: %s", action, reason)
            return {"action": action, "applied": False, "dry_run": True, "reason": reason}
        if action == "promote":
            self.mlflow_hook.verify_version(self.model_config.registered_model_name, analysis["challenger"],
                                            allow_pickle=self.model_config.training.allow_pickle)
        transition = self.deployments().apply_canary_decision(
            row_version=analysis["row_version"], action=action, reason=reason, actor=actor(context),
            next_step=analysis.get("next_step"), next_weight=analysis.get("next_weight"),
            failed_look=analysis.get("failed_look", False))
        row = transition.deployment
        return {"action": action, "applied": transition.applied, "phase": row.phase, "champion": row.champion,
                "challenger": row.challenger, "step": row.step, "weight": row.weight, "reason": reason}


class RollbackOperator(MLOpsBaseOperator):
    """By hand, through the atomic path: end a running canary (the champion keeps serving), or else restore the
    previous champion.

    :param reason: why (templated; the manual DAG passes its ``reason`` param)."""

    template_fields = (*MLOpsBaseOperator.template_fields, "reason")
    ui_color = "#ffcdd2"

    def __init__(self, *, reason: str = "", **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.reason = reason

    @task_boundary
    def execute(self, context) -> dict[str, Any]:
        from airflow_mlops.task_context import actor

        transition, alias_error = self.deployments().rollback(actor=actor(context),
                                                              reason=self.reason or "manual rollback")
        row = transition.deployment
        self.log.info("Rolled %s back: champion v%s, previous v%s, phase %s", self.model_config.model, row.champion,
                      row.previous_champion, row.phase)
        if alias_error:  # not a failure: a retry would roll forward again
            self.log.warning("The deployment state changed, but the MLflow aliases were not moved (%s); they follow "
                             "at the next task of this model", alias_error)
        return {"champion": row.champion, "previous_champion": row.previous_champion, "phase": row.phase,
                "aliases_moved": alias_error is None}


__all__ = ["CanaryAnalysisOperator", "CanaryApprovalOperator", "CanaryDecisionOperator", "RollbackOperator",
           "RouteChallengerOperator", "StartCanaryOperator"]
