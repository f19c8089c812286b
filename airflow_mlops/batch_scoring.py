"""A batch scoring run: read the rows in chunks, score each chunk, write the prediction log and the predictions
table, one transaction per database (all or nothing; a retried run replaces its own rows).

Used by :class:`~airflow_mlops.operators.scoring.BatchScoringOperator`; no Airflow here, so the benchmark times the
same code the task runs.
"""

from __future__ import annotations

from contextlib import closing, contextmanager
from datetime import datetime
from typing import Any

from airflow_mlops.core import names
from airflow_mlops.core.batch_scoring import LOG_COLUMNS, PREDICTION_COLUMNS, score_chunk
from airflow_mlops.hooks.canary import data_time


def select_batch(config, source_db, end: datetime) -> tuple[str, list]:
    """The rows of ``[end - scoring.window, end)`` from ``scoring.table``/``query`` (default: the data source)."""
    scoring, data = config.scoring, config.data
    d = source_db.dialect
    table = scoring.table or (None if scoring.query else data.table)
    query = scoring.query or (None if scoring.table else data.query)
    relation = d.source_sql(table=table, query=query)
    columns = ", ".join(d.quote(c) for c in dict.fromkeys([data.entity_id, *data.features]))
    window, params = d.window(scoring.timestamp_column or data.timestamp_column, data.timestamp_format,
                              end - scoring.window, end)
    return f"SELECT {columns} FROM {relation} WHERE {window}", params


@contextmanager
def _writers(state_db, source_db, log_spec, published_spec):
    """(connection to read through or None, write_log, write_published). One transaction when everything is one
    database, and on SQLite the reads through its connection (SQLite allows one writer, and a second connection's
    read lock would stall it); else one transaction per database and the reads on a connection of their own."""
    if state_db.identity == source_db.identity:
        with state_db.write_session([log_spec, published_spec]) as (connection, writers):
            yield connection, *writers
        return
    with state_db.bulk_writers([log_spec]) as (write_log,), source_db.bulk_writers([published_spec]) as (publish,):
        yield None, write_log, publish


def score_batch(*, config, state, source_db, deployment, models: dict[str, tuple[str, Any]], run: str,
                end: datetime, sql: str | None = None, params: list | None = None) -> dict[str, int]:
    """Score the batch and write both tables. Returns counts (``rows``, ``rejected``, per published arm)."""
    from airflow_mlops.core.data_checks import DataProblem
    from airflow_mlops.core.errors import DataSourceError

    counts = {"rows": 0, "rejected": 0, names.CHAMPION: 0, names.CHALLENGER: 0}
    scored_at = data_time(end)
    source_db.ensure_table(config.predictions_table, PREDICTION_COLUMNS, primary_key=("scoring_run", "entity_id"))
    if sql is None:
        sql, params = select_batch(config, source_db, end)
    log = (state.table(names.PREDICTION_LOG_TABLE), LOG_COLUMNS, {"model": config.model, "scoring_run": run})
    published = (config.predictions_table, list(PREDICTION_COLUMNS), {"scoring_run": run})
    try:
        with _writers(state.db, source_db, log, published) as (connection, write_log, write_published):
            chunks = source_db.iter_frames(sql, params or [], chunk_size=config.scoring.chunk_size,
                                           connection=connection)
            # Closed here, not when the garbage collector gets to it: a failed try's traceback keeps this frame
            # alive, and an unfinished SQLite read would hold the file locked against the retry's commit.
            with closing(chunks) as rows:
                for chunk in rows:
                    log_rows, published_rows = score_chunk(chunk, config, models, deployment, run, scored_at,
                                                           counts)
                    write_log(log_rows)
                    write_published(published_rows)
    except DataSourceError as error:
        if any(word in str(error).lower() for word in ("unique", "duplicate key")):
            raise DataProblem([f"the same {config.data.entity_id} appears twice in the batch ({error}): each "
                               "entity is scored once per run; nothing was written"]) from error
        raise
    return counts
