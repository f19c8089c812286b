"""EvaluationGateOperator: champion vs challenger on the same out-of-time holdout. Fails closed."""

from __future__ import annotations

from typing import Any

from airflow_mlops.core import names
from airflow_mlops.links.mlflow import MLflowReportLink, MLflowRunLink, artifact_url, run_url
from airflow_mlops.operators.base import MLOpsBaseOperator, task_boundary

GATE_JSON, GATE_HTML = names.GATE_JSON, names.GATE_HTML
CHAMPION_NONE, CHAMPION_EVALUATED, CHAMPION_UNAVAILABLE = "none", "evaluated", "unavailable"


def decision_for(verdict: str, on_inconclusive: str, champion_status: str = CHAMPION_EVALUATED) -> str:
    """What the pipeline does next: ``promote``, ``reject`` or ``approve`` (ask a human).

    A champion that exists but could not be evaluated is never replaced automatically, whatever
    ``on_inconclusive`` says: that setting is about statistics that could not decide, not about a comparison
    that did not happen. Then a human may approve (``approve``) or nothing changes (``reject``).
    """
    if verdict == "PASS":
        return "promote"
    if verdict == "INCONCLUSIVE":
        if champion_status == CHAMPION_UNAVAILABLE:
            return "approve" if on_inconclusive == "approve" else "reject"
        return {"fail": "reject", "promote": "promote", "approve": "approve"}[on_inconclusive]
    return "reject"


class EvaluationGateOperator(MLOpsBaseOperator):
    """Score the challenger and the current champion on the holdout and give a verdict.

    Minimums/maximums, a paired test of the primary metric (DeLong for ROC AUC, paired bootstrap otherwise)
    against the non-inferiority margin, and per-slice checks. The report (JSON + HTML) is stored in the
    challenger's MLflow run and linked from the task. The task succeeds whatever the verdict; ``decision`` in its
    result steers registration and promotion.

    The champion comes from the deployment state (the source of truth; its MLflow aliases are reconciled from it
    first). Fail closed: "first model, minimums only" only when there is no champion. A champion that exists but
    cannot be loaded or scored (a corrupted or tampered artifact, a changed feature set) makes the verdict
    INCONCLUSIVE with ``champion_status: unavailable`` and a reason; an unreachable MLflow fails the task so it is
    retried. Every model is verified (sha256, flavour, format) before it is loaded.

    :param training: the result of the train task (usually ``train.output``).
    """

    template_fields = (*MLOpsBaseOperator.template_fields, "training")
    operator_extra_links = (MLflowRunLink(), MLflowReportLink())
    ui_color = "#e6f0d8"

    def __init__(self, *, training: Any, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.training = training

    @task_boundary
    def execute(self, context) -> dict[str, Any]:
        from airflow_mlops.core.gate import FAIL, INCONCLUSIVE, evaluate_gate
        from airflow_mlops.core.reports import gate_report_html
        from airflow_mlops.core.training import score
        from airflow_mlops.operators.training import split_window
        from airflow_mlops.task_context import actor

        config = self.model_config
        hook = self.mlflow_hook
        run_id = self.training["run_id"]
        data_pointer = self.training["data"]
        name = config.registered_model_name
        allow_pickle = config.training.allow_pickle

        deployments = self.deployments()
        deployments.current(actor=actor(context))
        moved = deployments.reconcile()
        if moved:
            self.log.warning("MLflow aliases of %s did not match the deployment state; reconciled: %s", name, moved)
        champion_version = deployments.current().champion

        with hook.session() as client:
            run = client.get_run(run_id)
        self.persist_links(context, run=run_url(self.ui_url, run.info.experiment_id, run_id),
                           report=artifact_url(self.ui_url, run_id, GATE_HTML))
        frame = hook.load_frame(data_pointer["run_id"], data_pointer["artifact"])
        _, holdout = split_window(frame, data_pointer, config.data.timestamp_column)
        labels = holdout[config.data.target].to_numpy()
        # Our own challenger must load: an integrity failure here fails the task (no retry).
        challenger = score(hook.load_run_model(run_id, allow_pickle=allow_pickle), holdout, config)

        champion_scores, champion_status, champion_error = None, CHAMPION_NONE, None
        if champion_version is not None:
            try:
                champion_model = hook.load_version_model(name, champion_version, allow_pickle=allow_pickle)
                champion_scores = score(champion_model, holdout, config)
                champion_status = CHAMPION_EVALUATED
            except Exception as error:
                from airflow_mlops.core.errors import is_transient

                if is_transient(error):
                    raise  # the registry or artifact store is unreachable: retry, do not judge without it
                champion_status = CHAMPION_UNAVAILABLE
                champion_error = f"{type(error).__name__}: {' '.join(str(error).split())}"[:1000]
                self.log.error("Champion v%s of %s cannot be evaluated: %s", champion_version, name, champion_error)
        slices = {column: holdout[column].to_numpy() for column in config.gate.slices}
        report = evaluate_gate(config.gate, labels, challenger, champion_scores, slices=slices,
                               seed=config.training.seed)
        report.champion_version = champion_version
        report.challenger_run_id = run_id
        if champion_status == CHAMPION_UNAVAILABLE:
            if report.verdict != FAIL:  # a failed minimum still fails
                report.verdict = INCONCLUSIVE
            report.reasons = [r for r in report.reasons if not r.startswith("first model")]
            report.reasons.append(f"champion v{champion_version} exists but could not be evaluated "
                                  f"({champion_error}): the challenger is not compared, so it cannot replace it "
                                  "automatically")
        decision = decision_for(report.verdict, config.gate.on_inconclusive, champion_status)
        payload = dict(report.to_dict(), decision=decision, champion_status=champion_status,
                       champion_error=champion_error)
        hook.log_json(run_id, payload, GATE_JSON)
        hook.log_text(run_id, gate_report_html(payload, config.model), GATE_HTML)
        with hook.session() as client:
            client.set_tag(run_id, names.GATE_VERDICT, report.verdict)
            client.set_tag(run_id, names.GATE_DECISION, decision)
            client.set_tag(run_id, names.GATE_CHAMPION_VERSION, champion_version or "")
            client.set_tag(run_id, names.GATE_CHAMPION_STATUS, champion_status)
        self.log.info("Gate verdict %s (decision: %s): %s", report.verdict, decision, "; ".join(report.reasons))
        return {"verdict": report.verdict, "decision": decision, "champion_version": champion_version,
                "champion_status": champion_status, "challenger_run_id": run_id, "model_run_id": run_id,
                "model_uri": self.training["model_uri"], "report": GATE_JSON, "metric": config.gate.metric,
                "challenger_metric": report.challenger_metrics[config.gate.metric],
                "champion_metric": (report.champion_metrics or {}).get(config.gate.metric),
                "data_fingerprint": data_pointer["fingerprint"], "data": data_pointer,
                "reasons": report.reasons[:5]}
