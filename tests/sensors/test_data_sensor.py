"""DataWindowSensor: poke against real data; the deferral shape (trigger, its arguments, the method)."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from airflow_mlops.demo.environment import DATA_START
from airflow_mlops.sensors.data import DataWindowSensor
from tests.helpers import bundled_config


@pytest.fixture
def data(project):
    project.grow(DATA_START + timedelta(days=3))  # rows up to 2025-01-03 23:5x
    return project


def sensor(**kwargs):
    return DataWindowSensor(task_id="wait_for_data", config=bundled_config(), **kwargs)


def test_poke_compares_the_newest_row_with_the_window_end_minus_lag(data):
    complete = datetime(2025, 1, 4, tzinfo=timezone.utc)
    assert sensor(window_end=complete).poke({}) is True  # newest row is within the hour before midnight
    assert sensor(window_end=complete + timedelta(hours=2)).poke({}) is False
    assert sensor(window_end=complete + timedelta(hours=2), lag=timedelta(hours=3)).poke({}) is True
    assert sensor(window_end="2025-01-04T00:00:00").complete_at({}) == datetime(2025, 1, 3, 23)


def test_defers_to_the_trigger_only_when_data_is_missing(data):
    from airflow.sdk.exceptions import TaskDeferred

    sensor(window_end="2025-01-04T00:00:00", deferrable=True).execute({})  # complete: returns at once
    waiting = sensor(window_end="2025-01-10T00:00:00", deferrable=True, timeout=600, poke_interval=30)
    with pytest.raises(TaskDeferred) as deferred:
        waiting.execute({})
    trigger = deferred.value.trigger
    assert deferred.value.method_name == "execute_complete" and deferred.value.timeout == timedelta(seconds=600)
    assert trigger.serialize()[1] == {"data_conn_id": "mlops_data", "timestamp_column": "applied_at",
                                      "complete_at": "2025-01-09T23:00:00", "table": "loans", "query": None,
                                      "poll_interval": 30, "timestamp_format": "iso"}


def test_execute_complete_fails_with_the_triggers_message():
    from airflow.sdk.exceptions import AirflowException

    done = sensor(window_end="2025-01-04T00:00:00")
    done.execute_complete({}, {"status": "success", "message": "loans has rows up to ..."})
    with pytest.raises(AirflowException, match="waiting for data failed: OperationalError: no such table"):
        done.execute_complete({}, {"status": "error", "message": "OperationalError: no such table"})
    with pytest.raises(AirflowException, match="no event"):
        done.execute_complete({}, None)
