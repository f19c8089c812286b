"""The canary's evidence read from the prediction log: an entity scored by several runs of one step is one
observation (one outcome, one fixed bucket), for the labelled pairs and for the published split alike."""

from __future__ import annotations

import sqlite3
from datetime import datetime

import pytest

from airflow_mlops.core import names
from airflow_mlops.core.batch_scoring import LOG_COLUMNS
from airflow_mlops.hooks.canary import LabelSource, look_evidence
from airflow_mlops.hooks.database import Database
from airflow_mlops.hooks.state import StateStore
from tests.conftest import POSTGRES_URL


def _table(state: StateStore, table: str, columns: dict[str, str], rows: list[tuple]) -> None:
    """``table`` of the state database with these columns (Dialect types) and rows."""
    state.db.ensure_table(state.table(table), columns)
    with state.db.bulk_writer(state.table(table), list(columns)) as write:
        write(rows)


@pytest.fixture(params=["sqlite", "postgres"])
def evidence(request, tmp_path):
    """200 entities, each scored by 7 daily runs of one step (a 7-day window scored daily); 50 published by the
    challenger. Labels for all of them; the latest run's scores differ from the earlier runs' on purpose. In SQLite
    and in PostgreSQL (whose look picks each entity's latest prediction with DISTINCT ON, not a window)."""
    if request.param == "sqlite":
        state = StateStore(Database.from_uri(f"sqlite:///{tmp_path / 'state.db'}"))
    else:
        state = StateStore(Database.from_uri(POSTGRES_URL), schema=request.getfixturevalue("postgres_schema"))
    state.migrate()
    rows = []
    for run in range(7):
        for entity in range(200):
            to_challenger = entity < 50
            for arm, version, score in (("champion", "1", 0.1 * (run + 1) / 7), ("challenger", "2", 0.2)):
                published = int(to_challenger == (arm == "challenger"))
                rows.append(("m", f"run-{run}", f"E{entity}", version, arm, score, published, 0.5, 0.25, "c1", 1,
                             f"2025-01-0{run + 1}T00:00:00"))
    with state.db.bulk_writer(state.table(names.PREDICTION_LOG_TABLE), LOG_COLUMNS) as write:
        write(rows)
    d = state.dialect
    _table(state, "outcomes", {"entity_id": d.TEXT, "label": d.INTEGER}, [(f"E{i}", i % 2) for i in range(200)])
    return state, LabelSource(state.db, state.table("outcomes"), None, "entity_id", "label")


def test_rescored_entities_count_once_in_pairs_and_in_the_split(evidence):
    state, labels = evidence
    look = look_evidence(state, labels, "m", "c1", 1, datetime(2025, 2, 1))
    assert len(look.pairs) == 200  # not 1,400: seven predictions of one outcome are not seven observations
    assert set(look.pairs["champion"].round(6)) == {0.1}  # each entity's latest matured prediction
    assert look.matured == 200 and look.unlabelled == 0
    assert look.published == {"champion": 150, "challenger": 50}
    # Only runs whose labels have matured count: up to the third run, its scores are the latest.
    early = look_evidence(state, labels, "m", "c1", 1, datetime(2025, 1, 3)).pairs
    assert len(early) == 200 and set(early["champion"].round(6)) == {round(0.1 * 3 / 7, 6)}


def test_real_valued_ids_join_their_labels_as_the_log_writes_them(evidence):
    """Scoring logs an id read as 7.0 as '7' (category_label); a labels table with REAL ids must match it."""
    state, labels = evidence
    with state.db.transaction() as cursor:  # 'E7' -> '7'
        state.db.execute(cursor, f"UPDATE {state.dialect.quote(state.table(names.PREDICTION_LOG_TABLE))} "
                                 "SET entity_id = substr(entity_id, 2)")
    _table(state, "real_outcomes", {"id": state.dialect.FLOAT, "label": state.dialect.INTEGER},
           [(float(i), i % 2) for i in range(200)])
    real = LabelSource(labels.database, state.table("real_outcomes"), None, "id", "label")
    assert len(look_evidence(state, real, "m", "c1", 1, datetime(2025, 2, 1)).pairs) == 200


@pytest.fixture(params=["same database", "labels elsewhere"])
def partly_labelled(request, evidence, tmp_path):
    """The evidence with labels for 120 of the 200 entities, one of them twice (a corrected outcome) and one with
    only a NULL label, in the state database or in a SQLite database of their own."""
    state, _ = evidence
    rows = [(f"E{i}", i % 2) for i in range(120)] + [("E0", 1), ("E150", None)]
    if request.param == "same database":
        _table(state, "partial", {"entity_id": state.dialect.TEXT, "label": state.dialect.INTEGER}, rows)
        return state, LabelSource(state.db, state.table("partial"), None, "entity_id", "label")
    path = tmp_path / "labels.db"
    with sqlite3.connect(path) as connection:
        connection.execute("CREATE TABLE partial (entity_id TEXT, label INTEGER)")
        connection.executemany("INSERT INTO partial VALUES (?, ?)", rows)
    return state, LabelSource(Database.from_uri(f"sqlite:///{path}"), "partial", None, "entity_id", "label")


def test_a_look_counts_matured_predictions_without_labels(partly_labelled):
    state, labels = partly_labelled
    look = look_evidence(state, labels, "m", "c1", 1, datetime(2025, 2, 1))
    assert look.matured == 200 and len(look.pairs) == 120 and look.unlabelled == 80
    assert look.pairs["label"].notna().all()
    assert look.pairs["label"].sum() == 61  # E0's corrected label counts once, as the larger (1)
    assert look.published == {"champion": 150, "challenger": 50}
