"""Reading PostgreSQL data into pandas: Airflow's ``PostgresHook.get_df`` vs the pack's reader, in the same run.

1M rows x 20 mixed columns (integers, floats, text, timestamps, booleans) in the local PostgreSQL. Each reader runs
in a fresh process (twice; the faster run counts) so its peak resident memory is its own: the number reported is
the peak minus the process's resident memory just before the read (imports and connection set up). Ours is
``airflow_mlops.hooks.database.Database.read_sql`` (ADBC: COPY into Arrow, the ``postgres-fast`` extra).
Goal: >= 7x faster, <= 1/5 of the memory.
Run: make bench   (or .venv/bin/python bench/data_load.py [rows])
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid

from memory import peak_mib, rss_mib

POSTGRES_URL = os.environ.get("MLOPS_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")


def make_table(admin, table: str, rows: int) -> None:
    columns = []
    for i in range(5):
        columns += [f"(g * {i + 3}) % 100000 AS int_{i}", f"random() * 1000 AS float_{i}",
                    f"'category_' || ((g * {i + 7}) % 40) AS text_{i}"]
    columns += [f"timestamp '2024-01-01' + (g % 86400) * interval '1 second' * {i + 1} AS ts_{i}" for i in range(3)]
    columns += [f"(g % {i + 2} = 0) AS flag_{i}" for i in range(2)]
    admin.execute(f"CREATE TABLE {table} AS SELECT {', '.join(columns)} FROM generate_series(1, {rows}) g")
    admin.execute(f"ANALYZE {table}")


def child(reader: str, table: str) -> None:
    import time
    import warnings

    warnings.filterwarnings("ignore")
    import pandas  # noqa: F401  (both readers return pandas; imported before the baseline)

    sql = f"SELECT * FROM {table}"
    if reader == "get_df":
        from airflow.providers.postgres.hooks.postgres import PostgresHook

        hook = PostgresHook(postgres_conn_id="bench_pg")
        hook.get_df("SELECT 1")  # connection set up before the baseline
        read = hook.get_df
    else:
        from airflow_mlops.hooks.database import Database

        database = Database.from_uri(POSTGRES_URL)
        database.read_sql("SELECT 1")
        read = database.read_sql
    before = rss_mib()
    started = time.perf_counter()
    frame = read(sql)
    seconds = time.perf_counter() - started
    peak = peak_mib()
    print(json.dumps({"rows": len(frame), "columns": frame.shape[1], "seconds": seconds,
                      "memory_mib": peak - before}))


def measure(reader: str, table: str) -> dict:
    env = {**os.environ, "AIRFLOW_CONN_BENCH_PG": POSTGRES_URL, "PYTHONWARNINGS": "ignore"}
    runs = [json.loads(subprocess.run([sys.executable, __file__, "--child", reader, table], capture_output=True,
                                      text=True, check=True, env=env).stdout.strip().splitlines()[-1])
            for _ in range(2)]
    return min(runs, key=lambda run: run["seconds"])


def main(rows: int = 1_000_000) -> None:
    import psycopg

    table = f"bench_load_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(POSTGRES_URL, autocommit=True) as admin:
        make_table(admin, table, rows)
        try:
            base, ours = measure("get_df", table), measure("ours", table)
        finally:
            admin.execute(f"DROP TABLE {table}")
    assert base["rows"] == ours["rows"] == rows and base["columns"] == ours["columns"] == 20
    print(f"PostgreSQL -> pandas, {rows:,} rows x 20 mixed columns (fresh process each, best of 2)")
    print(f"  PostgresHook.get_df:        {base['seconds']:6.2f} s  {base['memory_mib']:7.0f} MiB")
    print(f"  ours (ADBC, COPY -> Arrow): {ours['seconds']:6.2f} s  {ours['memory_mib']:7.0f} MiB")
    print(f"  = {base['seconds'] / ours['seconds']:.1f}x faster (goal >= 7x), "
          f"{ours['memory_mib'] / base['memory_mib']:.2f} of the memory (goal <= 0.20)")


if __name__ == "__main__":
    if sys.argv[1:2] == ["--child"]:
        child(sys.argv[2], sys.argv[3])
    else:
        main(*(int(a) for a in sys.argv[1:2]))
