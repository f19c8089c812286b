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
