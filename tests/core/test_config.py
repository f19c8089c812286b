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
    ({"data.categorical": ["colour"]}, "data.categorical", "not in 'features'"),
    ({"data.query": "select 1"}, "data.table", "exactly one of 'table' or 'query'"),
    ({"gate.metric": "rmse"}, "gate.metric", "Input should be"),
    ({"gate.minimum": {"recall": 0.5}}, "gate.minimum", "unknown metrics"),
    ({"validation.policy": "ignore"}, "validation.policy", "Input should be"),
    ({"validation.engine": "spark"}, "validation.engine", "Input should be 'auto', 'database' or 'pandas'"),
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
    # found by probing: each was accepted, then failed at run time, silently never ran, or crashed
    ({"schedule": "61 * * * *"}, "schedule", "not a valid cron expression"),
    ({"schedule": "0 0 30 2 *"}, "schedule", "never fires"),
    ({"schedule": "@once"}, "schedule", "not a schedule preset"),
    ({"drift.schedule": "0 0 * * * *"}, "drift.schedule", "must have 5 fields"),
    ({"drift.window": -7}, "drift.window", "cannot be negative, got -7"),
    ({"drift.window": "0d"}, "drift.window", "must be longer than zero, got '0d'"),
    ({"data.train_window": "999999999999d"}, "data.train_window", "longer than 100 years"),
    ({"data.holdout_window": "90d"}, "data.holdout_window", "90d is longer than train_window (60d)"),
    ({"data.target": "applied_at"}, "data.target", "also the timestamp column or the entity id"),
    ({"data.features": ["income", "amount", "term", "purpose", "region", "applied_at"]}, "data.features",
     "are the timestamp column / entity id"),
    ({"validation.expectations": [{"expect_column_values_to_be_positive": {"column": "x"}}]},
     "validation.expectations", "is not a Great Expectations expectation (did you mean"),
    ({"training.estimator": "no_such_package.Model"}, "training.estimator", "package 'no_such_package' is not"),
    ({"training.serialization_format": "cloudpickle"}, "training.serialization_format", "set allow_pickle: true"),
    ({"state_schema": "a;b"}, "state_schema", "not a valid schema name"),
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


def test_durations_that_may_be_zero():
    config = parse_config(bundled_config(**{"drift.cooldown": 0, "drift.data_lag": "0s", "retry_delay": "0s"}))
    assert config.drift.cooldown == timedelta(0) and config.retry_delay == timedelta(0)


def test_non_utf8_and_oversized_files_are_refused_naming_the_file(tmp_path):
    latin = tmp_path / "latin1.yaml"
    latin.write_bytes("model: caf\xe9\n".encode("latin-1"))
    with pytest.raises(ConfigError, match=r"latin1.yaml: <root>: not UTF-8 text: byte 0xe9 at offset 10"):
        load_config(latin)
    big = tmp_path / "big.yaml"
    big.write_text("# x\n" * 400_000)
    with pytest.raises(ConfigError, match="a model config is at most 1,000,000"):
        load_config(big)


def test_an_alias_bomb_is_refused_before_it_expands(tmp_path):
    """Nine lines that expand to hundreds of thousands of nodes (measured: 96 s and 7.8 GB in the DAG processor
    for one in training.params)."""
    lines = ["model: bomb", 'a: &a ["x", "x", "x", "x", "x", "x", "x", "x", "x"]']
    for name, prev in zip("bcdef", "abcde", strict=True):
        lines.append(f"{name}: &{name} [" + ", ".join([f"*{prev}"] * 9) + "]")
    path = write(tmp_path, "\n".join(lines) + "\ntraining: {params: {x: *f}}\n")
    with pytest.raises(ConfigError, match=r"bomb.yaml: <root>: refused: the document expands to 1,270,488 nodes "
                                          r"through its aliases \(limit 20,000\)"):
        load_config(path.rename(tmp_path / "bomb.yaml"))
    # Ordinary anchors and aliases still work.
    from airflow_mlops.core.config import safe_load_yaml

    assert safe_load_yaml("a: &x {k: 1}\nb: *x\n") == {"a": {"k": 1}, "b": {"k": 1}}


def test_the_expectation_list_is_great_expectations_own():
    import inspect
    import re

    import great_expectations as gx

    from airflow_mlops.core.expectations import EXPECTATION_TYPES

    installed = {re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower() for name, _ in
                 inspect.getmembers(gx.expectations, inspect.isclass)
                 if name.startswith("Expect") and name != "Expectation"}
    assert EXPECTATION_TYPES == installed


def test_validate_config_imports_the_estimator_and_new_model_checks_the_name(tmp_path, capsys):
    from airflow_mlops.cli import main

    path = write(tmp_path, bundled_config(**{"training.estimator": "sklearn.linear_model.LinearRegression"}))
    assert main(["validate-config", str(path)]) == 2
    assert "training.estimator: 'sklearn.linear_model.LinearRegression' is not a classifier" in capsys.readouterr().err
    assert main(["validate-config", str(BUNDLED / "configs" / "credit_risk.yaml")]) == 0
    for name in ("Churn", "../evil", "a b", "x" * 64):
        assert main(["new-model", name, "--dags-folder", str(tmp_path / "dags")]) == 2
        assert "is not a model name" in capsys.readouterr().err
    assert not (tmp_path / "dags").exists()


@pytest.mark.parametrize("text, reason", [
    # found by probing after the first round of fixes
    ("k: &k {a: 1, b: *k}\n", "a recursive alias at line 1 refers to a mapping or list it is part of"),
    ("model: a\nmodel: b\n", r"key .model. appears twice in one mapping \(lines 1 and 2\)"),
])
def test_recursive_aliases_and_duplicate_keys_are_refused(tmp_path, text, reason):
    path = tmp_path / "model.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=reason):
        load_config(path)


@pytest.mark.parametrize("overrides, field, reason", [
    ({"model": "credit_risk\n"}, "model", "lower case"),
    ({"data.timestamp_column": "applied_at\n"}, "data.timestamp_column", "not a valid column name"),
    ({"data.train_window": "٦٠d"}, "data.train_window", "expected a duration"),
    ({"data.table": None, "data.query": "  ;\n"}, "data.query", "the query is empty"),
    ({"gate.non_inferiority_margin": float("inf")}, "gate.non_inferiority_margin", "finite number"),
    ({"drift.min_effect_size": float("inf")}, "drift.min_effect_size", "finite number"),
    ({"training.seed": 2**64}, "training.seed", "less than or equal to 4294967295"),
    ({"training.seed": -1}, "training.seed", "greater than or equal to 0"),
    ({"data.entity_id": "applied_at"}, "data.entity_id", "is also the timestamp column"),
    ({"data.conn_id": ""}, "data.conn_id", "at least 1 character"),
    ({"canary.guardrails": {}}, "canary.guardrails", "at least one guardrail metric is needed"),
    ({"scoring.predictions_table": "mlops_deployments"}, "scoring.predictions_table", "the provider's own tables"),
    ({"scoring.predictions_table": "ml.MLOPS_PREDICTION_LOG"}, "scoring.predictions_table", "would overwrite"),
])
def test_more_config_errors_found_by_probing(tmp_path, overrides, field, reason):
    path = write(tmp_path, bundled_config(**overrides))
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert f"{path}: {field}" in str(caught.value) and reason in str(caught.value)


def test_validate_config_checks_expectation_arguments_with_great_expectations(tmp_path, capsys):
    from airflow_mlops.cli import main

    bad = [{"expect_column_values_to_be_between": {"column": "amount", "min_valu": 0}}]
    path = write(tmp_path, bundled_config(**{"validation.expectations": bad}))
    assert main(["validate-config", str(path)]) == 2
    assert "validation.expectations.0 (expect_column_values_to_be_between)" in capsys.readouterr().err


def test_a_parsed_config_round_trips_through_its_json_dump():
    """Operators receive ``model_dump(mode="json")`` and parse it again: every default must validate explicitly."""
    config = parse_config(bundled_config(**{"canary.enabled": True}))
    assert parse_config(config.model_dump(mode="json")) == config
