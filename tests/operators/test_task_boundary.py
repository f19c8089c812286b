"""Retries that help, failures that stop; idempotency keys of mapped tasks; promotion only of what was approved."""

from __future__ import annotations

import importlib
import inspect
import pkgutil
import sqlite3
from datetime import timedelta

import pytest

from tests.helpers import FIRST

SECOND = FIRST + timedelta(days=7)


def operator_classes():
    import airflow_mlops.operators as package
    import airflow_mlops.sensors as sensors
    from airflow.sdk import BaseOperator

    found = []
    for pkg in (package, sensors):
        for module in pkgutil.iter_modules(pkg.__path__):
            loaded = importlib.import_module(f"{pkg.__name__}.{module.name}")
            for _, cls in inspect.getmembers(loaded, inspect.isclass):
                if (issubclass(cls, BaseOperator) and cls.__module__ == loaded.__name__
                        and not cls.__name__.startswith("_")):
                    found.append(cls)
    return found


def test_every_operator_entry_point_decides_about_retries():
    from airflow.providers.standard.operators.hitl import HITLOperator

    # Human-in-the-loop operators defer into Airflow's own HITL flow; their execute only decides whether to ask.
    classes = [cls for cls in operator_classes() if not issubclass(cls, HITLOperator)]
    assert len(classes) >= 10
    for cls in classes:
        for name in ("execute", "execute_complete", "poke"):
            method = getattr(cls, name, None)
            if method is not None and name in cls.__dict__:
                assert getattr(inspect.unwrap(method, stop=lambda f: hasattr(f, "__mlops_task_boundary__")),
                               "__mlops_task_boundary__", False), f"{cls.__name__}.{name}"


def test_translation_of_errors():
    from airflow.sdk.exceptions import AirflowFailException, AirflowSkipException

    from airflow_mlops.core.errors import DataProblem, DataSourceError, MLflowUnavailable
    from airflow_mlops.operators.base import translate_error

    assert isinstance(translate_error(DataProblem(["empty"])), AirflowFailException)
    assert translate_error(DataSourceError("refused", retryable=True)) is None  # retried as is
    assert translate_error(AirflowSkipException("x")) is None
    assert translate_error(ValueError("a bug of ours")) is None  # unknown errors: Airflow's retries decide
    try:
        import requests

        raise requests.exceptions.ConnectionError("Max retries exceeded with url: /api/2.0/mlflow/runs/create")
    except Exception as error:
        translated = translate_error(error, mlflow_conn_id="mlflow_prod")
    assert isinstance(translated, MLflowUnavailable) and "'mlflow_prod'" in str(translated)


@pytest.mark.slow
def test_deterministic_failures_do_not_retry(project):
    project.write_model("noretry_ct", retries=3, retry_delay="0s")
    project.grow(FIRST, bad_days=frozenset({FIRST - timedelta(days=2)}))
    run = project.run("noretry_ct", FIRST)
    assert run["tasks"]["validate"] == "failed" and run["tries"]["validate"] == 1
    project.write_model("noretry_ct", retries=3, retry_delay="0s", **{"data.table": "no_such_table"})
    run = project.run("noretry_ct", FIRST)
    assert run["tasks"]["extract"] == "failed" and run["tries"]["extract"] == 1


MAPPED_DAG = '''
from airflow.sdk import DAG
from airflow_mlops.operators.drift import DriftCheckOperator

with DAG("mapped_drift_checks", schedule=None) as dag:
    DriftCheckOperator.partial(task_id="check", config={config!r}).expand(
        window_end=["2025-03-25T00:00:00", "2025-03-28T00:00:00"])
'''


@pytest.mark.slow
def test_mapped_task_instances_keep_their_own_runs_and_rows(project):
    from airflow_mlops.demo.harness import run_dag

    config = project.write_model("mapped")
    project.grow(FIRST)
    assert project.run("mapped", FIRST)["state"] == "success"
    dag_file = project.dags_folder / "mapped_drift_checks.py"
    dag_file.write_text(MAPPED_DAG.format(config=str(config)))
    project.written.append(dag_file)
    run = run_dag("mapped_drift_checks", FIRST)
    assert run["state"] == "success", run["tasks"]
    runs = project.task_runs("mapped", "check")
    assert sorted(r.data.tags["mlops.map_index"] for r in runs) == ["0", "1"]
    assert len({r.data.tags["mlops.idempotency_key"] for r in runs}) == 2
    with sqlite3.connect(project.env.data_db) as connection:
        windows = connection.execute("SELECT window_end FROM drift_reports WHERE dag_id = 'mapped_drift_checks' "
                                     "ORDER BY window_end").fetchall()
    assert [w[0][:10] for w in windows] == ["2025-03-25", "2025-03-28"]


@pytest.mark.slow
def test_a_team_dag_without_approval_never_promotes_an_unapproved_challenger(project):
    """decision 'approve' means: ask a human. A DAG with no approval task must not promote (it did)."""
    from airflow_mlops.demo.harness import run_dag

    project.install_example("example_own_dag.py")
    project.grow(FIRST)
    assert run_dag("example_mlops_own_dag", FIRST)["results"]["promote"]["champion"] == "1"
    project.write_model("credit_risk", **{"gate.on_inconclusive": "approve"})
    from tests.operators.test_gate_fail_closed import model_dir

    weights = model_dir(project, "credit_risk", "1") / "artifacts" / "pipeline.skops"
    weights.write_bytes(b"corrupted")  # the champion cannot be evaluated: INCONCLUSIVE, decision approve
    project.grow(SECOND)
    run = run_dag("example_mlops_own_dag", SECOND)
    assert run["results"]["evaluate_gate"]["decision"] == "approve"
    assert run["tasks"]["register"] == "success" and run["tasks"]["promote"] == "skipped"
    assert project.state("credit_risk").get("credit_risk").champion == "1"
    assert project.mlflow.alias_version("credit_risk", "champion") == "1"
    assert project.mlflow.alias_version("credit_risk", "challenger") == "2"
