"""Data validation with Great Expectations 1.x on a pandas DataFrame, and the policy that follows.

Expectations come from the model config as ``{expectation_name: kwargs}``. The result is a plain dict
(JSON-safe) with one entry per expectation, plus the row indices that failed row-level expectations, so the
``quarantine`` policy can set those rows aside and pass the rest on.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from airflow_mlops.core.config import ValidationConfig
from airflow_mlops.core.errors import DataValidationFailed, ValidationSetupError
from airflow_mlops.core.jsonsafe import json_safe


__all__ = ["DataValidationFailed", "ValidationSetupError", "validate_frame", "validate_query", "failure_summary"]

SAMPLE_ROWS = 20  # failing values (and their ids) a report keeps per expectation


@dataclass
class ValidationOutcome:
    report: dict[str, Any]
    bad_index: list            # index labels of rows that failed row-level expectations
    quarantinable: bool        # every failed expectation was row-level


def _class_name(expectation: str) -> str:
    return "".join(part.capitalize() for part in expectation.split("_"))


def build_suite(config: ValidationConfig, name: str):
    import great_expectations as gx

    suite = gx.ExpectationSuite(name=name)
    for index, item in enumerate(config.expectations):
        ((expectation, kwargs),) = item.items()
        cls = getattr(gx.expectations, _class_name(expectation), None)
        if cls is None:
            raise ValidationSetupError(f"validation.expectations.{index}: unknown expectation {expectation!r}")
        try:
            suite.add_expectation(cls(**(kwargs or {})))
        except Exception as error:  # GX raises pydantic errors of its own version
            reason = " ".join(str(error).split())
            raise ValidationSetupError(f"validation.expectations.{index} ({expectation}): {reason}") from None
    return suite


def ephemeral_context():
    import great_expectations as gx
    from great_expectations.data_context.types.base import ProgressBarsConfig

    context = gx.get_context(mode="ephemeral")
    context.variables.progress_bars = ProgressBarsConfig(globally=False)
    return context


def validate_frame(frame, config: ValidationConfig, *, name: str) -> ValidationOutcome:
    """Run the configured expectations on ``frame`` (a pandas DataFrame) and summarise the result."""
    context = ephemeral_context()  # GX 1.x builds expectations only inside an active context
    suite = build_suite(config, name)
    report = _empty_report(config, name, rows=int(len(frame)), engine="pandas")
    if not config.expectations:
        return ValidationOutcome(report, [], True)
    asset = context.data_sources.add_pandas(f"{name}_source").add_dataframe_asset("window")
    batch = asset.add_batch_definition_whole_dataframe("whole").get_batch(batch_parameters={"dataframe": frame})
    return _summarise(batch.validate(suite, result_format={"result_format": "COMPLETE"}), report)


VIEW = "mlops_validation_window"


def validate_query(connection_string: str, query: str, config: ValidationConfig, *, name: str, rows: int,
                   id_columns: list[str] = (), samples: int = SAMPLE_ROWS) -> ValidationOutcome:
    """Run the configured expectations inside the database, over ``query`` (Great Expectations' SQL datasource):
    the database computes the counts, and only up to ``samples`` failing values per expectation (with their
    ``id_columns``) come back. ``bad_index`` stays empty: rows are identified in SQL
    (see :mod:`airflow_mlops.hooks.validation_sql`).

    ``query`` (complete SQL, no parameters) becomes a temporary view on the one connection GX gets, and GX
    validates ``SELECT * FROM`` that view: GX passes query text through SQLAlchemy's ``text()`` (twice on some
    paths), which would read ``:name`` in a user's query as a parameter and double its ``%`` signs."""
    from sqlalchemy.pool import StaticPool

    context = ephemeral_context()
    suite = build_suite(config, name)
    report = _empty_report(config, name, rows=rows, engine="database")
    if not config.expectations:
        return ValidationOutcome(report, [], True)
    source = context.data_sources.add_postgres(f"{name}_source", connection_string=connection_string,
                                               kwargs={"poolclass": StaticPool})
    engine = source.get_execution_engine().engine
    try:
        with engine.connect() as connection:
            # The driver's own cursor with no parameters at all: psycopg then sends the text unparsed (% and :name
            # stay as written; SQLAlchemy's exec_driver_sql passes an empty tuple, which psycopg parses).
            driver = connection.connection.dbapi_connection
            with driver.cursor() as cursor:
                for statement in ("SET TIME ZONE 'UTC'", "SET standard_conforming_strings = on",
                                  f"CREATE TEMPORARY VIEW {VIEW} AS {query}\n"):
                    cursor.execute(statement)
            driver.commit()  # SQLAlchemy did not see this transaction: it would roll it back on return to the pool
        view_query = f"SELECT * FROM {VIEW}"
        _columns_without_rows(engine, view_query)
        batch = source.add_query_asset("window", query=view_query).add_batch_definition_whole_table(
            "whole").get_batch()
        result_format = {"result_format": "SUMMARY", "partial_unexpected_count": samples}
        if id_columns:
            result_format["unexpected_index_column_names"] = list(id_columns)
        return _summarise(batch.validate(suite, result_format=result_format), report)
    finally:
        engine.dispose()  # the one connection, and the temporary view with it: a task must not leak connections


def _columns_without_rows(engine, query: str) -> None:
    """GX learns a query asset's columns by executing the query as it is and reading only the result's column
    names: the whole window would travel to this process to be thrown away (linear client memory; server-side
    cursors break GX's metric queries). That one statement, the query verbatim, is sent as ``LIMIT 0`` instead;
    every metric wraps the query in a larger statement and is never rewritten."""
    from sqlalchemy import event

    def rewrite(connection, cursor, statement, parameters, context, executemany):
        if statement.strip() == query:
            statement = f"{query} LIMIT 0"
        return statement, parameters

    event.listen(engine, "before_cursor_execute", rewrite, retval=True)


def _raised(info) -> str | None:
    """The error of a GX result: its ``exception_info`` is either one record or one record per failed metric."""
    if not info:
        return None
    records = [info] if "raised_exception" in info else [v for v in info.values() if isinstance(v, dict)]
    messages = [str(r.get("exception_message")) for r in records if r.get("raised_exception")]
    return " ".join("; ".join(dict.fromkeys(messages)).split())[:1000] if messages else None


def unsupported_in_database(config: ValidationConfig) -> list[str]:
    """The configured expectations Great Expectations cannot compute in SQL (it implements them for pandas only)."""
    import great_expectations as gx
    from great_expectations.expectations.registry import _registered_metrics

    missing = []
    for item in config.expectations:
        ((expectation, _),) = item.items()
        cls = getattr(gx.expectations, _class_name(expectation))
        metrics = [f"{cls.map_metric}.condition"] if getattr(cls, "map_metric", None) else []
        metrics += list(getattr(cls, "metric_dependencies", ()) or ())
        if any(m in _registered_metrics and "SqlAlchemyExecutionEngine" not in _registered_metrics[m]["providers"]
               for m in metrics):
            missing.append(expectation)
    return missing


def _empty_report(config: ValidationConfig, name: str, *, rows: int, engine: str) -> dict[str, Any]:
    return {"suite": name, "policy": config.policy, "engine": engine, "rows": rows, "success": True, "results": []}


def _summarise(result, report: dict[str, Any]) -> ValidationOutcome:
    bad_index: set = set()
    quarantinable = True
    for item in result.results:
        details = item.result or {}
        kwargs = {k: v for k, v in item.expectation_config.kwargs.items() if k != "batch_id"}
        entry = {"expectation": item.expectation_config.type, "kwargs": json_safe(kwargs),
                 "success": bool(item.success), "row_level": "unexpected_count" in details}
        for key in ("observed_value", "element_count", "unexpected_count", "unexpected_percent",
                    "missing_count", "partial_unexpected_list", "partial_unexpected_index_list"):
            if key in details:
                entry[key] = json_safe(details[key])
        error = _raised(item.exception_info)
        if error is None and not item.success and not details:
            error = "Great Expectations returned no result (no error either)"  # never read as "0 unexpected"
        if error is not None:
            entry["error"] = error
            entry["row_level"] = False
        report["results"].append(entry)
        if not item.success:
            report["success"] = False
            if not entry["row_level"]:  # table-level (row count, mean, ...) or an error: no rows to set aside
                quarantinable = False
            elif report["engine"] == "pandas":
                if "unexpected_index_list" in details:
                    bad_index.update(details["unexpected_index_list"])
                else:
                    quarantinable = False
    return ValidationOutcome(report, sorted(bad_index, key=str), quarantinable)


def failure_summary(report: dict[str, Any]) -> str:
    failed = [r for r in report["results"] if not r["success"]]
    parts = []
    for r in failed:
        column = r["kwargs"].get("column")
        detail = r.get("error") or (f"{r['unexpected_count']} unexpected ({r.get('unexpected_percent', 0):.1f}%)"
                                    if "unexpected_count" in r else f"observed {r.get('observed_value')}")
        parts.append(f"{r['expectation']}{f'({column})' if column else ''}: {detail}")
    return "; ".join(parts)
