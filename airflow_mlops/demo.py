"""The embedded demo: real Airflow (SQLite metadata), a local MLflow store and synthetic data in SQLite.

Everything lives in one project-local folder (default ``.demo/``). The story:
1. the first continuous-training run registers the first model and makes it the champion;
2. a week later the data has grown; the challenger is judged by the gate against the champion;
3. an upstream bug injects bad rows; validation catches it and the run fails before training.
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
                results[ti.task_id] = json.loads(value) if isinstance(value, str) else value
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
    steps = []

    grow_data(environment, FIRST_RUN)
    print(f"[1/3] first continuous-training run for {FIRST_RUN} ...")
    steps.append(("first model", run_dag(f"mlops_ct__{MODEL}", FIRST_RUN)))

    second = FIRST_RUN + timedelta(days=7)
    grow_data(environment, second)
    print(f"[2/3] a week later ({second}): the challenger meets the champion ...")
    steps.append(("challenger vs champion", run_dag(f"mlops_ct__{MODEL}", second)))

    third = second + timedelta(days=7)
    grow_data(environment, third, bad_days=frozenset({third - timedelta(days=2)}))
    print(f"[3/3] {third}: an upstream bug wrote bad rows ...")
    steps.append(("bad data", run_dag(f"mlops_ct__{MODEL}", third)))

    print_summary(environment, steps)
    ok = (steps[0][1]["results"].get("promote") is not None
          and steps[1][1]["results"].get("evaluate_gate") is not None
          and steps[2][1]["tasks"].get("validate") == "failed")
    return 0 if ok else 1


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
        results = run["results"]
        gate = results.get("evaluate_gate") or {}
        line = f"- {title}: run {run['state']}"
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
