"""GateApprovalOperator: a human decides when the gate is INCONCLUSIVE (``gate.on_inconclusive: approve``).

Built on the standard provider's ApprovalOperator (Airflow 3.1+). It asks only when the gate's decision is
``approve``: a PASS goes through without asking, a rejected challenger skips the promotion.
"""

from __future__ import annotations

from typing import Any

from airflow.providers.standard.operators.hitl import ApprovalOperator


class GateApprovalOperator(ApprovalOperator):
    def __init__(self, *, gate_task_id: str = "evaluate_gate", **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.gate_task_id = gate_task_id

    def execute(self, context):
        from airflow.sdk.exceptions import AirflowSkipException

        gate = context["ti"].xcom_pull(task_ids=self.gate_task_id) or {}
        decision = gate.get("decision")
        if decision == "promote":
            self.log.info("Gate verdict %s: no approval needed", gate.get("verdict"))
            return {"chosen_options": [self.APPROVE], "auto": True}
        if decision != "approve":
            raise AirflowSkipException(f"gate decision {decision!r}: nothing to approve")
        return super().execute(context)
