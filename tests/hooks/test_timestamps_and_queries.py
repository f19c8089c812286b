"""Windows are exact in UTC whatever the timestamps look like (SQLite text in any ISO form, offsets, epochs;
Postgres timestamp and timestamptz under any session time zone); unreadable timestamps are counted and returned,
never dropped; user SQL with ``%`` reaches the server untouched; connection errors keep their cause."""

from __future__ import annotations

import sqlite3
import uuid
from datetime import datetime, timedelta

import pandas as pd
import pytest

from airflow_mlops.core.errors import DataSourceError
from airflow_mlops.hooks.database import Database
from tests.conftest import POSTGRES_URL

START, END = datetime(2018, 1, 4), datetime(2018, 1, 5)

# (id, text as pandas/sqlite3/people write it, the UTC instant it means or None when it cannot be read)
ROWS = [
    (1, "2018-01-04 00:39:36", "2018-01-04 00:39:36"),
    (2, "2018-01-04 00:39:36.250000", "2018-01-04 00:39:36.250"),
    (3, "2018-01-04T10:00:00", "2018-01-04 10:00:00"),
    (4, "2018-01-04T23:59:59Z", "2018-01-04 23:59:59"),
    (5, "2018-01-03 23:30:00-08:00", "2018-01-04 07:30:00"),   # as text it sorts before the window
    (6, "2018-01-04 20:00:00-08:00", "2018-01-05 04:00:00"),   # as text it sorts inside the window
    (7, "2018-01-04 00:00:00+01:00", "2018-01-03 23:00:00"),
    (8, "2018-01-04", "2018-01-04 00:00:00"),
    (9, "01/04/2018 12:00", None),                            # a third of a public data set looked like this
    (10, None, None),
    (11, "2018-01-05 00:00:00", "2018-01-05 00:00:00"),        # the end is exclusive
]


def sqlite_db(tmp_path, rows=ROWS) -> Database:
    path = tmp_path / "events.db"
    with sqlite3.connect(path) as connection:
        connection.execute("CREATE TABLE events (id INTEGER, happened_at TEXT, amount REAL)")
        connection.executemany("INSERT INTO events VALUES (?, ?, ?)", [(i, text, 1.0) for i, text, _ in rows])
    return Database.from_uri(f"sqlite:///{path}")


def expected_ids(rows=ROWS) -> list[int]:
    inside = [(pd.Timestamp(utc), i) for i, _, utc in rows if utc is not None]
    return [i for stamp, i in sorted(inside) if START <= stamp < END]


def test_sqlite_text_timestamps_windows_are_exact_in_utc(tmp_path):
    db = sqlite_db(tmp_path)
    read = db.read_window(columns=["id", "happened_at"], timestamp_column="happened_at", start=START, end=END,
                          table="events", order_by=["id"])
    assert read.frame["id"].tolist() == expected_ids() == [8, 1, 2, 5, 3, 4]
    assert str(read.frame["happened_at"].dtype) == "datetime64[ns]"
    assert read.frame.loc[read.frame["id"] == 5, "happened_at"].iloc[0] == pd.Timestamp("2018-01-04 07:30:00")
    # Unreadable timestamps belong to no window: counted and handed back with their raw values.
    assert read.unreadable_count == 2
    assert sorted(read.unreadable["id"].astype(int).tolist()) == [9, 10]  # returned as text, as quarantined
    assert read.unreadable.loc[read.unreadable["id"] == "9", "happened_at"].iloc[0] == "01/04/2018 12:00"
    assert db.latest_timestamp(timestamp_column="happened_at", table="events") == datetime(2018, 1, 5, 4, 0)


@pytest.mark.parametrize("fmt,scale", [("epoch_seconds", 1), ("epoch_milliseconds", 1000)])
def test_sqlite_numeric_epochs_when_the_config_says_so(tmp_path, fmt, scale):
    stamps = pd.to_datetime(["2018-01-03 23:59:59", "2018-01-04 00:00:00", "2018-01-04 12:30:00",
                             "2018-01-05 00:00:00"])
    path = tmp_path / "epochs.db"
    with sqlite3.connect(path) as connection:
        connection.execute("CREATE TABLE events (id INTEGER, ts INTEGER)")
        connection.executemany("INSERT INTO events VALUES (?, ?)",
                               [(i, int(s.timestamp()) * scale) for i, s in enumerate(stamps)] + [(9, "soon")])
    db = Database.from_uri(f"sqlite:///{path}")
    read = db.read_window(columns=["id", "ts"], timestamp_column="ts", start=START, end=END, table="events",
                          timestamp_format=fmt)
    assert read.frame["id"].tolist() == [1, 2] and read.frame["ts"].iloc[1] == pd.Timestamp("2018-01-04 12:30")
    assert read.unreadable_count == 1
    # Read as ISO text, the same numbers are unreadable (SQLite would silently take them as Julian days).
    assert db.read_window(columns=["id"], timestamp_column="ts", start=START, end=END, table="events"
                          ).unreadable_count == 5


@pytest.fixture
def pg_tz_role(postgres_schema):
    """A role whose sessions run in America/Los_Angeles, allowed to read the test schema."""
    import psycopg

    role = f"mlops_tz_{uuid.uuid4().hex[:8]}"
    admin = psycopg.connect(POSTGRES_URL, autocommit=True)
    admin.execute(f'CREATE ROLE "{role}" LOGIN')
    admin.execute(f"ALTER ROLE \"{role}\" SET timezone = 'America/Los_Angeles'")
    admin.execute(f'GRANT USAGE ON SCHEMA "{postgres_schema}" TO "{role}"')
    admin.execute(f'ALTER DEFAULT PRIVILEGES IN SCHEMA "{postgres_schema}" GRANT SELECT ON TABLES TO "{role}"')
    try:
        yield POSTGRES_URL.replace("postgres@", f"{role}@", 1), postgres_schema
    finally:
        admin.execute(f'DROP SCHEMA IF EXISTS "{postgres_schema}" CASCADE')
        admin.execute(f'DROP OWNED BY "{role}"')
        admin.execute(f'DROP ROLE "{role}"')
        admin.close()


@pytest.mark.parametrize("fast", [True, False], ids=["adbc", "dbapi"])
def test_postgres_timestamp_and_timestamptz_in_a_non_utc_session(pg_tz_role, fast):
    import psycopg

    url, schema = pg_tz_role
    readable = [(i, utc) for i, _, utc in ROWS if utc is not None]
    with psycopg.connect(POSTGRES_URL, autocommit=True) as connection:
        connection.execute(f'CREATE TABLE "{schema}".events (id int, naive timestamp, aware timestamptz, '
                           "region text)")
        for i, utc in readable:
            connection.execute(f'INSERT INTO "{schema}".events VALUES (%s, %s, %s, %s)',
                               (i, utc, f"{utc}+00", "south" if i % 2 else "north"))
        tz = connection.execute("SELECT current_setting('TimeZone')").fetchone()[0]
    with psycopg.connect(url) as connection:  # the role's own sessions really are not in UTC
        assert connection.execute("SELECT current_setting('TimeZone')").fetchone()[0] == "America/Los_Angeles"
    assert tz != "America/Los_Angeles"
    db = Database.from_uri(url)
    if not fast:
        db.adbc_uri = None
    for column in ("naive", "aware"):
        read = db.read_window(columns=["id", column], timestamp_column=column, start=START, end=END,
                              table=f"{schema}.events", order_by=["id"])
        assert read.frame["id"].tolist() == expected_ids(), column
        assert read.frame.loc[read.frame["id"] == 5, column].iloc[0] == pd.Timestamp("2018-01-04 07:30:00")
        assert read.unreadable_count == 0
        assert db.latest_timestamp(timestamp_column=column, table=f"{schema}.events") == datetime(2018, 1, 5, 4)
    # A literal % in user SQL (a LIKE pattern) reaches the server untouched, with bound window parameters too.
    query = f"SELECT id, aware, region FROM \"{schema}\".events WHERE region LIKE '%south%'"
    read = db.read_window(columns=["id", "region"], timestamp_column="aware", start=START, end=END, query=query)
    assert set(read.frame["region"]) == {"south"} and read.frame["id"].tolist() == [
        i for i in expected_ids() if i % 2]
    assert db.read_sql(query)["region"].unique().tolist() == ["south"]


def test_connection_errors_keep_their_cause_and_never_show_the_password():
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    db = Database.from_uri(f"postgresql://etl:hunter2-Secret@127.0.0.1:{port}/warehouse")
    db.adbc_uri = None
    with pytest.raises(DataSourceError) as error:
        db.read_sql("SELECT 1")
    assert error.value.retryable and error.value.__cause__ is not None
    message = str(error.value)
    assert "hunter2" not in message and "connecting (postgres database at 127.0.0.1) failed" in message
    missing = Database.from_uri(POSTGRES_URL)
    with pytest.raises(DataSourceError, match="does not exist") as error:
        missing.read_sql("SELECT * FROM no_such_table_anywhere")
    assert not error.value.retryable and error.value.__cause__ is not None


def test_sqlite_text_that_only_looks_like_a_time_is_unreadable_not_guessed(tmp_path):
    """strftime passes impossible dates through and reads 'now', '12:30' or a number in text as times."""
    rows = [(1, "2024-01-01 10:00:00", None), (2, "2024-02-30 10:00:00", None), (3, "2024-02-10T24:00:00", None),
            (4, "2460311.25", None), (5, "12:30", None), (6, "now", None), (7, "9999-12-31", None),
            (8, "1600-01-01", None),
            # found by a probe: a date that does not exist, behind an offset that moves it to one that does
            (9, "2024-02-30 12:00-12:00", None), (10, "2024-02-30T23:00+01:00", None),
            # ... and microseconds of .9995 or more (julianday rounded them up, strftime truncated: "unreadable")
            (11, "2024-01-01T22:47:59.999999", None)]
    db = sqlite_db(tmp_path, rows)
    read = db.read_window(columns=["id", "happened_at"], timestamp_column="happened_at",
                          start=datetime(1990, 1, 1), end=datetime(2100, 1, 1), table="events", order_by=["id"])
    assert read.frame["id"].tolist() == [1, 11]
    latest = datetime(2024, 1, 1, 22, 47, 59, 999000)  # millisecond precision, truncated
    assert read.frame["happened_at"].iloc[1] == latest
    assert sorted(read.unreadable["id"].astype(int).tolist()) == [2, 3, 4, 5, 6, 7, 8, 9, 10]
    assert db.latest_timestamp(timestamp_column="happened_at", table="events") == latest


def test_postgres_infinity_and_nan_epochs_are_unreadable_not_errors(postgres_schema):
    import psycopg

    with psycopg.connect(POSTGRES_URL, autocommit=True) as connection:
        connection.execute(f'CREATE TABLE "{postgres_schema}".e (id int, ts timestamptz, ep float8)')
        connection.execute(f"""INSERT INTO "{postgres_schema}".e VALUES (1, '2024-01-01 10:00+00', 1704103200),
            (2, 'infinity', 'NaN'), (3, '-infinity', 1e300), (4, NULL, NULL)""")
    for fast in (True, False):
        db = Database.from_uri(POSTGRES_URL)
        db.adbc_uri = db.adbc_uri if fast else None
        for column, fmt in (("ts", "iso"), ("ep", "epoch_seconds")):
            read = db.read_window(columns=["id"], timestamp_column=column, start=datetime(2024, 1, 1),
                                  end=datetime(2024, 1, 2), table=f"{postgres_schema}.e", timestamp_format=fmt)
            assert read.frame["id"].tolist() == [1] and read.unreadable_count == 3, (fast, column)
            assert db.latest_timestamp(timestamp_column=column, table=f"{postgres_schema}.e",
                                       timestamp_format=fmt) == datetime(2024, 1, 1, 10)


def test_a_statement_that_returns_no_rows_is_a_clear_error(tmp_path):
    db = sqlite_db(tmp_path)
    with pytest.raises(DataSourceError, match="only a SELECT can be read"):
        db.read_sql("UPDATE events SET amount = 2")
    # queries ending in ";\n" (a YAML block scalar) or a comment read fine as subqueries
    query = "SELECT id FROM events -- the lot\n;\n"
    assert len(db.read_window(columns=["id"], timestamp_column="id", start=START, end=END, query=query,
                              timestamp_format="epoch_seconds").frame) == 0
    assert len(db.read_query(query)) == len(ROWS)


def test_without_the_fast_extra_postgres_reads_fall_back_with_one_notice(postgres_schema, monkeypatch, caplog):
    """The injected fault: the postgres-fast extra is not installed. Same rows (and streamed chunks), through
    psycopg, and one logged notice naming the extra."""
    import logging

    import psycopg

    from airflow_mlops.hooks import database

    with psycopg.connect(POSTGRES_URL, autocommit=True) as connection:
        connection.execute(f'CREATE TABLE "{postgres_schema}".t AS SELECT g AS id, g * 0.5 AS x '
                           "FROM generate_series(1, 2500) g")
    db = Database.from_uri(POSTGRES_URL)
    sql = f'SELECT id, x FROM "{postgres_schema}".t ORDER BY id'
    fast = db.read_sql(sql)
    monkeypatch.setattr(database, "adbc_available", lambda: False)
    monkeypatch.setattr(database, "_FALLBACK_NOTED", False)
    with caplog.at_level(logging.WARNING, logger=database.__name__):
        slow = db.read_sql(sql)
        chunks = list(db.iter_frames(sql, chunk_size=1000))
    assert slow.astype(float).equals(fast.astype(float)) and [len(c) for c in chunks] == [1000, 1000, 500]
    notices = [r.getMessage() for r in caplog.records if "postgres-fast" in r.getMessage()]
    assert len(notices) == 1 and "without the fast reader" in notices[0]


def test_sqlite_window_matches_utc_arithmetic_near_and_far_from_its_edges(tmp_path):
    """Days well inside the window take a shortcut (readable is enough); the edges take the exact comparison.
    Random ISO texts with offsets up to 14 h, around and inside a 10-day window, against pandas' UTC reading."""
    import numpy as np

    rng = np.random.default_rng(11)
    start, end = datetime(2021, 3, 10, 6, 30), datetime(2021, 3, 20, 18, 0)
    rows = []
    for i in range(3000):
        local = pd.Timestamp("2021-03-07") + pd.Timedelta(seconds=int(rng.integers(0, 17 * 86400)))
        minutes = int(rng.integers(-56, 57)) * 15
        form = int(rng.integers(0, 3))
        suffix = "" if form == 0 else "Z" if form == 1 else (
            f"{'+' if minutes >= 0 else '-'}{abs(minutes) // 60:02d}:{abs(minutes) % 60:02d}")
        text = local.strftime("%Y-%m-%d") + ("T" if i % 2 else " ") + local.strftime("%H:%M:%S") + suffix
        rows.append((i, text, None))
    db = sqlite_db(tmp_path, rows)
    read = db.read_window(columns=["id", "happened_at"], timestamp_column="happened_at", start=start, end=end,
                          table="events", order_by=["id"], with_unreadable=False)
    # The reference reads each text on its own: pandas 2.3's vectorised ISO8601 parser carries one row's offset
    # over to the next row without one (seen while writing this test).
    from datetime import timezone

    def utc(text: str) -> datetime:
        moment = datetime.fromisoformat(text)
        return moment.astimezone(timezone.utc).replace(tzinfo=None) if moment.tzinfo else moment

    inside = [i for i, text, _ in rows if start <= utc(text) < end]
    assert sorted(read.frame["id"].tolist()) == inside and 1000 < len(inside) < 3000


def test_a_window_is_ordered_by_a_column_it_does_not_return(tmp_path):
    """The drift task reads features only, ordered by time then entity id (a stable order for fingerprints)."""
    rows = [(i, "2018-01-04 10:00:00", None) for i in (5, 3, 9, 1)]
    db = sqlite_db(tmp_path, rows)
    with sqlite3.connect(tmp_path / "events.db") as connection:
        connection.execute("UPDATE events SET amount = id * 10")
    read = db.read_window(columns=["happened_at", "amount"], timestamp_column="happened_at", start=START, end=END,
                          table="events", order_by=["id"], with_unreadable=False)
    assert list(read.frame.columns) == ["happened_at", "amount"]
    assert read.frame["amount"].tolist() == [10.0, 30.0, 50.0, 90.0]


def _timestamp_texts(rng) -> list:
    """Timestamps as people write them and as they break: every field at and past its limits, each form of
    time, fraction and offset, years at pandas' bounds, stray characters, and values that are not text."""
    fields = {"year": ["1677", "1678", "2024", "2261", "2262", "0999", "2o24"],
              "month": ["00", "01", "02", "12", "13", "1a"],
              "day": ["00", "01", "28", "29", "30", "31", "32", "0x"], "hour": ["00", "09", "23", "24", "29"],
              "minute": ["00", "59", "60"], "second": ["00", "59", "60", "99"]}
    fractions = ["", ".", ".5", ".999", ".9995", ".999999", ".999999999", ".9999999999", ".9999999999999999",
                 ".99999999999999999999", ".12a", ".1 "]
    offsets = ["", "Z", "+01:00", "-14:00", " ", "x"]
    texts: list = []
    for _ in range(6000):
        pick = {name: str(rng.choice(values)) for name, values in fields.items()}
        if rng.random() < 0.5:  # a valid time in pandas' years, the fields each formatting it had
            moment = datetime(1678, 1, 1) + timedelta(seconds=int(rng.integers(0, 584 * 365 * 86400)))
            pick.update(zip(fields, moment.strftime("%Y %m %d %H %M %S").split(), strict=True))
        date = f"{pick['year']}-{pick['month']}-{pick['day']}"
        form = int(rng.integers(0, 5))
        if form == 0:
            texts.append(date)
            continue
        time = f"{pick['hour']}:{pick['minute']}" + ("" if form == 1 else f":{pick['second']}")
        text = (date + str(rng.choice([" ", "T", "t", "  "])) + time + str(rng.choice(fractions))
                + str(rng.choice(offsets)))
        if rng.random() < 0.2:  # one character changed
            at = int(rng.integers(0, len(text)))
            text = text[:at] + str(rng.choice(list("0123456789-:T .Z+/é"))) + text[at + 1:]
        texts.append(text)
    texts += ["2261-12-31 23:59:59.9996", "2261-12-30 23:59:59.9996", "1678-01-01", "1677-12-31 23:59:59",
              "2024-02-28 23:59:59.99999", "now", "12:30", "2460311.25", "", " 2024-01-01", 2460311.25, 20240101,
              b"2024-01-01", None]
    return texts


@pytest.mark.parametrize("declared", ["TEXT", "DATETIME", ""])
def test_sqlite_plain_timestamp_shortcut_never_disagrees_with_the_full_test(tmp_path, declared):
    """Readability takes a shortcut for plain timestamps (text comparisons, no date parsing). Over thousands of
    texts built to break it, the shortcut is true only where the full test is, and the combined test equals the
    full one. DATETIME has NUMERIC affinity: SQLite compares it with a literal like '1678' as a number."""
    import numpy as np

    from airflow_mlops.hooks.dialects import SqliteDialect

    texts = _timestamp_texts(np.random.default_rng(23))
    connection = sqlite3.connect(tmp_path / "t.db")
    connection.execute(f"CREATE TABLE t (id INTEGER, ts {declared})")
    connection.executemany("INSERT INTO t VALUES (?, ?)", list(enumerate(texts)))
    d = SqliteDialect()
    rows = connection.execute(f"SELECT id, ts, {d._plain_time('ts')}, {d._readable_exactly('ts')}, "
                              f"{d._readable('ts')} FROM t").fetchall()
    wrong = [(text, exact) for _, text, plain, exact, _ in rows if plain and not exact]
    assert not wrong, wrong[:10]
    assert [combined for *_, combined in rows] == [exact for *_, exact, _ in rows]
    plain, readable = sum(bool(r[2]) for r in rows), sum(bool(r[3]) for r in rows)
    assert 500 < plain < readable < len(rows)  # the shortcut does take most plain rows, not all readable ones
