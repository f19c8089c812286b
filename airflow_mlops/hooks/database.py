"""A database the pack reads data from and keeps state in: a dialect plus a way to connect. No Airflow here, so
the command line (a URI) and the hooks (an Airflow connection) share every query.

Errors are :class:`~airflow_mlops.core.errors.DataSourceError` naming the source and keeping the driver's error as
the cause; ``retryable`` is set when the database could not be reached. Passwords never appear in messages.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from airflow_mlops.core.errors import DataSourceError, is_transient
from airflow_mlops.hooks.dialects import PARAM, Dialect, dialect_for, naive_utc, strip_statement

log = logging.getLogger(__name__)
_FALLBACK_NOTED = False  # the missing postgres-fast extra is logged once per process
TS_ALIAS = "__mlops_ts"


def redact(text: str, secrets: Sequence[str | None]) -> str:
    for secret in secrets:
        if secret:
            text = text.replace(secret, "***")
    return text


def _one_line(error: BaseException) -> str:
    return " ".join(str(error).split())


@dataclass
class WindowRead:
    """The rows of a window, and the rows of the whole source whose timestamp cannot be read (NULL or
    unparseable): they belong to no window, so they are counted and handed back, never dropped silently."""

    frame: Any
    unreadable: Any
    unreadable_count: int = 0
    notes: list[str] = field(default_factory=list)


class Database:
    """:param dialect: the SQL dialect. :param connect: opens a DB-API connection. :param name: how errors name
    the source (``connection 'mlops_data'``). :param adbc_uri: PostgreSQL URI for the ADBC (Arrow) fast path.
    :param secrets: strings to redact from error messages."""

    def __init__(self, dialect: Dialect, connect: Callable[[], Any], *, name: str, adbc_uri: str | None = None,
                 secrets: Sequence[str | None] = (), read_only: bool = False, identity: str | None = None) -> None:
        self.dialect = dialect
        self._connect = connect
        self.name = name
        self.identity = identity or name  # which database this is (no secrets): caches key on it
        self.adbc_uri = adbc_uri
        self.secrets = list(secrets)
        self.read_only = read_only

    # --- construction -------------------------------------------------------------------------------------

    @classmethod
    def from_uri(cls, uri: str, *, read_only: bool = False) -> Database:
        """``sqlite:///path/to.db`` or ``postgresql://user:pw@host/db``. ``read_only`` opens SQLite files in
        ``mode=ro`` + ``query_only`` (a missing file is an error, never a new empty database) and runs Postgres in
        read-only transactions that are always rolled back."""
        parts = urlsplit(uri)
        password = unquote(parts.password) if parts.password else None
        scheme = parts.scheme.split("+", 1)[0].lower()
        try:
            dialect = dialect_for(scheme)
        except ValueError:
            raise DataSourceError(f"unsupported database {scheme or uri.split(':', 1)[0]!r} in the URI; use "
                                  "sqlite:///path or postgresql://...") from None
        if dialect.name == "sqlite":
            path = uri.split(":///", 1)[1] if ":///" in uri else ""
            if not path:
                raise DataSourceError("a SQLite URI needs a file: sqlite:///relative.db or sqlite:////abs/path.db")

            def connect():
                import sqlite3
                from urllib.parse import quote

                if read_only:
                    if not Path(path).is_file():
                        raise DataSourceError(f"no SQLite database file {path!r}")
                    connection = sqlite3.connect(f"file:{quote(path)}?mode=ro", uri=True, timeout=30)
                    connection.execute("PRAGMA query_only = ON")
                    # No ATTACH (it creates files), and nothing but reading: VACUUM INTO, PRAGMA and the like
                    # are refused by the authorizer before they run.
                    connection.setlimit(sqlite3.SQLITE_LIMIT_ATTACHED, 0)
                    connection.set_authorizer(_read_only_authorizer)
                    return connection
                return sqlite3.connect(path, timeout=30)

            return cls(dialect, connect, name=f"sqlite database {path!r}", read_only=read_only,
                       identity=f"sqlite:{Path(path).resolve()}")
        libpq_uri = "postgresql://" + uri.split("://", 1)[1]

        def connect_pg():
            # Read-only: every transaction of the session is READ ONLY (also one a multi-statement string would
            # start after a COMMIT of its own), and reads run as single prepared statements (see execute).
            options = {"options": "-c default_transaction_read_only=on"} if read_only else {}
            try:
                import psycopg
            except ImportError:  # psycopg2 ships with the postgres provider
                import psycopg2

                connection = psycopg2.connect(libpq_uri, **options)
                if read_only:
                    connection.set_session(readonly=True)
                return connection
            connection = psycopg.connect(libpq_uri, **options)
            if read_only:
                connection.read_only = True
            return connection

        host = parts.hostname or "localhost"
        return cls(dialect, connect_pg, name=f"postgres database at {host}", adbc_uri=None if read_only else libpq_uri,
                   secrets=[password, parts.password], read_only=read_only,
                   identity=f"postgres:{parts.username}@{host}:{parts.port or 5432}{parts.path}")

    # --- errors -------------------------------------------------------------------------------------------

    def error(self, what: str, error: BaseException) -> DataSourceError:
        if isinstance(error, DataSourceError):
            return error
        message = redact(f"{what} ({self.name}) failed: {_one_line(error)}", self.secrets)
        return DataSourceError(message, retryable=is_transient(error))

    # --- connections --------------------------------------------------------------------------------------

    @contextmanager
    def connection(self) -> Iterator[Any]:
        """A connection with the dialect's session settings; closed afterwards. Read-only connections are
        always rolled back."""
        try:
            connection = self._connect()
            self.dialect.on_connect(connection)
        except DataSourceError:
            raise
        except Exception as error:
            raise self.error("connecting", error) from error
        try:
            yield connection
        finally:
            try:
                if self.read_only:
                    connection.rollback()
            finally:
                connection.close()

    @contextmanager
    def transaction(self, *, exclusive: bool = False) -> Iterator[Any]:
        """A cursor in one transaction: committed when the block ends, rolled back when it raises.
        ``exclusive`` serialises with other writers from the first statement (SQLite ``BEGIN IMMEDIATE``;
        PostgreSQL takes row locks in the statements themselves)."""
        with self.connection() as connection:
            cursor = connection.cursor()
            manual = exclusive and self.dialect.name == "sqlite"
            if manual:
                connection.isolation_level = None  # the sqlite3 module must not open its own transaction
                try:
                    self.dialect.begin_exclusive(cursor)
                except Exception as error:
                    raise self.error("starting a transaction", error) from error
            try:
                yield cursor
                cursor.execute("COMMIT") if manual else connection.commit()
            except BaseException:
                try:
                    cursor.execute("ROLLBACK") if manual else connection.rollback()
                except Exception:  # the original error matters more
                    pass
                raise

    def execute(self, cursor, sql: str, params: Sequence[Any] = ()) -> None:
        """Run one of our statements (written with :data:`PARAM`) on a DB-API cursor."""
        statement = self.dialect.finalize(sql, bound=bool(params))
        try:
            if self.read_only and type(cursor).__module__.startswith("psycopg."):
                # A prepared statement holds exactly one command: "COMMIT; DELETE ..." is refused outright.
                cursor.execute(statement, tuple(params) or None, prepare=True)
            elif params:
                cursor.execute(statement, tuple(params))
            else:
                cursor.execute(statement)
        except Exception as error:
            raise self.error("query", error) from error

    # --- reading ------------------------------------------------------------------------------------------

    def _fast_reads(self) -> bool:
        """PostgreSQL reads go through ADBC (COPY into Arrow) when the ``postgres-fast`` extra is installed; without
        it they fall back to psycopg, saying so once per process."""
        if not (self.adbc_uri and self.dialect.name == "postgres"):
            return False
        if adbc_available():
            return True
        global _FALLBACK_NOTED
        if not _FALLBACK_NOTED:
            _FALLBACK_NOTED = True
            log.warning("Reading PostgreSQL without the fast reader: the postgres-fast extra is not installed "
                        "(pip install 'airflow-provider-mlops[postgres-fast]'); reads are several times slower")
        return False

    def read_sql(self, sql: str, params: Sequence[Any] = (), *, settings: dict[str, str] | None = None):
        """A SELECT (written with :data:`PARAM` for bound values) as a DataFrame. ``settings``: PostgreSQL session
        settings for this query (``work_mem`` for a big join, say); ignored by SQLite."""
        import pandas as pd

        sql = strip_statement(sql)
        settings = settings if self.dialect.name == "postgres" else None
        if self._fast_reads():
            return self._read_adbc(sql, params, settings)
        with self.connection() as connection:
            cursor = connection.cursor()
            for name, value in (settings or {}).items():
                self.execute(cursor, f"SET {name} = {PARAM}", [value])
            self.execute(cursor, sql, params)
            if cursor.description is None:
                raise DataSourceError(f"the statement returned no rows ({self.name}): only a SELECT can be read")
            try:
                names = [column[0] for column in cursor.description]
                rows = cursor.fetchall()
            except Exception as error:  # a value the driver cannot convert (PostgreSQL 'infinity', say)
                raise self.error("reading the result", error) from error
        return pd.DataFrame.from_records(rows, columns=names)

    def iter_frames(self, sql: str, params: Sequence[Any] = (), *, chunk_size: int = 50_000, connection=None):
        """A SELECT as DataFrames of at most ``chunk_size`` rows, streamed: memory is bounded by the chunk, not
        the result (ADBC record batches, a server-side cursor on PostgreSQL, ``fetchmany`` on SQLite). With
        ``connection``, read through that (open) connection."""
        sql = strip_statement(sql)
        if connection is not None:
            yield from self._iter_cursor(connection, sql, params, chunk_size)
            return
        if self._fast_reads():
            yield from self._iter_adbc(sql, params, chunk_size)
            return
        with self.connection() as opened:
            yield from self._iter_cursor(opened, sql, params, chunk_size)

    def _iter_cursor(self, connection, sql: str, params: Sequence[Any], chunk_size: int):
        import pandas as pd

        named = self.dialect.name == "postgres"
        cursor = connection.cursor(name="mlops_stream") if named else connection.cursor()
        self.execute(cursor, sql, params)
        names = None
        try:
            while True:
                try:
                    rows = cursor.fetchmany(chunk_size)
                    names = names or [column[0] for column in cursor.description]
                except Exception as error:
                    raise self.error("reading the result", error) from error
                if not rows:
                    return
                yield pd.DataFrame.from_records(rows, columns=names)
        finally:
            cursor.close()

    @contextmanager
    def _adbc_query(self, sql: str, params: Sequence[Any], settings: dict[str, str] | None = None):
        """An ADBC cursor that has run ``sql`` in a UTC session with these settings (read-only, and rolled back,
        for a read-only database)."""
        import adbc_driver_postgresql.dbapi as adbc

        # ADBC wraps the statement in COPY (...): a newline ends a trailing "-- comment" before its ")".
        statement = self.dialect.finalize(strip_statement(sql), "numeric_dollar") + "\n"
        with adbc.connect(self.adbc_uri) as connection, connection.cursor() as cursor:
            cursor.execute("SET TIME ZONE 'UTC'")
            for name, value in (settings or {}).items():
                cursor.execute("SELECT set_config($1, $2, false)", (name, value))
            if self.read_only:
                cursor.execute("SET SESSION CHARACTERISTICS AS TRANSACTION READ ONLY")
            cursor.execute(statement, tuple(params) if params else None)
            yield cursor
            if self.read_only:
                connection.rollback()

    def _iter_adbc(self, sql: str, params: Sequence[Any], chunk_size: int):
        import pyarrow as pa

        try:
            with self._adbc_query(sql, params) as cursor:
                reader = cursor.fetch_record_batch()
                pending, count = [], 0
                for batch in reader:
                    pending.append(batch)
                    count += batch.num_rows
                    while count >= chunk_size:
                        table = pa.Table.from_batches(pending)
                        yield table.slice(0, chunk_size).to_pandas()
                        rest = table.slice(chunk_size)
                        pending, count = rest.to_batches(), rest.num_rows
                if count:
                    yield pa.Table.from_batches(pending).to_pandas()
        except Exception as error:
            raise self.error("query", error) from error

    @contextmanager
    def bulk_writer(self, table: str, columns: Sequence[str], *, replace: dict[str, Any] | None = None):
        """Write many rows into ``table`` in one transaction: first delete the rows matching ``replace`` (a retry
        replaces its own rows), then ``write(rows)`` as often as needed (COPY on PostgreSQL with psycopg 3,
        ``executemany`` otherwise). Committed when the block ends; on any error (a duplicate key, say) nothing
        is changed."""
        with self.bulk_writers([(table, columns, replace)]) as (write,):
            yield write

    @contextmanager
    def bulk_writers(self, specs: Sequence[tuple[str, Sequence[str], dict[str, Any] | None]]):
        """:meth:`bulk_writer` for several tables in one transaction of one connection (all or nothing)."""
        with self.write_session(specs) as (_, writers):
            yield writers

    @contextmanager
    def write_session(self, specs: Sequence[tuple[str, Sequence[str], dict[str, Any] | None]]):
        """(connection, writers) of :meth:`bulk_writers`. On SQLite, pass the connection to :meth:`iter_frames` to
        read in the same connection (a second connection's read lock would block the writer until it times out).
        On PostgreSQL it is None: the session's COPY stream holds the connection between writes (a statement on it
        would wait for the stream forever), and reads belong on a connection of their own anyway."""
        d = self.dialect
        with self.transaction() as cursor:
            stream = _CopyStream(self, cursor) if d.name == "postgres" and hasattr(cursor, "copy") else None
            writers = []
            for table, columns, replace in specs:
                name = d.quote(d.table_name(table))
                if replace:
                    where = " AND ".join(f"{d.quote(c)} = {PARAM}" for c in replace)
                    self.execute(cursor, f"DELETE FROM {name} WHERE {where}", list(replace.values()))
                writers.append(self._writer(cursor, stream, table, name, list(columns)))
            try:
                yield (None if stream else cursor.connection), writers
            except BaseException as error:
                if stream:
                    stream.finish(error)
                raise
            if stream:
                stream.finish()  # before the commit: the server's verdict on the rows (a duplicate key, say)

    def _writer(self, cursor, stream: _CopyStream | None, table: str, name: str, columns: list[str]):
        """``write(rows)``: rows are tuples in ``columns`` order, or a DataFrame with these columns. PostgreSQL gets
        a frame of text and numbers as CSV that Arrow formats (a fifth of the client time of a row-by-row COPY), on
        the session's :class:`_CopyStream`; other frames and rows go row by row; elsewhere rows are inserted."""
        d = self.dialect
        quoted = ", ".join(d.quote(c) for c in columns)
        # Rows go in statements of many rows each: the per-statement cost of executemany is most of its time (a
        # third faster on SQLite). 999 bound values at most per statement: the limit of SQLite before 3.32.
        per_statement = max(1, 999 // len(columns))
        one_row = f"({', '.join(PARAM for _ in columns)})"

        def insert(size: int) -> str:
            return d.finalize(f"INSERT INTO {name} ({quoted}) VALUES {', '.join([one_row] * size)}")

        def insert_rows(rows: list) -> None:
            # Flattened rows of the wrong length would shift values into their neighbours: refuse them.
            wrong = next((row for row in rows if not isinstance(row, (tuple, list)) or len(row) != len(columns)),
                         None)
            if wrong is not None:
                raise ValueError(f"a row of {len(wrong)} values for {len(columns)} columns {columns}: {wrong!r}"[:300])
            whole = len(rows) - len(rows) % per_statement
            if whole:
                flat = [value for row in rows[:whole] for value in row]
                width = per_statement * len(columns)
                cursor.executemany(insert(per_statement), [flat[i:i + width] for i in range(0, len(flat), width)])
            if whole < len(rows):
                cursor.execute(insert(len(rows) - whole), [value for row in rows[whole:] for value in row])

        def write(rows) -> int:
            try:
                if hasattr(rows, "columns"):  # a DataFrame
                    frame = rows[columns]
                    if not len(frame):
                        return 0
                    data = _csv(frame) if stream else None
                    if data is not None:
                        stream.write(table, f"COPY {name} ({quoted}) FROM STDIN (FORMAT csv)", data)
                        return len(frame)
                    rows = zip(*(frame[column].tolist() for column in columns), strict=True)
                rows = list(rows)
                if stream and rows:
                    stream.finish()
                    with cursor.copy(f"COPY {name} ({quoted}) FROM STDIN") as out:
                        for row in rows:
                            out.write_row(row)
                elif rows:
                    insert_rows(rows)
            except Exception as error:
                raise self.error(f"writing {table}", error) from error
            return len(rows)

        return write

    def read_query(self, query: str):
        """A user's SELECT as a DataFrame, run as a subquery: anything that is not a query (``COPY ... TO PROGRAM``,
        ``SET``, ``PRAGMA``, several statements) is a syntax error before it runs. Combined with a read-only
        database (``from_uri(read_only=True)``) this is how the command line reads SQL it is given. It is not a
        sandbox: a function with side effects stays callable in a SELECT; give the CLI a read-only role."""
        return self.read_sql(f"SELECT * FROM ({strip_statement(query)}\n) AS mlops_query")

    def _read_adbc(self, sql: str, params: Sequence[Any], settings: dict[str, str] | None = None):
        try:
            with self._adbc_query(sql, params, settings) as cursor:
                table = cursor.fetch_arrow_table()
        except Exception as error:
            raise self.error("query", error) from error
        return table.to_pandas()

    def columns_of(self, source: str) -> list[str]:
        """Column names of a table/subquery, from the cursor description of an empty select."""
        return list(self.column_types(source))

    def column_types(self, source: str) -> dict[str, Any]:
        """Column name -> the driver's type code (a PostgreSQL type OID; None on SQLite), from an empty select."""
        with self.connection() as connection:
            cursor = connection.cursor()
            try:
                cursor.execute(self.dialect.finalize(f"SELECT * FROM {source} WHERE 1 = 0", bound=False))
            except Exception as error:
                raise self.error(f"reading {source}", error) from error
            return {column[0]: column[1] for column in cursor.description}

    def read_window(self, *, columns: Sequence[str], timestamp_column: str, start: datetime, end: datetime,
                    table: str | None = None, query: str | None = None, order_by: Sequence[str] = (),
                    timestamp_format: str = "iso", with_unreadable: bool = True,
                    exclude: tuple[str, Sequence[Any]] | None = None) -> WindowRead:
        """Rows with ``start <= timestamp < end`` in UTC, ordered deterministically (for stable fingerprints);
        the timestamp column comes back as naive UTC. With ``with_unreadable``, the rows whose timestamp cannot
        be read are returned too (as text), with their count. ``exclude`` (SQL predicate, parameters) leaves out
        the rows it is true for (rows quarantined in the database)."""
        import pandas as pd

        d = self.dialect
        source = d.source_sql(table=table, query=query)
        # The columns to order by are selected too (the outer query only sees the inner one's columns; SQLite
        # would read an unknown "name" as a text constant and order by nothing) and dropped afterwards.
        extra = [c for c in order_by if c not in columns]
        selected, bounds = self.window_select(columns=[*columns, *extra], timestamp_column=timestamp_column,
                                              start=start, end=end, table=table, query=query,
                                              timestamp_format=timestamp_format)
        order = ", ".join([d.quote(TS_ALIAS), *(d.quote(c) for c in order_by)])
        where = ""
        if exclude is not None:
            where, excluded_params = f" WHERE NOT {exclude[0]}", list(exclude[1])
            bounds = [*bounds, *excluded_params]
        frame = self.read_sql(f"SELECT * FROM ({selected}) AS mlops_window{where} ORDER BY {order}", bounds)
        frame = frame.drop(columns=extra)
        frame[timestamp_column] = self._parse_times(frame.pop(TS_ALIAS), timestamp_column)
        result = WindowRead(frame, pd.DataFrame(columns=list(columns)))
        if with_unreadable:
            unreadable_sql = (f"SELECT {', '.join(f'CAST({d.quote(c)} AS TEXT)' for c in columns)} FROM {source} "
                              f"WHERE {d.unreadable(timestamp_column, timestamp_format)}")
            unreadable = self.read_sql(unreadable_sql)
            unreadable.columns = list(columns)
            result.unreadable = unreadable.astype(object).where(unreadable.notna(), None)
            result.unreadable_count = len(unreadable)
        return result

    def window_select(self, *, columns: Sequence[str], timestamp_column: str, start: datetime, end: datetime,
                      table: str | None = None, query: str | None = None,
                      timestamp_format: str = "iso") -> tuple[str, list]:
        """``SELECT columns, <UTC time> AS _mlops_ts FROM source WHERE <window>`` and its parameters: the one
        definition of a window's rows, shared by reads, validation in the database and quarantine."""
        d = self.dialect
        source = d.source_sql(table=table, query=query)
        present = self.columns_of(source)
        missing = [c for c in columns if c not in present]
        if missing:
            raise DataSourceError(f"{table or 'the query'} ({self.name}) has no column(s) {missing}; it has {present}")
        ts = d.timestamp_expr(timestamp_column, timestamp_format)
        window, bounds = d.window(timestamp_column, timestamp_format, start, end)
        selected = ", ".join(d.quote(c) for c in columns)
        return f"SELECT {selected}, {ts} AS {d.quote(TS_ALIAS)} FROM {source} WHERE {window}", bounds

    def sqlalchemy_url(self) -> str:
        """A SQLAlchemy URL of this PostgreSQL database (psycopg 3) for tools that bring their own engine, such as
        Great Expectations (session settings are theirs to make: a URL may already carry ``options``)."""
        if self.dialect.name != "postgres" or not self.adbc_uri:
            raise DataSourceError(f"{self.name}: validation in the database needs a PostgreSQL connection")
        return "postgresql+psycopg://" + self.adbc_uri.partition("://")[2]

    def latest_timestamp(self, *, timestamp_column: str, table: str | None = None, query: str | None = None,
                         timestamp_format: str = "iso") -> datetime | None:
        """The newest readable value of ``timestamp_column`` (naive UTC), or None for an empty source."""
        import pandas as pd

        d = self.dialect
        source = d.source_sql(table=table, query=query)
        ts = d.timestamp_expr(timestamp_column, timestamp_format)
        readable = f"CASE WHEN NOT {d.unreadable(timestamp_column, timestamp_format)} THEN {ts} END"
        frame = self.read_sql(f"SELECT max({readable}) AS latest FROM {source}")
        value = frame["latest"].iloc[0] if len(frame) else None
        if value is None or (not isinstance(value, str) and pd.isna(value)):
            return None
        return self._parse_times(pd.Series([value]), timestamp_column).iloc[0].to_pydatetime()

    def _parse_times(self, series, column: str):
        try:
            return to_naive_utc(series)
        except (ValueError, OverflowError) as error:
            raise DataSourceError(f"{column} ({self.name}) holds a time that cannot be read: "
                                  f"{' '.join(str(error).split())[:300]}") from error

    # --- writing ------------------------------------------------------------------------------------------

    def ensure_table(self, table: str, columns: dict[str, str], *, index: Sequence[str] = (),
                     primary_key: Sequence[str] = ()) -> None:
        """``CREATE TABLE IF NOT EXISTS`` with these columns (types from :class:`Dialect`, valid in both) and an
        index on ``index``: an explicit schema, not one inferred from the first rows, and no race between two
        first writers."""
        d = self.dialect
        name = d.table_name(table)
        body = ", ".join(f"{d.quote(column)} {kind}" for column, kind in columns.items())
        if primary_key:
            body += f", PRIMARY KEY ({', '.join(d.quote(c) for c in primary_key)})"
        statements = [f"CREATE TABLE IF NOT EXISTS {d.quote(name)} ({body})"]
        if index:
            index_name = d.quote(f"{name.split('.')[-1]}_{'_'.join(index)}_idx")
            statements.append(f"CREATE INDEX IF NOT EXISTS {index_name} ON {d.quote(name)} "
                              f"({', '.join(d.quote(c) for c in index)})")
        with self.transaction() as cursor:
            for statement in statements:
                self.execute(cursor, statement)

    def ensure_columns(self, table: str, columns: dict[str, str]) -> list[str]:
        """Add the columns a table lacks (its rows keep NULL there): a table that outlives a config change, such as
        a quarantine table after a feature was added. Returns the columns added."""
        d = self.dialect
        present = set(self.columns_of(d.quote(d.table_name(table))))
        missing = [column for column in columns if column not in present]
        if missing:
            with self.transaction() as cursor:
                for column in missing:
                    self.execute(cursor, f"ALTER TABLE {d.quote(d.table_name(table))} ADD COLUMN "
                                         f"{d.quote(column)} {columns[column]}")
        return missing

    def replace_rows(self, frame, table: str, *, key_column: str, key: str) -> int:
        """Delete the rows of ``key`` in ``table``, then insert ``frame`` with that key, in one transaction:
        safe to retry (never duplicates). The table must exist (:meth:`ensure_table`)."""
        d = self.dialect
        frame = frame.assign(**{key_column: key})
        columns = list(frame.columns)
        rows = [tuple(_plain(v) for v in row) for row in frame.itertuples(index=False, name=None)]
        insert = (f"INSERT INTO {d.quote(d.table_name(table))} ({', '.join(d.quote(c) for c in columns)}) "
                  f"VALUES ({', '.join(PARAM for _ in columns)})")
        with self.transaction() as cursor:
            self.execute(cursor, f"DELETE FROM {d.quote(d.table_name(table))} WHERE {d.quote(key_column)} = {PARAM}",
                         [key])
            if rows:
                try:
                    cursor.executemany(d.finalize(insert), rows)
                except Exception as error:
                    raise self.error(f"writing {table}", error) from error
        return len(rows)


def _read_only_authorizer(action: int, *args) -> int:
    import sqlite3

    allowed = {sqlite3.SQLITE_SELECT, sqlite3.SQLITE_READ, sqlite3.SQLITE_FUNCTION}
    return sqlite3.SQLITE_OK if action in allowed else sqlite3.SQLITE_DENY


class _CopyStream:
    """The COPY a write session has open on its connection, kept open across writes to the same table: a queue and
    a thread of psycopg's send the data while the next chunk is read and scored, and the server parses and indexes
    it meanwhile (a COPY finished per write waits for the server every time). A connection runs one COPY at a time,
    so a write to another table finishes it first; the session finishes it before committing."""

    def __init__(self, database: Database, cursor) -> None:
        self.database, self.cursor = database, cursor
        self.table: str | None = None
        self.statement: str | None = None
        self.copy = self.out = None

    def write(self, table: str, statement: str, data: bytes) -> None:
        from psycopg.copy import QueuedLibpqWriter

        if statement != self.statement:
            self.finish()
            self.copy = self.cursor.copy(statement, writer=QueuedLibpqWriter(self.cursor))
            self.out = self.copy.__enter__()
            self.table, self.statement = table, statement
        self.out.write(data)

    def finish(self, error: BaseException | None = None) -> None:
        """End the open COPY, if any: with ``error`` (the session's), cancel it quietly (the original error matters
        more, and the transaction is rolled back either way); else raise the server's error as a DataSourceError
        naming the table."""
        copy, self.copy, self.statement = self.copy, None, None
        if copy is None:
            return
        try:
            copy.__exit__(*((type(error), error, error.__traceback__) if error else (None, None, None)))
        except Exception as failure:
            if error is None:
                raise self.database.error(f"writing {self.table}", failure) from failure


def _csv(frame) -> bytes | None:
    """A DataFrame as CSV for PostgreSQL's ``COPY ... (FORMAT csv)``: no header, a missing value as an unquoted empty
    field (NULL), text always quoted (an empty text stays empty), floats in their shortest exact form (``nan``,
    ``inf`` read as NaN and Infinity). None unless every column is text, integers or float64, where the CSV says
    what a row-by-row write would (Arrow prints a float32 rounded, a boolean as ``true``, bytes unescaped, and
    cannot convert an object column of mixed types)."""
    import io

    import pyarrow as pa
    import pyarrow.csv as csv

    try:
        table = pa.Table.from_pandas(frame, preserve_index=False)
    except (pa.ArrowInvalid, pa.ArrowTypeError):
        return None
    exact = (pa.types.is_string, pa.types.is_large_string, pa.types.is_integer, pa.types.is_float64, pa.types.is_null)
    if not all(any(check(field.type) for check in exact) for field in table.schema):
        return None
    sink = io.BytesIO()
    csv.write_csv(table, sink, csv.WriteOptions(include_header=False))
    return sink.getvalue()


def _plain(value: Any) -> Any:
    """A value a DB-API driver binds: None for missing, Python scalars for numpy, ISO text for times."""
    import math

    if value is None:
        return None
    if hasattr(value, "item") and not isinstance(value, (str, bytes)):
        value = value.item()
    if isinstance(value, float) and math.isnan(value):
        return None
    if hasattr(value, "isoformat"):
        return naive_utc(value).isoformat() if isinstance(value, datetime) else value.isoformat()
    if type(value).__name__ == "NaTType":
        return None
    return value


def to_naive_utc(series):
    """Timestamps read back (normalised SQLite text, Postgres naive or aware values) as naive UTC datetime64."""
    import pandas as pd

    if len(series) == 0:
        return pd.Series(pd.to_datetime(series, utc=True), index=series.index).dt.tz_localize(None)
    return pd.to_datetime(series, utc=True, format="ISO8601").dt.tz_localize(None)


def adbc_available() -> bool:
    import importlib.util

    return importlib.util.find_spec("adbc_driver_postgresql") is not None
