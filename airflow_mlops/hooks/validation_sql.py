"""Validation pushed down to PostgreSQL: which rows failed a row-level expectation, decided in SQL.

Great Expectations computes the results in the database (:func:`airflow_mlops.core.validation.validate_query`) but
returns only counts and a few failing values. To set the failing rows aside without loading the window, each
row-level expectation that failed is written here as a SQL predicate ("this row is unexpected") with the same
meaning as Great Expectations' own SQL condition: NULLs are missing values, never unexpected, except for the
null expectations themselves. ``tests/hooks/test_validation_sql.py`` checks every predicate against Great
Expectations' count on the same data.

Quarantine is then one ``INSERT ... SELECT`` (and the ``DELETE`` of this task's earlier rows, in the same
transaction): the rows never leave the database. Configured values are bound parameters, never pasted into SQL.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from airflow_mlops.hooks.dialects import PARAM, Dialect

# Keyword arguments that do not change which rows are unexpected (``mostly`` changes only success).
_NEUTRAL = frozenset({"column", "mostly", "meta", "notes", "description", "catch_exceptions", "result_format", "id",
                      "batch_id"})
_ARGUMENTS = {
    "expect_column_values_to_not_be_null": set(),
    "expect_column_values_to_be_null": set(),
    "expect_column_values_to_be_between": {"min_value", "max_value", "strict_min", "strict_max"},
    "expect_column_values_to_be_in_set": {"value_set"},
    "expect_column_values_to_not_be_in_set": {"value_set"},
    "expect_column_values_to_match_regex": {"regex"},
    "expect_column_values_to_not_match_regex": {"regex"},
    "expect_column_values_to_match_like_pattern": {"like_pattern"},
    "expect_column_values_to_not_match_like_pattern": {"like_pattern"},
    "expect_column_value_lengths_to_be_between": {"min_value", "max_value", "strict_min", "strict_max"},
    "expect_column_value_lengths_to_equal": {"value"},
    "expect_column_values_to_be_unique": set(),
}
SUPPORTED = frozenset(_ARGUMENTS)
MAX_PARAMETERS = 65_535  # bind parameters per statement in PostgreSQL's protocol
# PostgreSQL type OIDs of the columns a numeric feature may have in the database.
_INTEGER_TYPES, _FLOAT_TYPES = {20, 21, 23}, {700, 701, 1700}


@dataclass(frozen=True)
class RowCheck:
    """One failed row-level expectation as SQL: ``predicate`` is true exactly for its unexpected rows."""

    label: str
    predicate: str
    params: tuple[Any, ...]


def row_check(dialect: Dialect, expectation: str, kwargs: dict[str, Any], *, window_sql: str,
              window_params: Sequence[Any] = ()) -> RowCheck | None:
    """The SQL form of a row-level expectation, or None when there is none (an unsupported expectation or
    argument, such as GX's ``row_condition``). ``window_sql`` is the SELECT the rows come from (uniqueness is
    judged within it)."""
    arguments = _ARGUMENTS.get(expectation)
    if arguments is None or not set(kwargs) <= arguments | _NEUTRAL or "column" not in kwargs:
        return None
    column = dialect.quote(str(kwargs["column"]))
    label = f"{expectation}({kwargs['column']})"
    present = f"{column} IS NOT NULL AND "
    if expectation == "expect_column_values_to_not_be_null":
        return RowCheck(label, f"{column} IS NULL", ())
    if expectation == "expect_column_values_to_be_null":
        return RowCheck(label, f"{column} IS NOT NULL", ())
    if expectation in ("expect_column_values_to_be_between", "expect_column_value_lengths_to_be_between"):
        value = column if expectation == "expect_column_values_to_be_between" else f"length({column})"
        inside, params = _between(value, kwargs)
        if inside is None:
            return None
        return RowCheck(label, f"{present}NOT ({inside})", tuple(params))
    if expectation in ("expect_column_values_to_be_in_set", "expect_column_values_to_not_be_in_set"):
        values = list(kwargs.get("value_set") or [])
        if not all(_bindable(v) for v in values):
            return None
        member = f"{column} IN ({', '.join(PARAM for _ in values)})" if values else "FALSE"
        negate = "" if "_not_" in expectation else "NOT "
        return RowCheck(label, f"{present}{negate}({member})", tuple(values))
    if expectation.endswith("match_regex") or expectation.endswith("match_like_pattern"):
        pattern = kwargs.get("regex", kwargs.get("like_pattern"))
        if not isinstance(pattern, str) or dialect.name != "postgres":
            return None
        operator = "~" if "regex" in expectation else "LIKE"
        matches = f"{column} {operator} {PARAM}"
        return RowCheck(label, f"{present}{matches if '_not_' in expectation else f'NOT ({matches})'}", (pattern,))
    if expectation == "expect_column_value_lengths_to_equal":
        value = kwargs.get("value")
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not float(value).is_integer():
            return None
        return RowCheck(label, f"{present}length({column}) <> {PARAM}", (int(value),))
    if expectation == "expect_column_values_to_be_unique":
        repeated = (f"SELECT {column} FROM ({window_sql}) AS mlops_unique GROUP BY {column} "
                    f"HAVING count(*) > 1")
        return RowCheck(label, f"{column} IN ({repeated})", tuple(window_params))
    return None


def _bindable(value: Any) -> bool:
    if isinstance(value, float):
        return math.isfinite(value)
    return isinstance(value, (str, int))


def _between(value_sql: str, kwargs: dict[str, Any]) -> tuple[str | None, list]:
    parts, params = [], []
    for bound, strict, operator in (("min_value", "strict_min", ">"), ("max_value", "strict_max", "<")):
        limit = kwargs.get(bound)
        if limit is None:
            continue
        if isinstance(limit, bool) or not (_bindable(limit) or isinstance(limit, float) and math.isinf(limit)):
            return None, []  # an infinite bound is a bound: NaN is above +inf in PostgreSQL, as unexpected as in GX
        parts.append(f"{value_sql} {operator}{'' if kwargs.get(strict) else '='} {PARAM}")
        params.append(limit)
    return (" AND ".join(parts) or "TRUE"), params


def unexpected_sql(checks: Sequence[RowCheck]) -> tuple[str, list]:
    """A predicate true for rows any check finds unexpected (NULL-safe: a NULL is never "unexpected")."""
    sql = " OR ".join(f"COALESCE(({check.predicate}), FALSE)" for check in checks)
    return f"({sql})", [param for check in checks for param in check.params]


def quarantine_in_database(database, table: str, *, columns: Sequence[str], window_sql: str,
                           window_params: Sequence[Any], checks: Sequence[RowCheck], key: str, at: str,
                           reason_column: str, at_column: str, key_column: str) -> int:
    """``INSERT INTO table SELECT ... FROM (window) WHERE unexpected``, after deleting ``key``'s earlier rows, in one
    transaction (a retry replaces, never duplicates). Values are stored as text, with the failed expectations of
    each row as its reason. Returns the rows written."""
    d = database.dialect
    target = d.quote(d.table_name(table))
    insert, params = None, []
    if checks:  # none (nothing failed any more): a retry still clears what an earlier try of this key wrote
        # Each predicate (with its parameters) appears once, as a flag column: a large value_set is bound once.
        flags = ", ".join(f"COALESCE(({c.predicate}), FALSE) AS mlops_failed_{i}" for i, c in enumerate(checks))
        reasons = ", ".join(f"CASE WHEN mlops_failed_{i} THEN {PARAM} END" for i in range(len(checks)))
        where = " OR ".join(f"mlops_failed_{i}" for i in range(len(checks)))
        names = [*columns, reason_column, at_column, key_column]
        select = ", ".join(f"CAST({d.quote(c)} AS TEXT)" for c in columns)
        insert = (f"INSERT INTO {target} ({', '.join(d.quote(c) for c in names)}) "
                  f"SELECT {select}, 'failed expectations: ' || concat_ws('; ', {reasons}), {PARAM}, {PARAM} "
                  f"FROM (SELECT *, {flags} FROM ({window_sql}) AS mlops_window) AS mlops_flagged WHERE {where}")
        params = [*[c.label for c in checks], at, key, *[p for c in checks for p in c.params], *window_params]
        if len(params) > MAX_PARAMETERS:
            from airflow_mlops.core.errors import ValidationSetupError

            raise ValidationSetupError(f"{len(params)} values to bind (value sets of the failed expectations): "
                                       f"PostgreSQL takes {MAX_PARAMETERS} per statement; set validation.engine: "
                                       "pandas to quarantine these rows")
    with database.transaction() as cursor:
        database.execute(cursor, f"DELETE FROM {target} WHERE {d.quote(key_column)} = {PARAM}", [key])
        if insert is None:
            return 0
        database.execute(cursor, insert, params)
        return cursor.rowcount


class WindowInDatabase:
    """A model's training window as a query in its PostgreSQL database: validated, quarantined and re-read there.

    The query shows the rows as the extract task types them, so both engines judge the same values: numeric
    columns' ``NaN`` is a missing value (pandas reads it so), and rows with an infinite number are left out (the
    extract task rejected them already; they are in the quarantine table under its key).

    :param database: the data connection's :class:`~airflow_mlops.hooks.database.Database`.
    :param data: the model's ``data`` config; ``start``/``end``: the window (the extract task's).
    """

    def __init__(self, database, data, *, start, end) -> None:
        self.database, self.data = database, data
        d = database.dialect
        self.columns = data.window_columns
        self.window = {"columns": self.columns, "timestamp_column": data.timestamp_column, "start": start,
                       "end": end, "table": data.table, "query": data.query,
                       "timestamp_format": data.timestamp_format}
        selected, self.params = database.window_select(**self.window)
        types = database.column_types(d.source_sql(table=data.table, query=data.query))
        numeric = [c for c in [*data.numeric, data.target] if c in types]
        # Numeric columns the database holds as something else (text, boolean): they compare differently there.
        self.incompatible = [c for c in numeric if types[c] not in _INTEGER_TYPES | _FLOAT_TYPES]
        floats = {c for c in numeric if types[c] in _FLOAT_TYPES}
        shown = ", ".join(f"NULLIF({d.quote(c)}, 'NaN') AS {d.quote(c)}" if c in floats else d.quote(c)
                          for c in self.columns)
        finite = " AND ".join(f"({d.quote(c)} IS NULL OR CAST({d.quote(c)} AS DOUBLE PRECISION) "
                              f"NOT IN ('Infinity', '-Infinity'))" for c in sorted(floats))
        self.sql = f"SELECT {shown} FROM ({selected}) AS mlops_selected" + (f" WHERE {finite}" if finite else "")

    def count(self) -> int:
        frame = self.database.read_sql(f"SELECT count(*) AS n FROM ({self.sql}) AS mlops_window", self.params)
        return int(frame["n"].iloc[0])

    def validate(self, config, *, name: str, rows: int):
        """Great Expectations over the window query, computed by the database (see ``validate_query``)."""
        from airflow_mlops.core.validation import validate_query

        query = self.database.dialect.inline(self.sql, self.params)
        try:
            outcome = validate_query(self.database.sqlalchemy_url(), query, config, name=name, rows=rows,
                                     id_columns=[self.data.entity_id])
        except Exception as error:
            if type(error).__module__.startswith("airflow_mlops"):
                raise
            raise self.database.error("validating in the database", error) from error
        return outcome

    def row_checks(self, report: dict[str, Any], config) -> tuple[list[RowCheck], list[str]]:
        """The SQL form of each failed row-level expectation, and the labels of those without one. The arguments
        are the configured ones (``config``: the validation config): the report's went through JSON, where an
        infinite bound is null."""
        checks, missing = [], []
        for entry in report["results"]:
            if entry["success"] or not entry.get("row_level"):
                continue
            kwargs = _configured_kwargs(config, entry)
            check = row_check(self.database.dialect, entry["expectation"], kwargs, window_sql=self.sql,
                              window_params=self.params)
            if check is None:
                missing.append(f"{entry['expectation']}({entry['kwargs'].get('column')})")
            else:
                checks.append(check)
        return checks, missing

    def quarantine(self, table: str, checks: Sequence[RowCheck], *, key: str) -> int:
        from datetime import datetime, timezone

        from airflow_mlops.core.coercion import REASON_COLUMN
        from airflow_mlops.quarantine import QUARANTINED_AT, RUN_KEY, prepare_table

        prepare_table(self.database, table, [*self.columns, REASON_COLUMN, QUARANTINED_AT])
        return quarantine_in_database(
            self.database, table, columns=self.columns, window_sql=self.sql, window_params=self.params,
            checks=checks, key=key, at=datetime.now(timezone.utc).isoformat(timespec="seconds"),
            reason_column=REASON_COLUMN, at_column=QUARANTINED_AT, key_column=RUN_KEY)

    def read_clean(self, checks: Sequence[RowCheck]):
        """The window without the rows ``checks`` find unexpected, typed as the extract task types it."""
        from airflow_mlops.core.coercion import coerce_to_config

        # Read from the same query the checks judged (NaN as missing, no infinite rows), written out in full.
        window = dict(self.window, table=None, query=self.database.dialect.inline(self.sql, self.params))
        read = self.database.read_window(**window, order_by=[self.data.entity_id], with_unreadable=False,
                                         exclude=unexpected_sql(checks) if checks else None)
        return coerce_to_config(read.frame, self.data).frame


def _configured_kwargs(config, entry: dict[str, Any]) -> dict[str, Any]:
    """The configured arguments of a report entry: the expectation of that type whose arguments the report shows
    (GX may add defaults and turn 2 into 2.0; both compare equal here), else the report's own."""
    from airflow_mlops.core.jsonsafe import json_safe

    for item in config.expectations:
        ((name, kwargs),) = item.items()
        kwargs = dict(kwargs or {})
        if name == entry["expectation"] and all(entry["kwargs"].get(k) == json_safe(v) for k, v in kwargs.items()):
            return kwargs
    return entry["kwargs"]
