import numpy as np
import pandas as pd
import pytest

from airflow_mlops.core.config import parse_config
from airflow_mlops.core.data_checks import DataProblem, check_training_frame
from airflow_mlops.demo.synthetic import generate
from tests.helpers import DATA_START, bundled_config

CONFIG = parse_config(bundled_config())


def frame():
    return generate(DATA_START, 3)


def test_good_frame_passes():
    check_training_frame(frame(), CONFIG.data)


@pytest.mark.parametrize("mutate, message", [
    (lambda f: f.drop(columns=["income"]), "no column(s) ['income']"),
    (lambda f: f.iloc[0:0], "empty"),
    (lambda f: f.assign(defaulted=0), "single class"),
    (lambda f: f.assign(defaulted=f["defaulted"].astype(float).where(f.index > 3, np.nan)), "NaN/inf"),
    (lambda f: f.assign(defaulted=f["defaulted"].astype(float).where(f.index > 3, np.inf)), "NaN/inf"),
    (lambda f: f.assign(defaulted=f["defaulted"] * 2), "binary"),
    (lambda f: f.assign(income=np.nan), "entirely null"),
    (lambda f: f.assign(term=36), "constant"),
    (lambda f: f.assign(amount=["x"] * len(f)), "non-numeric"),
    (lambda f: f.head(50), "fewer than data.min_rows"),
])
def test_bad_training_data_is_named(mutate, message):
    with pytest.raises(DataProblem) as caught:
        check_training_frame(mutate(frame()), CONFIG.data)
    assert message in str(caught.value)


def test_all_problems_are_reported_together():
    bad = frame().assign(income=np.nan, term=36)
    with pytest.raises(DataProblem) as caught:
        check_training_frame(bad, CONFIG.data)
    assert len(caught.value.problems) == 2
    assert isinstance(bad, pd.DataFrame)
