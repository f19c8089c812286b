"""Shared test helpers: write model configs next to the bundled DAG stub, grow data, run DAGs for real."""

from __future__ import annotations

import json
import shutil
from datetime import date, timedelta
from pathlib import Path

import yaml

from airflow_mlops.bundled import bundled_dags_dir
from airflow_mlops.demo.environment import DATA_START, DemoEnvironment, grow_data, with_overrides
from airflow_mlops.demo.harness import run_asset_triggered, run_dag, unpause

BUNDLED = bundled_dags_dir()


def bundled_config(**overrides) -> dict:
    return with_overrides(yaml.safe_load((BUNDLED / "configs" / "credit_risk.yaml").read_text()), overrides)


class Project:
    def __init__(self, root: Path, dags_folder: Path, monkeypatch):
        self.root = root
        self.dags_folder = dags_folder
        self.env = DemoEnvironment(root)
        self.written: list[Path] = []
        self.monkeypatch = monkeypatch
        self.pg_schema: str | None = None
        self.pg_loaded_until: date | None = None
        self.mlflow_uri = f"sqlite:///{root / 'mlflow.db'}"
        monkeypatch.setenv("AIRFLOW_CONN_MLOPS_DATA", json.dumps({"conn_type": "sqlite",
                                                                  "host": str(root / "data.db")}))
        monkeypatch.setenv("AIRFLOW_CONN_MLFLOW_DEFAULT", json.dumps(
            {"conn_type": "mlflow", "extra": {"tracking_uri": self.mlflow_uri,
                                              "artifact_root": (root / "artifacts").as_uri()}}))

    def use_postgres(self, schema: str) -> None:
        """Data and deployment state in the local PostgreSQL (this schema) instead of SQLite."""
        import psycopg

        from tests.conftest import POSTGRES_URL

        self.pg_schema = schema
        self.monkeypatch.setenv("AIRFLOW_CONN_MLOPS_DATA", POSTGRES_URL)
        with psycopg.connect(POSTGRES_URL, autocommit=True) as connection:
            connection.execute(f'CREATE TABLE "{schema}".loans (loan_id text primary key, applied_at timestamp, '
                               'income double precision, amount double precision, term integer, purpose text, '
                               'region text, defaulted integer)')

    def write_model(self, name: str, **overrides) -> Path:
        if self.pg_schema:
            overrides = {"data.table": f"{self.pg_schema}.loans", "state_schema": self.pg_schema, **overrides}
        raw = bundled_config(**{"model": name, "retries": 0, **overrides})
        config = self.dags_folder / "configs" / f"{name}.yaml"
        config.write_text(yaml.safe_dump(raw, sort_keys=False))
        stub = self.dags_folder / f"mlops_{name}.py"
        shutil.copy(BUNDLED / "mlops_credit_risk.py", stub)
        self.written += [config, stub]
        return config

    def install_example(self, example: str) -> None:
        """Copy a documented example DAG (``docs/examples/<example>``) into the dags folder, with the bundled
        credit_risk config it reads."""
        self.write_model("credit_risk")
        target = self.dags_folder / example
        shutil.copy(BUNDLED.parent / "docs" / "examples" / example, target)
        self.written.append(target)

    def grow(self, until: date, **kwargs) -> int:
        if not self.pg_schema:
            return grow_data(self.env, until, **kwargs)
        import psycopg

        from airflow_mlops.demo.synthetic import generate
        from tests.conftest import POSTGRES_URL

        start = self.pg_loaded_until or DATA_START
        if (until - start).days <= 0:
            return 0
        frame = generate(start, (until - start).days, **kwargs)
        with psycopg.connect(POSTGRES_URL, autocommit=True) as connection, connection.cursor() as cursor:
            with cursor.copy(f'COPY "{self.pg_schema}".loans ({", ".join(frame.columns)}) FROM STDIN') as copy:
                for row in frame.itertuples(index=False):
                    copy.write_row(list(row))
        self.pg_loaded_until = until
        return len(frame)

    def sql(self, statement: str, params=()) -> list:
        """Run SQL on the project's data database (SQLite file or the PostgreSQL schema's database)."""
        if self.pg_schema:
            import psycopg

            from tests.conftest import POSTGRES_URL

            with psycopg.connect(POSTGRES_URL, autocommit=True) as connection:
                cursor = connection.execute(statement, params or None)
                return cursor.fetchall() if cursor.description else []
        import sqlite3

        with sqlite3.connect(self.env.data_db) as connection:
            return connection.execute(statement.replace("%s", "?"), params).fetchall()

    def run(self, model: str, run_date: date) -> dict:
        return run_dag(f"mlops_ct__{model}", run_date)

    def check_drift(self, model: str, run_date: date) -> dict:
        return run_dag(f"mlops_drift__{model}", run_date)

    def run_triggered(self, model: str) -> dict | None:
        """The CT run the scheduler starts for queued drift events (None when nothing is queued)."""
        return run_asset_triggered(f"mlops_ct__{model}")

    def switch_on(self, model: str) -> None:
        unpause(f"mlops_ct__{model}")

    @property
    def mlflow(self):
        """The provider's own hook on this project's MLflow connection (what the operators use)."""
        from airflow_mlops.hooks.mlflow import MLflowHook

        return MLflowHook("mlflow_default")

    def state(self, model: str, conn_id: str = "mlops_data", schema: str | None = None):
        """The deployment state store of this project (the source of truth for champions)."""
        from airflow_mlops.hooks.data import SqlDataHook
        from airflow_mlops.hooks.state import StateStore

        return StateStore(SqlDataHook(data_conn_id=conn_id).database, schema=schema or self.pg_schema)

    @property
    def client(self):
        from mlflow import MlflowClient

        return MlflowClient(tracking_uri=self.mlflow_uri, registry_uri=self.mlflow_uri)

    def task_runs(self, model: str, task_id: str) -> list:
        client = self.client
        experiment = client.get_experiment_by_name(f"mlops/{model}")
        return client.search_runs([experiment.experiment_id], filter_string=f"tags.`mlops.task_id` = '{task_id}'")

    def cleanup(self) -> None:
        for path in self.written:
            path.unlink(missing_ok=True)


FIRST = DATA_START + timedelta(days=77)
