"""Scoring one chunk: a challenger's non-finite scores are never published (the champion's are, and the split
shows the missing share); a champion that gives non-finite scores stops the batch before anything is written."""

from __future__ import annotations

from datetime import date

import numpy as np
import pytest

from airflow_mlops.core.batch_scoring import score_chunk
from airflow_mlops.core.config import parse_config
from airflow_mlops.core.data_checks import DataProblem
from airflow_mlops.core.training import fit_model
from airflow_mlops.demo.synthetic import generate
from airflow_mlops.hooks.state import Deployment
from tests.helpers import bundled_config


class NaNEveryTenth:
    """The injected fault: a model that returns NaN for every tenth row (a broken feature transform, say)."""

    def __init__(self, model):
        self.model = model

    def predict_proba(self, features):
        proba = np.asarray(self.model.predict_proba(features), dtype=float)
        proba[::10, 1] = np.nan
        return proba


@pytest.fixture(scope="module")
def setup():
    config = parse_config(bundled_config(**{"training.params": {"n_estimators": 20}}))
    model = fit_model(generate(date(2025, 1, 1), 20, rows_per_day=100), config)
    chunk = generate(date(2025, 3, 1), 2, rows_per_day=200)
    return config, model, chunk


def canary(weight: float) -> Deployment:
    return Deployment("credit_risk", "credit_risk", "1", None, "2", "canary", 3, "", "", canary_id="c1",
                      salt="0123456789abcdef", step=1, weight=weight, failed_looks=0)


def test_a_challengers_nan_scores_are_logged_but_never_published(setup):
    config, model, chunk = setup
    models = {"champion": ("1", model), "challenger": ("2", NaNEveryTenth(model))}
    counts = {"rows": 0, "rejected": 0, "champion": 0, "challenger": 0}
    log, published = score_chunk(chunk, config, models, canary(0.5), "run", "2025-03-03T00:00:00", counts)
    assert np.isfinite(published["score"]).all()
    challenger_log = log[log["arm"] == "challenger"]
    nan_entities = set(challenger_log.loc[~np.isfinite(challenger_log["score"]), "entity_id"])
    assert len(nan_entities) == 40  # every tenth of 400, logged for the guardrails to see
    by_entity = published.set_index("entity_id")
    assert (by_entity.loc[sorted(nan_entities), "arm"] == "champion").all()
    assert counts["challenger"] == (published["arm"] == "challenger").sum()
    assert counts["champion"] + counts["challenger"] == 400 == len(published)
    published_flags = challenger_log.set_index("entity_id")["published"]
    assert (published_flags.loc[sorted(nan_entities)] == 0).all()
    # the published arm's score and version, entity by entity
    champion_log = log[log["arm"] == "champion"].set_index("entity_id")
    challenger_scores = challenger_log.set_index("entity_id")["score"]
    for entity, row in by_entity.iterrows():
        expected = challenger_scores[entity] if row["arm"] == "challenger" else champion_log.loc[entity, "score"]
        assert row["score"] == expected and row["model_version"] == ("2" if row["arm"] == "challenger" else "1")


def test_a_champion_giving_nan_stops_the_batch(setup):
    config, model, chunk = setup
    counts = {"rows": 0, "rejected": 0, "champion": 0, "challenger": 0}
    with pytest.raises(DataProblem, match=r"the champion \(version 1\) gave 40 non-finite score\(s\)"):
        score_chunk(chunk, config, {"champion": ("1", NaNEveryTenth(model))}, canary(0.0), "run", "x", counts)
