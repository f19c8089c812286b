"""Quarantine: rows set aside for a human, in a table of the data connection, never silently dropped.

Values are stored as text (a quarantined value is often exactly the one that does not fit the column's type),
with the reason, the time and the task's idempotency key: a retry replaces its own rows and never duplicates.
"""

from __future__ import annotations

from datetime import datetime, timezone

from airflow_mlops.core.coercion import REASON_COLUMN

RUN_KEY, QUARANTINED_AT = "_mlops_run_key", "_mlops_quarantined_at"


def quarantine_rows(database, table: str, rows, *, key: str, reason: str | None = None) -> int:
    """Write ``rows`` (a DataFrame; a ``_mlops_reason`` column or ``reason`` for all) under ``key``."""
    text = rows.astype(object).where(rows.notna(), None)
    text = text.apply(lambda column: column.map(lambda v: None if v is None else str(v)))
    if REASON_COLUMN not in text.columns:
        text[REASON_COLUMN] = reason or ""
    text[QUARANTINED_AT] = datetime.now(timezone.utc).isoformat(timespec="seconds")
    prepare_table(database, table, list(text.columns))
    return database.replace_rows(text, table, key_column=RUN_KEY, key=key)


def prepare_table(database, table: str, columns: list[str]) -> None:
    """The quarantine table with these columns (all text) and the run key, indexed by the run key; a table that
    exists gains the columns it lacks (the source may have gained columns since the table was created)."""
    kind = database.dialect.TEXT
    typed = {column: kind for column in columns} | {RUN_KEY: kind}
    database.ensure_table(table, typed, index=(RUN_KEY,))
    database.ensure_columns(table, typed)
