from datetime import timedelta
from pathlib import Path

import pytest
import yaml

from airflow_mlops.core.config import ConfigError, load_config, parse_config
from tests.helpers import BUNDLED, bundled_config


def write(tmp_path: Path, raw) -> Path:
    path = tmp_path / "model.yaml"
    path.write_text(raw if isinstance(raw, str) else yaml.safe_dump(raw))
    return path


def test_bundled_config_loads_with_durations():
    config = load_config(BUNDLED / "configs" / "credit_risk.yaml")
    assert config.model == "credit_risk"
    assert config.data.train_window == timedelta(days=60)
    assert config.data.numeric == ["income", "amount", "term"]
    assert config.registered_model_name == "credit_risk" and config.experiment_name == "mlops/credit_risk"


@pytest.mark.parametrize("overrides, field, reason", [
    ({"data.train_window": "sixty days"}, "data.train_window", "duration"),
    ({"data.categorical": ["colour"]}, "data", "not in 'features'"),
    ({"data.query": "select 1"}, "data", "exactly one of 'table' or 'query'"),
    ({"gate.metric": "rmse"}, "gate.metric", "Input should be"),
    ({"gate.minimum": {"recall": 0.5}}, "gate.minimum", "unknown metrics"),
    ({"validation.policy": "ignore"}, "validation.policy", "Input should be"),
    ({"validation.expectations": [{"values_not_null": {}}]}, "validation.expectations", "not a Great Expectations"),
    ({"training.estimator": "LGBMClassifier"}, "training.estimator", "dotted import path"),
    ({"training.estimatr": "x.Y"}, "training.estimatr", "unknown field"),
    ({"model": "Credit Risk"}, "model", "lower case"),
    ({"gate.slices": ["age"]}, "<root>", "not in data.features"),
    ({"drift.backend": "evidently"}, "drift.backend", "Input should be 'builtin' or 'alibi'"),
    ({"drift.correction": "holm"}, "drift.correction", "Input should be"),
    ({"drift.drift_share": 0}, "drift.drift_share", "greater than 0"),
    ({"drift.cooldown": "soon"}, "drift.cooldown", "duration"),
    ({"drift.reports_table": "drift reports"}, "drift.reports_table", "not a valid table name"),
])
def test_errors_name_file_field_and_reason(tmp_path, overrides, field, reason):
    path = write(tmp_path, bundled_config(**overrides))
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    message = str(caught.value)
    assert f"{path}: {field}" in message and reason in message


def test_yaml_syntax_error_names_line(tmp_path):
    path = write(tmp_path, "model: x\ndata: [unclosed\n")
    with pytest.raises(ConfigError, match=r"line \d+, column \d+: not valid YAML"):
        load_config(path)


def test_missing_file_and_non_mapping(tmp_path):
    with pytest.raises(ConfigError, match="cannot read the file"):
        load_config(tmp_path / "absent.yaml")
    with pytest.raises(ConfigError, match="expected a mapping"):
        parse_config(["a"], "list.yaml")


def test_config_hash_is_stable_and_sensitive():
    a = parse_config(bundled_config())
    b = parse_config(bundled_config())
    c = parse_config(bundled_config(**{"training.seed": 1}))
    assert a.config_hash() == b.config_hash() != c.config_hash()
