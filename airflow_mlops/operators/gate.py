"""EvaluationGateOperator: champion vs challenger on the same out-of-time holdout."""

from __future__ import annotations

from typing import Any

from airflow_mlops.links.mlflow import MLflowReportLink, MLflowRunLink, artifact_url, run_url
from airflow_mlops.operators.base import MLOpsBaseOperator

GATE_JSON = "gate/report.json"
GATE_HTML = "gate/report.html"


def decision_for(verdict: str, on_inconclusive: str) -> str:
    """What the pipeline does next: ``promote``, ``reject`` or ``approve`` (ask a human)."""
    if verdict == "PASS":
        return "promote"
    if verdict == "INCONCLUSIVE":
        return {"fail": "reject", "promote": "promote", "approve": "approve"}[on_inconclusive]
    return "reject"


class EvaluationGateOperator(MLOpsBaseOperator):
    """Score the challenger (and the current champion, if any) on the holdout and give a verdict.

    Minimums/maximums, a paired test of the primary metric (DeLong for ROC AUC, paired bootstrap otherwise)
    against the non-inferiority margin, and per-slice checks. The report (JSON + HTML) is stored in the
    challenger's MLflow run and linked from the task. The first model is judged on the minimums only.
    The task succeeds whatever the verdict; ``decision`` in its result steers registration and promotion.

    :param training: the result of the train task (usually ``train.output``).
    """

    template_fields = (*MLOpsBaseOperator.template_fields, "training")
    operator_extra_links = (MLflowRunLink(), MLflowReportLink())
    ui_color = "#e6f0d8"

    def __init__(self, *, training: Any, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.training = training

    def execute(self, context) -> dict[str, Any]:
        from airflow_mlops.core.gate import evaluate_gate
        from airflow_mlops.core.reports import gate_report_html
        from airflow_mlops.core.training import score
        from airflow_mlops.hooks.mlflow import alias_version, load_frame, load_sklearn_model
        from airflow_mlops.operators.training import split_window

        config = self.model_config
        run_id = self.training["run_id"]
        data_pointer = self.training["data"]
        name = config.registered_model_name
        with self.mlflow_hook.session() as client:
            run = client.get_run(run_id)
            self.persist_links(context, run=run_url(self.ui_url, run.info.experiment_id, run_id),
                               report=artifact_url(self.ui_url, run_id, GATE_HTML))
            frame = load_frame(client, data_pointer["run_id"], data_pointer["artifact"])
            _, holdout = split_window(frame, data_pointer, config.data.timestamp_column)
            labels = holdout[config.data.target].to_numpy()
            challenger = score(load_sklearn_model(self.training["model_uri"]), holdout, config)

            champion_version = alias_version(client, name, "champion")
            champion_scores, note = None, None
            if champion_version is not None:
                try:
                    champion_model = load_sklearn_model(f"models:/{name}/{champion_version}")
                    champion_scores = score(champion_model, holdout, config)
                except Exception as error:  # e.g. the feature set changed since the champion was trained
                    note = f"champion v{champion_version} cannot score this holdout ({error}); minimums only"
                    self.log.warning(note)
            slices = {column: holdout[column].to_numpy() for column in config.gate.slices}
            report = evaluate_gate(config.gate, labels, challenger, champion_scores, slices=slices,
                                   seed=config.training.seed)
            report.champion_version = champion_version
            report.challenger_run_id = run_id
            if note:
                report.reasons.append(note)
            decision = decision_for(report.verdict, config.gate.on_inconclusive)
            payload = dict(report.to_dict(), decision=decision)
            client.log_dict(run_id, payload, GATE_JSON)
            client.log_text(run_id, gate_report_html(payload, config.model), GATE_HTML)
            client.set_tag(run_id, "mlops.gate.verdict", report.verdict)
            client.set_tag(run_id, "mlops.gate.decision", decision)
            client.set_tag(run_id, "mlops.gate.champion_version", champion_version or "")
        self.log.info("Gate verdict %s (decision: %s): %s", report.verdict, decision, "; ".join(report.reasons))
        return {"verdict": report.verdict, "decision": decision, "champion_version": champion_version,
                "challenger_run_id": run_id, "model_uri": self.training["model_uri"], "report": GATE_JSON,
                "metric": config.gate.metric, "challenger_metric": report.challenger_metrics[config.gate.metric],
                "champion_metric": (report.champion_metrics or {}).get(config.gate.metric),
                "data_fingerprint": data_pointer["fingerprint"]}
