"""Shared test helpers: write model configs next to the bundled DAG stub, grow data, run DAGs for real."""

from __future__ import annotations

import json
import shutil
from datetime import date, timedelta
from pathlib import Path

import yaml

from airflow_mlops.demo import (DATA_START, DemoEnvironment, bundled_dags_dir, grow_data, run_asset_triggered, run_dag,
                                unpause, with_overrides)

BUNDLED = bundled_dags_dir()


def bundled_config(**overrides) -> dict:
    return with_overrides(yaml.safe_load((BUNDLED / "configs" / "credit_risk.yaml").read_text()), overrides)


class Project:
    def __init__(self, root: Path, dags_folder: Path, monkeypatch):
        self.root = root
        self.dags_folder = dags_folder
        self.env = DemoEnvironment(root)
        self.written: list[Path] = []
        self.mlflow_uri = f"sqlite:///{root / 'mlflow.db'}"
        monkeypatch.setenv("AIRFLOW_CONN_MLOPS_DATA", json.dumps({"conn_type": "sqlite",
                                                                  "host": str(root / "data.db")}))
        monkeypatch.setenv("AIRFLOW_CONN_MLFLOW_DEFAULT", json.dumps(
            {"conn_type": "mlflow", "extra": {"tracking_uri": self.mlflow_uri,
                                              "artifact_root": (root / "artifacts").as_uri()}}))

    def write_model(self, name: str, **overrides) -> Path:
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
        return grow_data(self.env, until, **kwargs)

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
