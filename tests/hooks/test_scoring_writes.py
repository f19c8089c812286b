"""A batch scoring run's writes on SQLite and PostgreSQL: the prediction log and the predictions table, in one
database or two. PostgreSQL streams each table's rows in one COPY kept open across chunks (finished when the
other table needs the connection, and before the commit), so these check what that must not change: every entity
once per arm, nothing written when a chunk fails half-way or an entity repeats, and a retry that replaces."""

from __future__ import annotations

from datetime import date, datetime

import pytest

from airflow_mlops.batch_scoring import score_batch
from airflow_mlops.core.config import parse_config
from airflow_mlops.core.data_checks import DataProblem
from airflow_mlops.core.training import fit_model
from airflow_mlops.demo.synthetic import generate
from airflow_mlops.hooks.database import Database
from airflow_mlops.hooks.state import Deployment, StateStore
from tests.conftest import POSTGRES_URL

END = datetime(2025, 3, 4)
ROWS = 3 * 250  # three days, scored in chunks of 200: four chunks, the last one short


@pytest.fixture(scope="module")
def model_and_rows():
    config = parse_config({**_raw(), "training": {"estimator": "lightgbm.LGBMClassifier",
                                                  "params": {"n_estimators": 20}}})
    return fit_model(generate(date(2025, 1, 1), 20, rows_per_day=100), config), \
        generate(date(2025, 3, 1), 3, rows_per_day=250)


def _raw() -> dict:
    from tests.helpers import bundled_config

    return bundled_config(**{"scoring": {"window": "3d", "chunk_size": 200}})


def _databases(layout: str, tmp_path, request) -> tuple[Database, Database, str | None]:
    """(state, source, schema) for ``sqlite`` (one file), ``postgres`` (one database) or ``split`` (state in
    PostgreSQL, data and predictions in SQLite: a transaction each)."""
    sqlite = Database.from_uri(f"sqlite:///{tmp_path / 'data.db'}")
    if layout == "sqlite":
        return sqlite, sqlite, None
    schema = request.getfixturevalue("postgres_schema")
    postgres = Database.from_uri(POSTGRES_URL)
    return postgres, (postgres if layout == "postgres" else sqlite), schema


def _load(source: Database, schema: str | None, rows) -> str:
    table = f"{schema}.loans" if schema and source.dialect.name == "postgres" else "loans"
    frame = rows.assign(applied_at=rows["applied_at"].dt.strftime("%Y-%m-%d %H:%M:%S"))
    columns = {"loan_id": "TEXT", "applied_at": "TEXT", "income": "DOUBLE PRECISION", "amount": "DOUBLE PRECISION",
               "term": "BIGINT", "purpose": "TEXT", "region": "TEXT", "defaulted": "BIGINT"}
    if source.dialect.name == "postgres":
        columns["applied_at"] = "TIMESTAMP"
    source.ensure_table(table, columns)
    with source.bulk_writer(table, list(columns)) as write:
        write(frame[list(columns)])
    return table


def _setup(layout, tmp_path, request, model_and_rows, rows=None):
    model, generated = model_and_rows
    state_db, source, schema = _databases(layout, tmp_path, request)
    table = _load(source, schema, generated if rows is None else rows)
    raw = _raw()
    raw["data"]["table"] = table
    if schema:
        raw["state_schema"] = schema
        if source.dialect.name == "postgres":
            raw["scoring"]["predictions_table"] = f"{schema}.credit_risk_predictions"
    config = parse_config(raw)
    state = StateStore(state_db, schema=schema)
    state.migrate()
    return config, state, source, model


def _canary(weight: float) -> Deployment:
    return Deployment("credit_risk", "credit_risk", "1", None, "2", "canary", 3, "", "", canary_id="c1",
                      salt="0123456789abcdef", step=1, weight=weight, failed_looks=0)


def _run(config, state, source, model, run="run-1", deployment=None):
    deployment = deployment or _canary(0.5)
    models = {"champion": ("1", model), **({"challenger": ("2", model)} if deployment.canary_active else {})}
    return score_batch(config=config, state=state, source_db=source, deployment=deployment, models=models, run=run,
                       end=END)


def _written(config, state, source) -> tuple[list, list]:
    d = state.dialect
    log = state.db.read_sql(f"SELECT scoring_run, entity_id, arm, count(*) AS n, sum(published) AS published "
                            f"FROM {d.quote(state.table('mlops_prediction_log'))} GROUP BY scoring_run, entity_id, arm")
    table = source.dialect.quote(source.dialect.table_name(config.predictions_table))
    published = source.read_sql(f"SELECT scoring_run, entity_id, arm, score FROM {table}")
    return log.to_dict("records"), published.to_dict("records")


LAYOUTS = ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres),
           pytest.param("split", marks=pytest.mark.postgres)]


@pytest.mark.parametrize("layout", LAYOUTS)
def test_a_canary_batch_logs_both_arms_and_publishes_one_score_per_entity(layout, tmp_path, request,
                                                                         model_and_rows):
    config, state, source, model = _setup(layout, tmp_path, request, model_and_rows)
    counts = _run(config, state, source, model)
    assert counts["rows"] == ROWS and counts["champion"] + counts["challenger"] == ROWS
    assert 0.35 * ROWS < counts["challenger"] < 0.65 * ROWS
    log, published = _written(config, state, source)
    assert len(log) == 2 * ROWS and {row["n"] for row in log} == {1}
    assert sum(int(row["published"]) for row in log) == ROWS
    assert len(published) == ROWS == len({row["entity_id"] for row in published})
    assert sum(row["arm"] == "challenger" for row in published) == counts["challenger"]


@pytest.mark.parametrize("layout", LAYOUTS)
def test_a_run_that_fails_half_way_writes_nothing_and_its_retry_writes_once(layout, tmp_path, request,
                                                                           model_and_rows, monkeypatch):
    from airflow_mlops import batch_scoring

    config, state, source, model = _setup(layout, tmp_path, request, model_and_rows)
    real, calls = batch_scoring.score_chunk, []

    def fails_on_the_third_chunk(*args, **kwargs):  # the injected fault, after two chunks were sent
        calls.append(1)
        if len(calls) == 3:
            raise ConnectionError("worker lost its connection")
        return real(*args, **kwargs)

    with monkeypatch.context() as patch:
        patch.setattr(batch_scoring, "score_chunk", fails_on_the_third_chunk)
        with pytest.raises(ConnectionError):
            _run(config, state, source, model)
    assert _written(config, state, source) == ([], [])
    for _ in range(2):  # the retry, and a second retry after a success: rows replaced, never added
        _run(config, state, source, model)
        log, published = _written(config, state, source)
        assert len(log) == 2 * ROWS and {row["n"] for row in log} == {1} and len(published) == ROWS


@pytest.mark.parametrize("layout", LAYOUTS)
def test_an_entity_twice_in_a_batch_writes_nothing(layout, tmp_path, request, model_and_rows):
    """The predictions table's key refuses the second row; on PostgreSQL the server says so when the COPY ends,
    after every chunk was sent: still a clear DataProblem, and neither table changes (an earlier run's rows
    stay)."""
    _, generated = model_and_rows
    config, state, source, model = _setup(layout, tmp_path, request, model_and_rows)
    _run(config, state, source, model, run="earlier")
    before = _written(config, state, source)
    _load(source, state.schema, generated.head(1))  # the first entity again
    with pytest.raises(DataProblem, match="appears twice in the batch"):
        _run(config, state, source, model, run="run-2")
    assert _written(config, state, source) == before
