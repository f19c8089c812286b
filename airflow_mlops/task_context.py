"""What operators, sensors and triggers derive from the model config and the Airflow task context.

* ``model_config``: the config a task was given (a path, the parsed mapping, or a ModelConfig);
* the idempotency key of a task try: a digest of (dag_id, run_id, task_id, map_index), so a retry finds what an
  earlier try created, and two mapped instances of one task never share a key;
* the end of a run's data window; the lineage and trigger tags every MLflow run carries.
Light to import (DAG files import it through the operators): no heavy library, no I/O.
"""

from __future__ import annotations

import hashlib
import json
from datetime import datetime
from functools import cached_property
from typing import Any

from airflow_mlops.core import names
from airflow_mlops.core.config import ModelConfig, load_config, parse_config


def idempotency_key(*parts: str) -> str:
    return hashlib.sha256("|".join(parts).encode()).hexdigest()[:40]


class ModelConfigMixin:
    """``model_config`` from ``self.config``: a path to the model YAML, the parsed mapping, or a ModelConfig."""

    config: Any
    task_id: str

    @cached_property
    def model_config(self) -> ModelConfig:
        if isinstance(self.config, ModelConfig):
            return self.config
        if isinstance(self.config, dict):
            return parse_config(self.config, f"config of task {self.task_id}")
        return load_config(self.config)


def run_identity(context) -> tuple[str, str]:
    ti = context["ti"]
    return ti.dag_id, ti.run_id


def map_index(context) -> int:
    value = getattr(context["ti"], "map_index", -1)
    return -1 if value is None else int(value)


def task_key(context, task_id: str) -> str:
    """The idempotency key of this task instance (all tries of it share it)."""
    dag_id, run_id = run_identity(context)
    index = map_index(context)
    parts = [dag_id, run_id, task_id] + ([str(index)] if index >= 0 else [])
    return idempotency_key(*parts)


def pipeline_key(context) -> str:
    """The key of the DAG run (the parent MLflow run of its tasks)."""
    return idempotency_key(*run_identity(context))


def actor(context) -> str:
    """Who made a change, for the deployment log: ``dag_id/run_id/task_id``."""
    dag_id, run_id = run_identity(context)
    return f"{dag_id}/{run_id}/{context['ti'].task_id}"


def resolve_window_end(value: Any, context, model: str | None = None) -> datetime:
    """The end of the data window: an explicit value, else the run's data interval end (or logical date);
    a run triggered by a drift event has neither and uses the end of the window the drift was found in;
    else the run's ``run_after``."""
    if value:
        return value if isinstance(value, datetime) else datetime.fromisoformat(str(value))
    for candidate in (context.get("data_interval_end"), context.get("logical_date")):
        if candidate is not None:
            return candidate
    if model is not None:
        from airflow_mlops.assets import triggering_drift_events

        ends = [event["extra"].get("window_end") for event in triggering_drift_events(context, model)]
        if any(ends):
            return max(datetime.fromisoformat(end) for end in ends if end)
    return context["dag_run"].run_after


def trigger_tags(context, model: str) -> dict[str, str]:
    """What started this DAG run; for a drift-triggered retrain, the drift event(s) behind it."""
    from airflow_mlops.assets import triggering_drift_events

    events = triggering_drift_events(context, model)
    if events:
        return {names.TRIGGER: "drift_event",
                names.DRIFT_EVENT: json.dumps(events[-1], sort_keys=True, default=str)[:4900],
                names.DRIFT_EVENTS: str(len(events))}
    run_type = getattr(context.get("dag_run"), "run_type", None)
    return {names.TRIGGER: str(getattr(run_type, "value", run_type) or "unknown")}


def is_drift_triggered(context, model: str) -> bool:
    return trigger_tags(context, model)[names.TRIGGER] == "drift_event"


def lineage_tags(context, config: ModelConfig, task_id: str) -> dict[str, str]:
    from airflow_mlops import __version__

    dag_id, run_id = run_identity(context)
    # The DAG bundle's version (a git commit for git bundles) pins the DAG code that ran.
    bundle_version = getattr(context.get("dag_run"), "bundle_version", None) or "unversioned"
    tags = {names.BUNDLE_VERSION: str(bundle_version), names.DAG_ID: dag_id, names.RUN_ID: run_id,
            names.TASK_ID: task_id, names.MODEL: config.model, names.CONFIG_HASH: config.config_hash(),
            names.CODE_VERSION: f"airflow-provider-mlops=={__version__}", **trigger_tags(context, config.model)}
    if map_index(context) >= 0:
        tags[names.MAP_INDEX] = str(map_index(context))
    return tags
