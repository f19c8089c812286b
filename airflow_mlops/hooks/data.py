"""SqlDataHook: the data (and state) database of an Airflow connection, ``sqlite`` or ``postgres``.

Identifiers are quoted, values are always bound parameters: nothing from a config is pasted into SQL except a
``query`` the config author wrote as SQL on purpose (it is wrapped, never edited). With the ``postgres-fast``
extra, Postgres reads go through ADBC (Arrow), several times faster and lighter than the DB-API path. The SQL
itself lives in :class:`~airflow_mlops.hooks.database.Database` and the dialects, shared with the command line.
"""

from __future__ import annotations

from datetime import datetime
from functools import cached_property
from typing import Any
from collections.abc import Sequence

from airflow.sdk import BaseHook

from airflow_mlops.core.errors import DataSourceError
from airflow_mlops.hooks.database import Database, WindowRead
from airflow_mlops.hooks.dialects import Dialect, dialect_for, naive_utc

__all__ = ["DataSourceError", "SqlDataHook", "WindowRead", "naive_utc", "quote_identifier"]


def quote_identifier(name: str) -> str:
    """``schema.table`` -> ``"schema"."table"``, doubling embedded quotes."""
    return Dialect().quote(name)


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
        try:
            return self.get_connection(self.data_conn_id)
        except Exception as error:
            raise DataSourceError(f"connection {self.data_conn_id!r} is not defined: {error}") from error

    @cached_property
    def dialect(self) -> Dialect:
        conn_type = (self.connection.conn_type or "").lower()
        try:
            return dialect_for(conn_type)
        except ValueError:
            raise DataSourceError(f"connection {self.data_conn_id!r} has type {conn_type!r}; "
                                  "supported: sqlite, postgres") from None

    @cached_property
    def database(self) -> Database:
        name = f"connection {self.data_conn_id!r}"
        if self.dialect.name == "sqlite":
            path = self.connection.host or ""
            if not path:
                raise DataSourceError(f"sqlite connection {self.data_conn_id!r} needs the database file in 'host'")

            def connect():
                import sqlite3

                return sqlite3.connect(path, timeout=30)

            from pathlib import Path

            return Database(self.dialect, connect, name=name, identity=f"sqlite:{Path(path).resolve()}")
        from airflow.providers.postgres.hooks.postgres import PostgresHook

        hook = PostgresHook(postgres_conn_id=self.data_conn_id)
        # SQLAlchemy-style driver suffixes (postgresql+psycopg://) mean nothing to libpq/ADBC.
        adbc_uri = "postgresql://" + hook.get_uri().partition("://")[2]
        c = self.connection
        return Database(self.dialect, hook.get_conn, name=name, adbc_uri=adbc_uri, secrets=[c.password],
                        identity=f"postgres:{c.login}@{c.host}:{c.port or 5432}/{c.schema}")

    def get_conn(self):
        return self.database._connect()

    # --- reading (see Database for the details) ---------------------------------------------------------

    def read_sql(self, sql: str, params: Sequence[Any] = ()):
        return self.database.read_sql(sql, params)

    def columns_of(self, source: str) -> list[str]:
        return self.database.columns_of(source)

    def source_sql(self, *, table: str | None = None, query: str | None = None) -> str:
        return self.dialect.source_sql(table=table, query=query)

    def read_window(self, **kwargs: Any):
        """Rows of ``[start, end)`` as a DataFrame (see :meth:`read_window_report` for unreadable rows)."""
        return self.database.read_window(with_unreadable=False, **kwargs).frame

    def read_window_report(self, **kwargs: Any) -> WindowRead:
        return self.database.read_window(**kwargs)

    def latest_timestamp(self, **kwargs: Any) -> datetime | None:
        return self.database.latest_timestamp(**kwargs)

    # --- writing --------------------------------------------------------------------------------------

    def ensure_table(self, table: str, columns: dict[str, str], *, index: Sequence[str] = (),
                     primary_key: Sequence[str] = ()) -> None:
        self.database.ensure_table(table, columns, index=index, primary_key=primary_key)

    def replace_rows(self, frame, table: str, *, key_column: str, key: str) -> int:
        return self.database.replace_rows(frame, table, key_column=key_column, key=key)
