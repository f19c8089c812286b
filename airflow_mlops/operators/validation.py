"""DataValidationOperator: Great Expectations on the extracted window, with a fail | warn | quarantine policy."""

from __future__ import annotations

from typing import Any

from airflow_mlops.links.mlflow import MLflowReportLink, MLflowRunLink, artifact_url, run_url
from airflow_mlops.operators.base import MLOpsBaseOperator

REPORT_JSON = "validation/report.json"
REPORT_HTML = "validation/report.html"
VALIDATED_ARTIFACT = "data/validated.parquet"


class DataValidationOperator(MLOpsBaseOperator):
    """Validate a data snapshot (the output of ExtractTrainingDataOperator) with the config's expectations.

    * ``fail``: any failed expectation fails the task (after the report is stored and linked).
    * ``warn``: failures are reported and logged; all rows go on.
    * ``quarantine``: rows that failed row-level expectations are written to the quarantine table of the
      data connection (replacing this run's earlier rows, so retries are safe) and the rest go on.
      A failed table-level expectation (row count, ...) cannot be quarantined and fails the task.

    The report (JSON + HTML) is stored in this task's MLflow run and linked from the task.

    :param data: the snapshot pointer returned by the extract task (usually ``extract.output``).
    """

    template_fields = (*MLOpsBaseOperator.template_fields, "data")
    operator_extra_links = (MLflowRunLink(), MLflowReportLink())

    def __init__(self, *, data: Any, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.data = data

    def execute(self, context) -> dict[str, Any]:
        from airflow_mlops.core.reports import validation_report_html
        from airflow_mlops.core.validation import DataValidationFailed, failure_summary, validate_frame
        from airflow_mlops.hooks.mlflow import load_frame, log_frame

        config = self.model_config
        policy = config.validation.policy
        with self.mlflow_hook.session() as client, self.tracked_run(client, context) as (run, _):
            run_id = run.info.run_id
            self.persist_links(context, run=run_url(self.ui_url, run.info.experiment_id, run_id),
                               report=artifact_url(self.ui_url, run_id, REPORT_HTML))
            frame = load_frame(client, self.data["run_id"], self.data["artifact"])
            outcome = validate_frame(frame, config.validation, name=f"{config.model}_window")
            report = outcome.report
            result = dict(self.data, validation_run_id=run_id, validation_success=report["success"],
                          quarantined=0)
            if not report["success"] and policy == "quarantine" and outcome.quarantinable:
                bad = frame.loc[outcome.bad_index]
                report["quarantined_rows"] = int(len(bad))
                self._quarantine(bad, context)
                clean = frame.drop(index=outcome.bad_index)
                log_frame(client, run_id, clean, VALIDATED_ARTIFACT)
                result.update(run_id=run_id, artifact=VALIDATED_ARTIFACT, rows=int(len(clean)),
                              quarantined=int(len(bad)))
            client.log_dict(run_id, report, REPORT_JSON)
            client.log_text(run_id, validation_report_html(report, config.model), REPORT_HTML)
            client.set_tag(run_id, "mlops.validation.success", str(report["success"]).lower())
            client.log_metric(run_id, "failed_expectations", sum(not r["success"] for r in report["results"]))
            if not report["success"]:
                summary = failure_summary(report)
                if policy == "fail" or (policy == "quarantine" and not outcome.quarantinable):
                    self.finish_run(client, run_id, {"success": False, "summary": summary}, status="FAILED")
                    why = "" if policy == "fail" else " (a table-level expectation failed: rows cannot be quarantined)"
                    raise DataValidationFailed(f"data validation failed{why}: {summary}. Report: {REPORT_HTML} "
                                               f"in MLflow run {run_id}", report)
                self.log.warning("Data validation found problems (policy %s): %s", policy, summary)
            self.finish_run(client, run_id, result)
        return result

    def _quarantine(self, bad, context) -> None:
        from datetime import datetime, timezone

        from airflow_mlops.hooks.data import SqlDataHook

        config = self.model_config
        hook = SqlDataHook(data_conn_id=config.data.conn_id)
        rows = bad.assign(_mlops_quarantined_at=datetime.now(timezone.utc).isoformat())
        written = hook.replace_rows(rows, config.quarantine_table, key_column="_mlops_run_key",
                                    key=self.task_key(context))
        self.log.warning("Quarantined %d rows into %s", written, config.quarantine_table)
