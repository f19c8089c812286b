"""Real Great Expectations runs on small frames."""

import pytest

from airflow_mlops.core.config import ValidationConfig
from airflow_mlops.demo.synthetic import generate_day
from airflow_mlops.core.validation import ValidationSetupError, failure_summary, validate_frame
from tests.helpers import DATA_START

EXPECTATIONS = [{"expect_column_values_to_not_be_null": {"column": "income", "mostly": 0.99}},
                {"expect_column_values_to_be_between": {"column": "amount", "min_value": 0}}]


def test_clean_data_passes():
    outcome = validate_frame(generate_day(DATA_START), ValidationConfig(expectations=EXPECTATIONS), name="t")
    assert outcome.report["success"] and outcome.bad_index == []
    assert [r["success"] for r in outcome.report["results"]] == [True, True]


def test_bad_rows_are_found_and_indexed():
    frame = generate_day(DATA_START, rows=500, bad=True)
    outcome = validate_frame(frame, ValidationConfig(policy="quarantine", expectations=EXPECTATIONS), name="t")
    assert not outcome.report["success"] and outcome.quarantinable
    expected = set(frame.index[frame["income"].isna() | (frame["amount"] < 0)])
    assert set(outcome.bad_index) == expected
    summary = failure_summary(outcome.report)
    assert "expect_column_values_to_not_be_null(income)" in summary and "unexpected" in summary


def test_table_level_failure_is_not_quarantinable():
    config = ValidationConfig(expectations=[{"expect_table_row_count_to_be_between": {"min_value": 10_000}}])
    outcome = validate_frame(generate_day(DATA_START), config, name="t")
    assert not outcome.report["success"] and not outcome.quarantinable


def test_unknown_expectations_are_refused_with_the_config():
    with pytest.raises(ValueError, match="'expect_column_to_be_perfect' is not a Great Expectations expectation"):
        ValidationConfig(expectations=[{"expect_column_to_be_perfect": {"column": "x"}}])


@pytest.mark.parametrize("expectations, message", [
    ([{"expect_column_values_to_be_between": {"column": "amount", "min_valu": 0}}], "min_valu"),
])
def test_bad_expectations_are_named(expectations, message):
    with pytest.raises(ValidationSetupError, match="validation.expectations.0") as caught:
        validate_frame(generate_day(DATA_START), ValidationConfig(expectations=expectations), name="t")
    assert message in str(caught.value)
