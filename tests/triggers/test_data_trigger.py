"""DataWindowTrigger against a real SQLite database: it waits, then fires; errors become events."""

from __future__ import annotations

import asyncio
import json
import sqlite3
import threading
import time

from airflow_mlops.triggers.data import DataWindowTrigger

COMPLETE_AT = "2025-03-20T00:00:00"


def database(tmp_path, monkeypatch, rows):
    path = tmp_path / "events.db"
    with sqlite3.connect(path) as connection:
        connection.execute("CREATE TABLE events (id INTEGER, ts TEXT)")
        connection.executemany("INSERT INTO events VALUES (?, ?)", rows)
    monkeypatch.setenv("AIRFLOW_CONN_EVENTS_DB", json.dumps({"conn_type": "sqlite", "host": str(path)}))
    return path


def trigger(**overrides):
    kwargs = {"data_conn_id": "events_db", "timestamp_column": "ts", "complete_at": COMPLETE_AT,
              "table": "events", "poll_interval": 0.05, **overrides}
    return DataWindowTrigger(**kwargs)


def first_event(instance, timeout=30):
    async def run():
        return await asyncio.wait_for(anext(instance.run()), timeout)
    return asyncio.run(run())


def test_serialize_round_trip_holds_only_ids_and_primitives():
    import importlib

    path, kwargs = trigger().serialize()
    assert path == "airflow_mlops.triggers.data.DataWindowTrigger"
    module, _, name = path.rpartition(".")
    assert getattr(importlib.import_module(module), name)(**kwargs).serialize() == (path, kwargs)
    assert json.loads(json.dumps(kwargs)) == kwargs


def test_fires_at_once_when_the_window_is_complete(tmp_path, monkeypatch):
    database(tmp_path, monkeypatch, [(1, "2025-03-19 22:00:00"), (2, "2025-03-20 00:30:00")])
    event = first_event(trigger())
    assert event.payload["status"] == "success" and event.payload["value"] == "2025-03-20T00:30:00"


def test_waits_until_rows_arrive(tmp_path, monkeypatch):
    path = database(tmp_path, monkeypatch, [(1, "2025-03-19 12:00:00")])

    def late_load():
        time.sleep(0.6)
        with sqlite3.connect(path) as connection:
            connection.execute("INSERT INTO events VALUES (2, '2025-03-20 00:00:00')")

    loader = threading.Thread(target=late_load)
    started = time.monotonic()
    loader.start()
    event = first_event(trigger())
    loader.join()
    assert event.payload["status"] == "success" and time.monotonic() - started >= 0.6


def test_a_failing_source_becomes_an_error_event(tmp_path, monkeypatch):
    database(tmp_path, monkeypatch, [])
    event = first_event(trigger(table="missing_table"))
    assert event.payload["status"] == "error" and "no such table" in event.payload["message"]
