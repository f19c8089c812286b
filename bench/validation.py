"""Validating a PostgreSQL window: pushed down into the database vs loaded into pandas, in the same run.

A loans-like table (id, time, 4 features, target; 0.1% of the amounts negative) in the local PostgreSQL, the
bundled config's five expectations, policy ``quarantine``:
* load-then-validate: the pack's fast reader (ADBC) reads the window, Great Expectations validates the DataFrame,
  the failing rows are written to the quarantine table from pandas;
* pushdown: Great Expectations' SQL datasource over the window query (only counts and 20 samples per expectation
  come back), the failing rows are quarantined with one ``INSERT ... SELECT``.
Each path runs in a fresh process (best of 2) at N/4 and N rows; memory is the process's peak minus its resident
memory after imports and a warm-up validation. Goal: pushdown's client memory independent of the row count.
Run: make bench   (or .venv/bin/python bench/validation.py [rows])
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from datetime import datetime

from memory import peak_mib, rss_mib

POSTGRES_URL = os.environ.get("MLOPS_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")
START, END = datetime(2024, 1, 1), datetime(2025, 1, 1)
EXPECTATIONS = [{"expect_column_values_to_not_be_null": {"column": "income", "mostly": 0.99}},
                {"expect_column_values_to_be_between": {"column": "amount", "min_value": 0}},
                {"expect_column_values_to_be_in_set": {"column": "term", "value_set": [36, 60]}},
                {"expect_column_values_to_not_be_null": {"column": "loan_id"}},
                {"expect_column_values_to_be_unique": {"column": "loan_id"}}]


def make_table(admin, table: str, rows: int) -> None:
    seconds = int((END - START).total_seconds())
    admin.execute(f"""CREATE TABLE {table} AS SELECT 'L' || g AS loan_id,
        TIMESTAMP '{START}' + ((g::bigint * 7919) % {seconds}) * INTERVAL '1 second' AS applied_at,
        CASE WHEN g % 500 = 0 THEN NULL ELSE 20000 + (g * 37) % 90000 END::double precision AS income,
        CASE WHEN g % 1000 = 0 THEN -1 ELSE 1000 + (g * 13) % 40000 END::double precision AS amount,
        CASE WHEN g % 3 = 0 THEN 60 ELSE 36 END AS term,
        'purpose_' || (g % 6) AS purpose, 'region_' || (g % 5) AS region, (g % 7 = 0)::int AS defaulted
        FROM generate_series(1, {rows}) AS g""")
    admin.execute(f"ANALYZE {table}")


def child(path: str, table: str, warmup: str) -> None:
    import time
    import warnings

    warnings.filterwarnings("ignore")
    from airflow_mlops.core.coercion import coerce_to_config
    from airflow_mlops.core.config import DataConfig, ValidationConfig
    from airflow_mlops.core.validation import validate_frame
    from airflow_mlops.hooks.database import Database
    from airflow_mlops.hooks.validation_sql import WindowInDatabase
    from airflow_mlops.quarantine import quarantine_rows

    database = Database.from_uri(POSTGRES_URL)
    config = ValidationConfig(policy="quarantine", expectations=EXPECTATIONS)

    def run(source: str) -> dict:
        data = DataConfig(table=source, entity_id="loan_id", timestamp_column="applied_at", target="defaulted",
                          features=["income", "amount", "term", "purpose", "region"],
                          categorical=["term", "purpose", "region"])
        if path == "load":
            read = database.read_window(columns=data.window_columns, timestamp_column="applied_at", start=START,
                                        end=END, table=source, order_by=["loan_id"], with_unreadable=False)
            frame = coerce_to_config(read.frame, data).frame
            outcome = validate_frame(frame, config, name="bench")
            bad = frame.loc[outcome.bad_index]
            quarantined = quarantine_rows(database, f"{source}_q", bad, key="bench")
            return {"rows": len(frame), "quarantined": quarantined}
        window = WindowInDatabase(database, data, start=START, end=END)
        outcome = window.validate(config, name="bench", rows=window.count())
        checks, _ = window.row_checks(outcome.report, config)
        return {"rows": outcome.report["rows"], "quarantined": window.quarantine(f"{source}_q", checks, key="bench")}

    run(warmup)  # imports, GX's context and the connections, before the baseline
    before = rss_mib()
    started = time.perf_counter()
    result = run(table)
    seconds = time.perf_counter() - started
    peak = peak_mib()
    print(json.dumps({**result, "seconds": seconds, "memory_mib": max(peak - before, 0.0)}))


def measure(path: str, table: str, warmup: str) -> dict:
    runs = [json.loads(subprocess.run([sys.executable, __file__, "--child", path, table, warmup],
                                      capture_output=True, text=True, check=True).stdout.strip().splitlines()[-1])
            for _ in range(2)]
    return min(runs, key=lambda run: run["seconds"])


def main(rows: int = 1_000_000) -> None:
    import psycopg

    prefix = f"bench_validation_{uuid.uuid4().hex[:8]}"
    sizes = {"small": rows // 4, "large": rows}
    tables = {name: f"{prefix}_{name}" for name in (*sizes, "warmup")}
    results = {}
    with psycopg.connect(POSTGRES_URL, autocommit=True) as admin:
        try:
            make_table(admin, tables["warmup"], 2000)
            for name, size in sizes.items():
                make_table(admin, tables[name], size)
            for path in ("load", "pushdown"):
                for name in sizes:
                    results[path, name] = measure(path, tables[name], tables["warmup"])
        finally:
            for table in tables.values():
                admin.execute(f"DROP TABLE IF EXISTS {table}")
                admin.execute(f"DROP TABLE IF EXISTS {table}_q")
    for name, size in sizes.items():
        assert results["load", name]["quarantined"] == results["pushdown", name]["quarantined"] == size // 1000
    print("Validating + quarantining a PostgreSQL window, 5 expectations (fresh process each, best of 2)")
    for path, label in (("load", "load into pandas, then GX"), ("pushdown", "pushed down (GX SQL + INSERT..SELECT)")):
        small, large = results[path, "small"], results[path, "large"]
        print(f"  {label:40s} {sizes['small']:>9,} rows: {small['seconds']:6.2f} s {small['memory_mib']:7.0f} MiB"
              f" | {sizes['large']:>9,} rows: {large['seconds']:6.2f} s {large['memory_mib']:7.0f} MiB"
              f" | memory x{large['memory_mib'] / max(small['memory_mib'], 1.0):.2f} for x4 rows")
    load, push = results["load", "large"], results["pushdown", "large"]
    print(f"  at {rows:,} rows pushdown takes {push['seconds'] / load['seconds']:.2f} of the time and "
          f"{push['memory_mib'] / max(load['memory_mib'], 1.0):.3f} of the client memory "
          f"(goal: client memory independent of the row count)")


if __name__ == "__main__":
    if sys.argv[1:2] == ["--child"]:
        child(*sys.argv[2:5])
    else:
        main(*(int(a) for a in sys.argv[1:2]))
