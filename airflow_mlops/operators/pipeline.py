"""FinishPipelineRunOperator: close the DAG run's parent MLflow run when the DAG run's last task has ended.

Every task's MLflow run is nested under one parent run per DAG run. MLflow cannot know when a DAG run is over, so
without this teardown task the parent stays RUNNING forever. It runs as an Airflow *teardown*: whatever the other
tasks did (failed, skipped), and it does not change the DAG run's own state. The parent ends FAILED when a task of
the DAG run failed (its task ids are tagged), else FINISHED.
"""

from __future__ import annotations

from typing import Any

from airflow_mlops.core import names
from airflow_mlops.operators.base import MLOpsBaseOperator, task_boundary
from airflow_mlops.task_context import pipeline_key, run_identity

FAILED_STATES = {"failed", "upstream_failed"}


class FinishPipelineRunOperator(MLOpsBaseOperator):
    """Mark the parent MLflow run of this DAG run FINISHED or FAILED. Use it as the DAG's teardown:
    ``last_task >> FinishPipelineRunOperator(task_id="finish_pipeline_run", config=...).as_teardown()``."""

    ui_color = "#eeeeee"

    def preflight(self) -> None:  # nothing to check: it only closes what exists
        return None

    @task_boundary
    def execute(self, context) -> dict[str, Any]:
        dag_id, run_id = run_identity(context)
        states = context["ti"].get_task_states(dag_id=dag_id, run_ids=[run_id]).get(run_id, {})
        failed = sorted(task for task, state in states.items()
                        if task != self.task_id and str(state).split(".")[-1].lower() in FAILED_STATES)
        hook = self.mlflow_hook
        experiment = self.experiment_id()
        parents = hook.runs_tagged(experiment, names.PIPELINE_KEY, pipeline_key(context))
        if not parents:
            self.log.info("No MLflow runs were created in this DAG run: nothing to finish")
            return {"status": None, "failed_tasks": failed}
        parent = hook._dedupe_runs(parents).info.run_id
        status = "FAILED" if failed else "FINISHED"
        with hook.session() as client:
            client.set_tag(parent, "mlops.failed_tasks", ",".join(failed))
        hook.finish_run(parent, status=status)
        self.log.info("Parent MLflow run %s: %s%s", parent, status, f" (failed: {', '.join(failed)})" if failed else "")
        return {"status": status, "failed_tasks": failed, "run_id": parent}
