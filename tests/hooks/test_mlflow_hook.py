"""MLflowHook: settings from connections, auth without environment variables, reachability."""

from __future__ import annotations

import json
import os

import pytest

from airflow_mlops.hooks import mlflow_auth
from airflow_mlops.hooks.mlflow import MLflowHook


def set_conn(monkeypatch, name, **fields):
    monkeypatch.setenv(f"AIRFLOW_CONN_{name.upper()}", json.dumps({"conn_type": "mlflow", **fields}))


def test_settings_from_host_and_extra(monkeypatch):
    set_conn(monkeypatch, "srv", host="mlflow.internal", port=5000, password="s3cret-token")
    settings = MLflowHook("srv").settings
    assert settings.tracking_uri == "http://mlflow.internal:5000"
    assert settings.authorization == "Bearer s3cret-token" and "s3cret" not in repr(settings)
    set_conn(monkeypatch, "basic", host="https://m.example", login="bot", password="pw")
    assert MLflowHook("basic").settings.authorization.startswith("Basic ")
    set_conn(monkeypatch, "file", extra={"tracking_uri": "sqlite:///x.db", "registry_uri": "sqlite:///y.db"})
    settings = MLflowHook("file").settings
    assert (settings.tracking_uri, settings.registry_uri, settings.ui_url) == ("sqlite:///x.db", "sqlite:///y.db", None)


def test_token_is_sent_per_request_and_never_exported(monkeypatch, tmp_path):
    set_conn(monkeypatch, "tok", extra={"tracking_uri": f"sqlite:///{tmp_path}/m.db"}, password="s3cret-token")
    provider = mlflow_auth.AirflowConnectionHeaderProvider()
    assert not provider.in_context()
    with MLflowHook("tok").session() as client:
        assert provider.in_context()
        assert provider.request_headers() == {"Authorization": "Bearer s3cret-token"}
        # Only the connection's own variable (how this test defines it) holds the token.
        assert [k for k, v in os.environ.items() if "s3cret" in v] == ["AIRFLOW_CONN_TOK"]
        client.search_experiments(max_results=1)
    assert not provider.in_context() and provider.request_headers() == {}
    # MLflow itself loads the provider through our entry point.
    from mlflow.tracking.request_header.registry import _request_header_provider_registry

    assert any(isinstance(p, mlflow_auth.AirflowConnectionHeaderProvider)
               for p in _request_header_provider_registry)


def test_connection_check(monkeypatch, tmp_path):
    set_conn(monkeypatch, "ok", extra={"tracking_uri": f"sqlite:///{tmp_path}/m.db"})
    assert MLflowHook("ok").test_connection()[0]
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    set_conn(monkeypatch, "down", host="http://127.0.0.1", port=9)
    ok, message = MLflowHook("down").test_connection()
    assert not ok and "not reachable" in message


def test_missing_host_is_a_clear_error(monkeypatch):
    set_conn(monkeypatch, "empty")
    with pytest.raises(ValueError, match="set 'host' or extra 'tracking_uri'"):
        _ = MLflowHook("empty").settings


MODEL_IO_SCRIPT = """
import sys, warnings
from datetime import date
import airflow.utils.timezone  # a deprecated-shim module, loaded as in a worker
import mlflow, mlflow.sklearn
from airflow_mlops.core.config import parse_config
from airflow_mlops.core.synthetic import generate
from airflow_mlops.core.training import fit_model, prepare_features, skops_trusted_types
from airflow_mlops.hooks.mlflow import load_sklearn_model, quiet_model_io
import yaml
raw = yaml.safe_load(open(sys.argv[2]))
raw["training"]["params"] = {"n_estimators": 5}
config = parse_config(raw)
frame = generate(date(2025, 1, 1), 3)
model = fit_model(frame, config)  # the pipeline the train task logs
mlflow.set_tracking_uri(sys.argv[1])
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    with mlflow.start_run() as run, quiet_model_io():
        mlflow.sklearn.log_model(model, name="model", skops_trusted_types=skops_trusted_types(model))
    loaded = load_sklearn_model(f"runs:/{run.info.run_id}/model")
x = prepare_features(frame.head(50), config)
assert (loaded.predict_proba(x) == model.predict_proba(x)).all()
print(sum(str(w.message).startswith("The `airflow.") for w in caught))
"""


@pytest.mark.slow
def test_model_io_keeps_airflow_deprecation_noise_out_of_task_logs(tmp_path):
    """skops probes modules with getattr; each of Airflow 3's deprecated shims warns once per process, which
    measured 1,615 warning lines in one task's log. A fresh process, as a worker's, shows them unless filtered."""
    import subprocess
    import sys

    from tests.helpers import BUNDLED

    completed = subprocess.run([sys.executable, "-c", MODEL_IO_SCRIPT, f"sqlite:///{tmp_path / 'm.db'}",
                                str(BUNDLED / "configs" / "credit_risk.yaml")],
                               capture_output=True, text=True, timeout=300)
    assert completed.returncode == 0, completed.stderr[-3000:]
    assert completed.stdout.strip().splitlines()[-1] == "0"
