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
