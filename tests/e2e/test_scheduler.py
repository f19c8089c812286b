"""The bundled DAGs under a real Airflow deployment, as close to the compose stack as this machine allows.

Real processes, each in its own process group: ``mlflow server`` (PostgreSQL backend store, served artifacts) and
Airflow's ``api-server``, ``scheduler``, ``dag-processor`` and ``triggerer`` (LocalExecutor), the metadata in a
PostgreSQL database created for this test, the data and deployment state in PostgreSQL. Everything goes through
the Airflow REST API (token auth) and MLflow's REST API: no in-process shortcut, no private scheduler method.

Two faults inside: the MLflow server is stopped while the first training run trains and started again (the
retried task finishes and nothing is duplicated), and the api-server restarts during the drift-triggered run
(the run resumes and succeeds).
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

import pytest
import yaml

from airflow_mlops.demo.environment import DATA_START, FIRST_RUN
from tests.conftest import POSTGRES_URL
from tests.helpers import BUNDLED, bundled_config
from tests.servers import MLflowServer, free_port

pytestmark = [pytest.mark.slow, pytest.mark.postgres]
MODEL = "sched_e2e"
DRIFT_FROM = FIRST_RUN + timedelta(days=1)
DRIFTED = FIRST_RUN + timedelta(days=56)


def database_url(name: str, driver: str = "postgresql") -> str:
    parts = urllib.parse.urlsplit(POSTGRES_URL)
    return urllib.parse.urlunsplit((driver, parts.netloc, f"/{name}", parts.query, ""))


def load_days(schema: str, start: date, until: date, **kwargs) -> None:
    import psycopg

    from airflow_mlops.demo.synthetic import generate

    frame = generate(start, (until - start).days, **kwargs)
    with psycopg.connect(POSTGRES_URL, autocommit=True) as connection, connection.cursor() as cursor:
        with cursor.copy(f'COPY "{schema}".loans ({", ".join(frame.columns)}) FROM STDIN') as copy:
            for row in frame.itertuples(index=False):
                copy.write_row(list(row))


class AirflowStack:
    """The Airflow processes of one test, its REST client, and their teardown."""

    def __init__(self, root: Path, env: dict[str, str], port: int, password: str) -> None:
        self.root, self.env, self.port, self.password = root, env, port, password
        self.processes: dict[str, subprocess.Popen] = {}
        self.token: str | None = None

    @property
    def commands(self) -> dict[str, list[str]]:
        return {"api-server": ["api-server", "--port", str(self.port)], "scheduler": ["scheduler"],
                "dag-processor": ["dag-processor"], "triggerer": ["triggerer"]}

    def launch(self, name: str) -> None:
        airflow = str(Path(sys.executable).with_name("airflow"))
        with open(self.root / f"{name}.log", "ab") as log:
            self.processes[name] = subprocess.Popen([airflow, *self.commands[name]], env=self.env, stdout=log,
                                                    stderr=subprocess.STDOUT, start_new_session=True, cwd=self.root)

    def restart(self, name: str, pause: float = 5.0) -> None:
        """Stop one process (its whole group) and start it again on the same port."""
        process = self.processes.pop(name)
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=60)
        time.sleep(pause)
        self.launch(name)
        self.wait(lambda: self.get_public("/api/v2/monitor/health"), 240, f"{name} to come back")

    def start(self) -> AirflowStack:
        airflow = str(Path(sys.executable).with_name("airflow"))
        subprocess.run([airflow, "db", "migrate"], env=self.env, check=True, capture_output=True, timeout=600)
        for name in self.commands:
            self.launch(name)
        self.wait(lambda: self.get_public("/api/v2/monitor/health"), 240, "the api-server")
        request = urllib.request.Request(f"{self.url}/auth/token", method="POST",
                                         data=json.dumps({"username": "admin", "password": self.password}).encode(),
                                         headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=30) as response:
            self.token = json.loads(response.read())["access_token"]
        return self

    def stop(self) -> None:
        for process in self.processes.values():
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
        for process in self.processes.values():
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(timeout=10)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def wait(self, probe, timeout: float, what: str):
        deadline = time.monotonic() + timeout
        while True:
            dead = [name for name, process in self.processes.items() if process.poll() is not None]
            assert not dead, f"{dead} exited: see {self.root}/<name>.log"
            try:
                result = probe()
                if result:
                    return result
            except (urllib.error.URLError, OSError):
                pass
            assert time.monotonic() < deadline, f"timed out waiting for {what}"
            time.sleep(1.0)

    def get_public(self, path: str) -> dict:
        with urllib.request.urlopen(self.url + path, timeout=10) as response:
            return json.loads(response.read())

    def api(self, method: str, path: str, body: dict | None = None) -> dict:
        request = urllib.request.Request(self.url + "/api/v2" + path, method=method,
                                         data=None if body is None else json.dumps(body).encode(),
                                         headers={"Content-Type": "application/json",
                                                  "Authorization": f"Bearer {self.token}"})
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                return json.loads(response.read() or b"{}")
        except urllib.error.HTTPError as error:
            raise AssertionError(f"{method} {path}: {error.code} {error.read()[:1000]!r}") from error

    def dag_ids(self) -> set[str]:
        return {dag["dag_id"] for dag in self.api("GET", "/dags?limit=100")["dags"]}

    def unpause(self, dag_id: str) -> None:
        self.api("PATCH", f"/dags/{dag_id}", {"is_paused": False})

    def trigger(self, dag_id: str, logical: date) -> str:
        moment = datetime(logical.year, logical.month, logical.day, tzinfo=timezone.utc).isoformat()
        return self.api("POST", f"/dags/{dag_id}/dagRuns", {"logical_date": moment})["dag_run_id"]

    def runs(self, dag_id: str) -> list[dict]:
        return self.api("GET", f"/dags/{dag_id}/dagRuns?limit=100")["dag_runs"]

    def finished(self, dag_id: str, run_id: str, timeout: float = 900) -> str:
        def done():
            state = self.api("GET", f"/dags/{dag_id}/dagRuns/{urllib.parse.quote(run_id)}")["state"]
            return state if state in ("success", "failed") else None

        return self.wait(done, timeout, f"{dag_id} {run_id}")

    def tasks(self, dag_id: str, run_id: str) -> dict[str, dict]:
        listed = self.api("GET", f"/dags/{dag_id}/dagRuns/{urllib.parse.quote(run_id)}/taskInstances?limit=100")
        return {ti["task_id"]: ti for ti in listed["task_instances"]}

    def failures(self, dag_id: str, run_id: str) -> str:
        """The end of each failed task's log, through the REST API (an assertion message that says why)."""
        out = []
        for task_id, ti in self.tasks(dag_id, run_id).items():
            if ti["state"] != "failed":
                continue
            path = (f"/dags/{dag_id}/dagRuns/{urllib.parse.quote(run_id)}/taskInstances/{task_id}/logs/"
                    f"{ti['try_number']}?full_content=true")
            try:
                content = self.api("GET", path).get("content", "")
            except AssertionError as error:
                content = str(error)
            out.append(f"--- {task_id} (try {ti['try_number']}) ---\n{str(content)[-4000:]}")
        return "\n".join(out) or "no failed task"


def mlflow_api(server: MLflowServer, path: str, body: dict | None = None) -> dict:
    request = urllib.request.Request(f"{server.url}/api/2.0/mlflow/{path}", method="GET" if body is None else "POST",
                                     data=None if body is None else json.dumps(body).encode(),
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read())


def versions(server: MLflowServer) -> list[str]:
    query = urllib.parse.urlencode({"filter": f"name = '{MODEL}'"})
    return sorted(v["version"] for v in mlflow_api(server, f"model-versions/search?{query}")["model_versions"])


def aliases(server: MLflowServer) -> dict[str, str]:
    model = mlflow_api(server, f"registered-models/get?name={MODEL}")["registered_model"]
    return {alias["alias"]: alias["version"] for alias in model.get("aliases", [])}


@pytest.fixture
def deployment(tmp_path, postgres_schema):
    """Databases, MLflow server, DAGs folder and the Airflow processes of one run; all torn down afterwards."""
    import psycopg

    suffix = uuid.uuid4().hex[:10]
    metadata_db, mlflow_db = f"mlops_e2e_airflow_{suffix}", f"mlops_e2e_mlflow_{suffix}"
    admin = psycopg.connect(POSTGRES_URL, autocommit=True)
    for name in (metadata_db, mlflow_db):
        admin.execute(f'CREATE DATABASE "{name}"')
    admin.execute(f'CREATE TABLE "{postgres_schema}".loans (loan_id text primary key, applied_at timestamp, '
                  "income double precision, amount double precision, term integer, purpose text, region text, "
                  "defaulted integer)")
    mlflow = MLflowServer(tmp_path / "mlflow", backend_uri=database_url(mlflow_db, "postgresql+psycopg2"))
    stack = None
    try:
        mlflow.start()
        dags = tmp_path / "dags"
        (dags / "configs").mkdir(parents=True)
        shutil.copy(BUNDLED / "mlops_credit_risk.py", dags / f"mlops_{MODEL}.py")
        # No time schedules: every run here is triggered through the API or by the drift event.
        raw = bundled_config(**{"model": MODEL, "schedule": None, "drift.schedule": None, "scoring.schedule": None,
                                "retries": 2, "retry_delay": "5s", "data.table": f"{postgres_schema}.loans",
                                "state_schema": postgres_schema})
        (dags / "configs" / f"{MODEL}.yaml").write_text(yaml.safe_dump(raw, sort_keys=False))
        port, password = free_port(), secrets.token_urlsafe(12)
        passwords = tmp_path / "passwords.json"
        passwords.write_text(json.dumps({"admin": password}))
        env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "MLFLOW"))}
        env.update({
            "PATH": f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}",
            "AIRFLOW_HOME": str(tmp_path), "AIRFLOW__CORE__DAGS_FOLDER": str(dags),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False", "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": database_url(metadata_db, "postgresql+psycopg2"),
            "AIRFLOW__API__PORT": str(port),
            "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://127.0.0.1:{port}/execution/",
            "AIRFLOW__API_AUTH__JWT_SECRET": secrets.token_hex(32),
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": "admin:admin",
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(passwords),
            "AIRFLOW__SCHEDULER__SCHEDULER_HEARTBEAT_SEC": "2",
            "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "5",
            "AIRFLOW__CORE__PARALLELISM": "4",
            "AIRFLOW_CONN_MLOPS_DATA": POSTGRES_URL,
            "AIRFLOW_CONN_MLFLOW_DEFAULT": json.dumps({"conn_type": "mlflow", "host": mlflow.url,
                                                       "extra": {"request_timeout": 5, "max_retries": 0}}),
            "GX_ANALYTICS_ENABLED": "False", "MLFLOW_ENABLE_ASYNC_LOGGING": "false", "GIT_PYTHON_REFRESH": "quiet",
        })
        stack = AirflowStack(tmp_path, env, port, password).start()
        yield stack, mlflow, postgres_schema
    finally:
        if stack is not None:
            stack.stop()
        mlflow.stop()
        for name in (metadata_db, mlflow_db):
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.close()


def test_scheduler_runs_training_then_drift_triggers_retraining(deployment):
    stack, mlflow, schema = deployment
    ct, drift = f"mlops_ct__{MODEL}", f"mlops_drift__{MODEL}"
    load_days(schema, DATA_START, FIRST_RUN)
    stack.wait(lambda: {ct, drift} <= stack.dag_ids(), 300, "the dag-processor to parse the bundled DAGs")
    dags = {dag["dag_id"]: dag for dag in stack.api("GET", "/dags?limit=100")["dags"]}
    assert dags[ct]["is_paused"] and dags[drift]["is_paused"]  # paused at creation
    stack.unpause(ct)
    stack.unpause(drift)

    # 1. The first training run; MLflow goes away while it trains and comes back.
    first = stack.trigger(ct, FIRST_RUN)
    stack.wait(lambda: stack.tasks(ct, first).get("train", {}).get("state") == "running", 600, "train to start")
    mlflow.stop()
    stack.wait(lambda: stack.tasks(ct, first)["train"]["state"] in ("up_for_retry", "failed"), 300,
               "train to fail while MLflow is down")
    mlflow.start()
    assert stack.finished(ct, first) == "success", stack.failures(ct, first)
    tasks = stack.tasks(ct, first)
    assert tasks["train"]["try_number"] >= 2
    assert all(tasks[t]["state"] == "success" for t in ("extract", "validate", "evaluate_gate", "register",
                                                          "promote")), tasks
    assert versions(mlflow) == ["1"] and aliases(mlflow) == {"champion": "1"}
    experiment = mlflow_api(mlflow, f"experiments/get-by-name?experiment_name=mlops/{MODEL}")["experiment"]
    runs = mlflow_api(mlflow, "runs/search", {"experiment_ids": [experiment["experiment_id"]],
                                              "filter": "tags.`mlops.task_id` = 'train'", "max_results": 100})
    assert len(runs.get("runs", [])) == 1  # the retried train task found its run: no duplicate

    # 2. The population drifts; the drift DAG emits an event; the real scheduler starts the retraining.
    load_days(schema, FIRST_RUN, DRIFTED, drift_from=DRIFT_FROM)
    check = stack.trigger(drift, DRIFTED)
    assert stack.finished(drift, check) == "success", stack.failures(drift, check)
    assert stack.tasks(drift, check)["emit_drift_event"]["state"] == "success"

    def asset_triggered():
        return [r for r in stack.runs(ct) if r["run_type"] == "asset_triggered"]

    (triggered,) = stack.wait(asset_triggered, 300, "the scheduler to start the asset-triggered CT run")
    # The api-server (the tasks' execution API) restarts while the run is under way: the run resumes.
    stack.wait(lambda: stack.tasks(ct, triggered["dag_run_id"]).get("extract", {}).get("state") == "success", 600,
               "the retraining's extract to finish")
    stack.restart("api-server")
    assert stack.finished(ct, triggered["dag_run_id"]) == "success", stack.failures(ct, triggered["dag_run_id"])
    assert aliases(mlflow) == {"champion": "2", "previous_champion": "1"}
    assert versions(mlflow) == ["1", "2"]
