"""Registration and promotion with MLflow aliases (``challenger``, ``champion``, ``previous_champion``).

Registration finds the version of this training run before creating one, so a retry never makes a second
version. Promotion is compare-and-set: the champion alias moves only if it still points at the version the
gate compared against; otherwise another promotion happened in between and we refuse.
"""

from __future__ import annotations

from typing import Any

from airflow_mlops.links.mlflow import MLflowModelVersionLink, model_version_url
from airflow_mlops.operators.base import MLOpsBaseOperator

CHAMPION, CHALLENGER, PREVIOUS = "champion", "challenger", "previous_champion"

# Run in a fresh interpreter: proves the registered model loads from the registry alone and scores rows.
_SMOKE_SCRIPT = """
import sys, numpy as np, pandas as pd, mlflow.pyfunc
model = mlflow.pyfunc.load_model(sys.argv[1])
sample = pd.read_parquet(sys.argv[2])
raw = model.get_raw_model() if hasattr(model, "get_raw_model") else model.unwrap_python_model()
scores = np.asarray(raw.predict_proba(sample))[:, 1]
assert len(scores) == len(sample) and np.all(np.isfinite(scores)) and np.all((scores >= 0) & (scores <= 1))
print(f"SMOKE_OK {len(scores)}")
"""


class AliasConflictError(RuntimeError):
    """The champion alias moved since the gate ran; promoting now would overwrite someone else's decision."""


class ModelNotApproved(RuntimeError):
    """The gate rejected the challenger."""


class RegisterModelOperator(MLOpsBaseOperator):
    """Register the gated challenger as a model version and point the ``challenger`` alias at it.

    Skips (with the gate's reasons in the log) when the gate's decision is ``reject``. Before the alias is
    set, the version is loaded in a clean Python process and scores a sample of the training data.

    :param gate: the result of the evaluation gate task (usually ``evaluate_gate.output``).
    :param smoke_test: load and score the version in a clean process before setting the alias.
    """

    template_fields = (*MLOpsBaseOperator.template_fields, "gate")
    operator_extra_links = (MLflowModelVersionLink(),)
    ui_color = "#f0e6f8"

    def __init__(self, *, gate: Any, smoke_test: bool = True, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.gate = gate
        self.smoke_test = smoke_test

    def execute(self, context) -> dict[str, Any]:
        from airflow.sdk.exceptions import AirflowSkipException

        from airflow_mlops.hooks.mlflow import alias_version

        if self.gate["decision"] == "reject":
            raise AirflowSkipException(f"gate verdict {self.gate['verdict']}: challenger not registered")
        config = self.model_config
        name = config.registered_model_name
        run_id = self.gate["challenger_run_id"]
        with self.mlflow_hook.session() as client:
            version = self._find_or_register(client, name, run_id, context)
            self.persist_links(context, model_version=model_version_url(self.ui_url, name, version))
            if alias_version(client, name, CHALLENGER) != version:
                if self.smoke_test:
                    self._smoke_test(client, name, version, run_id)
                client.set_registered_model_alias(name, CHALLENGER, version)
        self.log.info("Registered %s version %s (alias %s)", name, version, CHALLENGER)
        return {"name": name, "version": version, "run_id": run_id, "verdict": self.gate["verdict"]}

    def _find_or_register(self, client, name: str, run_id: str, context) -> str:
        import time

        import mlflow
        from mlflow.exceptions import MlflowException

        existing = client.search_model_versions(f"name = '{name}' and run_id = '{run_id}'")
        if existing:
            version = str(existing[0].version)
            self.log.info("Version %s of %s already registered for run %s (earlier try)", version, name, run_id)
        else:
            tags = {**self.lineage_tags(context), "mlops.gate.verdict": self.gate["verdict"],
                    "mlops.data_fingerprint": self.gate.get("data_fingerprint", "")}
            version = str(mlflow.register_model(self.gate["model_uri"], name, tags=tags).version)
        deadline = time.monotonic() + 300
        while (status := client.get_model_version(name, version).status) != "READY":
            if status == "FAILED_REGISTRATION" or time.monotonic() > deadline:
                raise MlflowException(f"model version {name}/{version} is {status}, not READY")
            time.sleep(1)
        return version

    def _smoke_test(self, client, name: str, version: str, run_id: str) -> None:
        import os
        import subprocess
        import sys
        import tempfile

        from airflow_mlops.core.training import prepare_features
        from airflow_mlops.hooks.mlflow import load_frame
        from airflow_mlops.operators.training import REFERENCE_ARTIFACT

        settings = self.mlflow_hook.settings
        sample = prepare_features(load_frame(client, run_id, REFERENCE_ARTIFACT).head(200), self.model_config)
        env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_TRACKING_")}
        env["MLFLOW_TRACKING_URI"] = settings.tracking_uri
        env["MLFLOW_REGISTRY_URI"] = settings.registry_uri or settings.tracking_uri
        if settings.authorization and settings.authorization.startswith("Bearer "):
            # Only this child process sees the token (MLflow reads it from the environment).
            env["MLFLOW_TRACKING_TOKEN"] = settings.authorization.removeprefix("Bearer ")
        with tempfile.TemporaryDirectory() as tmp:
            path = os.path.join(tmp, "sample.parquet")
            sample.to_parquet(path, index=False)
            completed = subprocess.run([sys.executable, "-c", _SMOKE_SCRIPT, f"models:/{name}/{version}", path],
                                       env=env, capture_output=True, text=True, timeout=600)
        if completed.returncode != 0 or "SMOKE_OK" not in completed.stdout:
            tail = (completed.stderr or completed.stdout).strip().splitlines()[-5:]
            raise RuntimeError(f"smoke test of {name}/{version} failed in a clean process: " + " | ".join(tail))
        self.log.info("Smoke test passed: %s", completed.stdout.strip())


class PromoteModelOperator(MLOpsBaseOperator):
    """Make the registered challenger the champion (compare-and-set on the ``champion`` alias).

    The old champion keeps the ``previous_champion`` alias (for rollback). Running it again after success is
    a no-op; if the champion moved since the gate ran, it raises :class:`AliasConflictError`.

    :param gate: result of the evaluation gate (gives the champion version the challenger was compared to).
    :param registration: result of the register task.
    """

    template_fields = (*MLOpsBaseOperator.template_fields, "gate", "registration")
    operator_extra_links = (MLflowModelVersionLink(),)
    ui_color = "#d8f0e0"

    def __init__(self, *, gate: Any, registration: Any, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.gate = gate
        self.registration = registration

    def execute(self, context) -> dict[str, Any]:
        from airflow_mlops.hooks.mlflow import alias_version

        if self.gate["decision"] == "reject":
            raise ModelNotApproved(f"gate verdict {self.gate['verdict']}: refusing to promote")
        name, new = self.registration["name"], str(self.registration["version"])
        expected = self.gate.get("champion_version")
        with self.mlflow_hook.session() as client:
            self.persist_links(context, model_version=model_version_url(self.ui_url, name, new))
            current = alias_version(client, name, CHAMPION)
            if current == new:
                self.log.info("Version %s is already the champion of %s (earlier try)", new, name)
            elif current != expected:
                raise AliasConflictError(
                    f"the champion of {name} is version {current}, but the gate compared against "
                    f"{expected or 'no champion'}: another promotion happened meanwhile; not overwriting it")
            else:
                if expected is not None:
                    client.set_registered_model_alias(name, PREVIOUS, expected)
                client.set_registered_model_alias(name, CHAMPION, new)
                if alias_version(client, name, CHAMPION) != new:
                    raise AliasConflictError(f"the champion alias of {name} changed while promoting version {new}")
                dag_id, run_id = self.run_identity(context)
                client.set_model_version_tag(name, new, "mlops.promoted_by", f"{dag_id}/{run_id}")
            if alias_version(client, name, CHALLENGER) == new:
                client.delete_registered_model_alias(name, CHALLENGER)
        self.log.info("Champion of %s: version %s (previous: %s)", name, new, expected)
        return {"name": name, "champion": new, "previous_champion": expected}
