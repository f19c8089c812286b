"""Registration and promotion: the deployment state decides, the MLflow aliases follow.

* Registration finds the version of the model's run before creating one and deletes duplicates a lost HTTP
  response may have created, verifies the artifact (sha256, flavour, format), loads and scores it in a clean
  process that holds no credentials, and records the version as the ``challenger``.
* Promotion happens only when the gate decided ``promote`` or a human answered Approve, and it is one
  compare-and-set in the state table: the champion changes only if it is still the version the gate compared
  against. The ``champion`` / ``previous_champion`` aliases are then reconciled from the table.
"""

from __future__ import annotations

from typing import Any

from airflow_mlops.core import names
from airflow_mlops.core.errors import PromotionConflict
from airflow_mlops.links.mlflow import MLflowModelVersionLink, model_version_url
from airflow_mlops.operators.base import MLOpsBaseOperator, task_boundary

CHAMPION, CHALLENGER, PREVIOUS = names.CHAMPION, names.CHALLENGER, names.PREVIOUS_CHAMPION
AliasConflictError = PromotionConflict  # the name earlier releases raised

# Run in a fresh interpreter with no credentials in its environment: the verified model directory loads with
# MLflow alone and its pyfunc returns one probability per row.
_SMOKE_SCRIPT = """
import sys, numpy as np, pandas as pd, mlflow.pyfunc
model = mlflow.pyfunc.load_model(sys.argv[1])
sample = pd.read_parquet(sys.argv[2])
scores = np.asarray(model.predict(sample), dtype=float)
assert scores.shape == (len(sample),), f"predict returned shape {scores.shape} for {len(sample)} rows"
assert np.all(np.isfinite(scores)) and np.all((scores >= 0) & (scores <= 1)), "scores outside [0, 1]"
print(f"SMOKE_OK {len(scores)} mean={scores.mean():.4f}")
"""


class ModelNotApproved(RuntimeError):
    """Kept for code written against earlier releases; promotion now skips what was not approved."""


class RegisterModelOperator(MLOpsBaseOperator):
    """Register the gated model as a version and record it as the ``challenger`` (state table, then alias).

    Skips (with the gate's reasons in the log) when the gate's decision is ``reject``. Registers the refit model
    when the refit step made one, else the evaluated one. Before the version is recorded, its files are verified
    and it is loaded and scored in a clean Python process.

    :param gate: the result of the evaluation gate (or refit) task.
    :param smoke_test: load and score the version in a clean process before recording it.
    """

    template_fields = (*MLOpsBaseOperator.template_fields, "gate")
    operator_extra_links = (MLflowModelVersionLink(),)
    ui_color = "#f0e6f8"

    def __init__(self, *, gate: Any, smoke_test: bool = True, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.gate = gate
        self.smoke_test = smoke_test

    @task_boundary
    def execute(self, context) -> dict[str, Any]:
        from airflow.sdk.exceptions import AirflowSkipException

        from airflow_mlops.task_context import actor

        if self.gate["decision"] == "reject":
            raise AirflowSkipException(f"gate verdict {self.gate['verdict']}: challenger not registered")
        config = self.model_config
        hook = self.mlflow_hook
        name = config.registered_model_name
        run_id = self.gate.get("model_run_id") or self.gate["challenger_run_id"]
        with hook.session() as client:
            run = client.get_run(run_id)
        tags = run.data.tags
        integrity = {key: tags[key] for key in (names.MODEL_ARTIFACT_PATH, names.MODEL_SHA256, names.MODEL_FLAVOR,
                                                names.MODEL_FORMAT) if key in tags}
        version_tags = {**self.lineage_tags(context), **integrity, names.GATE_VERDICT: self.gate["verdict"],
                        names.DATA_FINGERPRINT: self.gate.get("data_fingerprint", ""),
                        names.GATE_CHAMPION_VERSION: self.gate.get("champion_version") or "",
                        names.REFIT: str(bool(self.gate.get("refit"))).lower()}
        deployments = self.deployments()
        row = deployments.current(actor=actor(context))
        if row.canary_active and not hook.version_of_run(name, row.challenger, run_id):
            # Registering now would swap the canary's challenger for a version that never went through it.
            raise AirflowSkipException(
                f"a canary of {config.model} version {row.challenger} is running (phase {row.phase}, step "
                f"{(row.step or 0) + 1}, weight {row.weight or 0:.0%}): this challenger (gate "
                f"{self.gate['verdict']}) is not registered; the next run after the canary ends will train again")
        source = f"{run.info.artifact_uri.rstrip('/')}/{integrity.get(names.MODEL_ARTIFACT_PATH, 'model')}"
        version = hook.find_or_create_version(name, run_id=run_id, source=source, tags=version_tags)
        hook.set_version_tags(name, version, integrity)  # a version created by an earlier try keeps its tags
        self.persist_links(context, model_version=model_version_url(self.ui_url, name, version))
        if row.challenger != version:  # read above; creating a version does not change the state
            self._verify_and_smoke_test(name, version, run_id)
        deployments.register_challenger(version, actor=actor(context))
        self.log.info("Registered %s version %s (challenger)", name, version)
        return {"name": name, "version": version, "run_id": run_id, "verdict": self.gate["verdict"]}

    def _verify_and_smoke_test(self, name: str, version: str, run_id: str) -> None:
        import os
        import subprocess
        import sys
        import tempfile

        from airflow_mlops.core.model_package import minimal_subprocess_env
        from airflow_mlops.core.training import prepare_features

        config = self.model_config
        hook = self.mlflow_hook
        # The registered version's own files, verified against what training recorded: loading runs code.
        uri, expected = hook.version_model(name, version)
        with hook.verified_model_dir(uri, expected=expected, allow_pickle=config.training.allow_pickle,
                                     what=f"{name} version {version}") as local:
            if not self.smoke_test:
                return
            sample = prepare_features(hook.load_frame(run_id, names.REFERENCE_ARTIFACT).head(200), config)
            with tempfile.TemporaryDirectory(prefix="mlops-smoke-") as scratch:
                sample_path = os.path.join(scratch, "sample.parquet")
                sample.to_parquet(sample_path, index=False)
                env = minimal_subprocess_env(scratch, allow_pickle=config.training.allow_pickle)
                completed = subprocess.run([sys.executable, "-c", _SMOKE_SCRIPT, local, sample_path],
                                           capture_output=True, text=True, timeout=600, cwd=scratch, env=env)
        if completed.returncode != 0 or "SMOKE_OK" not in completed.stdout:
            from airflow_mlops.core.errors import ModelIntegrityError

            tail = (completed.stderr or completed.stdout).strip().splitlines()[-5:]
            raise ModelIntegrityError(f"smoke test of {name}/{version} failed in a clean process: " + " | ".join(tail))
        self.log.info("Smoke test passed: %s", completed.stdout.strip())


def approved(gate: dict, approval: Any) -> tuple[bool, str]:
    """Whether promotion may proceed: the gate decided ``promote``, or a human answered Approve."""
    decision = gate.get("decision")
    if decision == "promote":
        return True, f"gate verdict {gate.get('verdict')}: promote"
    if decision == "approve":
        chosen = (approval or {}).get("chosen_options") if isinstance(approval, dict) else None
        if chosen == ["Approve"]:
            return True, "approved by a human after an inconclusive gate"
        return False, ("the gate was inconclusive and nobody approved the challenger "
                       f"(approval answer: {chosen or 'none'})")
    return False, f"gate decision {decision!r}: nothing to promote"


class PromoteModelOperator(MLOpsBaseOperator):
    """Make the registered challenger the champion: one compare-and-set in the deployment state, then the MLflow
    aliases follow (the old champion becomes ``previous_champion``, for rollback).

    Promotes only what was approved: the gate's decision ``promote``, or ``approve`` with an Approve answer from
    the approval task (``approval``). Anything else skips. Running it again after success is a no-op; if the
    champion changed since the gate ran, it fails (without retrying) with :class:`PromotionConflict`.

    :param gate: result of the evaluation gate (gives the champion version the challenger was compared to).
    :param registration: result of the register task.
    :param approval: result of the approval task, when the DAG has one.
    """

    template_fields = (*MLOpsBaseOperator.template_fields, "gate", "registration", "approval")
    operator_extra_links = (MLflowModelVersionLink(),)
    ui_color = "#d8f0e0"

    def __init__(self, *, gate: Any, registration: Any, approval: Any = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.gate = gate
        self.registration = registration
        self.approval = approval

    @task_boundary
    def execute(self, context) -> dict[str, Any]:
        from airflow.sdk.exceptions import AirflowSkipException

        from airflow_mlops.task_context import actor

        ok, why = approved(self.gate, self.approval)
        if not ok:
            raise AirflowSkipException(f"not promoting: {why}")
        if not self.registration:  # register was skipped (a canary is running, say): nothing to promote
            raise AirflowSkipException("not promoting: no version was registered by this run")
        name, new = self.registration["name"], str(self.registration["version"])
        expected = self.gate.get("champion_version")
        self.persist_links(context, model_version=model_version_url(self.ui_url, name, new))
        # Registration and promotion may be days apart (an approval): the files must still be the ones verified.
        self.mlflow_hook.verify_version(name, new, allow_pickle=self.model_config.training.allow_pickle)
        transition = self.deployments().promote(expected=expected, new=new, actor=actor(context),
                                                reason=f"{why}; " + "; ".join(self.gate.get("reasons") or []))
        if transition.applied:
            self.mlflow_hook.set_version_tags(name, new, {names.PROMOTED_BY: actor(context)})
        else:
            self.log.info("Version %s is already the champion of %s (earlier try)", new, name)
        row = transition.deployment
        self.log.info("Champion of %s: version %s (previous: %s)", name, row.champion, row.previous_champion)
        return {"name": name, "champion": row.champion, "previous_champion": row.previous_champion,
                "row_version": row.row_version}
