"""Model packages: the pyfunc returns the positive-class probability, and a package is refused before it is loaded
when one byte changed, when its MLmodel switches format, or when its format is pickle-based and not allowed."""

from __future__ import annotations

import pickle
import shutil
from datetime import date

import numpy as np
import pytest
import yaml

from airflow_mlops.core.config import parse_config
from airflow_mlops.core.errors import ModelIntegrityError
from airflow_mlops.core.integrity import describe_model_dir, directory_sha256, verify_model_dir
from airflow_mlops.core.model_package import load_pipeline, minimal_subprocess_env, save_model_package
from airflow_mlops.core.training import fit_model, prepare_features
from airflow_mlops.demo.synthetic import generate
from tests.helpers import bundled_config


@pytest.fixture(scope="module")
def package(tmp_path_factory):
    config = parse_config(bundled_config(**{"training.params": {"n_estimators": 10}}))
    frame = generate(date(2025, 1, 1), 5)
    model = fit_model(frame, config)
    features = prepare_features(frame.head(200), config)
    saved = save_model_package(model, tmp_path_factory.mktemp("pkg") / "model", example=features,
                               pip_requirements=["scikit-learn"])
    return saved, model, features


def expected(saved) -> dict:
    return {"expected_sha256": saved.sha256, "expected_flavor": saved.flavor, "expected_format": saved.format}


def copy_of(saved, tmp_path):
    target = tmp_path / "model"
    shutil.copytree(saved.path, target)
    return target


def test_pyfunc_returns_the_positive_class_probability(package):
    import mlflow.pyfunc

    saved, model, features = package
    scores = mlflow.pyfunc.load_model(saved.path).predict(features)
    assert scores.shape == (len(features),) and scores.dtype == np.float64
    np.testing.assert_allclose(scores, model.predict_proba(features)[:, 1])
    assert not set(np.unique(scores)) <= {0.0, 1.0}  # scores, not labels
    spec = yaml.safe_load(open(f"{saved.path}/MLmodel"))
    assert '"shape": [-1]' in spec["signature"]["outputs"] and "float64" in spec["signature"]["outputs"]


def test_package_is_skops_code_model_without_pickle_or_project_files(package):
    saved, _, _ = package
    description = describe_model_dir(saved.path)
    assert (description.flavor, description.format, description.loader) == (
        "python_function", "skops", "mlflow.pyfunc.loaders.code_model")
    files = {p.name for p in __import__("pathlib").Path(saved.path).rglob("*") if p.is_file()}
    assert "pipeline.skops" in files and "score_model.py" in files
    assert not {"python_model.pkl", "model.pkl", "uv.lock", "pyproject.toml"} & files
    assert verify_model_dir(saved.path, **expected(saved)) == saved.sha256
    assert directory_sha256(saved.path) == saved.sha256  # stable


def test_one_edited_byte_is_refused(package, tmp_path):
    saved, _, _ = package
    model_dir = copy_of(saved, tmp_path)
    weights = model_dir / "artifacts" / "pipeline.skops"
    data = bytearray(weights.read_bytes())
    data[len(data) // 2] ^= 0x01
    weights.write_bytes(bytes(data))
    with pytest.raises(ModelIntegrityError, match="sha256 .* was recorded when it was logged: the files were changed"):
        verify_model_dir(model_dir, **expected(saved))


def test_a_format_switch_in_mlmodel_is_refused_and_the_payload_never_runs(package, tmp_path):
    """The attack: swap the weights for a pickle with a payload and point MLmodel at it."""
    saved, _, _ = package
    model_dir = copy_of(saved, tmp_path)
    marker = tmp_path / "payload-ran"

    class Payload:
        def __reduce__(self):
            return (open, (str(marker), "w"))

    (model_dir / "artifacts" / "pipeline.pkl").write_bytes(pickle.dumps(Payload()))
    mlmodel = model_dir / "MLmodel"
    mlmodel.write_text(mlmodel.read_text().replace("artifacts/pipeline.skops", "artifacts/pipeline.pkl"))
    with pytest.raises(ModelIntegrityError, match="declares flavour 'python_function' with format 'cloudpickle'"):
        verify_model_dir(model_dir, **expected(saved))
    # Even if the attacker also rewrote the recorded tags, pickle is refused unless the config allows it.
    forged = {**expected(saved), "expected_format": "cloudpickle", "expected_sha256": directory_sha256(model_dir)}
    with pytest.raises(ModelIntegrityError, match="pickle-based format .* training.allow_pickle: true"):
        verify_model_dir(model_dir, **forged)
    assert not marker.exists()


def test_a_model_without_recorded_integrity_is_refused(package):
    saved, _, _ = package
    with pytest.raises(ModelIntegrityError, match="no recorded sha256/flavour/format"):
        verify_model_dir(saved.path, expected_sha256=None, expected_flavor=None, expected_format=None)


def test_cloudpickle_packages_load_only_when_allowed(package, tmp_path):
    saved, model, features = package
    pickled = save_model_package(model, tmp_path / "pickled", example=features, pip_requirements=[],
                                 serialization_format="cloudpickle")
    assert pickled.format == "cloudpickle"
    with pytest.raises(ModelIntegrityError, match="pickle-based"):
        verify_model_dir(pickled.path, **expected(pickled))
    verify_model_dir(pickled.path, allow_pickle=True, **expected(pickled))
    np.testing.assert_allclose(load_pipeline(pickled.path).predict_proba(features), model.predict_proba(features))


def test_the_smoke_test_process_gets_no_credentials(monkeypatch, tmp_path):
    monkeypatch.setenv("AIRFLOW_CONN_WAREHOUSE", "postgresql://etl:hunter2@db/warehouse")
    monkeypatch.setenv("MLFLOW_TRACKING_TOKEN", "tok-123")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "aws-secret")
    env = minimal_subprocess_env(str(tmp_path), allow_pickle=False)
    assert not [key for key in env if key.startswith(("AIRFLOW", "MLFLOW_TRACKING", "AWS"))]
    assert not [value for value in env.values() if "hunter2" in value or "tok-123" in value]
    assert env["MLFLOW_ALLOW_PICKLE_DESERIALIZATION"] == "false" and env["HOME"] == str(tmp_path)
