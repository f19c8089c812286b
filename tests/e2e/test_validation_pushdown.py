"""The CT DAG with its data in PostgreSQL: expectations run in the database (GX's SQL datasource over the window
query), failing rows are quarantined there (INSERT ... SELECT) and the model trains on the rest."""

from __future__ import annotations

import pytest

from airflow_mlops.core import names
from tests.helpers import FIRST

pytestmark = pytest.mark.slow

EXPECTATIONS = [{"expect_column_values_to_be_between": {"column": "amount", "min_value": 0}},
                {"expect_column_values_to_be_in_set": {"column": "term", "value_set": [36, 60]}},
                {"expect_column_values_to_be_unique": {"column": "loan_id"}}]


def _spoil(project, schema: str) -> list[str]:
    """Five rows of the training window get a negative amount; returns their ids."""
    ids = [r[0] for r in project.sql(f'SELECT loan_id FROM "{schema}".loans ORDER BY applied_at DESC, loan_id '
                                     "LIMIT 5")]
    project.sql(f'UPDATE "{schema}".loans SET amount = -amount - 1 WHERE loan_id = ANY(%s)', (ids,))
    return ids


@pytest.mark.postgres
def test_bad_rows_are_found_and_set_aside_inside_postgres(project, postgres_schema):
    project.use_postgres(postgres_schema)
    project.grow(FIRST)
    bad = _spoil(project, postgres_schema)
    project.write_model("pushdown", **{"validation.policy": "quarantine", "validation.expectations": EXPECTATIONS,
                                       "data.quarantine_table": f"{postgres_schema}.pushdown_quarantine"})
    run = project.run("pushdown", FIRST)
    assert run["state"] == "success", run["tasks"]
    extract, validate = run["results"]["extract"], run["results"]["validate"]
    assert validate["quarantined"] == 5 and validate["rows"] == extract["rows"] - 5
    assert validate["artifact"] == names.VALIDATED_ARTIFACT

    report = project.mlflow.load_json(validate["validation_run_id"], names.VALIDATION_JSON)
    assert report["engine"] == "database" and report["rows"] == extract["rows"]
    (between,) = [r for r in report["results"] if r["expectation"] == "expect_column_values_to_be_between"]
    assert between["unexpected_count"] == 5 and not between["success"]
    assert {s["loan_id"] for s in between["partial_unexpected_index_list"]} == set(bad)
    assert report["quarantined_rows"] == 5

    quarantined = project.sql(f'SELECT loan_id, _mlops_reason, _mlops_run_key FROM "{postgres_schema}".'
                              "pushdown_quarantine ORDER BY loan_id")
    assert [r[0] for r in quarantined] == sorted(bad)
    assert all(r[1] == "failed expectations: expect_column_values_to_be_between(amount)" for r in quarantined)
    clean = project.mlflow.load_frame(validate["run_id"], validate["artifact"])
    snapshot = project.mlflow.load_frame(extract["run_id"], extract["artifact"])
    assert len(clean) == len(snapshot) - 5 and not set(clean["loan_id"]) & set(bad)
    # The clean rows are the snapshot's rows, typed and ordered alike (the model trains on exactly these).
    kept = snapshot[~snapshot["loan_id"].isin(bad)].reset_index(drop=True)
    assert clean.reset_index(drop=True).equals(kept)
    assert run["tasks"]["train"] == "success"


@pytest.mark.postgres
def test_fail_policy_reports_samples_with_their_ids(project, postgres_schema):
    project.use_postgres(postgres_schema)
    project.grow(FIRST)
    bad = _spoil(project, postgres_schema)
    project.write_model("pushdown_fail", **{"validation.expectations": EXPECTATIONS,
                                            "data.quarantine_table": f"{postgres_schema}.pushdown_fail_quarantine"})
    run = project.run("pushdown_fail", FIRST)
    assert run["tasks"]["validate"] == "failed" and run["tasks"]["train"] == "upstream_failed"
    (validate_run,) = project.task_runs("pushdown_fail", "validate")
    report = project.mlflow.load_json(validate_run.info.run_id, names.VALIDATION_JSON)
    assert report["engine"] == "database" and not report["success"]
    failed = [r for r in report["results"] if not r["success"]]
    assert [r["expectation"] for r in failed] == ["expect_column_values_to_be_between"]
    assert sorted(s["loan_id"] for s in failed[0]["partial_unexpected_index_list"]) == sorted(bad)
    assert project.sql("SELECT to_regclass(%s)", (f"{postgres_schema}.pushdown_fail_quarantine",)) == [(None,)]


@pytest.mark.postgres
def test_rows_written_into_the_window_after_extract_stop_the_run(project, postgres_schema, monkeypatch, capfd):
    """The report must judge the data the model trains on: a window that changed between extract and validate
    (a late backfill) is named, not validated."""
    from airflow_mlops.operators.extract import ExtractTrainingDataOperator

    project.use_postgres(postgres_schema)
    project.grow(FIRST)
    original = ExtractTrainingDataOperator.execute

    def extract_then_backfill(self, context):
        result = original(self, context)
        project.sql(f'INSERT INTO "{postgres_schema}".loans SELECT loan_id || \'-late\', applied_at, income, amount, '
                    f'term, purpose, region, defaulted FROM "{postgres_schema}".loans ORDER BY applied_at DESC LIMIT 3')
        return result

    monkeypatch.setattr(ExtractTrainingDataOperator, "execute", extract_then_backfill)
    project.write_model("pushdown_late")
    run = project.run("pushdown_late", FIRST)
    assert run["tasks"]["validate"] == "failed" and run["tries"]["validate"] == 1
    assert run["tasks"]["train"] == "upstream_failed"
    logged = "".join(capfd.readouterr())
    rows = run["results"]["extract"]["rows"]
    assert f"the window changed since it was extracted ({rows} rows then, {rows + 3} now" in logged


@pytest.mark.postgres
def test_engine_pandas_keeps_validation_on_the_snapshot(project, postgres_schema):
    project.use_postgres(postgres_schema)
    project.grow(FIRST)
    _spoil(project, postgres_schema)
    project.write_model("pushdown_off", **{"validation.policy": "quarantine", "validation.engine": "pandas",
                                           "validation.expectations": EXPECTATIONS,
                                           "data.quarantine_table": f"{postgres_schema}.off_quarantine"})
    run = project.run("pushdown_off", FIRST)
    assert run["state"] == "success", run["tasks"]
    report = project.mlflow.load_json(run["results"]["validate"]["validation_run_id"], names.VALIDATION_JSON)
    assert report["engine"] == "pandas" and report["quarantined_rows"] == 5


def test_engine_database_on_sqlite_data_is_a_setup_error_naming_the_connection(project, capfd):
    project.grow(FIRST)
    project.write_model("pushdown_sqlite", **{"validation.engine": "database"})
    run = project.run("pushdown_sqlite", FIRST)
    assert run["tasks"]["validate"] == "failed" and run["tries"]["validate"] == 1
    logged = "".join(capfd.readouterr())
    assert "validation.engine: database needs the data in PostgreSQL; connection 'mlops_data' is sqlite" in logged
