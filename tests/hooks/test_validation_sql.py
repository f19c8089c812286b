"""Validation pushed down to PostgreSQL: Great Expectations over the window query, failing rows identified in SQL.

Every SQL predicate must find exactly the rows Great Expectations counts as unexpected on the same data (GX runs
on the same database: the reference is GX itself, not a number written here), quarantine must be one statement in
the database that a retry replaces, and configured values must never become SQL."""

from __future__ import annotations

from datetime import datetime

import pytest

from airflow_mlops.core.config import DataConfig, ValidationConfig
from airflow_mlops.core.errors import ValidationSetupError
from airflow_mlops.hooks.database import Database
from airflow_mlops.hooks.validation_sql import SUPPORTED, WindowInDatabase, row_check
from tests.conftest import POSTGRES_URL

pytestmark = pytest.mark.postgres

START, END = datetime(2024, 1, 1), datetime(2024, 2, 1)

# One column per kind of trouble; NULLs everywhere (GX treats them as missing, not unexpected).
ROWS = """
INSERT INTO {t} SELECT
  'E' || g,
  TIMESTAMP '2023-12-31 12:00' + g * INTERVAL '10 minutes',
  CASE WHEN g % 97 = 0 THEN NULL WHEN g % 50 = 0 THEN -g ELSE g % 120 END,
  CASE WHEN g % 31 = 0 THEN NULL WHEN g % 7 = 0 THEN 'x-' || g WHEN g % 11 = 0 THEN 'O''Brien' ELSE 'c' || (g % 4) END,
  CASE WHEN g % 13 = 0 THEN NULL ELSE (g % 3)::int END,
  CASE WHEN g % 400 = 0 THEN 'E1' ELSE 'k' || g END,
  g % 2
FROM generate_series(1, 6000) AS g
"""

CASES = [
    ("expect_column_values_to_not_be_null", {"column": "amount"}),
    ("expect_column_values_to_be_null", {"column": "term"}),
    ("expect_column_values_to_be_between", {"column": "amount", "min_value": 0, "max_value": 100}),
    ("expect_column_values_to_be_between", {"column": "amount", "min_value": 1, "strict_min": True}),
    ("expect_column_values_to_be_between", {"column": "amount", "max_value": 99.5, "strict_max": True}),
    ("expect_column_values_to_be_in_set", {"column": "region", "value_set": ["c0", "c1", "c2", "O'Brien"]}),
    ("expect_column_values_to_be_in_set", {"column": "term", "value_set": [0, 1]}),
    ("expect_column_values_to_not_be_in_set", {"column": "region", "value_set": ["c3"]}),
    ("expect_column_values_to_match_regex", {"column": "region", "regex": "^c[0-2]$"}),
    ("expect_column_values_to_not_match_regex", {"column": "region", "regex": "^x-"}),
    ("expect_column_values_to_match_like_pattern", {"column": "region", "like_pattern": "c%"}),
    ("expect_column_values_to_not_match_like_pattern", {"column": "region", "like_pattern": "x-1%"}),
    ("expect_column_value_lengths_to_be_between", {"column": "region", "min_value": 2, "max_value": 5}),
    ("expect_column_value_lengths_to_equal", {"column": "region", "value": 2}),
    ("expect_column_values_to_be_unique", {"column": "code"}),
]


@pytest.fixture
def window(postgres_schema):
    database = Database.from_uri(POSTGRES_URL)
    table = f"{postgres_schema}.loans"
    with database.transaction() as cursor:
        cursor.execute(f'CREATE TABLE "{postgres_schema}".loans (loan_id text, applied_at timestamp, '
                       'amount double precision, region text, term integer, code text, defaulted integer)')
        cursor.execute(ROWS.format(t=f'"{postgres_schema}".loans'))
    data = DataConfig(table=table, entity_id="loan_id", timestamp_column="applied_at", target="defaulted",
                      features=["amount", "region", "term", "code"], categorical=["region", "term", "code"])
    return WindowInDatabase(database, data, start=START, end=END)


def _config(cases) -> ValidationConfig:
    return ValidationConfig(expectations=[{name: kwargs} for name, kwargs in cases])


def _gx(window, cases):
    return window.validate(_config(cases), name="probe", rows=window.count())


def _count(window, check) -> int:
    frame = window.database.read_sql(f"SELECT count(*) AS n FROM ({window.sql}) AS w WHERE "
                                     f"COALESCE(({check.predicate}), FALSE)", [*window.params, *check.params])
    return int(frame["n"].iloc[0])


def test_every_supported_expectation_is_covered_here():
    assert {name for name, _ in CASES} == SUPPORTED


def test_each_predicate_finds_the_rows_great_expectations_counts(window):
    outcome = _gx(window, CASES)
    assert outcome.report["engine"] == "database"
    assert len(outcome.report["results"]) == len(CASES)
    for name, kwargs in CASES:  # GX reports in an order of its own
        (entry,) = [e for e in outcome.report["results"] if (e["expectation"], e["kwargs"]) == (name, kwargs)]
        assert "error" not in entry, entry
        check = row_check(window.database.dialect, name, kwargs, window_sql=window.sql, window_params=window.params)
        assert check is not None, name
        assert _count(window, check) == entry["unexpected_count"] > 0, (name, kwargs)


def test_the_window_is_the_extract_window_and_only_samples_come_back(window):
    rows = window.count()
    # 10-minute steps from 2023-12-31 12:00: the window [Jan 1, Feb 1) starts at step 72 and ends before 4536.
    assert rows == 4536 - 72
    outcome = _gx(window, [("expect_column_values_to_be_between", {"column": "amount", "min_value": 0})])
    (entry,) = outcome.report["results"]
    assert entry["unexpected_count"] > 20 and len(entry["partial_unexpected_list"]) == 20
    assert all(sample["amount"] < 0 and sample["loan_id"].startswith("E")
               for sample in entry["partial_unexpected_index_list"])
    assert outcome.report["rows"] == rows and outcome.bad_index == []


def test_quarantine_is_one_statement_in_the_database_and_a_retry_replaces(window, postgres_schema):
    cases = [("expect_column_values_to_be_between", {"column": "amount", "min_value": 0}),
             ("expect_column_values_to_be_in_set", {"column": "region", "value_set": ["c0", "c1", "c2", "c3"]})]
    outcome = _gx(window, cases)
    checks, missing = window.row_checks(outcome.report, _config(cases))
    assert missing == [] and len(checks) == 2
    table = f"{postgres_schema}.loans_quarantine"
    expected = sum(e["unexpected_count"] for e in outcome.report["results"])
    written = window.quarantine(table, checks, key="run-1")
    again = window.quarantine(table, checks, key="run-1")
    rows = window.database.read_sql(f'SELECT * FROM "{postgres_schema}".loans_quarantine')
    both = rows["_mlops_reason"].str.contains("to_be_between") & rows["_mlops_reason"].str.contains("in_set")
    assert written == again == len(rows) == expected - int(both.sum()) > 0
    assert (rows["_mlops_run_key"] == "run-1").all() and rows["loan_id"].is_unique
    negative = rows[rows["amount"].astype(float) < 0].iloc[0]
    assert negative["_mlops_reason"].startswith("failed expectations: expect_column_values_to_be_between(amount)")
    clean = window.read_clean(checks)
    assert len(clean) == window.count() - written
    assert (clean["amount"].dropna() >= 0).all() and clean["region"].dropna().isin(["c0", "c1", "c2", "c3"]).all()
    assert not set(clean["loan_id"]) & set(rows["loan_id"])


def test_configured_values_are_bound_never_pasted_into_sql(window, postgres_schema):
    hostile = "c0'); DROP TABLE loans; --"
    cases = [("expect_column_values_to_be_in_set", {"column": "region", "value_set": ["c1", hostile]}),
             ("expect_column_values_to_match_regex", {"column": "region", "regex": "^c' OR '1'='1"})]
    outcome = _gx(window, cases)
    checks, _ = window.row_checks(outcome.report, _config(cases))
    assert all(hostile not in check.predicate for check in checks)
    window.quarantine(f"{postgres_schema}.q", checks, key="k")
    assert window.count() == 4536 - 72  # the table is still there, whole


def test_expectations_without_a_sql_form_are_named_not_guessed(window):
    dialect = window.database.dialect
    assert row_check(dialect, "expect_column_values_to_be_in_set",
                     {"column": "region", "value_set": ["a"], "row_condition": 'term == 1'},
                     window_sql=window.sql) is None  # a condition GX would apply: unknown here, so refused
    assert row_check(dialect, "expect_column_values_to_be_json_parseable", {"column": "region"},
                     window_sql=window.sql) is None
    # GX itself cannot compute it in SQL: the result is an error, which never counts as row-level (nothing to
    # set aside), and the engine choice names it before anything runs.
    from airflow_mlops.core.validation import unsupported_in_database

    config = ValidationConfig(expectations=[{"expect_column_values_to_be_dateutil_parseable": {"column": "region"}},
                                            {"expect_column_values_to_not_be_null": {"column": "region"}}])
    assert unsupported_in_database(config) == ["expect_column_values_to_be_dateutil_parseable"]
    outcome = window.validate(config, name="probe", rows=1)
    (entry,) = [e for e in outcome.report["results"] if "dateutil" in e["expectation"]]
    assert entry["success"] is False and "error" in entry and outcome.quarantinable is False


def test_literals_for_the_query_asset_are_exact():
    from airflow_mlops.hooks.dialects import PARAM, PostgresDialect

    d = PostgresDialect()
    assert d.inline(f"a = {PARAM} AND b < {PARAM} AND c = {PARAM}", ["it's", datetime(2024, 1, 2, 3, 4, 5), 1.5]) == (
        "a = 'it''s' AND b < TIMESTAMP '2024-01-02 03:04:05' AND c = 1.5")
    for bad in (float("nan"), b"bytes", "nul\0byte", None):
        with pytest.raises(TypeError):
            d.literal(bad)
    with pytest.raises(ValueError):
        d.inline(f"a = {PARAM}", [])


def test_a_metric_error_is_an_error_in_the_report_never_zero_unexpected(window):
    """The database refuses a comparison (text against a number): GX reports it per metric; the report must carry
    the error and quarantine must refuse, not read the empty result as "no unexpected rows"."""
    outcome = _gx(window, [("expect_column_values_to_be_between", {"column": "region", "min_value": 0})])
    (entry,) = outcome.report["results"]
    assert entry["success"] is False and "operator does not exist" in entry["error"]
    assert entry["row_level"] is False and outcome.quarantinable is False


def test_great_expectations_never_fetches_the_window_rows(window):
    """GX learns a query asset's columns by running the query verbatim; that statement must reach the server as
    LIMIT 0, or the whole window travels to the worker (bench/validation.py measures the memory)."""
    from sqlalchemy import event
    from sqlalchemy.engine import Engine

    fetched = []

    def count_rows(connection, cursor, statement, parameters, context, executemany):
        if cursor.description:
            fetched.append((cursor.rowcount, statement))

    event.listen(Engine, "after_cursor_execute", count_rows)
    try:
        outcome = _gx(window, CASES)
    finally:
        event.remove(Engine, "after_cursor_execute", count_rows)
    assert all("error" not in e for e in outcome.report["results"])
    from airflow_mlops.core.validation import VIEW

    assert (0, f"SELECT * FROM {VIEW} LIMIT 0") in fetched
    # Counts and failing samples (at most 20 per expectation) come back, never the window's 4,464 rows.
    assert max(rows for rows, _ in fetched) <= 20, [(rows, statement[:200]) for rows, statement in fetched]


# --- found by an adversarial probe: each a regression test -------------------------------------------------------

@pytest.fixture
def odd(postgres_schema):
    """A table with what real sources hold: float NaN and +-Infinity, text with % and :name, 1,000 rows."""
    database = Database.from_uri(POSTGRES_URL)
    with database.transaction() as cursor:
        cursor.execute(f'CREATE TABLE "{postgres_schema}".odd (id text, at timestamp, amount double precision, '
                       "note text, y integer)")
        cursor.execute(f"""INSERT INTO "{postgres_schema}".odd SELECT 'R' || g, TIMESTAMP '2024-01-10' + g * INTERVAL
            '1 minute',
            CASE WHEN g % 100 = 0 THEN 'NaN'::float8 WHEN g % 250 = 1 THEN 'Infinity'::float8 ELSE g % 90 END,
            CASE g % 3 WHEN 0 THEN 'a :name b' WHEN 1 THEN '50% off' ELSE 'x' END, g % 2
            FROM generate_series(1, 1000) AS g""")
    return database, postgres_schema


def _odd_window(database, schema, **data):
    config = {"table": f"{schema}.odd", "entity_id": "id", "timestamp_column": "at", "target": "y",
              "features": ["amount", "note"], "categorical": ["note"], **data}
    return WindowInDatabase(database, DataConfig(**config), start=START, end=END)


def test_a_query_with_percent_signs_and_colons_is_validated_as_written(odd):
    database, schema = odd
    query = f"SELECT * FROM \"{schema}\".odd WHERE note <> '50% off' AND note <> 'a :name b' -- 100% of the rest"
    window = _odd_window(database, schema, table=None, query=query)
    cases = [("expect_column_values_to_be_in_set", {"column": "note", "value_set": ["x", "y"]}),
             ("expect_column_values_to_match_regex", {"column": "note", "regex": "^x$"})]
    outcome = _gx(window, cases)
    rows = window.count()
    assert 300 < rows < 340 and all(e["element_count"] == rows and e["unexpected_count"] == 0
                                    for e in outcome.report["results"]), outcome.report
    only_percent = _odd_window(database, schema, table=None,
                               query=f"SELECT * FROM \"{schema}\".odd WHERE note = '50% off'")
    (entry,) = _gx(only_percent, cases[:1]).report["results"]
    assert entry["element_count"] == only_percent.count() > 300 and entry["unexpected_count"] == entry["element_count"]


def test_nan_is_missing_and_infinite_rows_are_left_to_the_extract_task(odd):
    """As the extract task types the rows: NaN is a missing value; a row with an infinite number was rejected (and
    quarantined) there, so it is neither validated nor quarantined a second time."""
    database, schema = odd
    window = _odd_window(database, schema)
    assert window.count() == 1000 - 4  # g = 1, 251, 501, 751 hold Infinity
    cases = [("expect_column_values_to_not_be_null", {"column": "amount"}),
             ("expect_column_values_to_be_between", {"column": "amount", "min_value": 0, "max_value": 89})]
    outcome = _gx(window, cases)
    null, between = (next(e for e in outcome.report["results"] if e["expectation"] == name) for name, _ in cases)
    assert null["unexpected_count"] == 10 and between["success"] is True
    checks, _ = window.row_checks(outcome.report, _config(cases))
    assert window.quarantine(f"{schema}.q", checks, key="k") == 10
    assert len(window.read_clean(checks)) == 1000 - 4 - 10


def test_arguments_come_from_the_config_not_from_the_json_report(odd):
    """The report's kwargs went through JSON (an infinite bound becomes null) and GX's types (2 becomes 2.0)."""
    database, schema = odd
    window = _odd_window(database, schema)
    cases = [("expect_column_values_to_be_between", {"column": "amount", "min_value": float("-inf"),
                                                     "max_value": 50}),
             ("expect_column_value_lengths_to_equal", {"column": "note", "value": 1})]
    outcome = _gx(window, cases)
    checks, missing = window.row_checks(outcome.report, _config(cases))
    assert missing == [] and len(checks) == 2
    for check in checks:
        (entry,) = [e for e in outcome.report["results"] if check.label.startswith(e["expectation"])]
        assert _count(window, check) == entry["unexpected_count"] > 0


def test_a_large_value_set_is_bound_once(odd):
    database, schema = odd
    window = _odd_window(database, schema)
    values = [f"v{i}" for i in range(40_000)]  # a ZIP-code-sized set: bound twice it passed PostgreSQL's 65,535
    # (GX itself needs ~30 s to compile such a set into SQL, so the check is built here without it.)
    check = row_check(window.database.dialect, "expect_column_values_to_be_in_set",
                      {"column": "note", "value_set": ["x", *values]}, window_sql=window.sql)
    assert window.quarantine(f"{schema}.q", [check], key="k") == _count(window, check) > 0
    too_many = row_check(window.database.dialect, "expect_column_values_to_be_in_set",
                         {"column": "note", "value_set": [f"v{i}" for i in range(70_000)]}, window_sql=window.sql)
    with pytest.raises(ValidationSetupError, match="PostgreSQL takes 65535 per statement; set validation.engine"):
        window.quarantine(f"{schema}.q", [too_many], key="k")


def test_a_connection_uri_with_its_own_options_still_validates(odd):
    database, schema = odd
    with_options = Database.from_uri(f"{POSTGRES_URL}?options=-c%20search_path%3D{schema}")
    window = _odd_window(with_options, schema)
    (entry,) = _gx(window, [("expect_column_values_to_not_be_null", {"column": "note"})]).report["results"]
    assert entry["success"] and entry["element_count"] == window.count()
