"""DataValidationOperator: Great Expectations on the extracted window, with a fail | warn | quarantine policy."""

from __future__ import annotations

from typing import Any

from airflow_mlops.core import names
from airflow_mlops.links.mlflow import MLflowReportLink, MLflowRunLink, artifact_url, run_url
from airflow_mlops.operators.base import MLOpsBaseOperator, task_boundary

REPORT_JSON, REPORT_HTML, VALIDATED_ARTIFACT = names.VALIDATION_JSON, names.VALIDATION_HTML, names.VALIDATED_ARTIFACT


class DataValidationOperator(MLOpsBaseOperator):
    """Validate a data snapshot (the output of ExtractTrainingDataOperator) with the config's expectations.

    * ``fail``: any failed expectation fails the task (after the report is stored and linked), without retrying.
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

    @task_boundary
    def execute(self, context) -> dict[str, Any]:
        from airflow_mlops.core.reports import validation_report_html
        from airflow_mlops.core.validation import DataValidationFailed, failure_summary, validate_frame

        config = self.model_config
        policy = config.validation.policy
        hook = self.mlflow_hook
        with self.tracked_run(context) as (run, _):
            run_id = run.info.run_id
            self.persist_links(context, run=run_url(self.ui_url, run.info.experiment_id, run_id),
                               report=artifact_url(self.ui_url, run_id, REPORT_HTML))
            frame = hook.load_frame(self.data["run_id"], self.data["artifact"])
            outcome = validate_frame(frame, config.validation, name=f"{config.model}_window")
            report = outcome.report
            report["rejected_at_extract"] = int(self.data.get("rejected", 0))
            result = dict(self.data, validation_run_id=run_id, validation_success=report["success"],
                          quarantined=0)
            if not report["success"] and policy == "quarantine" and outcome.quarantinable:
                bad = frame.loc[outcome.bad_index]
                report["quarantined_rows"] = int(len(bad))
                self._quarantine(bad, report, context)
                clean = frame.drop(index=outcome.bad_index)
                hook.log_frame(run_id, clean, VALIDATED_ARTIFACT)
                result.update(run_id=run_id, artifact=VALIDATED_ARTIFACT, rows=int(len(clean)),
                              quarantined=int(len(bad)))
            hook.log_json(run_id, report, REPORT_JSON)
            hook.log_text(run_id, validation_report_html(report, config.model), REPORT_HTML)
            with hook.session() as client:
                client.set_tag(run_id, names.VALIDATION_SUCCESS, str(report["success"]).lower())
                client.log_metric(run_id, "failed_expectations", sum(not r["success"] for r in report["results"]))
            if not report["success"]:
                summary = failure_summary(report)
                if policy == "fail" or (policy == "quarantine" and not outcome.quarantinable):
                    self.finish_run(run_id, {"success": False, "summary": summary}, status="FAILED")
                    why = "" if policy == "fail" else " (a table-level expectation failed: rows cannot be quarantined)"
                    raise DataValidationFailed(f"data validation failed{why}: {summary}. Report: {REPORT_HTML} "
                                               f"in MLflow run {run_id}", report)
                self.log.warning("Data validation found problems (policy %s): %s", policy, summary)
            self.finish_run(run_id, result)
        return result

    def _quarantine(self, bad, report, context) -> None:
        from airflow_mlops.core.validation import failure_summary
        from airflow_mlops.hooks.data import SqlDataHook
        from airflow_mlops.quarantine import quarantine_rows

        config = self.model_config
        database = SqlDataHook(data_conn_id=config.data.conn_id).database
        written = quarantine_rows(database, config.quarantine_table, bad, key=self.task_key(context),
                                  reason=f"failed expectations: {failure_summary(report)}"[:2000])
        self.log.warning("Quarantined %d rows into %s", written, config.quarantine_table)
