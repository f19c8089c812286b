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
            window = self._window_in_database()
            frame = None
            name = f"{config.model}_window"
            if window is None:
                frame = hook.load_frame(self.data["run_id"], self.data["artifact"])
                outcome = validate_frame(frame, config.validation, name=name)
            else:
                outcome = window.validate(config.validation, name=name, rows=self._unchanged_rows(window))
            report = outcome.report
            report["rejected_at_extract"] = int(self.data.get("rejected", 0))
            result = dict(self.data, validation_run_id=run_id, validation_success=report["success"],
                          quarantined=0)
            aside = None
            if not report["success"] and policy == "quarantine":
                aside = self._set_aside(outcome, window, frame, context)
            if aside is not None:
                written, clean = aside
                report["quarantined_rows"] = written
                hook.log_frame(run_id, clean, VALIDATED_ARTIFACT)
                result.update(run_id=run_id, artifact=VALIDATED_ARTIFACT, rows=int(len(clean)), quarantined=written)
            hook.log_json(run_id, report, REPORT_JSON)
            hook.log_text(run_id, validation_report_html(report, config.model), REPORT_HTML)
            with hook.session() as client:
                client.set_tag(run_id, names.VALIDATION_SUCCESS, str(report["success"]).lower())
                client.set_tag(run_id, names.VALIDATION_ENGINE, report["engine"])
                client.log_metric(run_id, "failed_expectations", sum(not r["success"] for r in report["results"]))
            if not report["success"]:
                summary = failure_summary(report)
                if policy == "fail" or (policy == "quarantine" and not outcome.quarantinable):
                    self.finish_run(run_id, {"success": False, "summary": summary}, status="FAILED")
                    why = "" if policy == "fail" else self._why_not_quarantined(report)
                    raise DataValidationFailed(f"data validation failed{why}: {summary}. Report: {REPORT_HTML} "
                                               f"in MLflow run {run_id}", report)
                self.log.warning("Data validation found problems (policy %s): %s", policy, summary)
            self.finish_run(run_id, result)
        return result

    def _set_aside(self, outcome, window, frame, context) -> tuple[int, Any] | None:
        """Quarantine the rows that failed, when every failure is row-level and its rows can be found: (rows
        written, the clean snapshot), else None (and ``outcome.quarantinable`` is False)."""
        config = self.model_config
        report = outcome.report
        if window is not None and outcome.quarantinable:
            checks, missing = window.row_checks(report, config.validation)
            if missing:
                report["not_quarantinable"] = missing
                outcome.quarantinable = False
        if not outcome.quarantinable:
            return None
        if window is None:
            return self._quarantine(frame.loc[outcome.bad_index], report, context), frame.drop(index=outcome.bad_index)
        written = window.quarantine(config.quarantine_table, checks, key=self.task_key(context))
        self.log.warning("Quarantined %d rows into %s (in the database)", written, config.quarantine_table)
        return written, window.read_clean(checks)

    @staticmethod
    def _why_not_quarantined(report: dict[str, Any]) -> str:
        if report.get("not_quarantinable"):
            return (f" (rows cannot be set aside in the database for {report['not_quarantinable']}: set "
                    "validation.engine: pandas to quarantine them from the snapshot)")
        return " (a table-level expectation failed: rows cannot be quarantined)"

    @property
    def data_conn_id(self) -> str:
        """The connection the snapshot was read from (the extract task's, which may override the config's)."""
        return self.data.get("conn_id") or self.model_config.data.conn_id

    def _window_in_database(self):
        """The window as a query in PostgreSQL when expectations should run there (``validation.engine``), else
        None (pandas on the snapshot)."""
        from airflow_mlops.core.errors import ValidationSetupError
        from airflow_mlops.core.validation import unsupported_in_database
        from airflow_mlops.core.windows import TrainingWindows
        from airflow_mlops.hooks.data import SqlDataHook
        from airflow_mlops.hooks.validation_sql import WindowInDatabase

        config = self.model_config
        engine = config.validation.engine
        if engine == "pandas" or not config.validation.expectations:
            return None
        hook = SqlDataHook(data_conn_id=self.data_conn_id)
        if hook.dialect.name != "postgres":
            if engine == "database":
                raise ValidationSetupError(f"validation.engine: database needs the data in PostgreSQL; connection "
                                           f"{self.data_conn_id!r} is {hook.dialect.name}")
            return None
        def in_pandas(why: str) -> None:
            if engine == "database":
                raise ValidationSetupError(f"validation.engine: database, but {why}")
            self.log.info("Validating the snapshot in pandas: %s", why)

        unsupported = unsupported_in_database(config.validation)
        if unsupported:
            return in_pandas(f"Great Expectations computes {unsupported} in pandas only")
        windows = TrainingWindows.from_dict(self.data["windows"])
        window = WindowInDatabase(hook.database, config.data, start=windows.train_start, end=windows.end)
        if window.incompatible:
            return in_pandas(f"numeric column(s) {window.incompatible} are not numbers in the database (they "
                             "compare differently there than in the typed snapshot)")
        return window

    def _unchanged_rows(self, window) -> int:
        """Rows of the window now; they must be those the extract task read, or the report would judge other data
        than the snapshot the model trains on."""
        from airflow_mlops.core.data_checks import DataProblem

        rows = window.count()
        expected = self.data.get("rows")  # the rows the extract task kept (its rejected rows are not in the query)
        if expected is not None and rows != int(expected):
            raise DataProblem([f"the window changed since it was extracted ({expected} rows then, {rows} now, "
                               f"connection {self.data_conn_id!r}): rows were written into the past; rerun the "
                               "DAG run from its extract task"])
        return rows

    def _quarantine(self, bad, report, context) -> int:
        from airflow_mlops.core.validation import failure_summary
        from airflow_mlops.hooks.data import SqlDataHook
        from airflow_mlops.quarantine import quarantine_rows

        config = self.model_config
        database = SqlDataHook(data_conn_id=self.data_conn_id).database
        written = quarantine_rows(database, config.quarantine_table, bad, key=self.task_key(context),
                                  reason=f"failed expectations: {failure_summary(report)}"[:2000])
        self.log.warning("Quarantined %d rows into %s", written, config.quarantine_table)
        return written
