"""Retrying after a failure half-way creates no second MLflow run, model version or promotion.

Faults are injected (the only mocks in the suite): each fires once, after the step's remote side effect
happened, then Airflow retries the task for real within the same DAG run.
"""

from __future__ import annotations

from datetime import timedelta

import pytest

from airflow_mlops.hooks.mlflow import MLflowHook
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
    monkeypatch.setattr(MLOpsBaseOperator, "finish_run", once(
        real_finish, after=False, when=lambda self, run_id, result=None, status="FINISHED":
        result is not None and "model_uri" in result))
    monkeypatch.setattr(RegisterModelOperator, "_verify_and_smoke_test",
                        once(RegisterModelOperator._verify_and_smoke_test, after=True))
    first = project.run("retry_ct", FIRST)
    assert first["state"] == "success", first["tasks"]
    assert first["tries"]["train"] == 2 and first["tries"]["register"] == 2
    assert len(project.task_runs("retry_ct", "train")) == 1
    client = project.client
    assert [str(v.version) for v in client.search_model_versions("name = 'retry_ct'")] == ["1"]
    assert project.mlflow.alias_version("retry_ct", "champion") == "1"

    # 2nd run: promotion fails after the state table chose the new champion, while the aliases were moving
    # (a crash between the decision and the slower system); the retry finds the decision made and heals them.
    real_alias = MLflowHook.set_alias
    monkeypatch.setattr(MLflowHook, "set_alias", once(
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
    assert project.mlflow.alias_version("retry_ct", "champion") == "2"
    assert project.mlflow.alias_version("retry_ct", "previous_champion") == "1"
    assert project.mlflow.alias_version("retry_ct", "challenger") is None
    assert len(project.task_runs("retry_ct", "train")) == 2  # one per DAG run, none per try
    # One promotion in the log, not two.
    actions = [row["action"] for row in project.state("retry_ct").history("retry_ct")]
    assert actions.count("promote") == 2 and actions[0] == "import"  # v1 and v2, once each


def test_promotion_refuses_when_the_champion_moved(project):
    """Another promotion wins between the gate and this promotion: this one fails at once (no retry) and the
    other one stands; nothing is lost from the log."""
    from airflow_mlops.operators import gate as gate_module

    project.write_model("cas_ct", retries=2, retry_delay="0s", **{"gate.non_inferiority_margin": 0.2})
    project.grow(FIRST)
    assert project.run("cas_ct", FIRST)["state"] == "success"
    second_date = FIRST + timedelta(days=7)
    project.grow(second_date)
    state = project.state("cas_ct")
    real_decision = gate_module.decision_for

    def decide_and_interfere(*args, **kwargs):
        # Someone promotes another version through the state (a concurrent run, the rollback command...).
        version = project.client.create_model_version("cas_ct", "models:/cas_ct/1").version
        state.promote("cas_ct", expected="1", new=str(version), actor="someone else", reason="manual")
        return real_decision(*args, **kwargs)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(gate_module, "decision_for", decide_and_interfere)
        run = project.run("cas_ct", second_date)
    assert run["tasks"]["promote"] == "failed" and run["tries"]["promote"] == 1
    deployment = state.get("cas_ct")
    assert deployment.champion == "2" and deployment.challenger == "3"
    assert project.mlflow.alias_version("cas_ct", "champion") == "2"  # the other promotion stands
    log = [(r["action"], r["from_version"], r["to_version"]) for r in state.history("cas_ct")]
    assert log == [("import", None, None), ("register", None, "1"), ("promote", None, "1"), ("promote", "1", "2"),
                   ("register", None, "3")]
    assert state.history("cas_ct")[3]["actor"] == "someone else"
