"""SQL dialects: everything that differs between SQLite and PostgreSQL, in one object per database.

Statements are written once with :data:`PARAM` where a value is bound; :meth:`Dialect.finalize` turns them into
the driver's placeholder style (``?``, ``%s`` or ``$1``). User SQL (``data.query``, ``drift.reference_query``) is
embedded as written: only for the ``%s`` style with bound values is ``%`` doubled, because that driver style
requires it (``LIKE '%south%'`` reaches the server unchanged).

Timestamps: windows are compared in UTC on a normalised expression of the timestamp column.
* SQLite has no time type. Text in ISO 8601 (``T`` or space, with or without fraction, ``Z`` or ``+hh:mm``
  offsets) is normalised to UTC with ``strftime('%Y-%m-%d %H:%M:%f', ...)`` (millisecond precision). Text that
  does not start with a date, dates that do not exist (``2024-02-30``, ``T24:00``), words SQLite would accept
  (``now``) and years outside 1678-2261 (what pandas can hold) read as NULL: unreadable, counted. Numbers are
  read as Unix epochs only when the config says so.
* PostgreSQL ``timestamp`` (naive, taken as UTC) and ``timestamptz`` are compared natively; every session we
  open runs with ``TimeZone = 'UTC'``, so no session default can shift a window. Numeric epochs via
  ``to_timestamp``.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta, timezone
from typing import Any

# The bind-parameter token of our statements: not valid SQL, printable (statements travel in trigger kwargs, and
# PostgreSQL text cannot hold NUL bytes).
PARAM = "\u27e8?\u27e9"
TIMESTAMP_FORMATS = ("iso", "epoch_seconds", "epoch_milliseconds")


def strip_statement(sql: str) -> str:
    """A statement without trailing whitespace and semicolons (a YAML block scalar ends a query with ``;\n``)."""
    return sql.strip().rstrip(";").rstrip()


def naive_utc(value: datetime) -> datetime:
    """A time as naive UTC, the form timestamps are compared and returned in (naive means UTC already)."""
    if value.tzinfo is not None:
        value = value.astimezone(timezone.utc).replace(tzinfo=None)
    return value


class Dialect:
    name = ""
    paramstyle = "qmark"
    # Column types valid in both dialects (we keep times as ISO-8601 UTC text: it sorts in time order).
    TEXT, INTEGER, FLOAT = "TEXT", "BIGINT", "DOUBLE PRECISION"

    def quote(self, name: str) -> str:
        """``schema.table`` -> ``"schema"."table"``, doubling embedded quotes."""
        return ".".join('"' + part.replace('"', '""') + '"' for part in name.split("."))

    def table_name(self, table: str) -> str:
        return table

    def source_sql(self, *, table: str | None = None, query: str | None = None) -> str:
        if table:
            return self.quote(self.table_name(table))
        if query:
            # A newline before ")" ends a trailing "-- comment" of the query.
            return f"({strip_statement(query)}\n) AS mlops_source"
        raise ValueError("set a table or a query")

    def finalize(self, sql: str, style: str | None = None, *, bound: bool = True) -> str:
        """Replace :data:`PARAM` tokens by the driver's placeholders (``style`` overrides the dialect's)."""
        style = style or self.paramstyle
        if style == "qmark":
            return sql.replace(PARAM, "?")
        if style == "format":
            return (sql.replace("%", "%%") if bound else sql).replace(PARAM, "%s")
        if style == "numeric_dollar":
            pieces = sql.split(PARAM)
            return "".join(piece + (f"${index}" if index < len(pieces) else "")
                           for index, piece in enumerate(pieces, start=1))
        raise ValueError(f"unknown paramstyle {style!r}")

    def inline(self, sql: str, params: Sequence[Any]) -> str:
        """The statement with its parameters written as SQL literals, for a tool that takes SQL text only (Great
        Expectations' query asset). Only the values our own statements bind (times, numbers, text) are accepted;
        text is quoted by doubling ``'``, which is exact under ``standard_conforming_strings`` (sessions set it)."""
        pieces = sql.split(PARAM)
        if len(pieces) != len(params) + 1:
            raise ValueError(f"{len(pieces) - 1} parameter(s) in the statement, {len(params)} given")
        return "".join(piece + (self.literal(params[i]) if i < len(params) else "") for i, piece in enumerate(pieces))

    def literal(self, value: Any) -> str:
        import math

        if isinstance(value, bool):
            return "TRUE" if value else "FALSE"
        if isinstance(value, int):
            return str(value)
        if isinstance(value, float) and math.isfinite(value):
            return repr(value)
        if isinstance(value, datetime):
            return f"TIMESTAMP '{naive_utc(value).isoformat(sep=' ')}'"
        if isinstance(value, str) and "\0" not in value:
            return "'" + value.replace("'", "''") + "'"
        raise TypeError(f"cannot write {type(value).__name__} {value!r} as a SQL literal")

    def null_safe_equals(self, column_sql: str) -> str:
        raise NotImplementedError

    def upsert(self, table: str, columns: Sequence[str], key: Sequence[str], update: Sequence[str] = ()) -> str:
        """``INSERT ... ON CONFLICT (key) DO UPDATE SET ...`` (or ``DO NOTHING``): same syntax in SQLite >= 3.24
        and PostgreSQL."""
        quoted = ", ".join(self.quote(c) for c in columns)
        values = ", ".join(PARAM for _ in columns)
        conflict = ", ".join(self.quote(c) for c in key)
        action = ("DO UPDATE SET " + ", ".join(f"{self.quote(c)} = excluded.{self.quote(c)}" for c in update)
                  if update else "DO NOTHING")
        return (f"INSERT INTO {self.quote(self.table_name(table))} ({quoted}) VALUES ({values}) "
                f"ON CONFLICT ({conflict}) {action}")

    def table_exists(self, cursor, table: str) -> bool:
        raise NotImplementedError

    def timestamp_expr(self, column: str, fmt: str = "iso") -> str:
        """SQL for the column's time in UTC, compared with :meth:`timestamp_param` values."""
        raise NotImplementedError

    def unreadable(self, column: str, fmt: str = "iso") -> str:
        """SQL predicate: this row's time cannot be read (it belongs to no window)."""
        return f"({self.timestamp_expr(column, fmt)} IS NULL)"

    def timestamp_param(self, value: datetime) -> Any:
        raise NotImplementedError

    def entity_text(self, expression: str) -> str:
        """An entity id as the text the prediction log stores (``core.categories.category_label``)."""
        return f"CAST({expression} AS TEXT)"

    def window(self, column: str, fmt: str, start: datetime, end: datetime) -> tuple[str, list]:
        """SQL predicate and parameters of ``start <= time < end`` (UTC)."""
        ts = self.timestamp_expr(column, fmt)
        return f"{ts} >= {PARAM} AND {ts} < {PARAM}", [self.timestamp_param(start), self.timestamp_param(end)]

    def begin_exclusive(self, cursor) -> None:
        """Start a write transaction that serialises with other writers."""

    def on_connect(self, connection) -> None:
        """Session settings every connection gets."""


class SqliteDialect(Dialect):
    name = "sqlite"
    paramstyle = "qmark"
    _NORMAL = "%Y-%m-%d %H:%M:%f"

    def table_name(self, table: str) -> str:
        # SQLite has no schemas here: a configured "schema.table" (for Postgres) keeps only the table part.
        return table.split(".")[-1]

    def null_safe_equals(self, column_sql: str) -> str:
        return f"{column_sql} IS {PARAM}"

    def entity_text(self, expression: str) -> str:
        # A REAL id 7.0 is logged as '7' (category_label); SQLite's CAST would give '7.0' and never join.
        return (f"(CASE WHEN typeof({expression}) = 'real' AND {expression} = CAST({expression} AS INTEGER) "
                f"THEN CAST(CAST({expression} AS INTEGER) AS TEXT) ELSE CAST({expression} AS TEXT) END)")

    def table_exists(self, cursor, table: str) -> bool:
        cursor.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (self.table_name(table),))
        return cursor.fetchone() is not None

    def timestamp_expr(self, column: str, fmt: str = "iso") -> str:
        q, normal = self.quote(column), f"strftime('{self._NORMAL}', {self.quote(column)})"
        if fmt == "iso":
            return f"(CASE WHEN {self._readable(column)} THEN {normal} END)"
        scale = 1000 if fmt == "epoch_milliseconds" else 1
        low, high, divisor = -9_000_000_000 * scale, 9_000_000_000 * scale, " / 1000.0" if scale > 1 else ""
        return (f"(CASE WHEN typeof({q}) IN ('integer', 'real') AND {q} BETWEEN {low} AND {high} THEN "
                f"strftime('{self._NORMAL}', {q}{divisor}, 'unixepoch') END)")

    def timestamp_param(self, value: datetime) -> str:
        value = naive_utc(value)
        return value.strftime("%Y-%m-%d %H:%M:%S.") + f"{value.microsecond // 1000:03d}"

    def window(self, column: str, fmt: str, start: datetime, end: datetime) -> tuple[str, list]:
        predicate, params = super().window(column, fmt, start, end)
        if fmt != "iso":
            return predicate, params
        # A cheap text prefilter first (an index on the column can serve it): ISO text starts with its local date,
        # which is within a day of the UTC instant whatever the offset. Only candidates get the exact expression.
        # A local date two days inside the window is inside it whatever the offset: such rows (nearly all of a
        # long window) only need to be readable, which costs a quarter of normalising and comparing twice.
        q = self.quote(column)
        start, end = naive_utc(start), naive_utc(end)
        day = "%Y-%m-%d"
        low, high = (start - timedelta(days=1)).strftime(day), (end + timedelta(days=2)).strftime(day)
        inner_low, inner_high = (start + timedelta(days=2)).strftime(day), (end - timedelta(days=2)).strftime(day)
        return (f"{q} >= {PARAM} AND {q} < {PARAM} AND (CASE WHEN {q} >= {PARAM} AND {q} < {PARAM} "
                f"THEN {self._readable(column)} ELSE {predicate} END)", [low, high, inner_low, inner_high, *params])

    def _readable(self, column: str) -> str:
        """The readability test of :meth:`timestamp_expr` (ISO text) alone. Most timestamps are written one plain
        way, and :meth:`_plain_time` says so without parsing a date; the rest take :meth:`_readable_exactly`."""
        return f"(CASE WHEN {self._plain_time(column)} THEN 1 ELSE {self._readable_exactly(column)} END)"

    def _plain_time(self, column: str) -> str:
        """A sufficient condition for :meth:`_readable_exactly`, with text comparisons and GLOB only (a third of
        its cost: SQLite parses the text once per date function, five times there): ``YYYY-MM-DD``, or that and a
        time to the second (``T`` or a space, a fraction of at most 9 digits, no offset), every field in range (20
        nines of fraction make SQLite's seconds 60.0, and the time unreadable). Days 29-31 (the month decides) and
        the last day pandas can hold (a fraction can round up past its midnight) are left to the exact test, as is
        anything else. The year bound is '1678-01-01', not '1678': a column declared DATETIME
        has NUMERIC affinity, and SQLite compares it with a literal that looks like a number as a number."""
        q, digit = self.quote(column), "[0-9]"
        date = f"{digit * 4}-[01]{digit}-[0-3]{digit}"
        return (f"(typeof({q}) = 'text' AND {q} >= '1678-01-01' AND {q} < '2261-12-31' "
                f"AND substr({q}, 6, 2) BETWEEN '01' AND '12' AND substr({q}, 9, 2) BETWEEN '01' AND '28' "
                f"AND ({q} GLOB '{date}' OR ({q} GLOB '{date}[ T][0-2]{digit}:[0-5]{digit}:[0-5]{digit}*' "
                f"AND substr({q}, 12, 2) <= '23' AND (length({q}) = 19 OR (length({q}) <= 29 "
                f"AND substr({q}, 20, 2) GLOB '.{digit}' AND substr({q}, 21) NOT GLOB '*[^0-9]*')))))")

    def _readable_exactly(self, column: str) -> str:
        """The full readability test: text (SQLite would read a number, even
        as text, as a Julian day number) starting with a date (not "now" or "12:30") that exists
        (strftime passes 2024-02-30 through, julianday normalises it; checked on the date as written, before an
        offset moves it), a time that exists (T24:00 passes strftime, not julianday), in the years pandas can hold.
        Times are compared to the second: julianday rounds .9995 s up to the next second where strftime truncates,
        which made one timestamp in ~2,000 with microseconds unreadable."""
        q = self.quote(column)
        seconds = f"strftime('%Y-%m-%d %H:%M:%S', {q})"
        return (f"(typeof({q}) = 'text' AND {q} GLOB '[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]*' "
                f"AND substr({q}, 1, 10) = date(julianday(substr({q}, 1, 10))) "
                f"AND {seconds} = strftime('%Y-%m-%d %H:%M:%S', julianday({seconds})) "
                f"AND {seconds} BETWEEN '1678' AND '2262')")

    def begin_exclusive(self, cursor) -> None:
        cursor.execute("BEGIN IMMEDIATE")


class PostgresDialect(Dialect):
    name = "postgres"
    paramstyle = "format"

    def null_safe_equals(self, column_sql: str) -> str:
        return f"{column_sql} IS NOT DISTINCT FROM {PARAM}"

    def table_exists(self, cursor, table: str) -> bool:
        cursor.execute("SELECT to_regclass(%s)", (self.quote(table),))
        return cursor.fetchone()[0] is not None

    def timestamp_expr(self, column: str, fmt: str = "iso") -> str:
        quoted = self.quote(column)
        if fmt == "iso":
            return quoted  # timestamp / timestamptz, compared natively (sessions run in UTC; an index is used)
        scale = 1000 if fmt == "epoch_milliseconds" else 1
        divisor = " / 1000.0" if scale > 1 else ""
        # NaN compares above every number in PostgreSQL, so it falls outside the range: unreadable, not an error.
        return (f"(CASE WHEN {quoted} BETWEEN {-9_000_000_000 * scale} AND {9_000_000_000 * scale} "
                f"THEN to_timestamp({quoted}{divisor}) END)")

    def unreadable(self, column: str, fmt: str = "iso") -> str:
        if fmt != "iso":
            return super().unreadable(column, fmt)
        quoted = self.quote(column)
        # 'infinity' and years pandas cannot hold belong to no window either.
        return (f"({quoted} IS NULL OR NOT isfinite({quoted}) OR {quoted} < '1678-01-01' "
                f"OR {quoted} >= '2262-01-01')")

    def timestamp_param(self, value: datetime) -> datetime:
        return naive_utc(value)

    def on_connect(self, connection) -> None:
        # Tuple rows whatever the connection's extras ask for (a dict cursor would break positional reads).
        if hasattr(connection, "row_factory"):  # psycopg 3
            from psycopg.rows import tuple_row

            connection.row_factory = tuple_row
        elif hasattr(connection, "cursor_factory"):  # psycopg2
            import psycopg2.extensions

            connection.cursor_factory = psycopg2.extensions.cursor
        cursor = connection.cursor()
        cursor.execute("SET TIME ZONE 'UTC'")
        cursor.close()


DIALECTS = {"sqlite": SqliteDialect, "postgres": PostgresDialect, "postgresql": PostgresDialect}


def dialect_for(kind: str) -> Dialect:
    """The dialect of an Airflow connection type or URI scheme (``sqlite``, ``postgres``, ``postgresql``)."""
    try:
        return DIALECTS[kind.lower().split("+", 1)[0]]()
    except KeyError:
        raise ValueError(f"unsupported database {kind!r}; supported: sqlite, postgres") from None
