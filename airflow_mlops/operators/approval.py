"""GateApprovalOperator: a human decides when the gate is INCONCLUSIVE (``gate.on_inconclusive: approve``).

Built on the standard provider's ApprovalOperator (Airflow 3.1+). It asks only when the gate's decision is
``approve``: a PASS goes through without asking, a rejected challenger skips the promotion. An unanswered question
must not block every later continuous-training run (the DAG runs one at a time): after ``response_timeout``
(``gate.approval_timeout``) the scheduler answers with the default, **Reject**, and the promotion is skipped.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from airflow.providers.standard.operators.hitl import ApprovalOperator

REJECT = "Reject"


class GateApprovalOperator(ApprovalOperator):
    """:param gate_task_id: the evaluation gate's task id. :param response_timeout: how long to wait for an answer
    (default 3 days); then the answer is ``defaults`` (default Reject)."""

    def __init__(self, *, gate_task_id: str = "evaluate_gate", response_timeout: timedelta = timedelta(days=3),
                 defaults: str | list[str] = REJECT, **kwargs: Any) -> None:
        super().__init__(response_timeout=response_timeout, defaults=defaults, **kwargs)
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
