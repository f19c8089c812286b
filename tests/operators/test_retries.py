"""Retrying after a failure half-way creates no second MLflow run, model version or promotion.

Faults are injected (the only mocks in the suite): each fires once, after the step's remote side effect
happened, then Airflow retries the task for real within the same DAG run.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from mlflow import MlflowClient

from airflow_mlops.hooks.mlflow import alias_version
from airflow_mlops.operators.base import MLOpsBaseOperator
from airflow_mlops.operators.registry import RegisterModelOperator
from tests.helpers import FIRST

pytestmark = pytest.mark.slow


def once(real, *, after: bool, when=lambda *a, **k: True):
    """Wrap a callable so its first matching call raises, after doing its work when ``after`` is set.

    A plain function (not a callable object), so it binds like the method it replaces.
    """
    fired = []

    def wrapper(*args, **kwargs):
        if fired or not when(*args, **kwargs):
            return real(*args, **kwargs)
        fired.append(True)
        if after:
            real(*args, **kwargs)
        raise RuntimeError("injected fault")

    return wrapper


def test_retries_reuse_runs_versions_and_promotions(project, monkeypatch):
    project.write_model("retry_ct", retries=1, retry_delay="0s")
    project.grow(FIRST)

    # 1st run: training fails after the model was logged; registration fails after the version exists.
    real_finish = MLOpsBaseOperator.finish_run
    monkeypatch.setattr(MLOpsBaseOperator, "finish_run", staticmethod(once(
        real_finish, after=False, when=lambda client, run_id, result=None, status="FINISHED":
        result is not None and "model_uri" in result)))
    monkeypatch.setattr(RegisterModelOperator, "_smoke_test", once(RegisterModelOperator._smoke_test, after=True))
    first = project.run("retry_ct", FIRST)
    assert first["state"] == "success", first["tasks"]
    assert first["tries"]["train"] == 2 and first["tries"]["register"] == 2
    assert len(project.task_runs("retry_ct", "train")) == 1
    client = project.client
    experiment = client.get_experiment_by_name("mlops/retry_ct").experiment_id
    assert len(client.search_logged_models(experiment_ids=[experiment])) == 1
    assert [str(v.version) for v in client.search_model_versions("name = 'retry_ct'")] == ["1"]
    assert alias_version(client, "retry_ct", "champion") == "1"

    # 2nd run: promotion fails between moving previous_champion and champion; the retry completes it once.
    real_alias = MlflowClient.set_registered_model_alias
    monkeypatch.setattr(MlflowClient, "set_registered_model_alias", once(
        real_alias, after=False, when=lambda self, name, alias, version: alias == "champion"))
    second_date = FIRST + timedelta(days=7)
    project.grow(second_date)
    # A generous margin so the challenger passes and promotion is exercised.
    project.write_model("retry_ct", retries=1, retry_delay="0s", **{"gate.non_inferiority_margin": 0.2})
    second = project.run("retry_ct", second_date)
    assert second["state"] == "success", second["tasks"]
    assert second["results"]["evaluate_gate"]["decision"] == "promote"
    assert second["tries"]["promote"] == 2
    assert sorted(str(v.version) for v in client.search_model_versions("name = 'retry_ct'")) == ["1", "2"]
    assert alias_version(client, "retry_ct", "champion") == "2"
    assert alias_version(client, "retry_ct", "previous_champion") == "1"
    assert alias_version(client, "retry_ct", "challenger") is None
    assert len(project.task_runs("retry_ct", "train")) == 2  # one per DAG run, none per try


def test_promotion_refuses_when_the_champion_moved(project):
    from airflow_mlops.operators.registry import AliasConflictError  # noqa: F401  (named in the failure)

    project.write_model("cas_ct", **{"gate.non_inferiority_margin": 0.2})
    project.grow(FIRST)
    assert project.run("cas_ct", FIRST)["state"] == "success"
    client = project.client
    second_date = FIRST + timedelta(days=7)
    project.grow(second_date)

    # Someone promotes by hand while the gate is running: simulate by moving the alias after the gate.
    from airflow_mlops.operators import gate as gate_module

    real_decision = gate_module.decision_for

    def decide_and_interfere(verdict, on_inconclusive):
        import mlflow

        version = mlflow.register_model("models:/cas_ct/1", "cas_ct").version
        client.set_registered_model_alias("cas_ct", "champion", version)
        return real_decision(verdict, on_inconclusive)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(gate_module, "decision_for", decide_and_interfere)
        run = project.run("cas_ct", second_date)
    assert run["tasks"]["promote"] == "failed"
    assert alias_version(client, "cas_ct", "champion") == "2"  # the manual promotion stands
    assert len(client.search_model_versions("name = 'cas_ct'")) == 3
