"""The Assets of the DAG pack and how a run finds the asset events that triggered it."""

from __future__ import annotations

from typing import Any

from airflow.sdk import Asset

from airflow_mlops.core.names import canary_asset_uri, drift_asset_uri


def canary_asset(model: str) -> Asset:
    """The Asset the CT DAG updates when it starts a canary; the canary DAG is scheduled on it."""
    return Asset(canary_asset_uri(model), extra={"model": model})


def drift_asset(model: str) -> Asset:
    """The Asset the drift DAG updates when drift is confirmed; the CT DAG is scheduled on it."""
    return Asset(drift_asset_uri(model), extra={"model": model})


def triggering_drift_events(context, model: str) -> list[dict[str, Any]]:
    """The drift events on this model's Asset that triggered the current DAG run (oldest first), as dicts.

    Empty for a run started by its time schedule or by hand.
    """
    events = context.get("triggering_asset_events") or {}
    try:
        found = list(events[drift_asset(model)])
    except (KeyError, TypeError):
        return []
    return [{"timestamp": event.timestamp.isoformat(), "source_dag_id": event.source_dag_id,
             "source_run_id": event.source_run_id, "extra": dict(event.extra or {})} for event in found]
