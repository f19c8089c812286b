"""The wheel as users install it: built from this repository, installed into a fresh virtualenv that has only the
wheel and its declared dependencies (pinned by the lock). Run there, not from the source tree."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from tests.conftest import REPO

pytestmark = pytest.mark.slow


def uv() -> str:
    path = REPO / ".tools" / "bin" / "uv"
    if not path.exists():
        pytest.fail("uv is missing: run `make install` (the Makefile bootstraps it)")
    return str(path)


@pytest.fixture(scope="session")
def wheel_venv(tmp_path_factory):
    """A virtualenv with the built wheel and its dependencies only (no test tools, no source checkout)."""
    root = tmp_path_factory.mktemp("wheel")
    run = {"check": True, "capture_output": True, "text": True, "timeout": 1500,
           "env": {k: v for k, v in os.environ.items() if not k.startswith(("VIRTUAL_ENV", "UV_PROJECT"))}}
    subprocess.run([uv(), "build", "--wheel", "-o", str(root / "dist"), str(REPO)], **run)
    (wheel,) = (root / "dist").glob("airflow_provider_mlops-*.whl")
    constraints = subprocess.run([uv(), "export", "--frozen", "--no-hashes", "--no-emit-project", "--no-dev",
                                  "--project", str(REPO)], **run).stdout
    (root / "constraints.txt").write_text(constraints)
    venv = root / "venv"
    subprocess.run([uv(), "venv", "--python", os.sys.executable, str(venv)], **run)
    subprocess.run([uv(), "pip", "install", "--python", str(venv / "bin" / "python"), str(wheel),
                    "--constraint", str(root / "constraints.txt")], **run)
    return venv


def venv_env(venv: Path, home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "VIRTUAL_ENV", "PYTHONPATH"))}
    return {**env, "PATH": f"{venv / 'bin'}{os.pathsep}{env.get('PATH', '')}", "AIRFLOW_HOME": str(home),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False", "AIRFLOW__CORE__DAGS_FOLDER": str(home / "dags")}


def test_new_model_works_from_the_installed_wheel(wheel_venv, tmp_path):
    env = venv_env(wheel_venv, tmp_path)
    dags = tmp_path / "dags"
    # Nothing of the source tree is importable there: the package comes from site-packages.
    code = "import airflow_mlops; print(airflow_mlops.__file__)"
    located = subprocess.run([str(wheel_venv / "bin" / "python"), "-c", code], capture_output=True, text=True,
                             env=env, cwd=tmp_path, check=True).stdout
    assert "site-packages" in located and str(REPO) not in located
    completed = subprocess.run([str(wheel_venv / "bin" / "airflow-mlops"), "new-model", "churn", "--dags-folder",
                                str(dags)], capture_output=True, text=True, env=env, cwd=tmp_path, timeout=300)
    assert completed.returncode == 0, completed.stderr[-2000:]
    stub = (dags / "mlops_churn.py").read_text()
    assert "dags_for_file(__file__)" in stub
    assert (dags / "configs" / "churn.yaml").read_text().startswith("model: churn")


def test_init_into_an_existing_airflow_lists_the_bundled_dags_paused(wheel_venv, tmp_path):
    """What a team with an Airflow of its own does: install, `airflow-mlops init`, and the DAGs are there, paused,
    with the provider and its `mlflow` connection type registered."""
    import json

    env = {**venv_env(wheel_venv, tmp_path),
           "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{tmp_path / 'airflow.db'}"}
    bin_dir = wheel_venv / "bin"

    def run(*command: str) -> str:
        completed = subprocess.run([str(bin_dir / command[0]), *command[1:]], capture_output=True, text=True,
                                   env=env, cwd=tmp_path, timeout=600)
        assert completed.returncode == 0, f"{command}: {completed.stdout[-2000:]}{completed.stderr[-3000:]}"
        return completed.stdout

    def listed_json(*command: str) -> list:
        """Airflow's CLI prints warnings (graphviz missing...) on stdout before its JSON: take the JSON line."""
        lines = [line for line in run(*command).splitlines() if line.startswith("[")]
        assert lines, f"{command}: no JSON list in the output"
        return json.loads(lines[-1])

    run("airflow", "db", "migrate")
    written = run("airflow-mlops", "init")  # the DAGs folder comes from AIRFLOW__CORE__DAGS_FOLDER
    dags = tmp_path / "dags"
    assert (dags / "mlops_credit_risk.py").exists() and (dags / "configs" / "credit_risk.yaml").exists(), written
    (dags / "configs" / "credit_risk.yaml").write_text((dags / "configs" / "credit_risk.yaml").read_text()
                                                       + "# edited by the team\n")
    again = run("airflow-mlops", "init")
    assert "kept" in again and "# edited by the team" in (dags / "configs" / "credit_risk.yaml").read_text()

    run("airflow", "dags", "reserialize")
    listed = listed_json("airflow", "dags", "list", "-o", "json", "--columns", "dag_id,is_paused")
    paused = {row["dag_id"]: row["is_paused"] for row in listed}
    bundled = {f"mlops_{kind}__credit_risk" for kind in ("ct", "drift", "score", "rollback")}
    assert bundled <= set(paused), paused
    assert all(str(paused[dag_id]).lower() == "true" for dag_id in bundled), paused

    providers = listed_json("airflow", "providers", "list", "-o", "json")
    assert any(p["package_name"] == "airflow-provider-mlops" for p in providers), providers
    hooks = listed_json("airflow", "providers", "hooks", "-o", "json")
    assert any(h.get("connection_type") == "mlflow" for h in hooks), hooks
