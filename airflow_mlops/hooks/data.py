"""Read a table or query of an Airflow connection into a pandas DataFrame (and write small tables back).

Supported connection types: ``sqlite`` (the embedded default; ``host`` is the database file) and
``postgres``. Identifiers are quoted, values are always bound parameters: nothing from a config is pasted
into SQL except a ``query`` the config author wrote as SQL on purpose (it is wrapped, never edited).
With the ``postgres-fast`` extra installed, Postgres reads go through ADBC (Arrow), several times faster and
lighter than the DB-API path.
"""

from __future__ import annotations

from datetime import datetime, timezone
from functools import cached_property
from typing import Any
from collections.abc import Sequence

from airflow.sdk import BaseHook


class DataSourceError(ValueError):
    """The configured table, query or connection cannot be read; the message names which and why."""


def quote_identifier(name: str) -> str:
    """``schema.table`` -> ``"schema"."table"``, doubling embedded quotes."""
    return ".".join('"' + part.replace('"', '""') + '"' for part in name.split("."))


def naive_utc(value: datetime) -> datetime:
    """A time as naive UTC, the form timestamps are compared and returned in (naive means UTC already)."""
    if value.tzinfo is not None:
        value = value.astimezone(timezone.utc).replace(tzinfo=None)
    return value


class SqlDataHook(BaseHook):
    """Data access for the MLOps operators over an Airflow connection (sqlite or postgres)."""

    conn_name_attr = "data_conn_id"
    default_conn_name = "mlops_data"
    conn_type = "sqlite"
    hook_name = "MLOps SQL data"

    def __init__(self, data_conn_id: str = default_conn_name, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.data_conn_id = data_conn_id

    @cached_property
    def connection(self):
        return self.get_connection(self.data_conn_id)

    @cached_property
    def dialect(self) -> str:
        conn_type = (self.connection.conn_type or "").lower()
        if conn_type == "sqlite":
            return "sqlite"
        if conn_type in ("postgres", "postgresql"):
            return "postgres"
        raise DataSourceError(f"connection {self.data_conn_id!r} has type {conn_type!r}; "
                              "supported: sqlite, postgres")

    # --- connections ------------------------------------------------------------------------------------

    def _sqlite_path(self) -> str:
        path = self.connection.host or ""
        if not path:
            raise DataSourceError(f"sqlite connection {self.data_conn_id!r} needs the database file in 'host'")
        return path

    def get_conn(self):
        if self.dialect == "sqlite":
            import sqlite3

            return sqlite3.connect(self._sqlite_path())
        from airflow.providers.postgres.hooks.postgres import PostgresHook

        return PostgresHook(postgres_conn_id=self.data_conn_id).get_conn()

    @property
    def placeholder(self) -> str:
        return "?" if self.dialect == "sqlite" else "%s"

    # --- reading ----------------------------------------------------------------------------------------

    def source_sql(self, *, table: str | None = None, query: str | None = None) -> str:
        if table:
            return quote_identifier(table)
        if query:
            return f"({query.strip().rstrip(';')}) AS mlops_source"
        raise DataSourceError("set a table or a query")

    def columns_of(self, source: str) -> list[str]:
        """Column names of a table/subquery, read from the cursor description of an empty select."""
        sql = f"SELECT * FROM {source} WHERE 1 = 0"
        connection = self.get_conn()
        try:
            cursor = connection.cursor()
            cursor.execute(sql)
            return [column[0] for column in cursor.description]
        except Exception as error:
            raise DataSourceError(f"cannot read {source} through connection {self.data_conn_id!r}: "
                                  f"{' '.join(str(error).split())}") from None
        finally:
            connection.close()

    def read_sql(self, sql: str, params: Sequence[Any] = ()):
        """Run a SELECT with bound parameters and return a DataFrame."""
        import pandas as pd

        if self.dialect == "postgres" and self._adbc_available():
            return self._read_adbc(sql, params)
        connection = self.get_conn()
        try:
            cursor = connection.cursor()
            cursor.execute(sql, tuple(params))
            names = [column[0] for column in cursor.description]
            return pd.DataFrame.from_records(cursor.fetchall(), columns=names)
        except Exception as error:
            raise DataSourceError(f"query through connection {self.data_conn_id!r} failed: "
                                  f"{' '.join(str(error).split())}") from None
        finally:
            connection.close()

    @staticmethod
    def _adbc_available() -> bool:
        import importlib.util

        return importlib.util.find_spec("adbc_driver_postgresql") is not None

    def _adbc_uri(self) -> str:
        from airflow.providers.postgres.hooks.postgres import PostgresHook

        uri = PostgresHook(postgres_conn_id=self.data_conn_id).get_uri()
        # SQLAlchemy-style driver suffixes mean nothing to libpq.
        scheme, _, rest = uri.partition("://")
        return "postgresql://" + rest

    def _read_adbc(self, sql: str, params: Sequence[Any]):
        import adbc_driver_postgresql.dbapi as adbc

        numbered, position = [], 0
        for piece in sql.split("%s"):  # %s placeholders -> $1, $2 ... (our SQL has no literal %s)
            numbered.append(piece)
            position += 1
            numbered.append(f"${position}")
        statement = "".join(numbered[:-1])
        try:
            with adbc.connect(self._adbc_uri()) as connection, connection.cursor() as cursor:
                cursor.execute(statement, tuple(params) if params else None)
                return cursor.fetch_arrow_table().to_pandas()
        except Exception as error:
            raise DataSourceError(f"query through connection {self.data_conn_id!r} failed: "
                                  f"{' '.join(str(error).split())}") from None

    def read_window(self, *, columns: Sequence[str], timestamp_column: str, start: datetime, end: datetime,
                    table: str | None = None, query: str | None = None, order_by: Sequence[str] = ()):
        """Rows with ``start <= timestamp < end``, ordered deterministically (for stable fingerprints)."""
        import pandas as pd

        source = self.source_sql(table=table, query=query)
        present = self.columns_of(source)
        missing = [c for c in columns if c not in present]
        if missing:
            raise DataSourceError(f"{table or 'the query'} (connection {self.data_conn_id!r}) has no column(s) "
                                  f"{missing}; it has {present}")
        selected = ", ".join(quote_identifier(c) for c in columns)
        ts = quote_identifier(timestamp_column)
        order = ", ".join(quote_identifier(c) for c in (timestamp_column, *order_by))
        ph = self.placeholder
        sql = f"SELECT {selected} FROM {source} WHERE {ts} >= {ph} AND {ts} < {ph} ORDER BY {order}"
        bounds = [naive_utc(start), naive_utc(end)]
        if self.dialect == "sqlite":
            # SQLite stores timestamps as ISO text; compare in the same format pandas writes.
            bounds = [b.strftime("%Y-%m-%d %H:%M:%S") for b in bounds]
        frame = self.read_sql(sql, bounds)
        if len(frame):
            frame[timestamp_column] = pd.to_datetime(frame[timestamp_column], utc=True).dt.tz_localize(None)
        return frame

    def latest_timestamp(self, *, timestamp_column: str, table: str | None = None,
                         query: str | None = None) -> datetime | None:
        """The newest value of ``timestamp_column`` (naive UTC), or None for an empty source."""
        import pandas as pd

        source = self.source_sql(table=table, query=query)
        frame = self.read_sql(f"SELECT max({quote_identifier(timestamp_column)}) AS latest FROM {source}")
        value = frame["latest"].iloc[0] if len(frame) else None
        if value is None or pd.isna(value):
            return None
        return naive_utc(pd.Timestamp(value).to_pydatetime())

    # --- writing (quarantine, state tables) -------------------------------------------------------------

    def replace_rows(self, frame, table: str, *, key_column: str, key: str) -> int:
        """Delete the rows of ``key`` in ``table``, then append ``frame`` with that key: safe to retry."""
        frame = frame.assign(**{key_column: key})
        if self.dialect == "sqlite":
            connection = self.get_conn()
            try:
                self._delete_key(connection, table, key_column, key)
                frame.to_sql(table.split(".")[-1], connection, if_exists="append", index=False)
                connection.commit()
            finally:
                connection.close()
            return len(frame)
        from airflow.providers.postgres.hooks.postgres import PostgresHook

        engine = PostgresHook(postgres_conn_id=self.data_conn_id).get_sqlalchemy_engine()
        schema, _, name = table.rpartition(".")
        with engine.begin() as connection:
            raw = connection.connection
            self._delete_key(raw, table, key_column, key)
            frame.to_sql(name, connection, schema=schema or None, if_exists="append", index=False)
        return len(frame)

    def ensure_table(self, table: str, columns: dict[str, str], *, index: Sequence[str] = ()) -> None:
        """``CREATE TABLE IF NOT EXISTS`` with these columns (``TEXT``, ``INTEGER`` or ``DOUBLE PRECISION``,
        valid in both dialects) and an index on ``index``: an explicit schema instead of one inferred from the
        first rows written, and no race between two first writers."""
        name = table.split(".")[-1] if self.dialect == "sqlite" else table
        body = ", ".join(f"{quote_identifier(column)} {kind}" for column, kind in columns.items())
        statements = [f"CREATE TABLE IF NOT EXISTS {quote_identifier(name)} ({body})"]
        if index:
            index_name = quote_identifier(f"{name.split('.')[-1]}_{'_'.join(index)}_idx")
            statements.append(f"CREATE INDEX IF NOT EXISTS {index_name} ON {quote_identifier(name)} "
                              f"({', '.join(quote_identifier(c) for c in index)})")
        connection = self.get_conn()
        try:
            cursor = connection.cursor()
            for statement in statements:
                cursor.execute(statement)
            connection.commit()
        finally:
            connection.close()

    def table_exists(self, connection, table: str) -> bool:
        cursor = connection.cursor()
        if self.dialect == "sqlite":
            cursor.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (table.split(".")[-1],))
            return cursor.fetchone() is not None
        cursor.execute("SELECT to_regclass(%s)", (quote_identifier(table),))
        return cursor.fetchone()[0] is not None

    def _delete_key(self, connection, table: str, key_column: str, key: str) -> None:
        if self.table_exists(connection, table):
            cursor = connection.cursor()
            cursor.execute(f"DELETE FROM {quote_identifier(table)} WHERE {quote_identifier(key_column)} = "
                           f"{self.placeholder}", (key,))
