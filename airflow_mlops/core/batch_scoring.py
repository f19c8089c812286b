"""Scoring one chunk of a batch (no I/O, no Airflow): both arms' scores, the traffic bucket, the published arm,
and the rows for the prediction log and the predictions table."""

from __future__ import annotations

from typing import Any

from airflow_mlops.core import names

LOG_COLUMNS = ["model", "scoring_run", "entity_id", "model_version", "arm", "score", "published", "bucket",
               "weight", "canary_id", "step", "scored_at"]
PREDICTION_COLUMNS = {"scoring_run": "TEXT", "entity_id": "TEXT", "score": "DOUBLE PRECISION",
                      "model_version": "TEXT", "arm": "TEXT", "scored_at": "TEXT"}


def score_chunk(chunk, config, models: dict[str, tuple[str, Any]], deployment, run: str, scored_at: str,
                counts: dict[str, int]):
    """(prediction log rows, published rows) of one chunk, as DataFrames with :data:`LOG_COLUMNS` and the columns of
    :data:`PREDICTION_COLUMNS`; ``counts`` is updated in place. Log rows (both arms' scores, bucket, weight, step)
    only during a canary.

    Raises ``DataProblem`` for a row without an entity id. Rows with values that are not numbers are not scored
    (counted as ``rejected``).
    """
    import numpy as np
    import pandas as pd

    from airflow_mlops.core.canary import buckets
    from airflow_mlops.core.categories import category_labels
    from airflow_mlops.core.coercion import coerce_to_config
    from airflow_mlops.core.data_checks import DataProblem
    from airflow_mlops.core.training import score

    data = config.data
    missing = int(chunk[data.entity_id].isna().sum())
    if missing:
        raise DataProblem([f"{missing} row(s) of the batch have no {data.entity_id}: they cannot be scored, "
                           "published or joined with labels; nothing was written"])
    coerced = coerce_to_config(chunk, data)
    counts["rejected"] += len(coerced.rejected)
    frame = coerced.frame
    if frame.empty:
        return pd.DataFrame(columns=LOG_COLUMNS), pd.DataFrame(columns=list(PREDICTION_COLUMNS))
    entities = category_labels(frame[data.entity_id]).to_numpy()
    counts["rows"] += len(frame)
    active = deployment.canary_active and names.CHALLENGER in models
    weight = float(deployment.weight or 0.0) if active else 0.0
    bucket_values = buckets(entities, deployment.salt) if active else np.full(len(frame), np.nan)
    to_challenger = bucket_values < weight if active else np.zeros(len(frame), dtype=bool)
    scores = {arm: np.asarray(score(model, frame, config), dtype=np.float64) for arm, (_, model) in models.items()}
    broken = {arm: ~np.isfinite(values) for arm, values in scores.items()}
    if broken[names.CHAMPION].any():
        count = int(broken[names.CHAMPION].sum())
        raise DataProblem([f"the champion (version {models[names.CHAMPION][0]}) gave {count} non-finite score(s) "
                           "in this batch: nothing was written"])
    if active:
        # A challenger's NaN/inf is logged (its guardrails then fail) but never published: those entities get the
        # champion's score, and the sample-ratio test sees the challenger's missing share.
        to_challenger &= ~broken[names.CHALLENGER]
    arms = []
    for arm, (version, _) in models.items():
        published = to_challenger if arm == names.CHALLENGER else ~to_challenger
        counts[arm] += int(published.sum())
        if active:  # the log is the canary's evidence; without one, the predictions table is the whole record
            arms.append(pd.DataFrame({
                "model": config.model, "scoring_run": run, "entity_id": entities, "model_version": version,
                "arm": arm, "score": scores[arm], "published": published.astype(np.int64), "bucket": bucket_values,
                "weight": weight, "canary_id": deployment.canary_id, "step": deployment.step,
                "scored_at": scored_at}, columns=LOG_COLUMNS))
    log = pd.concat(arms, ignore_index=True) if arms else pd.DataFrame(columns=LOG_COLUMNS)
    champion_version = models[names.CHAMPION][0]
    challenger_version = models[names.CHALLENGER][0] if active else None
    published_rows = pd.DataFrame({
        "scoring_run": run, "entity_id": entities,
        "score": np.where(to_challenger, scores.get(names.CHALLENGER, scores[names.CHAMPION]), scores[names.CHAMPION]),
        "model_version": np.where(to_challenger, challenger_version, champion_version).astype(object),
        "arm": np.where(to_challenger, names.CHALLENGER, names.CHAMPION).astype(object), "scored_at": scored_at},
        columns=list(PREDICTION_COLUMNS))
    return log, published_rows
