"""A realistic messy table through the CT DAG: timestamps written by pandas with and without fractions, one with an
offset, one in MM/DD/YYYY, a numeric column holding 'n/a', an infinity, a boolean and an integer column listed as
categorical. Every problem is reported by column with counts; nothing is silently dropped; under quarantine the
bad rows are set aside and the run goes on."""

from __future__ import annotations

import sqlite3
from datetime import timedelta

import numpy as np
import pandas as pd
import pytest

from airflow_mlops.demo.synthetic import generate
from tests.helpers import DATA_START, FIRST

pytestmark = pytest.mark.slow


def messy_table(project) -> dict:
    frame = generate(DATA_START, (FIRST - DATA_START).days)
    rng = np.random.default_rng(3)
    # Half the rows get microseconds, as pandas writes them when some values have a fraction.
    fraction = rng.random(len(frame)) < 0.5
    frame.loc[fraction, "applied_at"] += pd.to_timedelta(rng.integers(1, 999_999, fraction.sum()), unit="us")
    frame["first_time"] = rng.random(len(frame)) < 0.3  # a boolean feature, listed as categorical
    frame["income"] = frame["income"].astype(object)
    recent = frame.index[frame["applied_at"] >= pd.Timestamp(FIRST - timedelta(days=3))]
    frame.loc[recent[0], "income"] = "n/a"
    frame.loc[recent[1], "amount"] = np.inf
    with sqlite3.connect(project.env.data_db) as connection:
        frame.to_sql("loans", connection, index=False)
        # an offset: 23:30 at -08:00 the day before is 07:30 UTC on a day inside the window
        offset_day = FIRST - timedelta(days=5)
        connection.execute("UPDATE loans SET applied_at = ? WHERE loan_id = ?",
                           (f"{offset_day - timedelta(days=1)} 23:30:00-08:00", frame.loan_id.iloc[recent[2]]))
        connection.execute("UPDATE loans SET applied_at = ? WHERE loan_id = ?",
                           (f"{FIRST - timedelta(days=4):%m/%d/%Y} 10:00", frame.loan_id.iloc[recent[3]]))
        total = connection.execute("SELECT count(*) FROM loans").fetchone()[0]
    return {"total": total, "offset_id": frame.loan_id.iloc[recent[2]], "bad_date_id": frame.loan_id.iloc[recent[3]],
            "na_id": frame.loan_id.iloc[recent[0]], "inf_id": frame.loan_id.iloc[recent[1]]}


OVERRIDES = {"data.features": ["income", "amount", "term", "purpose", "region", "first_time"],
             "data.categorical": ["purpose", "region", "term", "first_time"],
             "validation.expectations": [{"expect_column_values_to_not_be_null": {"column": "income", "mostly": 0.99}},
                                         {"expect_column_values_to_be_between": {"column": "amount", "min_value": 0}}]}


def test_every_problem_is_reported_and_nothing_is_silently_dropped(project):
    facts = messy_table(project)
    project.write_model("messy", retries=2, retry_delay="0s", **OVERRIDES)
    run = project.run("messy", FIRST)
    assert run["tasks"]["extract"] == "failed" and run["tries"]["extract"] == 1
    (extract,) = project.task_runs("messy", "extract")
    report = project.mlflow.load_json(extract.info.run_id, "data/read_report.json")
    assert report["unreadable_timestamps"] == 1 and report["bad_values"] == {"income": 1, "amount": 1}
    text = " | ".join(report["problems"])
    assert "1 row(s) of loans have a timestamp that cannot be read" in text and facts["bad_date_id"] in text
    assert "income: 1 value(s) that are not finite numbers (e.g. 'n/a')" in text
    assert "amount: 1 value(s) that are not finite numbers (e.g. inf)" in text


def test_under_quarantine_bad_rows_are_set_aside_and_the_rest_trains(project):
    facts = messy_table(project)
    project.write_model("messy_q", **{**OVERRIDES, "validation.policy": "quarantine"})
    run = project.run("messy_q", FIRST)
    assert run["state"] == "success", run["tasks"]
    extract = run["results"]["extract"]
    assert extract["rejected"] == 3
    with sqlite3.connect(project.env.data_db) as connection:
        quarantined = dict(connection.execute("SELECT loan_id, _mlops_reason FROM messy_q_quarantine").fetchall())
    assert set(quarantined) == {facts["bad_date_id"], facts["na_id"], facts["inf_id"]}
    assert "cannot be read as a timestamp" in quarantined[facts["bad_date_id"]]
    assert quarantined[facts["na_id"]] == "not a finite number: income = n/a"
    assert quarantined[facts["inf_id"]] == "not a finite number: amount = inf"
    (extract_run,) = project.task_runs("messy_q", "extract")
    report = project.mlflow.load_json(extract_run.info.run_id, "data/read_report.json")
    # Every row of the window is accounted for: used, or rejected with a reason.
    assert report["rows_in_window"] == report["rows_used"] + sum(report["bad_values"].values())
    assert report["rows_used"] == extract["rows"]
    # The offset row was read as its UTC instant and is in the snapshot (a text comparison dropped it).
    snapshot = project.mlflow.load_frame(extract["run_id"], extract["artifact"])
    (offset_row,) = snapshot[snapshot["loan_id"] == facts["offset_id"]]["applied_at"].tolist()
    assert offset_row == pd.Timestamp(FIRST - timedelta(days=5)) + timedelta(hours=7, minutes=30)

    # Boolean and integer columns listed as categorical train, score (gate vs champion) and drift-check.
    second = project.run("messy_q", FIRST + timedelta(days=0, hours=12))
    assert second["state"] == "success", second["tasks"]
    assert second["results"]["evaluate_gate"]["champion_status"] == "evaluated"
    drift = project.check_drift("messy_q", FIRST)
    assert drift["tasks"]["check_drift"] == "success", drift["tasks"]
    features = {f["feature"]: f for f in project.mlflow.load_json(
        drift["results"]["check_drift"]["run_id"], "drift/report.json")["features"]}
    assert features["first_time"]["kind"] == "categorical" and features["term"]["kind"] == "categorical"
