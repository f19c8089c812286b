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


class HeaderRecorder:
    """Two tiny HTTP servers that record the Authorization header of every request they get."""

    def __init__(self):
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
        import threading

        self.seen: dict[int, list] = {}
        recorder = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                recorder.seen.setdefault(self.server.server_port, []).append(self.headers.get("Authorization"))
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.servers = [ThreadingHTTPServer(("127.0.0.1", 0), Handler) for _ in range(2)]
        for server in self.servers:
            threading.Thread(target=server.serve_forever, daemon=True).start()

    def url(self, index: int) -> str:
        return f"http://127.0.0.1:{self.servers[index].server_port}"

    def headers(self, index: int) -> list:
        return self.seen.get(self.servers[index].server_port, [])

    def close(self):
        for server in self.servers:
            server.shutdown()
            server.server_close()


def test_credentials_go_only_to_their_own_server(monkeypatch):
    """Each session's header goes to its own tracking server only: not to another host inside the session (an
    artifact store elsewhere), not to another session's server, and not from an unrelated thread."""
    import threading

    import requests

    servers = HeaderRecorder()
    try:
        set_conn(monkeypatch, "a", host=servers.url(0), password="token-A")
        set_conn(monkeypatch, "b", host=servers.url(1), password="token-B")
        auth = mlflow_auth.AirflowConnectionAuthProvider().get_auth()
        barrier, errors = threading.Barrier(2), []

        def session(conn, own, other):
            try:
                with MLflowHook(conn).session():
                    barrier.wait(timeout=10)  # both sessions are open at the same time
                    requests.get(servers.url(own) + "/x", auth=auth, timeout=5)
                    requests.get(servers.url(other) + "/x", auth=auth, timeout=5)
                    barrier.wait(timeout=10)
            except Exception as error:  # surfaced by the assertion below
                errors.append(error)

        threads = [threading.Thread(target=session, args=args) for args in (("a", 0, 1), ("b", 1, 0))]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert not errors
        assert sorted(servers.headers(0), key=str) == ["Bearer token-A", None]
        assert sorted(servers.headers(1), key=str) == ["Bearer token-B", None]
        # A thread MLflow starts for artifact transfers has no context: it gets the header of the session open for
        # *that* server only.
        with MLflowHook("a").session():
            worker = threading.Thread(target=lambda: [requests.get(servers.url(i) + "/y", auth=auth, timeout=5)
                                                      for i in (0, 1)])
            worker.start()
            worker.join()
        assert servers.headers(0)[-1] == "Bearer token-A" and servers.headers(1)[-1] is None
    finally:
        servers.close()


def test_mlflow_uses_the_provider_and_the_token_is_never_exported(monkeypatch, tmp_path):
    from mlflow.tracking._tracking_service.utils import get_default_host_creds
    from mlflow.tracking.request_auth.registry import fetch_auth

    set_conn(monkeypatch, "tok", host="http://127.0.0.1:9", password="s3cret-token")
    monkeypatch.delenv("MLFLOW_TRACKING_AUTH", raising=False)
    hook = MLflowHook("tok")
    with hook.session():
        # Only the connection's own variable (how this test defines it) holds the token.
        assert [k for k, v in os.environ.items() if "s3cret" in v] == ["AIRFLOW_CONN_TOK"]
        assert get_default_host_creds(hook.settings.tracking_uri).auth == "airflow_mlops"
        assert isinstance(fetch_auth("airflow_mlops"), type(mlflow_auth.AirflowConnectionAuthProvider().get_auth()))
        assert mlflow_auth.header_for("http://127.0.0.1:9/api/2.0/mlflow/runs/get") == "Bearer s3cret-token"
        assert mlflow_auth.header_for("http://127.0.0.1:10/elsewhere") is None
    assert mlflow_auth.header_for("http://127.0.0.1:9/api/2.0/mlflow/runs/get") is None


def test_credentials_in_the_uri_are_moved_out_of_it(monkeypatch):
    set_conn(monkeypatch, "userinfo", host="http://alice:s3cret@mlflow.internal:5000")
    settings = MLflowHook("userinfo").settings
    assert settings.tracking_uri == "http://mlflow.internal:5000" and settings.ui_url == settings.tracking_uri
    assert settings.authorization.startswith("Basic ") and "s3cret" not in repr(settings)


def test_connection_check(monkeypatch, tmp_path):
    set_conn(monkeypatch, "ok", extra={"tracking_uri": f"sqlite:///{tmp_path}/m.db"})
    assert MLflowHook("ok").test_connection()[0]
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    set_conn(monkeypatch, "down", host="http://127.0.0.1", port=9)
    ok, message = MLflowHook("down").test_connection()
    assert not ok and "not reachable" in message and "after 5s" in message  # the form waits seconds, not a minute


def test_missing_host_is_a_clear_error(monkeypatch):
    from airflow_mlops.core.errors import MLOpsError

    set_conn(monkeypatch, "empty")
    with pytest.raises(MLOpsError, match="connection 'empty': set 'host' or extra 'tracking_uri'"):
        _ = MLflowHook("empty").settings


MODEL_IO_SCRIPT = """
import sys, warnings
from datetime import date
import airflow.utils.timezone  # a deprecated-shim module, loaded as in a worker
from airflow_mlops.core.config import parse_config
from airflow_mlops.core.model_package import load_pipeline, save_model_package
from airflow_mlops.demo.synthetic import generate
from airflow_mlops.core.training import fit_model, prepare_features
import yaml
raw = yaml.safe_load(open(sys.argv[2]))
raw["training"]["params"] = {"n_estimators": 5}
config = parse_config(raw)
frame = generate(date(2025, 1, 1), 3)
model = fit_model(frame, config)  # the pipeline the train task logs
x = prepare_features(frame.head(50), config)
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    save_model_package(model, sys.argv[1] + "/model", example=x, pip_requirements=[])
    loaded = load_pipeline(sys.argv[1] + "/model")
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

    completed = subprocess.run([sys.executable, "-c", MODEL_IO_SCRIPT, str(tmp_path),
                                str(BUNDLED / "configs" / "credit_risk.yaml")],
                               capture_output=True, text=True, timeout=300)
    assert completed.returncode == 0, completed.stderr[-3000:]
    assert completed.stdout.strip().splitlines()[-1] == "0"


def test_registration_reuses_only_versions_of_the_same_source_and_verifies_what_serving_loads(monkeypatch, tmp_path):
    """Someone registered the same run from another folder first: that version is neither reused nor deleted, and
    the files verified for a version are the ones ``models:/<name>/<version>`` resolves to."""
    from mlflow import MlflowClient

    from airflow_mlops.core import names
    from airflow_mlops.core.errors import ModelIntegrityError
    from airflow_mlops.core.integrity import directory_sha256

    uri = f"sqlite:///{tmp_path}/m.db"
    set_conn(monkeypatch, "reg", extra={"tracking_uri": uri, "artifact_root": (tmp_path / "art").as_uri()})
    hook = MLflowHook("reg")
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    run = client.create_run(hook.experiment_id("e"))
    for folder, text in (("model", "good"), ("other", "evil")):
        (tmp_path / folder).mkdir()
        (tmp_path / folder / "MLmodel").write_text("flavors: {python_function: {loader_module: x, artifacts: "
                                                   "{pipeline: {path: artifacts/pipeline.skops}}}}\n")
        (tmp_path / folder / "weights").write_text(text)
        client.log_artifacts(run.info.run_id, str(tmp_path / folder), folder)
    base = run.info.artifact_uri
    client.create_registered_model("reg")
    theirs = client.create_model_version("reg", f"{base}/other", run_id=run.info.run_id).version
    good = {names.MODEL_SHA256: directory_sha256(tmp_path / "model"), names.MODEL_FLAVOR: "python_function",
            names.MODEL_FORMAT: "skops"}
    ours = hook.find_or_create_version("reg", run_id=run.info.run_id, source=f"{base}/model", tags=good)
    assert ours != theirs and hook.find_or_create_version("reg", run_id=run.info.run_id, source=f"{base}/model",
                                                           tags=good) == ours
    assert {str(v.version) for v in client.search_model_versions("name = 'reg'")} == {str(theirs), ours}
    assert hook.verify_version("reg", ours) == good[names.MODEL_SHA256]
    client.set_model_version_tag("reg", theirs, names.MODEL_SHA256, good[names.MODEL_SHA256])
    client.set_model_version_tag("reg", theirs, names.MODEL_FLAVOR, "python_function")
    client.set_model_version_tag("reg", theirs, names.MODEL_FORMAT, "skops")
    with pytest.raises(ModelIntegrityError, match="the files were changed"):  # its own files, not the run's model
        hook.verify_version("reg", theirs)
