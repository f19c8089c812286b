"""``airflow-mlops demo --serve``: open the Airflow UI and the MLflow UI on the demo's data, with its environment.

Starts the Airflow api-server, scheduler, dag-processor and triggerer (LocalExecutor, the demo's SQLite metadata,
its connections) and ``mlflow ui`` on its store, each in its own process group with its log under
``<home>/logs/``. Every DAG is paused first, so nothing runs until you switch one on in the UI (the demo left the
CT DAG switched on for its drift events). Ctrl-C (or SIGTERM) stops everything it started.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import subprocess
import sys
import time
from pathlib import Path
from urllib.error import URLError
from urllib.request import urlopen

from airflow_mlops.demo.environment import environment_for


def _bin(name: str) -> str:
    return str(Path(sys.executable).with_name(name))


def _wait(url: str, deadline: float, processes: dict[str, subprocess.Popen]) -> None:
    while True:
        try:
            with urlopen(url, timeout=2) as response:
                if response.status < 500:
                    return
        except (URLError, OSError):
            pass
        dead = [name for name, process in processes.items() if process.poll() is not None]
        if dead:
            raise RuntimeError(f"{', '.join(dead)} exited; see its log under logs/")
        if time.monotonic() > deadline:
            raise TimeoutError(f"{url} did not answer in time")
        time.sleep(0.5)


def serve_environment(home: Path, *, port: int, password: str) -> dict[str, str]:
    """The environment of every served process: the demo's settings and connections, a UI login, and the
    virtualenv's ``bin`` on PATH (Airflow starts ``airflow`` by name)."""
    passwords = home / "simple_auth_manager_passwords.json"
    passwords.write_text(json.dumps({"admin": password}))
    passwords.chmod(0o600)
    return {**os.environ, **environment_for(home),
            "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": "admin:admin",
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(passwords),
            "AIRFLOW__API__PORT": str(port),
            "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://127.0.0.1:{port}/execution/",
            "AIRFLOW__API_AUTH__JWT_SECRET": secrets.token_hex(32),
            "AIRFLOW__LOGGING__LOGGING_LEVEL": "INFO"}


def pause_all_dags(env: dict[str, str]) -> None:
    code = ("from airflow.models.dag import DagModel; from airflow.utils.session import create_session\n"
            "with create_session() as s: s.query(DagModel).update({'is_paused': True})")
    subprocess.run([sys.executable, "-c", code], env=env, check=True, capture_output=True, timeout=300)


def serve(home: Path, *, port: int = 8080, mlflow_port: int = 5000, run_for: float | None = None) -> int:
    home = home.resolve()
    if not (home / "airflow.db").exists():
        print(f"airflow-mlops demo: no demo in {home}: run `airflow-mlops demo --home {home}` first", file=sys.stderr)
        return 2
    password = secrets.token_urlsafe(12)
    env = serve_environment(home, port=port, password=password)
    pause_all_dags(env)
    logs = home / "logs"
    logs.mkdir(exist_ok=True)
    commands = {
        "api-server": [_bin("airflow"), "api-server", "--port", str(port)],
        "scheduler": [_bin("airflow"), "scheduler"],
        "dag-processor": [_bin("airflow"), "dag-processor"],
        "triggerer": [_bin("airflow"), "triggerer"],
        "mlflow-ui": [_bin("mlflow"), "ui", "--backend-store-uri", f"sqlite:///{home / 'mlflow.db'}",
                      "--host", "127.0.0.1", "--port", str(mlflow_port)],
    }
    processes: dict[str, subprocess.Popen] = {}
    stop = {"requested": False}

    def request_stop(*_):
        stop["requested"] = True

    previous = signal.signal(signal.SIGTERM, request_stop)
    try:
        for name, command in commands.items():
            with open(logs / f"{name}.log", "ab") as log:
                processes[name] = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT,
                                                   start_new_session=True, cwd=home)
        deadline = time.monotonic() + 180
        _wait(f"http://127.0.0.1:{port}/api/v2/monitor/health", deadline, processes)
        _wait(f"http://127.0.0.1:{mlflow_port}/health", deadline, processes)
        print(f"Airflow UI: http://127.0.0.1:{port}  (user admin, password {password})", flush=True)
        print(f"MLflow UI : http://127.0.0.1:{mlflow_port}", flush=True)
        print("Every DAG is paused: switch one on in the Airflow UI to run it. Ctrl-C stops everything.", flush=True)
        started = time.monotonic()
        while not stop["requested"] and (run_for is None or time.monotonic() - started < run_for):
            dead = [name for name, process in processes.items() if process.poll() is not None]
            if dead:
                print(f"{', '.join(dead)} exited; see {logs}", file=sys.stderr)
                return 1
            time.sleep(0.5)
        return 0
    except KeyboardInterrupt:
        return 0
    except (RuntimeError, TimeoutError) as error:
        print(f"airflow-mlops demo --serve: {error}", file=sys.stderr)
        return 1
    finally:
        signal.signal(signal.SIGTERM, previous)
        for process in processes.values():
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
        for process in processes.values():
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
