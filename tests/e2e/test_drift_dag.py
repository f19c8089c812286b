"""The drift DAG through real Airflow (dag.test), real MLflow and the real asset-event path: a confirmed drift
emits an event on the model's drift Asset, the scheduler's code turns it into a CT run, and the cooldown holds
back the next one. No drift, no event."""

from __future__ import annotations

import json
import sqlite3
from datetime import timedelta

import pytest

from tests.helpers import FIRST

pytestmark = pytest.mark.slow

DRIFT_FROM = FIRST + timedelta(days=1)


def asset_events(model: str) -> list[dict]:
    from airflow.models.asset import AssetEvent, AssetModel
    from airflow.utils.session import create_session

    with create_session() as session:
        rows = (session.query(AssetEvent).join(AssetModel, AssetEvent.asset_id == AssetModel.id)
                .filter(AssetModel.uri == f"mlops://{model}/drift").order_by(AssetEvent.id).all())
        return [{"extra": row.extra, "source_run_id": row.source_run_id} for row in rows]


def history(project, table: str = "drift_reports") -> list[dict]:
    with sqlite3.connect(project.env.data_db) as connection:
        connection.row_factory = sqlite3.Row
        return [dict(r) for r in connection.execute(f"SELECT * FROM {table} ORDER BY window_end")]


def test_no_champion_means_nothing_to_compare(project):
    project.write_model("drift_none")
    project.grow(FIRST)
    run = project.check_drift("drift_none", FIRST)
    assert run["state"] == "success"
    assert run["tasks"] == {"check_drift": "skipped", "emit_drift_event": "skipped", "finish_pipeline_run": "success"}
    assert asset_events("drift_none") == []


def test_no_drift_no_event_then_drift_triggers_retraining_once_per_cooldown(project):
    model = "drift_loop"
    project.write_model(model, **{"drift.cooldown": "3d"})
    project.grow(FIRST)
    assert project.run(model, FIRST)["state"] == "success"  # v1 is the champion: the reference
    project.switch_on(model)

    # Stable data: the check runs, stores its report, finds no drift, and no event is emitted.
    stable_day = FIRST + timedelta(days=5)
    project.grow(stable_day)
    stable = project.check_drift(model, stable_day)
    assert stable["tasks"] == {"check_drift": "success", "emit_drift_event": "skipped",
                               "finish_pipeline_run": "success"}, stable["tasks"]
    check = stable["results"]["check_drift"]
    assert check["status"] == "no_drift" and check["dataset_drift"] is False and check["champion_version"] == "1"
    assert asset_events(model) == []
    assert project.run_triggered(model) is None

    # The population drifts: the check confirms it and emits an event carrying the report summary.
    drift_day = FIRST + timedelta(days=14)
    project.grow(drift_day, drift_from=DRIFT_FROM)
    drifted = project.check_drift(model, drift_day)
    assert drifted["tasks"] == {"check_drift": "success", "emit_drift_event": "success",
                                "finish_pipeline_run": "success"}, drifted["tasks"]
    check = drifted["results"]["check_drift"]
    assert check["dataset_drift"] is True and {"income", "region"} <= set(check["drifted_features"])
    (event,) = asset_events(model)
    assert event["extra"]["drift_run_id"] == check["run_id"]
    assert event["extra"]["window_end"] == check["window_end"] and event["source_run_id"] == drifted["run_id"]

    client = project.client
    report = project.mlflow.load_json(check["run_id"], "drift/report.json")
    assert report["status"] == "drift" and report["prediction"]["status"] in ("drift", "no_drift")
    assert report["performance"]["n_labelled"] == check["n_current"]
    html = client.download_artifacts(check["run_id"], "drift/report.html", str(project.root))
    page = open(html).read()
    assert "<svg" in page and "<script" not in page and "http" not in page.replace("http://www.w3.org", "")
    rows = history(project)
    assert [r["status"] for r in rows] == ["no_drift", "drift"]
    assert json.loads(rows[1]["drifted_features"]) == check["drifted_features"]

    # The scheduler turns the queued event into an asset-triggered CT run; every MLflow run of that retrain
    # records the drift event that caused it, and it trains on data up to the drifted window.
    retrain = project.run_triggered(model)
    assert retrain is not None and retrain["run_id"].startswith("asset_triggered__")
    assert retrain["results"]["evaluate_gate"]["champion_version"] == "1", retrain["tasks"]
    assert retrain["results"]["extract"]["windows"]["end"] == check["window_end"]
    for task in ("extract", "train"):
        (run,) = [r for r in project.task_runs(model, task) if r.data.tags["mlops.run_id"] == retrain["run_id"]]
        assert run.data.tags["mlops.trigger"] == "drift_event"
        recorded = json.loads(run.data.tags["mlops.drift_event"])
        assert recorded["extra"]["drift_run_id"] == check["run_id"]
        assert recorded["source_dag_id"] == f"mlops_drift__{model}"
    assert project.run_triggered(model) is None  # the event was consumed once
    # Two weeks into the drift the seeded gate cannot tell yet: no refit (it follows a PASS only; the demo and
    # tests/e2e/test_demo.py show the refit after a PASS).
    refit = retrain["results"]["refit"]
    assert retrain["results"]["evaluate_gate"]["verdict"] == "INCONCLUSIVE"
    assert refit["refit"] is False and "a refit follows a PASS only" in refit["refit_reason"]

    # Drift persists the next day: the cooldown holds the event back; after it, one more event.
    next_day = drift_day + timedelta(days=1)
    project.grow(next_day, drift_from=DRIFT_FROM)
    held = project.check_drift(model, next_day)
    assert held["results"]["check_drift"]["dataset_drift"] is True
    assert held["tasks"]["emit_drift_event"] == "skipped"
    assert len(asset_events(model)) == 1 and project.run_triggered(model) is None
    later = drift_day + timedelta(days=3)
    project.grow(later, drift_from=DRIFT_FROM)
    assert project.check_drift(model, later)["tasks"]["emit_drift_event"] == "success"
    assert len(asset_events(model)) == 2


def test_empty_window_is_insufficient_data_and_no_event(project):
    model = "drift_empty"
    project.write_model(model)
    project.grow(FIRST)
    assert project.run(model, FIRST)["state"] == "success"
    far = FIRST + timedelta(days=60)  # no data was loaded for the week before this
    run = project.check_drift(model, far)
    check = run["results"]["check_drift"]
    assert check["status"] == "insufficient_data" and check["n_current"] == 0
    assert run["tasks"]["emit_drift_event"] == "skipped" and asset_events(model) == []


def test_drift_history_in_postgres_and_retry_writes_one_row(project, postgres_schema, monkeypatch):
    import psycopg

    from airflow_mlops.operators.drift import DriftCheckOperator
    from tests.conftest import POSTGRES_URL
    from tests.operators.test_retries import once

    monkeypatch.setenv("AIRFLOW_CONN_MLOPS_STATE", POSTGRES_URL)
    model = "drift_pg"
    project.write_model(model, retries=1, retry_delay="0s", state_conn_id="mlops_state", state_schema=postgres_schema,
                        **{"drift.reports_table": f"{postgres_schema}.drift_reports"})
    project.grow(FIRST)
    assert project.run(model, FIRST)["state"] == "success"
    # The check fails once after its report and history row were written; the retry replaces them.
    monkeypatch.setattr(DriftCheckOperator, "_store_history", once(DriftCheckOperator._store_history, after=True))
    run = project.check_drift(model, FIRST + timedelta(days=3))
    assert run["tries"]["check_drift"] == 2 and run["tasks"]["check_drift"] == "success"
    assert len(project.task_runs(model, "check_drift")) == 1
    with psycopg.connect(POSTGRES_URL) as connection:
        rows = connection.execute(f'SELECT model, status, mlflow_run_id FROM "{postgres_schema}".drift_reports'
                                  ).fetchall()
    assert rows == [(model, run["results"]["check_drift"]["status"], run["results"]["check_drift"]["run_id"])]


def test_documented_drift_example_runs(project):
    from airflow_mlops.demo.harness import run_dag

    project.install_example("example_drift_dag.py")
    project.grow(FIRST)
    assert project.run("credit_risk", FIRST)["state"] == "success"
    project.grow(FIRST + timedelta(days=21), drift_from=DRIFT_FROM)
    run = run_dag("example_mlops_drift", FIRST + timedelta(days=21))
    assert run["state"] == "success", run["tasks"]
    assert run["results"]["notify"].startswith("credit_risk: drift (drifted: ")
    assert run["tasks"]["emit_drift_event"] == "success"


def test_reference_that_does_not_match_fails_without_retrying(project):
    model = "drift_mismatch"
    # An explicit reference query whose columns are not the model's features (a typo'd view, say).
    project.write_model(model, retries=2, retry_delay="0s",
                        **{"drift.reference_query": "select income, amount, term, purpose from loans"})
    project.grow(FIRST)
    run = project.check_drift(model, FIRST)
    assert run["tasks"]["check_drift"] == "failed" and run["tries"]["check_drift"] == 1
    assert run["tasks"]["emit_drift_event"] == "upstream_failed" and asset_events(model) == []


def test_waits_deferred_for_late_data_then_checks(project):
    import threading
    import time

    model = "drift_wait"
    project.write_model(model, **{"drift.wait_for_data": "60s", "drift.data_lag": "1h"})
    project.grow(FIRST)
    assert project.run(model, FIRST)["state"] == "success"
    check_day = FIRST + timedelta(days=7)
    project.grow(check_day - timedelta(days=2))  # the last day of the window has not been loaded yet

    def late_load():
        time.sleep(2)
        project.grow(check_day)

    loader = threading.Thread(target=late_load)
    loader.start()
    run = project.check_drift(model, check_day)
    loader.join()
    assert run["tasks"]["wait_for_data"] == "success" and run["tasks"]["check_drift"] == "success", run["tasks"]
    # The check ran on the complete window: 7 days of rows.
    assert run["results"]["check_drift"]["n_current"] == 7 * 300
