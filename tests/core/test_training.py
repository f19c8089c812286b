import numpy as np
import pytest

from airflow_mlops.core.config import parse_config
from airflow_mlops.core.stats import roc_auc
from airflow_mlops.core.synthetic import generate
from airflow_mlops.core.training import EstimatorError, fit_model, pip_requirements, score
from tests.helpers import DATA_START, bundled_config


def config(**overrides):
    return parse_config(bundled_config(**overrides))


@pytest.mark.parametrize("estimator, params, message", [
    ("sklearn.nothing.Model", {}, "cannot import module 'sklearn.nothing'"),
    ("sklearn.linear_model.NoSuchModel", {}, "has no 'NoSuchModel'"),
    ("sklearn.linear_model.LinearRegression", {}, "not a classifier"),
    ("sklearn.linear_model.LogisticRegression", {"colour": "red"}, "training.params do not fit"),
])
def test_estimator_errors_are_named(estimator, params, message):
    frame = generate(DATA_START, 5)
    cfg = config(**{"training.estimator": estimator, "training.params": params})
    with pytest.raises(EstimatorError, match=message.replace("(", r"\(")):
        fit_model(frame, cfg)


def test_sklearn_estimator_handles_missing_and_unseen_categories():
    cfg = config(**{"training.estimator": "sklearn.linear_model.LogisticRegression",
                    "training.params": {"max_iter": 500}})
    train = generate(DATA_START, 20)
    train.loc[train.index[:50], "income"] = np.nan
    model = fit_model(train, cfg)
    later = generate(DATA_START, 5, drift_from=DATA_START)  # has the unseen region 'central'
    later.loc[later.index[:10], "purpose"] = None
    scores = score(model, later, cfg)
    assert np.isfinite(scores).all() and roc_auc(later["defaulted"].to_numpy(), scores) > 0.6


def test_lightgbm_is_seeded_and_reproducible():
    cfg = config(**{"training.params": {"n_estimators": 30}})
    frame = generate(DATA_START, 20)
    first, second = score(fit_model(frame, cfg), frame, cfg), score(fit_model(frame, cfg), frame, cfg)
    np.testing.assert_array_equal(first, second)
    assert any(p.startswith("lightgbm==") for p in pip_requirements("lightgbm.LGBMClassifier"))
