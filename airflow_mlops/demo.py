"""The embedded demo: real Airflow (SQLite metadata), a local MLflow store and synthetic data in SQLite.

Everything lives in one project-local folder (default ``.demo/``). The story:
1. the first continuous-training run registers the first model and makes it the champion;
2. a week later the data has grown; the challenger is judged by the gate against the champion;
3. an upstream bug injects bad rows; validation catches it and the run fails before training;
4. the bug is fixed and the day reloaded; the drift DAG finds no drift, so no retraining is triggered;
5. the population drifts; the drift DAG confirms it and emits an event on the drift Asset;
6. the event starts the continuous-training DAG (as the scheduler would), and the gate judges the retrained
   challenger against the stale champion;
7. drift persists the next day, but the cooldown holds the next event back.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

MODEL = "credit_risk"
DATA_START = date(2025, 1, 1)
FIRST_RUN = DATA_START + timedelta(days=77)   # 60d train + 14d holdout + a few days of slack
ROWS_PER_DAY = 300
DRIFT_CHECK_AFTER_DAYS = 56  # the drifted weeks fill the holdout and most of the retraining window


@dataclass
class DemoEnvironment:
    home: Path
    env: dict[str, str] = field(default_factory=dict)

    @property
    def data_db(self) -> Path:
        return self.home / "data.db"

    @property
    def dags_folder(self) -> Path:
        return self.home / "dags"

    @property
    def mlflow_uri(self) -> str:
        return f"sqlite:///{self.home / 'mlflow.db'}"


def bundled_dags_dir() -> Path:
    """The bundled ``dags/`` folder: inside the wheel, or at the repository root in a source checkout."""
    packaged = Path(__file__).parent / "bundled_dags"
    return packaged if packaged.is_dir() else Path(__file__).resolve().parent.parent / "dags"


def environment_for(home: Path) -> dict[str, str]:
    """Airflow and connection settings of a self-contained home (as environment variables)."""
    home = home.resolve()
    mlflow_conn = {"conn_type": "mlflow", "extra": {"tracking_uri": f"sqlite:///{home / 'mlflow.db'}",
                                                    "artifact_root": (home / "mlartifacts").as_uri(),
                                                    "ui_url": "http://127.0.0.1:5000"}}
    return {
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(home / "dags"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home / 'airflow.db'}",
        "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
        "AIRFLOW__LOGGING__LOGGING_LEVEL": "WARNING",
        "AIRFLOW_CONN_MLOPS_DATA": json.dumps({"conn_type": "sqlite", "host": str(home / "data.db")}),
        "AIRFLOW_CONN_MLFLOW_DEFAULT": json.dumps(mlflow_conn),
        "GX_ANALYTICS_ENABLED": "False",
        "MLFLOW_ENABLE_ASYNC_LOGGING": "false",
        "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false",
        "GIT_PYTHON_REFRESH": "quiet",
    }


def with_overrides(raw: dict, overrides: dict) -> dict:
    """Set ``{"gate.minimum": ...}``-style dotted fields in a raw config mapping (in place; returned)."""
    for dotted, value in overrides.items():
        target = raw
        *parents, leaf = dotted.split(".")
        for part in parents:
            target = target.setdefault(part, {})
        target[leaf] = value
    return raw


def prepare_home(home: Path, *, config_overrides: dict | None = None, fresh: bool = True) -> DemoEnvironment:
    """Create the home folder with the bundled DAGs and an initialised Airflow metadata database."""
    import yaml

    home = home.resolve()
    if fresh and home.exists():
        shutil.rmtree(home)
    (home / "dags" / "configs").mkdir(parents=True, exist_ok=True)
    source = bundled_dags_dir()
    for stub in source.glob("mlops_*.py"):
        shutil.copy(stub, home / "dags" / stub.name)
    for config_file in (source / "configs").glob("*.y*ml"):
        raw = with_overrides(yaml.safe_load(config_file.read_text()), config_overrides or {})
        (home / "dags" / "configs" / config_file.name).write_text(yaml.safe_dump(raw, sort_keys=False))
    environment = DemoEnvironment(home, environment_for(home))
    airflow = Path(sys.executable).with_name("airflow")
    subprocess.run([str(airflow), "db", "migrate"], env={**os.environ, **environment.env}, check=True,
                   stdout=subprocess.DEVNULL)
    return environment


def grow_data(environment: DemoEnvironment, until: date, *, drift_from: date | None = None,
              bad_days: frozenset[date] = frozenset()) -> int:
    """Append the synthetic days not yet in the table, up to (not including) ``until``."""
    import sqlite3

    from airflow_mlops.core.synthetic import generate, write_sqlite

    start = DATA_START
    if environment.data_db.exists():
        with sqlite3.connect(environment.data_db) as connection:
            try:
                (last,) = connection.execute("SELECT max(applied_at) FROM loans").fetchone()
                start = datetime.fromisoformat(last).date() + timedelta(days=1)
            except sqlite3.OperationalError:
                pass
    days = (until - start).days
    if days <= 0:
        return 0
    frame = generate(start, days, rows_per_day=ROWS_PER_DAY, drift_from=drift_from, bad_days=bad_days)
    return write_sqlite(str(environment.data_db), frame)


def reload_day(environment: DemoEnvironment, day: date) -> int:
    """Replace one day's rows with clean ones (the upstream bug was fixed and the day re-delivered)."""
    import sqlite3

    from airflow_mlops.core.synthetic import generate_day, write_sqlite

    with sqlite3.connect(environment.data_db) as connection:
        connection.execute("DELETE FROM loans WHERE applied_at >= ? AND applied_at < ?",
                            (day.isoformat(), (day + timedelta(days=1)).isoformat()))
    return write_sqlite(str(environment.data_db), generate_day(day, rows=ROWS_PER_DAY))


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


def registry_summary(environment: DemoEnvironment) -> dict:
    from mlflow import MlflowClient

    from airflow_mlops.hooks.mlflow import alias_version

    client = MlflowClient(tracking_uri=environment.mlflow_uri, registry_uri=environment.mlflow_uri)
    versions = client.search_model_versions(f"name = '{MODEL}'")
    aliases = {alias: alias_version(client, MODEL, alias) for alias in ("champion", "challenger",
                                                                          "previous_champion")}
    return {"versions": sorted(int(v.version) for v in versions), "aliases": aliases}


def run_demo(home: Path) -> int:
    print(f"airflow-mlops demo in {home} (Airflow metadata, MLflow store and data, all local)")
    environment = prepare_home(home, config_overrides={"retries": 0})
    os.environ.update(environment.env)
    ct, drift = f"mlops_ct__{MODEL}", f"mlops_drift__{MODEL}"
    steps = []

    grow_data(environment, FIRST_RUN)
    print(f"[1/7] first continuous-training run for {FIRST_RUN} ...")
    steps.append(("first model", run_dag(ct, FIRST_RUN)))
    unpause(ct)  # switched on, as in the UI: drift events can now start it

    second = FIRST_RUN + timedelta(days=7)
    grow_data(environment, second)
    print(f"[2/7] a week later ({second}): the challenger meets the champion ...")
    steps.append(("challenger vs champion", run_dag(ct, second)))

    third = second + timedelta(days=7)
    bad_day = third - timedelta(days=2)
    grow_data(environment, third, bad_days=frozenset({bad_day}))
    print(f"[3/7] {third}: an upstream bug wrote bad rows ...")
    steps.append(("bad data", run_dag(ct, third)))

    reload_day(environment, bad_day)
    print(f"[4/7] the bug is fixed and {bad_day} reloaded; drift check for {third} ...")
    steps.append((f"drift check {third}", run_dag(drift, third)))

    drift_from = third + timedelta(days=1)
    drifted = third + timedelta(days=DRIFT_CHECK_AFTER_DAYS)
    grow_data(environment, drifted, drift_from=drift_from)
    print(f"[5/7] the population drifts from {drift_from}; drift check for {drifted} ...")
    steps.append((f"drift check {drifted}", run_dag(drift, drifted)))

    print("[6/7] the drift event starts continuous training ...")
    steps.append(("retraining triggered by the drift event", run_asset_triggered(ct) or {}))

    next_day = drifted + timedelta(days=1)
    grow_data(environment, next_day, drift_from=drift_from)
    print(f"[7/7] drift check for {next_day} ...")
    steps.append((f"drift check {next_day}", run_dag(drift, next_day)))

    print_summary(environment, steps)
    results = [run.get("results", {}) for _, run in steps]
    tasks = [run.get("tasks", {}) for _, run in steps]
    ok = (results[0].get("promote") is not None and results[1].get("evaluate_gate") is not None
          and tasks[2].get("validate") == "failed"
          and tasks[3].get("emit_drift_event") == "skipped" and results[3]["check_drift"]["status"] == "no_drift"
          and tasks[4].get("emit_drift_event") == "success"
          and steps[5][1].get("run_id", "").startswith("asset_triggered__") and "evaluate_gate" in results[5]
          and results[6]["check_drift"]["dataset_drift"] and tasks[6].get("emit_drift_event") == "skipped")
    return 0 if ok else 1


def drift_line(check: dict, emit_state: str | None) -> str:
    """One line on a drift check: status, what drifted, and what became of the event."""
    features = check.get("drifted_features") or []
    label = {"drift": "DRIFT", "no_drift": "no drift", "insufficient_data": "insufficient data"}[check["status"]]
    text = f"{label} ({len(features)} features drifted, share {check['share']:.0%}"
    text += f": {', '.join(features)})" if features else ")"
    if check.get("performance_drift"):
        text += ", performance drift"
    if emit_state == "success":
        return text + f"; event emitted on mlops://{MODEL}/drift"
    if check.get("dataset_drift") or check.get("performance_drift"):
        return text + "; event held back (cooldown / already emitted)"
    return text + "; no event"


def validation_failure(environment: DemoEnvironment, run: dict) -> str:
    """What the failed validation found, read back from the report stored in its MLflow run."""
    from mlflow import MlflowClient

    from airflow_mlops.core.validation import failure_summary
    from airflow_mlops.hooks.mlflow import load_json

    client = MlflowClient(tracking_uri=environment.mlflow_uri)
    experiment = client.get_experiment_by_name(f"mlops/{MODEL}")
    runs = client.search_runs([experiment.experiment_id], max_results=1, filter_string=(
        f"tags.`mlops.task_id` = 'validate' and tags.`mlops.run_id` = '{run['run_id']}'"))
    if not runs:
        return "no report found"
    report = load_json(client, runs[0].info.run_id, "validation/report.json")
    return f"{failure_summary(report)} (report: validation/report.html in MLflow run {runs[0].info.run_id})"


def print_summary(environment: DemoEnvironment, steps: list[tuple[str, dict]]) -> None:
    print("\n=== airflow-mlops demo summary ===")
    for title, run in steps:
        if not run:
            print(f"- {title}: no run was started")
            continue
        results = run["results"]
        line = f"- {title}: run {run['state']}"
        if run["run_id"].startswith("asset_triggered__"):
            line += f" ({run['run_id'].split('__')[0]}, started by the drift event)"
        if "check_drift" in results:
            line += "; " + drift_line(results["check_drift"], run["tasks"].get("emit_drift_event"))
        gate = results.get("evaluate_gate") or {}
        if gate:
            champion = gate.get("champion_metric")
            vs = f" vs champion {champion:.4f}" if champion is not None else " (no champion yet)"
            line += (f"; gate {gate['verdict']} ({gate['metric']} {gate['challenger_metric']:.4f}{vs}), "
                     f"decision {gate['decision']}")
        if "register" in results:
            line += f"; registered version {results['register']['version']}"
        if "promote" in results:
            line += f"; champion is now version {results['promote']['champion']}"
        if run["tasks"].get("validate") == "failed":
            line += f"; validation FAILED, bad data caught before training: {validation_failure(environment, run)}"
        print(line)
    registry = registry_summary(environment)
    print(f"- registry {MODEL}: versions {registry['versions']}, aliases {registry['aliases']}")
    home = environment.home
    print("\nOpen the UIs on this data:")
    print(f"  MLflow : {Path(sys.executable).with_name('mlflow')} ui --backend-store-uri {environment.mlflow_uri} "
          f"--port 5000   -> http://127.0.0.1:5000")
    print(f"  Airflow: AIRFLOW_HOME={home} AIRFLOW__CORE__DAGS_FOLDER={home / 'dags'} "
          f"AIRFLOW__CORE__LOAD_EXAMPLES=False {Path(sys.executable).with_name('airflow')} standalone"
          "   -> http://127.0.0.1:8080 (password in $AIRFLOW_HOME/simple_auth_manager_passwords.json.generated)")
