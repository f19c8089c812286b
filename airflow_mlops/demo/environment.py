"""A self-contained demo home: Airflow settings and connections as environment variables, the bundled DAGs,
and the synthetic data that grows day by day (demo and tests only; nothing here is on the runtime path)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path

from airflow_mlops.bundled import bundled_dags_dir

MODEL = "credit_risk"
DATA_START = date(2025, 1, 1)
FIRST_RUN = DATA_START + timedelta(days=77)   # 60d train + 14d holdout + a few days of slack
ROWS_PER_DAY = 300


@dataclass
class DemoEnvironment:
    home: Path
    env: dict[str, str] = field(default_factory=dict)
    config_overrides: dict = field(default_factory=dict)

    @property
    def data_db(self) -> Path:
        return self.home / "data.db"

    @property
    def dags_folder(self) -> Path:
        return self.home / "dags"

    @property
    def mlflow_uri(self) -> str:
        return f"sqlite:///{self.home / 'mlflow.db'}"


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
    environment.config_overrides = dict(config_overrides or {})
    airflow = Path(sys.executable).with_name("airflow")
    subprocess.run([str(airflow), "db", "migrate"], env={**os.environ, **environment.env}, check=True,
                   stdout=subprocess.DEVNULL)
    return environment


def write_model(environment: DemoEnvironment, name: str, overrides: dict) -> Path:
    """Add (or rewrite) a model to the home: the bundled DAG stub as ``mlops_<name>.py`` and the bundled
    ``credit_risk`` config with these dotted-field overrides as ``configs/<name>.yaml``."""
    import yaml

    source = bundled_dags_dir()
    shutil.copy(source / f"mlops_{MODEL}.py", environment.dags_folder / f"mlops_{name}.py")
    raw = yaml.safe_load((source / "configs" / f"{MODEL}.yaml").read_text())
    raw = with_overrides(raw, {**environment.config_overrides, "model": name, **overrides})
    config = environment.dags_folder / "configs" / f"{name}.yaml"
    config.write_text(yaml.safe_dump(raw, sort_keys=False))
    return config


def grow_data(environment: DemoEnvironment, until: date, *, drift_from: date | None = None,
              bad_days: frozenset[date] = frozenset()) -> int:
    """Append the synthetic days not yet in the table, up to (not including) ``until``."""
    import sqlite3

    from airflow_mlops.demo.synthetic import generate, write_sqlite

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

    from airflow_mlops.demo.synthetic import generate_day, write_sqlite

    with sqlite3.connect(environment.data_db) as connection:
        connection.execute("DELETE FROM loans WHERE applied_at >= ? AND applied_at < ?",
                            (day.isoformat(), (day + timedelta(days=1)).isoformat()))
    return write_sqlite(str(environment.data_db), generate_day(day, rows=ROWS_PER_DAY))
