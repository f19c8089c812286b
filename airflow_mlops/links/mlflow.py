"""Extra links to MLflow, persisted by the operators as one small XCom (``mlops_links``).

``get_link`` runs on the worker when the task ends and must stay cheap and never raise: it only reads that
XCom and returns ``""`` when the task did not get as far as creating the object.
"""

from __future__ import annotations

from typing import ClassVar

from airflow.sdk import BaseOperatorLink

LINKS_XCOM_KEY = "mlops_links"


def run_url(ui_url: str | None, experiment_id: str, run_id: str) -> str:
    return f"{ui_url.rstrip('/')}/#/experiments/{experiment_id}/runs/{run_id}" if ui_url else ""


def model_version_url(ui_url: str | None, name: str, version: str) -> str:
    return f"{ui_url.rstrip('/')}/#/models/{name}/versions/{version}" if ui_url else ""


def artifact_url(ui_url: str | None, run_id: str, path: str) -> str:
    # The tracking server serves an artifact's raw bytes here, so an HTML report opens as a page.
    return f"{ui_url.rstrip('/')}/get-artifact?path={path}&run_uuid={run_id}" if ui_url else ""


class _MLOpsLink(BaseOperatorLink):
    link_key: ClassVar[str] = ""

    def get_link(self, operator, *, ti_key) -> str:
        try:
            from airflow.sdk.execution_time.xcom import XCom

            links = XCom.get_value(ti_key=ti_key, key=LINKS_XCOM_KEY) or {}
            return str(links.get(self.link_key, "") or "")
        except Exception:  # a link must never fail a task
            return ""


class MLflowRunLink(_MLOpsLink):
    name = "MLflow run"
    link_key = "run"


class MLflowModelVersionLink(_MLOpsLink):
    name = "Model version"
    link_key = "model_version"


class MLflowReportLink(_MLOpsLink):
    name = "Report"
    link_key = "report"
