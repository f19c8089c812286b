"""Drift monitoring in a DAG of your own: check, then alert or trigger (the bundled drift DAG is built the same way).

Place this file in your DAGs folder next to configs/credit_risk.yaml. Any DAG scheduled on the Asset
``mlops://credit_risk/drift`` (the bundled continuous-training DAG is) runs when the event is emitted.
"""

from pathlib import Path

from airflow.sdk import DAG, task

from airflow_mlops.assets import drift_asset
from airflow_mlops.operators.drift import DriftCheckOperator, EmitDriftEventOperator

CONFIG = str(Path(__file__).parent / "configs" / "credit_risk.yaml")
ASSET = drift_asset("credit_risk")

# [START howto_mlops_drift_dag]
with DAG(dag_id="example_mlops_drift", schedule="@daily", catchup=False, tags=["example", "mlops"]) as dag:
    check = DriftCheckOperator(task_id="check_drift", config=CONFIG)

    @task
    def notify(summary: dict) -> str:
        # Your alerting goes here (Slack, e-mail, a ticket); the summary is small and JSON-friendly.
        features = ", ".join(summary["drifted_features"]) or "none"
        return f"{summary['model']}: {summary['status']} (drifted: {features})"

    notify(check.output)
    EmitDriftEventOperator(task_id="emit_drift_event", config=CONFIG, check=check.output,
                           inlets=[ASSET], outlets=[ASSET])
# [END howto_mlops_drift_dag]
