"""Run the bundled DAGs in this process through real Airflow (``dag.test()``), for the demo and the tests.

``run_asset_triggered`` creates the run an asset event queued with the scheduler's own (private) method, so
the in-process demo can show the drift -> retraining path in seconds without starting a scheduler. The real path
(api-server, scheduler, dag-processor and triggerer processes, the REST API, the asset event picked up by the
scheduler) is proven by ``tests/e2e/test_scheduler.py``; nothing in the product depends on this shortcut.
"""

from __future__ import annotations

import json
import os
from datetime import date, datetime, timezone


def run_dag(dag_id: str, run_date: date) -> dict:
    """One real Airflow run of a bundled DAG (``dag.test``); returns the run's state and task results."""
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(os.environ["AIRFLOW__CORE__DAGS_FOLDER"])
    if bag.import_errors:
        raise RuntimeError(f"DAG import errors: {bag.import_errors}")
    dag = bag.get_dag(dag_id)
    logical_date = datetime(run_date.year, run_date.month, run_date.day, tzinfo=timezone.utc)
    dag_run = dag.test(logical_date=logical_date)
    return summarise_run(dag_run)


def unpause(dag_id: str) -> None:
    """Switch a DAG on, as a user does in the UI: only unpaused DAGs get runs queued by asset events."""
    from airflow.models.dag import DagModel
    from airflow.utils.session import create_session

    with create_session() as session:
        session.query(DagModel).filter(DagModel.dag_id == dag_id).update({"is_paused": False})


def run_asset_triggered(dag_id: str) -> dict | None:
    """Run the asset-triggered DAG run the scheduler would start now, if asset events queued one.

    The run is created by the scheduler's own code (``SchedulerJobRunner._create_dag_runs_asset_triggered``:
    same run type, same consumed asset events, same queue clean-up), then its tasks run in this process with
    ``dag.test()``'s loop, so no scheduler, executor or API server has to be started. Returns None when
    nothing is queued (no event, or the DAG is paused).
    """
    from unittest import mock

    from airflow.dag_processing.dagbag import DagBag
    from airflow.jobs.job import Job
    from airflow.jobs.scheduler_job_runner import SchedulerJobRunner
    from airflow.models.asset import AssetDagRunQueue
    from airflow.models.dag import DagModel
    from airflow.models.dagrun import DagRun
    from airflow.utils.session import create_session
    from airflow.utils.state import DagRunState
    from airflow.utils.types import DagRunType

    with create_session() as session:
        if not session.query(AssetDagRunQueue).filter(AssetDagRunQueue.target_dag_id == dag_id).count():
            return None
        before = {r.run_id for r in session.query(DagRun).filter(DagRun.dag_id == dag_id)}
        runner = SchedulerJobRunner(job=Job(), num_runs=1)
        runner._create_dag_runs_asset_triggered(dag_models=[session.get(DagModel, dag_id)], session=session)
        session.flush()
        created = [r for r in session.query(DagRun).filter(DagRun.dag_id == dag_id,
                                                           DagRun.run_type == DagRunType.ASSET_TRIGGERED)
                   if r.run_id not in before]
        (run,) = created
        run.state = DagRunState.RUNNING
        run_id, run_after = run.run_id, run.run_after

    def existing_run(*, dag, session, **_):
        run = session.query(DagRun).filter(DagRun.dag_id == dag.dag_id, DagRun.run_id == run_id).one()
        run.dag = dag
        return run

    dag = DagBag(os.environ["AIRFLOW__CORE__DAGS_FOLDER"]).dags[dag_id]
    with mock.patch("airflow.models.dagrun.get_or_create_dagrun", existing_run):
        # dag.test() clears task instances at the logical date it is given: use the run's own (unique) time.
        dag_run = dag.test(logical_date=run_after)
    return summarise_run(dag_run)


def _decoded(value):
    """An XCom value as stored: JSON text for structures, a plain string may come back as it is."""
    if not isinstance(value, str):
        return value
    try:
        return json.loads(value)
    except ValueError:
        return value


def summarise_run(dag_run) -> dict:
    from airflow.models.taskinstance import TaskInstance
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session

    with create_session() as session:
        tis = session.query(TaskInstance).filter_by(dag_id=dag_run.dag_id, run_id=dag_run.run_id).all()
        states = {ti.task_id: str(ti.state) for ti in tis}
        tries = {ti.task_id: ti.try_number for ti in tis}
        results = {}
        for ti in tis:
            row = session.query(XComModel).filter_by(dag_id=ti.dag_id, run_id=ti.run_id, task_id=ti.task_id,
                                                     key="return_value").first()
            if row is not None:
                value = row.value
                results[ti.task_id] = _decoded(value)
    return {"run_id": dag_run.run_id, "state": str(dag_run.state), "tasks": states, "tries": tries,
            "results": results}
