from datetime import timedelta

import numpy as np
import pandas as pd
import pytest

from airflow_mlops.core.sampling import ReservoirSampler, reservoir_sample
from airflow_mlops.demo.synthetic import DRIFT_REGION, generate, generate_day
from tests.helpers import DATA_START


def test_reservoir_is_bounded_and_chunking_does_not_matter():
    frame = pd.DataFrame({"i": np.arange(10_000)})
    whole = reservoir_sample(frame, 500, seed=3)
    assert len(whole) == 500 and whole["i"].is_unique
    assert len(reservoir_sample(frame.head(20), 500)) == 20


def test_reservoir_is_uniform():
    # Every row has the same inclusion probability k/n: the kept rows' mean index ~ n/2 on average.
    frame = pd.DataFrame({"i": np.arange(2000)})
    hits = np.zeros(2000)
    for seed in range(200):
        sampler = ReservoirSampler(100, seed)
        for start in range(0, len(frame), 300):
            sampler.add(frame.iloc[start:start + 300])
        hits[sampler.result()["i"].to_numpy()] += 1
    first_half, second_half = hits[:1000].sum(), hits[1000:].sum()
    assert abs(first_half - second_half) / hits.sum() < 0.05
    with pytest.raises(ValueError):
        ReservoirSampler(10).result()


def test_synthetic_days_are_reproducible_and_growable():
    once = generate(DATA_START, 4)
    incremental = pd.concat([generate(DATA_START, 2), generate(DATA_START + timedelta(days=2), 2)],
                            ignore_index=True)
    pd.testing.assert_frame_equal(once, incremental)
    assert once["loan_id"].is_unique and set(once["defaulted"]) == {0, 1}


def test_synthetic_drift_and_bad_rows():
    calm = generate_day(DATA_START, rows=3000, drift=0.0)
    drifted = generate_day(DATA_START, rows=3000, drift=1.0)
    assert drifted["income"].median() < calm["income"].median() * 0.8
    assert (drifted["region"] == DRIFT_REGION).mean() > 0.4 and (calm["region"] == DRIFT_REGION).sum() == 0
    bad = generate_day(DATA_START, rows=1000, bad=True)
    assert bad["income"].isna().mean() > 0.1 and (bad["amount"] < 0).any()
