"""SqlDataHook against SQLite and the local PostgreSQL server (one schema per test)."""

from __future__ import annotations

import json
from datetime import datetime

import pandas as pd
import pytest

from airflow_mlops.demo.synthetic import generate
from airflow_mlops.hooks.data import DataSourceError, SqlDataHook, quote_identifier
from airflow_mlops.hooks.dialects import PARAM
from airflow_mlops.quarantine import quarantine_rows
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
    from airflow_mlops.demo.synthetic import write_sqlite

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
    assert hook.dialect.name == "postgres"
    table = f"{postgres_schema}.loans"
    got = hook.read_window(columns=COLUMNS, timestamp_column="applied_at", start=START, end=END, table=table,
                           order_by=["loan_id"])
    pd.testing.assert_frame_equal(got, expected_window(frame), check_dtype=False)
    with pytest.raises(DataSourceError, match="does not exist"):
        hook.read_window(columns=COLUMNS, timestamp_column="applied_at", start=START, end=END,
                         table=f"{postgres_schema}.missing")
    quarantine = f"{postgres_schema}.loans_quarantine"
    bad = got.head(7)
    assert quarantine_rows(hook.database, quarantine, bad, key="run-1", reason="x") == 7
    assert quarantine_rows(hook.database, quarantine, bad, key="run-1", reason="x") == 7  # a retry replaces
    quarantine_rows(hook.database, quarantine, bad.head(2), key="run-2", reason="y")
    counts = hook.read_sql(f'SELECT "_mlops_run_key", count(*) AS n FROM {quote_identifier(quarantine)} '
                           'GROUP BY 1 ORDER BY 1')
    assert counts.to_dict("list") == {"_mlops_run_key": ["run-1", "run-2"], "n": [7, 2]}


def _columns(hook, table):
    if hook.dialect.name == "sqlite":
        return hook.read_sql(f"PRAGMA table_info({quote_identifier(table)})")[["name", "type"]].values.tolist()
    schema, _, name = table.partition(".")
    frame = hook.read_sql(f"SELECT column_name, data_type FROM information_schema.columns WHERE table_schema = "
                          f"{PARAM} AND table_name = {PARAM} ORDER BY ordinal_position", [schema, name])
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
    columns = {"key": "TEXT", "n": "BIGINT", "share": "DOUBLE PRECISION"}
    for _ in range(2):
        hook.ensure_table(table, columns, index=("key", "n"))
    expected = {"sqlite": [["key", "TEXT"], ["n", "BIGINT"], ["share", "DOUBLE PRECISION"]],
                "postgres": [["key", "text"], ["n", "bigint"], ["share", "double precision"]]}[dialect]
    assert _columns(hook, table) == expected
    hook.replace_rows(pd.DataFrame({"n": [1], "share": [0.5]}), table, key_column="key", key="a")
    assert hook.read_sql(f"SELECT * FROM {quote_identifier(table)}").to_dict("records") == [
        {"key": "a", "n": 1, "share": 0.5}]


@pytest.mark.parametrize("dialect", ["sqlite", "postgres"])
def test_a_quarantine_table_follows_new_columns(dialect, tmp_path, monkeypatch, request):
    """After a feature was added to the config, quarantining failed: the table had no column for it."""
    if dialect == "sqlite":
        monkeypatch.setenv("AIRFLOW_CONN_Q", json.dumps({"conn_type": "sqlite", "host": str(tmp_path / "q.db")}))
        table = "m_quarantine"
    else:
        monkeypatch.setenv("AIRFLOW_CONN_Q", POSTGRES_URL)
        table = f"{request.getfixturevalue('postgres_schema')}.m_quarantine"
    database = SqlDataHook(data_conn_id="q").database
    assert quarantine_rows(database, table, pd.DataFrame({"id": [1], "income": ["n/a"]}), key="r1", reason="x") == 1
    later = pd.DataFrame({"id": [2], "income": [None], "new_feature": [3.5]})
    assert quarantine_rows(database, table, later, key="r2", reason="y") == 1
    rows = database.read_sql(f"SELECT id, income, new_feature FROM {quote_identifier(table)} ORDER BY id")
    assert rows.values.tolist() == [["1", "n/a", None], ["2", None, "3.5"]]


@pytest.mark.parametrize("dialect", ["sqlite", "postgres"])
def test_a_frame_is_written_as_its_rows_would_be(dialect, tmp_path, request):
    """Bulk writers take rows or a DataFrame (PostgreSQL: CSV that Arrow formats). Both give the same table: text
    with quotes, separators, line breaks and accents, empty text apart from missing, exact doubles at their
    extremes, non-finite scores (PostgreSQL keeps NaN and infinities; SQLite stores NaN as NULL either way)."""
    import math

    import numpy as np

    from airflow_mlops.hooks.database import Database

    if dialect == "sqlite":
        database, prefix = Database.from_uri(f"sqlite:///{tmp_path / 'w.db'}"), ""
    else:
        database, prefix = Database.from_uri(POSTGRES_URL), f"{request.getfixturevalue('postgres_schema')}."
    rng = np.random.default_rng(3)
    texts = ['a "quoted", text', "line\nbreak", "", "é ünï", "7", None, "tab\there", "\\N", "NULL"]
    doubles = [*rng.random(600).tolist(), 5e-324, 1.7976931348623157e308, -0.0, 1 / 3, float("nan"), float("inf"),
               float("-inf"), None]
    n = len(doubles)
    frame = pd.DataFrame({"key": [f"k{i:03d}" for i in range(n)], "text": (texts * n)[:n], "score": doubles,
                          "flag": np.arange(n, dtype=np.int64) % 2})
    columns = list(frame.columns)

    def written(rows, table):
        database.ensure_table(table, {"key": "TEXT", "text": "TEXT", "score": "DOUBLE PRECISION",
                                      "flag": "BIGINT"}, primary_key=("key",))
        with database.bulk_writer(table, columns) as write:
            assert write(rows) == n
        return database.read_sql(f"SELECT * FROM {database.dialect.quote(database.dialect.table_name(table))} "
                                 "ORDER BY key")

    as_rows = written(list(frame.itertuples(index=False, name=None)), prefix + "as_rows")
    as_frame = written(frame, prefix + "as_frame")
    assert as_frame.equals(as_rows) and len(as_frame) == n
    assert as_frame["text"].tolist() == frame["text"].tolist()
    scores = as_frame["score"].tolist()
    for got, wanted in zip(scores, frame["score"].tolist(), strict=True):
        if wanted is None or (math.isnan(wanted) and dialect == "sqlite"):
            assert got is None or math.isnan(got)
        elif math.isnan(wanted):
            assert math.isnan(got)
        else:
            assert got == wanted


@pytest.mark.parametrize("dialect", ["sqlite", "postgres"])
def test_rows_of_the_wrong_length_are_refused_and_nothing_is_written(dialect, tmp_path, request):
    """Found by a probe: rows flattened into multi-row INSERTs shifted a short row's neighbours into its place."""
    from airflow_mlops.core.errors import DataSourceError
    from airflow_mlops.hooks.database import Database

    if dialect == "sqlite":
        database, table = Database.from_uri(f"sqlite:///{tmp_path / 'w.db'}"), "t"
    else:
        database, table = Database.from_uri(POSTGRES_URL), f"{request.getfixturevalue('postgres_schema')}.t"
    database.ensure_table(table, {"a": "TEXT", "b": "TEXT", "c": "TEXT"})
    for rows in ([("a1", "b1", "c1"), ("a2", "b2"), ("a3", "b3", "c3")],
                 [("a1", "b1", "c1"), ("a2", "b2", "c2", "extra")]):
        with pytest.raises(DataSourceError, match="writing"):
            with database.bulk_writer(table, ["a", "b", "c"]) as write:
                write(rows)
    assert database.read_sql(f"SELECT count(*) AS n FROM {database.dialect.quote(database.dialect.table_name(table))}"
                             )["n"].iloc[0] == 0


def test_a_postgres_write_session_lends_no_connection_its_copy_holds(postgres_schema):
    """Found by a probe: a statement on the session's connection while a frame's COPY stream was open waited
    forever for psycopg's connection lock. PostgreSQL sessions hand out no connection; SQLite ones do (reads must
    go through the writer's connection there)."""
    from airflow_mlops.hooks.database import Database

    database = Database.from_uri(POSTGRES_URL)
    database.ensure_table(f"{postgres_schema}.t", {"k": "BIGINT"})
    with database.write_session([(f"{postgres_schema}.t", ["k"], None)]) as (connection, (write,)):
        assert connection is None
        write(pd.DataFrame({"k": [1, 2, 3]}))
        assert len(database.read_sql(f'SELECT k FROM "{postgres_schema}".t')) == 0  # not committed yet
    assert database.read_sql(f'SELECT count(*) AS n FROM "{postgres_schema}".t')["n"].iloc[0] == 3


@pytest.mark.parametrize("dialect", ["sqlite", "postgres"])
def test_a_frame_arrow_would_print_differently_goes_row_by_row(dialect, tmp_path, request):
    """Found by a probe: Arrow's CSV printed a float32 rounded (0.1 for 0.10000000149011612), a boolean as 'true'
    and could not convert an object column of mixed types. Such frames are written row by row, as tuples are; a
    frame without a column the writer needs is a clear error."""
    import numpy as np

    from airflow_mlops.core.errors import DataSourceError
    from airflow_mlops.hooks.database import Database

    if dialect == "sqlite":
        database, prefix = Database.from_uri(f"sqlite:///{tmp_path / 'w.db'}"), ""
    else:
        database, prefix = Database.from_uri(POSTGRES_URL), f"{request.getfixturevalue('postgres_schema')}."
    frame = pd.DataFrame({"key": ["a", "b", "c"], "small": np.array([0.1, 0.25, 1e-8], dtype=np.float32),
                          "flag": [True, False, True], "mixed": [1, "a", None]})
    columns = {"key": "TEXT", "small": "DOUBLE PRECISION", "flag": "TEXT", "mixed": "TEXT"}
    tables = []
    for how, rows in (("as_rows", list(frame.itertuples(index=False, name=None))), ("as_frame", frame)):
        table = prefix + how
        database.ensure_table(table, columns)
        with database.bulk_writer(table, list(columns)) as write:
            assert write(rows) == 3
        tables.append(database.read_sql(f"SELECT * FROM {database.dialect.quote(database.dialect.table_name(table))}"
                                        " ORDER BY key"))
    assert tables[1].equals(tables[0])
    assert tables[1]["small"].tolist() == [float(np.float32(v)) for v in (0.1, 0.25, 1e-8)]
    with pytest.raises(DataSourceError, match="writing"):
        with database.bulk_writer(prefix + "as_frame", list(columns)) as write:
            write(frame.drop(columns="flag"))
