"""Canary analysis of 1M logged predictions with labels, in PostgreSQL: 1M log rows (500k entities, both arms)
and 1M entities (2M log rows).

Ours: the look's evidence as the analysis task gathers it (airflow_mlops.hooks.canary.look_evidence): the
published counts, and the matured pairs left-joined with their labels in SQL (the count of matured predictions
without a label comes with them), the two queries running at once, then the paired comparisons (DeLong for ROC
AUC, the paired interval for log loss) and the SRM test. Baseline, in the same run: read both tables whole into
pandas and join there. Goal: < 2 s.
Run: make bench   (or .venv/bin/python bench/canary.py [entities])
"""

from __future__ import annotations

import os
import sys
import time
import uuid
from datetime import datetime

import numpy as np

POSTGRES_URL = os.environ.get("MLOPS_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")


def load(admin, schema: str, entities: int) -> None:
    from airflow_mlops.hooks.database import Database
    from airflow_mlops.hooks.state import StateStore

    StateStore(Database.from_uri(POSTGRES_URL), schema=schema).migrate()
    rng = np.random.default_rng(1)
    labels = (rng.random(entities) < 0.2).astype(int)
    champion = np.clip(0.2 + 0.25 * labels + rng.normal(0, 0.15, entities), 0.001, 0.999)
    challenger = np.clip(champion + rng.normal(0, 0.03, entities), 0.001, 0.999)
    buckets = rng.random(entities)
    ids = [f"E{i:08d}" for i in range(entities)]
    admin.execute(f'CREATE TABLE "{schema}".outcomes (entity_id text, label int)')
    with admin.cursor().copy(f'COPY "{schema}".outcomes FROM STDIN') as copy:
        for entity, label in zip(ids, labels.tolist(), strict=True):
            copy.write_row((entity, label))
    columns = "model, scoring_run, entity_id, model_version, arm, score, published, bucket, weight, canary_id, step, " \
              "scored_at"
    with admin.cursor().copy(f'COPY "{schema}".mlops_prediction_log ({columns}) FROM STDIN') as copy:
        for i, entity in enumerate(ids):
            run = f"run-{i % 30}"
            to_challenger = buckets[i] < 0.25
            copy.write_row(("m", run, entity, "1", "champion", float(champion[i]), int(not to_challenger),
                            float(buckets[i]), 0.25, "c1", 1, "2025-01-01T00:00:00"))
            copy.write_row(("m", run, entity, "2", "challenger", float(challenger[i]), int(to_challenger),
                            float(buckets[i]), 0.25, "c1", 1, "2025-01-01T00:00:00"))
    admin.execute(f'ANALYZE "{schema}".mlops_prediction_log')
    admin.execute(f'ANALYZE "{schema}".outcomes')


def ours(schema: str) -> tuple[float, dict]:
    from airflow_mlops.core.canary import compare_arms, srm_test
    from airflow_mlops.hooks.canary import LabelSource, look_evidence
    from airflow_mlops.hooks.database import Database
    from airflow_mlops.hooks.state import StateStore

    started = time.perf_counter()
    database = Database.from_uri(POSTGRES_URL)
    state = StateStore(database, schema=schema)
    labels = LabelSource(database, f"{schema}.outcomes", None, "entity_id", "label")
    look = look_evidence(state, labels, "m", "c1", 1, datetime(2025, 2, 1))
    srm = srm_test(look.published["champion"], look.published["challenger"], 0.25)
    pairs = look.pairs
    y = pairs["label"].to_numpy()
    auc = compare_arms("roc_auc", y, pairs["champion"], pairs["challenger"])
    loss = compare_arms("log_loss", y, pairs["champion"], pairs["challenger"])
    return time.perf_counter() - started, {"n": len(pairs), "srm_p": srm["p_value"], "auc": auc, "loss": loss,
                                           "unlabelled": look.unlabelled}


def baseline(schema: str) -> tuple[float, dict]:
    """Everything read into pandas and joined there (what a first version of such a task does)."""
    from airflow_mlops.core.canary import compare_arms
    from airflow_mlops.hooks.database import Database

    started = time.perf_counter()
    database = Database.from_uri(POSTGRES_URL)
    log = database.read_sql(f'SELECT * FROM "{schema}".mlops_prediction_log')
    outcomes = database.read_sql(f'SELECT * FROM "{schema}".outcomes')
    wide = log.pivot_table(index="entity_id", columns="arm", values="score").reset_index()
    merged = wide.merge(outcomes, on="entity_id")
    y = merged["label"].to_numpy()
    auc = compare_arms("roc_auc", y, merged["champion"], merged["challenger"])
    compare_arms("log_loss", y, merged["champion"], merged["challenger"])
    return time.perf_counter() - started, {"n": len(merged), "auc": auc}


def measure(admin, entities: int) -> None:
    schema = f"bench_{uuid.uuid4().hex[:8]}"
    admin.execute(f'CREATE SCHEMA "{schema}"')
    try:
        loading = time.perf_counter()
        load(admin, schema, entities)
        print(f"canary analysis: {entities:,} entities, {2 * entities:,} logged predictions, PostgreSQL "
              f"(loaded in {time.perf_counter() - loading:.0f} s)")
        ours(schema)  # warm the connection pools and imports, not the data (PostgreSQL caches pages either way)
        seconds, result = min((ours(schema) for _ in range(3)), key=lambda r: r[0])
        base, reference = min((baseline(schema) for _ in range(2)), key=lambda r: r[0])
        assert result["n"] == reference["n"] == entities and result["unlabelled"] == 0
        assert abs(result["auc"]["improvement"] - reference["auc"]["improvement"]) < 1e-12
        print(f"  ours (joins + counts in SQL, DeLong + paired interval): {seconds:5.2f} s  (goal < 2 s)")
        print(f"  baseline (read both tables into pandas, join there):   {base:5.2f} s  = {base / seconds:.1f}x slower")
        print(f"  ROC AUC improvement {result['auc']['improvement']:+.4f} "
              f"[{result['auc']['ci_low']:+.4f}, {result['auc']['ci_high']:+.4f}], SRM p {result['srm_p']:.3f}")
    finally:
        admin.execute(f'DROP SCHEMA "{schema}" CASCADE')


def main(entities: int = 1_000_000) -> None:
    """Both readings of "1M logged predictions": 1M log rows (500k entities, both arms) and 1M entities."""
    import psycopg

    admin = psycopg.connect(POSTGRES_URL, autocommit=True)
    try:
        for size in (entities // 2, entities):
            measure(admin, size)
    finally:
        admin.close()


if __name__ == "__main__":
    import warnings

    warnings.filterwarnings("ignore")
    main(*(int(a) for a in sys.argv[1:2]))
