"""Batch scoring: the operator's code path vs a bare ``predict_proba`` loop, and memory at 1M vs 10M rows.

* Throughput on the same 1M rows (SQLite, the embedded default): a bare loop over in-memory chunks
  (``prepare_features`` + ``predict_proba``) against ``airflow_mlops.batch_scoring.score_batch`` (the code the
  task runs: chunked reads, coercion, scoring, the prediction log and the predictions table written in one
  transaction), with one arm (no canary) and with both arms (a canary at 25%). Goal: one arm >= 70% of bare.
* The same with a heavier model (1,000 trees), on 200k rows: what the ratio is where the model's cost dominates.
* Peak resident memory of ``score_batch`` over 1M and over 10M rows, each in a fresh process. Goal: within 10%
  (memory bounded by the chunk, not the batch).
Run: make bench   (or .venv/bin/python bench/scoring.py [rows] [big_rows])
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

import numpy as np
import pandas as pd
from memory import peak_mib

CHUNK = 50_000
END = datetime(2030, 1, 1)


def config():
    import yaml

    from airflow_mlops.core.config import parse_config

    raw = yaml.safe_load((Path(__file__).resolve().parent.parent / "dags/configs/credit_risk.yaml").read_text())
    raw["scoring"] = {"window": "36500d", "chunk_size": CHUNK}  # the bundled model: LightGBM, 200 trees
    return parse_config(raw)


def make_table(path: Path, rows: int) -> None:
    """``rows`` loans in a SQLite table, written in slices (the generator never holds the whole table)."""
    import sqlite3

    rng = np.random.default_rng(5)
    with sqlite3.connect(path) as connection:
        for start in range(0, rows, 500_000):
            n = min(500_000, rows - start)
            frame = pd.DataFrame({
                "loan_id": [f"L{i:09d}" for i in range(start, start + n)],
                "applied_at": pd.Timestamp("2020-01-01") + pd.to_timedelta(rng.integers(0, 86_400 * 3650, n), "s"),
                "income": rng.lognormal(10.8, 0.45, n).round(2), "amount": rng.lognormal(9.3, 0.6, n).round(2),
                "term": rng.choice([36, 60], n), "purpose": rng.choice(["car", "home", "debt", "education"], n),
                "region": rng.choice(["north", "south", "east", "west"], n),
                "defaulted": (rng.random(n) < 0.2).astype(int)})
            frame.to_sql("loans", connection, if_exists="append", index=False)


def fitted(cfg, **params):
    """The bundled model, or with ``params`` overriding its training parameters."""
    from datetime import date

    from airflow_mlops.core.training import fit_model
    from airflow_mlops.demo.synthetic import generate

    if params:
        cfg = cfg.model_copy(update={"training": cfg.training.model_copy(
            update={"params": {**cfg.training.params, **params}})})
    return fit_model(generate(date(2025, 1, 1), 60), cfg)


# A model the size production credit models often are (1,000 trees of up to 63 leaves): the same run's own cost per
# row is small next to it.
HEAVIER = {"n_estimators": 1000, "num_leaves": 63, "min_child_samples": 20}


def deployment(canary: bool):
    from airflow_mlops.hooks.state import Deployment

    return Deployment("loans", "loans", "1", None, "2" if canary else None, "canary" if canary else "promoted", 1,
                      "", "", canary_id="c1" if canary else None, salt="s" * 16, step=1 if canary else None,
                      weight=0.25 if canary else None, failed_looks=0)


def run_ours(database: Path | str, cfg, model, canary: bool, run: str = "bench",
             schema: str | None = None) -> tuple[dict, float]:
    from airflow_mlops.batch_scoring import score_batch
    from airflow_mlops.hooks.database import Database
    from airflow_mlops.hooks.state import StateStore

    db = Database.from_uri(database if isinstance(database, str) else f"sqlite:///{database}")
    state = StateStore(db, schema=schema)
    state.migrate()
    models = {"champion": ("1", model), **({"challenger": ("2", model)} if canary else {})}
    started = time.perf_counter()
    counts = score_batch(config=cfg, state=state, source_db=db, deployment=deployment(canary), models=models,
                         run=run, end=END)
    return counts, time.perf_counter() - started


POSTGRES_URL = os.environ.get("MLOPS_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")


def postgres_run(rows: int, cfg, model) -> tuple[float, float] | None:
    """(one arm, both arms) seconds with the data and the state in PostgreSQL (ADBC reads, COPY writes)."""
    import sqlite3
    import uuid

    try:
        import psycopg

        admin = psycopg.connect(POSTGRES_URL, autocommit=True, connect_timeout=3)
    except Exception:
        return None
    schema = f"bench_{uuid.uuid4().hex[:8]}"
    admin.execute(f'CREATE SCHEMA "{schema}"')
    try:
        with tempfile.TemporaryDirectory() as tmp:
            source = Path(tmp) / "pg.db"
            make_table(source, rows)
            admin.execute(f'CREATE TABLE "{schema}".loans (loan_id text, applied_at timestamp, income float8, '
                          "amount float8, term int, purpose text, region text, defaulted int)")
            with sqlite3.connect(source) as lite, admin.cursor().copy(f'COPY "{schema}".loans FROM STDIN') as copy:
                for row in lite.execute("SELECT * FROM loans"):
                    copy.write_row(row)
        pg_cfg = cfg.model_copy(update={"data": cfg.data.model_copy(update={"table": f"{schema}.loans"}),
                                        "state_schema": schema})
        # Imports and the first ADBC connection are a task's start-up, not its throughput: paid before timing.
        import pyarrow.csv  # noqa: F401

        from airflow_mlops.hooks.database import Database

        Database.from_uri(POSTGRES_URL).read_sql("SELECT 1 AS warm")
        _, one = run_ours(POSTGRES_URL, pg_cfg, model, canary=False, run="one", schema=schema)
        _, two = run_ours(POSTGRES_URL, pg_cfg, model, canary=True, run="two", schema=schema)
        return one, two
    finally:
        admin.execute(f'DROP SCHEMA "{schema}" CASCADE')
        admin.close()


def run_bare(database: Path, cfg, model) -> float:
    import sqlite3

    from airflow_mlops.core.training import score

    with sqlite3.connect(database) as connection:
        frame = pd.read_sql_query("SELECT * FROM loans", connection)
    started = time.perf_counter()
    for start in range(0, len(frame), CHUNK):
        score(model, frame.iloc[start:start + CHUNK], cfg)
    return time.perf_counter() - started


def child(database: str) -> None:
    """In a fresh process: score every row once, print the peak resident memory (MiB)."""
    cfg = config()
    counts, seconds = run_ours(Path(database), cfg, fitted(cfg), canary=True)
    print(json.dumps({"rows": counts["rows"], "seconds": seconds,
                      "peak_mib": peak_mib()}))


def peak(database: Path) -> dict:
    out = subprocess.run([sys.executable, __file__, "--child", str(database)], capture_output=True, text=True,
                         check=True, env={**os.environ, "PYTHONWARNINGS": "ignore"})
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(rows: int = 1_000_000, big_rows: int = 10_000_000) -> None:
    cfg = config()
    model = fitted(cfg)
    with tempfile.TemporaryDirectory() as tmp:
        small, big = Path(tmp) / "small.db", Path(tmp) / "big.db"
        make_table(small, rows)
        make_table(big, big_rows)
        # memory first, on untouched tables, each in a fresh process
        small_peak, big_peak = peak(small), peak(big)
        timed = Path(tmp) / "timed.db"
        make_table(timed, rows)
        bare = run_bare(timed, cfg, model)
        one, one_seconds = run_ours(timed, cfg, model, canary=False, run="one")
        two, two_seconds = run_ours(timed, cfg, model, canary=True, run="two")
        print(f"scoring {rows:,} rows in chunks of {CHUNK:,} (SQLite)")
        print(f"  bare predict_proba loop (rows in memory): {bare:6.1f} s  {rows / bare:9,.0f} rows/s")
        print(f"  score_batch, one arm (reads + log + table): {one_seconds:6.1f} s  {rows / one_seconds:9,.0f} "
              f"rows/s  = {bare / one_seconds:.0%} of bare (goal >= 70%)")
        print(f"  score_batch, both arms at 25% canary:      {two_seconds:6.1f} s  {rows / two_seconds:9,.0f} "
              f"rows/s  = {bare / two_seconds:.0%} of bare; published {two['champion']:,} / {two['challenger']:,}")
        # What the ratio depends on: the run's own cost per row is fixed; the model's is the model's. One arm reaches
        # 70% of bare once the model costs 7/3 of that overhead per row.
        overhead = (one_seconds - bare) / rows * 1e6
        print(f"  one arm's own cost (reads, coercion, writes): {overhead:.1f} us/row against the model's "
              f"{bare / rows * 1e6:.1f} us/row; 70% of bare needs a model of >= {overhead * 7 / 3:.0f} us/row")
        assert one["rows"] == two["rows"] == rows == small_peak["rows"] and big_peak["rows"] == big_rows
        heavy_rows = min(rows, 200_000)
        heavy_table, heavy_model = Path(tmp) / "heavy.db", fitted(cfg, **HEAVIER)
        make_table(heavy_table, heavy_rows)
        heavy_bare = run_bare(heavy_table, cfg, heavy_model)
        _, heavy_one = run_ours(heavy_table, cfg, heavy_model, canary=False, run="heavy")
        print(f"  a heavier model (LightGBM {HEAVIER}), {heavy_rows:,} rows: bare {heavy_bare:.1f} s "
              f"({heavy_bare / heavy_rows * 1e6:.0f} us/row), one arm {heavy_one:.1f} s = {heavy_bare / heavy_one:.0%} "
              "of bare (goal >= 70%)")
        pg = postgres_run(rows, cfg, model)
        if pg:
            print(f"  PostgreSQL (ADBC reads, COPY writes), one arm: {pg[0]:6.1f} s  {rows / pg[0]:9,.0f} rows/s  = "
                  f"{bare / pg[0]:.0%} of bare; both arms: {pg[1]:6.1f} s = {bare / pg[1]:.0%} of bare; "
                  f"one arm's own cost {(pg[0] - bare) / rows * 1e6:.1f} us/row")
        ratio = big_peak["peak_mib"] / small_peak["peak_mib"]
        print(f"peak memory, both arms, fresh process: {rows:,} rows {small_peak['peak_mib']:.0f} MiB; "
              f"{big_rows:,} rows {big_peak['peak_mib']:.0f} MiB = {ratio:.2f}x (goal <= 1.10x)")


if __name__ == "__main__":
    import warnings

    warnings.filterwarnings("ignore")
    if len(sys.argv) > 2 and sys.argv[1] == "--child":
        child(sys.argv[2])
    else:
        main(*(int(a) for a in sys.argv[1:3]))
