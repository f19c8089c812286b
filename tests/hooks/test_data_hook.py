"""SqlDataHook against SQLite and the local PostgreSQL server (one schema per test)."""

from __future__ import annotations

import json
from datetime import datetime

import pandas as pd
import pytest

from airflow_mlops.core.synthetic import generate
from airflow_mlops.hooks.data import DataSourceError, SqlDataHook, quote_identifier
from tests.conftest import POSTGRES_URL
from tests.helpers import DATA_START

COLUMNS = ["loan_id", "applied_at", "income", "purpose", "defaulted"]
START, END = datetime(2025, 1, 2), datetime(2025, 1, 4)


def expected_window(frame):
    inside = frame[(frame["applied_at"] >= START) & (frame["applied_at"] < END)]
    return inside.sort_values(["applied_at", "loan_id"])[COLUMNS].reset_index(drop=True)


def test_quote_identifier():
    assert quote_identifier('a"b') == '"a""b"' and quote_identifier("s.t") == '"s"."t"'


def test_sqlite_window_and_errors(tmp_path, monkeypatch):
    frame = generate(DATA_START, 5, rows_per_day=50)
    path = tmp_path / "data.db"
    from airflow_mlops.core.synthetic import write_sqlite

    write_sqlite(str(path), frame)
    monkeypatch.setenv("AIRFLOW_CONN_LITE", json.dumps({"conn_type": "sqlite", "host": str(path)}))
    hook = SqlDataHook(data_conn_id="lite")
    got = hook.read_window(columns=COLUMNS, timestamp_column="applied_at", start=START, end=END, table="loans",
                           order_by=["loan_id"])
    pd.testing.assert_frame_equal(got, expected_window(frame), check_dtype=False)
    query = hook.read_window(columns=COLUMNS, timestamp_column="applied_at", start=START, end=END,
                             query="SELECT * FROM loans WHERE purpose = 'car'", order_by=["loan_id"])
    assert set(query["purpose"]) == {"car"}
    with pytest.raises(DataSourceError, match="no such table"):
        hook.read_window(columns=COLUMNS, timestamp_column="applied_at", start=START, end=END, table="nope")
    with pytest.raises(DataSourceError, match=r"no column\(s\) \['salary'\]"):
        hook.read_window(columns=["salary"], timestamp_column="applied_at", start=START, end=END, table="loans")


@pytest.mark.postgres
def test_postgres_window_and_quarantine_writes(postgres_schema, monkeypatch):
    import psycopg

    frame = generate(DATA_START, 5, rows_per_day=50)
    with psycopg.connect(POSTGRES_URL, autocommit=True) as connection:
        connection.execute(f'CREATE TABLE "{postgres_schema}".loans (loan_id text, applied_at timestamp, '
                           'income double precision, purpose text, defaulted integer)')
        with connection.cursor().copy(f'COPY "{postgres_schema}".loans FROM STDIN') as copy:
            for row in frame[COLUMNS].itertuples(index=False):
                copy.write_row(list(row))
    monkeypatch.setenv("AIRFLOW_CONN_PG_DATA", POSTGRES_URL)
    hook = SqlDataHook(data_conn_id="pg_data")
    assert hook.dialect == "postgres"
    table = f"{postgres_schema}.loans"
    got = hook.read_window(columns=COLUMNS, timestamp_column="applied_at", start=START, end=END, table=table,
                           order_by=["loan_id"])
    pd.testing.assert_frame_equal(got, expected_window(frame), check_dtype=False)
    with pytest.raises(DataSourceError, match="does not exist"):
        hook.read_window(columns=COLUMNS, timestamp_column="applied_at", start=START, end=END,
                         table=f"{postgres_schema}.missing")
    quarantine = f"{postgres_schema}.loans_quarantine"
    bad = got.head(7)
    assert hook.replace_rows(bad, quarantine, key_column="_key", key="run-1") == 7
    assert hook.replace_rows(bad, quarantine, key_column="_key", key="run-1") == 7  # a retry replaces
    hook.replace_rows(bad.head(2), quarantine, key_column="_key", key="run-2")
    counts = hook.read_sql(f'SELECT "_key", count(*) AS n FROM {quote_identifier(quarantine)} GROUP BY 1 ORDER BY 1')
    assert counts.to_dict("list") == {"_key": ["run-1", "run-2"], "n": [7, 2]}


def _columns(hook, table):
    if hook.dialect == "sqlite":
        return hook.read_sql(f"PRAGMA table_info({quote_identifier(table)})")[["name", "type"]].values.tolist()
    schema, _, name = table.partition(".")
    frame = hook.read_sql("SELECT column_name, data_type FROM information_schema.columns WHERE table_schema = %s "
                          "AND table_name = %s ORDER BY ordinal_position", [schema, name])
    return frame.values.tolist()


@pytest.mark.parametrize("dialect", ["sqlite", "postgres"])
def test_ensure_table_is_explicit_and_idempotent(dialect, tmp_path, monkeypatch, request):
    if dialect == "sqlite":
        monkeypatch.setenv("AIRFLOW_CONN_STATE", json.dumps({"conn_type": "sqlite", "host": str(tmp_path / "s.db")}))
        table = "history"
    else:
        schema = request.getfixturevalue("postgres_schema")
        monkeypatch.setenv("AIRFLOW_CONN_STATE", POSTGRES_URL)
        table = f"{schema}.history"
    hook = SqlDataHook(data_conn_id="state")
    columns = {"key": "TEXT", "n": "INTEGER", "share": "DOUBLE PRECISION"}
    for _ in range(2):
        hook.ensure_table(table, columns, index=("key", "n"))
    expected = {"sqlite": [["key", "TEXT"], ["n", "INTEGER"], ["share", "DOUBLE PRECISION"]],
                "postgres": [["key", "text"], ["n", "integer"], ["share", "double precision"]]}[dialect]
    assert _columns(hook, table) == expected
    hook.replace_rows(pd.DataFrame({"n": [1], "share": [0.5]}), table, key_column="key", key="a")
    assert hook.read_sql(f"SELECT * FROM {quote_identifier(table)}").to_dict("records") == [
        {"key": "a", "n": 1, "share": 0.5}]
