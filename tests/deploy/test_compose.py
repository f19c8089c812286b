"""The docker-compose stack, validated by docker-compose itself (no engine runs on these machines): services,
images, shared settings, secrets, mounts, health checks and start order."""

from __future__ import annotations

import os
import re
import shutil
import subprocess

import pytest
import yaml

from tests.conftest import REPO

SECRETS = {"POSTGRES_PASSWORD": "pg-secret-1", "MLFLOW_DB_PASSWORD": "mlflow-secret-2",
           "MLOPS_DB_PASSWORD": "mlops-secret-3", "AIRFLOW_JWT_SECRET": "jwt-secret-4",
           "AIRFLOW_ADMIN_PASSWORD": "admin-secret-5"}
AIRFLOW_SERVICES = ["airflow-apiserver", "airflow-scheduler", "airflow-dag-processor", "airflow-triggerer",
                    "airflow-worker", "airflow-init"]


def compose(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    binary = shutil.which("docker-compose")
    if binary is None:
        message = "docker-compose is missing: `make test` installs it (Debian package docker-compose)"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    clean = {k: v for k, v in os.environ.items() if k not in SECRETS and not k.startswith(("AIRFLOW", "MLOPS"))}
    return subprocess.run([binary, "-f", str(REPO / "docker-compose.yaml"), *args], capture_output=True, text=True,
                          env={**clean, **env}, cwd=REPO, timeout=120)


def mount_target(volume) -> str:
    """Where a volume is mounted, from the long or the short (``source:target[:mode]``) syntax."""
    return volume["target"] if isinstance(volume, dict) else volume.split(":")[1]


@pytest.fixture(scope="module")
def stack() -> dict:
    completed = compose("config", env=SECRETS)
    assert completed.returncode == 0, completed.stderr
    assert compose("config", "-q", env=SECRETS).returncode == 0
    return yaml.safe_load(completed.stdout)


def test_the_services_of_the_reference_shape_with_health_checks(stack):
    services = stack["services"]
    assert set(services) == {"postgres", "redis", "mlflow", *AIRFLOW_SERVICES}
    for name, service in services.items():
        if name != "airflow-init":
            assert service.get("healthcheck", {}).get("test"), f"{name} has no health check"
    commands = {name: services[name].get("command") for name in AIRFLOW_SERVICES}
    assert commands["airflow-apiserver"] in ("api-server", ["api-server"])
    assert commands["airflow-worker"] in ("celery worker", ["celery", "worker"])
    assert services["airflow-init"]["environment"]["_AIRFLOW_DB_MIGRATE"] == "true"


def test_airflow_services_share_one_image_settings_and_jwt_secret(stack):
    services = stack["services"]
    images = {services[name]["image"] for name in AIRFLOW_SERVICES} | {services["mlflow"]["image"]}
    assert len(images) == 1
    for name in AIRFLOW_SERVICES:
        env = services[name]["environment"]
        assert env["AIRFLOW__API_AUTH__JWT_SECRET"] == SECRETS["AIRFLOW_JWT_SECRET"], name
        assert env["AIRFLOW__CORE__EXECUTOR"] == "CeleryExecutor"
        assert env["AIRFLOW__CORE__EXECUTION_API_SERVER_URL"] == "http://airflow-apiserver:8080/execution/"
        assert env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"].endswith("@postgres/airflow")
        assert env["AIRFLOW_CONN_MLOPS_DATA"] == f"postgresql://mlops:{SECRETS['MLOPS_DB_PASSWORD']}@postgres:5432/mlops"
        mlflow_conn = yaml.safe_load(env["AIRFLOW_CONN_MLFLOW_DEFAULT"])
        assert (mlflow_conn["conn_type"], mlflow_conn["host"]) == ("mlflow", "http://mlflow:5000")
        targets = {mount_target(volume) for volume in services[name]["volumes"]}
        assert {"/opt/airflow/dags", "/opt/airflow/plugins"} <= targets, name
    # The MLflow service gets none of Airflow's secrets.
    assert not any("AIRFLOW" in key for key in services["mlflow"].get("environment", {}))


def test_start_order_waits_for_healthy_dependencies_and_the_init(stack):
    services = stack["services"]
    for name in AIRFLOW_SERVICES:
        depends = services[name]["depends_on"]
        assert depends["postgres"]["condition"] == depends["redis"]["condition"] == "service_healthy", name
        if name != "airflow-init":
            assert depends["airflow-init"]["condition"] == "service_completed_successfully", name
    assert services["airflow-worker"]["depends_on"]["mlflow"]["condition"] == "service_healthy"
    assert services["mlflow"]["depends_on"]["postgres"]["condition"] == "service_healthy"


def test_mlflow_server_has_a_postgres_store_served_artifacts_and_knows_its_service_name(stack):
    command = " ".join(stack["services"]["mlflow"]["command"])
    assert "--backend-store-uri=postgresql+psycopg2://mlflow:" in command and "@postgres:5432/mlflow" in command
    assert "--serve-artifacts" in command and "--artifacts-destination=/mlartifacts" in command
    allowed = re.search(r"--allowed-hosts=(\S+)", command).group(1).split(",")
    assert "mlflow" in allowed and "mlflow:5000" in allowed
    assert any(mount_target(volume) == "/mlartifacts" for volume in stack["services"]["mlflow"]["volumes"])


def test_every_secret_comes_from_the_environment_and_is_required():
    text = (REPO / "docker-compose.yaml").read_text()
    for name in SECRETS:
        assert f"${{{name}:?" in text, name
        partial = {k: v for k, v in SECRETS.items() if k != name}
        completed = compose("config", "-q", env=partial)
        assert completed.returncode != 0 and "set it in .env" in completed.stderr, name
    example = (REPO / ".env.example").read_text()
    assert set(SECRETS) <= {line.split("=")[0] for line in example.splitlines() if "=" in line}


def test_the_image_installs_this_provider_and_pins_the_locked_airflow():
    dockerfile = (REPO / "Dockerfile").read_text()
    assert '"apache-airflow==${AIRFLOW_VERSION}"' in dockerfile and "/opt/airflow-mlops[postgres-fast]" in dockerfile
    lock = (REPO / "uv.lock").read_text()
    locked = re.search(r'name = "apache-airflow"\nversion = "([^"]+)"', lock).group(1)
    assert f"ARG AIRFLOW_VERSION={locked}" in dockerfile
    compose_file = yaml.safe_load((REPO / "docker-compose.yaml").read_text())
    assert compose_file["x-airflow-common"]["build"]["args"]["AIRFLOW_VERSION"] == locked
    ignored = (REPO / ".dockerignore").read_text().split()
    assert ".venv" in ignored and ".git" in ignored
