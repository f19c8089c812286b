"""Test session set-up: a private AIRFLOW_HOME with SQLite metadata and a dags folder, set before Airflow is
imported anywhere. Each test gets its own data database and MLflow store through connection env vars."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
SESSION_HOME = Path(tempfile.mkdtemp(prefix="mlops-tests-"))
os.environ.update({
    "AIRFLOW_HOME": str(SESSION_HOME),
    "AIRFLOW__CORE__DAGS_FOLDER": str(SESSION_HOME / "dags"),
    "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
    "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{SESSION_HOME / 'airflow.db'}",
    "AIRFLOW__LOGGING__LOGGING_LEVEL": "WARNING",
    "GX_ANALYTICS_ENABLED": "False",
    "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false",
    "GIT_PYTHON_REFRESH": "quiet",
})
(SESSION_HOME / "dags" / "configs").mkdir(parents=True, exist_ok=True)

POSTGRES_URL = os.environ.get("MLOPS_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")


@pytest.fixture(scope="session")
def airflow_db():
    subprocess.run([str(Path(sys.executable).with_name("airflow")), "db", "migrate"], check=True,
                   stdout=subprocess.DEVNULL, env=os.environ.copy())
    return SESSION_HOME


@pytest.fixture
def project(tmp_path, monkeypatch, airflow_db):
    """A model project: data SQLite db, MLflow store and model configs in the session's dags folder."""
    from tests.helpers import Project

    project = Project(tmp_path, SESSION_HOME / "dags", monkeypatch)
    yield project
    project.cleanup()


@pytest.fixture
def postgres_schema():
    """A fresh schema in the local PostgreSQL server, dropped afterwards. Skips without a server, unless CI."""
    import uuid

    psycopg = pytest.importorskip("psycopg")
    try:
        connection = psycopg.connect(POSTGRES_URL, autocommit=True, connect_timeout=3)
    except psycopg.OperationalError as error:
        if os.environ.get("CI") == "true":
            pytest.fail(f"PostgreSQL is required in CI but not reachable at {POSTGRES_URL}: {error}")
        pytest.skip(f"no PostgreSQL at {POSTGRES_URL}")
    schema = f"mlops_test_{uuid.uuid4().hex[:10]}"
    connection.execute(f'CREATE SCHEMA "{schema}"')
    try:
        yield schema
    finally:
        connection.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        connection.close()


@pytest.fixture(scope="session")
def mlflow_server(tmp_path_factory):
    """A real ``mlflow server`` (SQLite backend store, served artifacts) for the whole session."""
    from tests.servers import MLflowServer

    server = MLflowServer(tmp_path_factory.mktemp("mlflow-server")).start()
    yield server
    server.stop()
