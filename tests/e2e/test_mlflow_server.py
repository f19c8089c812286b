"""The continuous-training DAG against a real ``mlflow server`` behind a proxy of our own: basic auth end to end
with the secret never leaking, lost HTTP responses that make MLflow's client retry POSTs (no duplicate runs or
versions), and an unreachable server (a bounded, retryable failure naming the connection)."""

from __future__ import annotations

import base64
import json

import pytest

from tests.helpers import FIRST
from tests.servers import Proxy, free_port

pytestmark = pytest.mark.slow

SECRET = "pw-s3cret-7Hq2x"


def use_mlflow(monkeypatch, url: str, **fields) -> None:
    extra = fields.pop("extra", {})
    monkeypatch.setenv("AIRFLOW_CONN_MLFLOW_DEFAULT", json.dumps(
        {"conn_type": "mlflow", "host": url, "extra": {"max_wait": 10, **extra}, **fields}))


def direct_client(server):
    from mlflow import MlflowClient

    return MlflowClient(tracking_uri=server.url, registry_uri=server.url)


def runs_of(server, model: str, view: str = "ACTIVE_ONLY") -> list:
    from mlflow.entities import ViewType

    client = direct_client(server)
    experiment = client.get_experiment_by_name(f"mlops/{model}")
    return client.search_runs([experiment.experiment_id], run_view_type=getattr(ViewType, view), max_results=1000)


def xcom_values(dag_run_id: str) -> list[str]:
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session

    with create_session() as session:
        return [json.dumps(row.value, default=str) for row in
                session.query(XComModel).filter(XComModel.run_id == dag_run_id).all()]


def test_basic_auth_end_to_end_and_the_password_never_leaks(project, mlflow_server, monkeypatch, capfd):
    header = "Basic " + base64.b64encode(f"ci-bot:{SECRET}".encode()).decode()
    proxy = Proxy(mlflow_server.url, authorization=header).start()
    try:
        use_mlflow(monkeypatch, proxy.url, login="ci-bot", password=SECRET)
        project.write_model("auth_ct")
        project.grow(FIRST)
        run = project.run("auth_ct", FIRST)
        assert run["state"] == "success", run["tasks"]
        assert run["results"]["register"]["version"] == "1" and run["results"]["promote"]["champion"] == "1"
        # Every request carried the credentials (artifact transfers in MLflow's worker threads included).
        assert proxy.rejected == 0 and proxy.seen_authorizations == {header}
        assert proxy.count("/model-versions/create") == 1 and proxy.count("/mlflow-artifacts/artifacts") > 0
        output = capfd.readouterr()
        logs = output.out + output.err
        for secret in (SECRET, header.split()[1]):
            assert secret not in logs
            assert not [value for value in xcom_values(run["run_id"]) if secret in value]
            for mlflow_run in runs_of(mlflow_server, "auth_ct"):
                stored = json.dumps([mlflow_run.data.params, mlflow_run.data.tags])
                assert secret not in stored
            version = direct_client(mlflow_server).get_model_version("auth_ct", "1")
            assert secret not in json.dumps(version.tags)

        # A wrong password: the task fails at once, the error names the connection, never the password.
        wrong = "wrong-" + SECRET
        use_mlflow(monkeypatch, proxy.url, login="ci-bot", password=wrong)
        project.write_model("auth_ct", retries=2, retry_delay="0s")
        failed = project.run("auth_ct", FIRST)
        assert failed["tasks"]["extract"] == "failed" and failed["tries"]["extract"] == 1
        output = capfd.readouterr()
        logs = output.out + output.err
        assert "MLflow connection 'mlflow_default' was refused (HTTP 401)" in logs
        assert wrong not in logs and base64.b64encode(f"ci-bot:{wrong}".encode()).decode() not in logs
    finally:
        proxy.stop()


def test_lost_responses_leave_no_duplicate_runs_or_versions(project, mlflow_server, monkeypatch):
    """MLflow's client retries a POST whose answer was lost: the server made the object twice. Every create is
    followed by a search that keeps the first object and deletes the extra."""
    proxy = Proxy(mlflow_server.url).start()
    try:
        use_mlflow(monkeypatch, proxy.url)
        proxy.lose_response("/api/2.0/mlflow/runs/create", times=2)  # the DAG run's parent, then extract's run
        proxy.lose_response("/api/2.0/mlflow/model-versions/create")
        project.write_model("lost_ct")
        project.grow(FIRST)
        run = project.run("lost_ct", FIRST)
        assert run["state"] == "success", run["tasks"]
        # The faults happened: each lost answer was followed by a second create.
        assert proxy.count("/model-versions/create") == 2
        deleted = runs_of(mlflow_server, "lost_ct", "DELETED_ONLY")
        assert len(deleted) == 2
        active = runs_of(mlflow_server, "lost_ct")
        keys = [r.data.tags.get("mlops.idempotency_key") or r.data.tags["mlops.pipeline_key"] for r in active]
        # one parent run + one run per task that logs its own (the gate writes into the training run)
        assert len(keys) == len(set(keys)) == 1 + len({"extract", "validate", "train"})
        # The kept runs are the first ones created (older than the deleted duplicates).
        for extra in deleted:
            key_tag = "mlops.idempotency_key" if "mlops.idempotency_key" in extra.data.tags else "mlops.pipeline_key"
            (kept,) = [r for r in active if r.data.tags.get(key_tag) == extra.data.tags[key_tag]]
            assert kept.info.start_time <= extra.info.start_time
        client = direct_client(mlflow_server)
        versions = client.search_model_versions("name = 'lost_ct'")
        assert [v.version for v in versions] == ["1"]
        assert client.get_model_version_by_alias("lost_ct", "champion").version == "1"
        # The parent run was closed by the teardown, not left RUNNING.
        (parent,) = [r for r in active if "mlops.pipeline_key" in r.data.tags]
        assert parent.info.status == "FINISHED"
    finally:
        proxy.stop()


def test_unreachable_mlflow_fails_fast_naming_the_connection_then_retries(project, monkeypatch, capfd):
    use_mlflow(monkeypatch, f"http://127.0.0.1:{free_port()}", extra={"max_wait": 2})
    project.write_model("down_ct", retries=1, retry_delay="0s")
    project.grow(FIRST)
    run = project.run("down_ct", FIRST)
    assert run["tasks"]["extract"] == "failed"
    assert run["tries"]["extract"] == 2  # transient: retried
    logs = "".join(capfd.readouterr())
    # The preflight check said so, before any data was read (its message names the bound it waited).
    assert "MLflowUnavailable: MLflow connection 'mlflow_default'" in logs and "after 2s (extra 'max_wait')" in logs
