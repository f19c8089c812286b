"""Canary operators under faults and bad input: a retried scoring run, a crash between the decision and the alias
move, dry runs, and each bad input refused or reported with a clear message and no state change."""

from __future__ import annotations

from datetime import timedelta

import pytest

from airflow_mlops.demo.harness import run_dag
from tests.e2e.test_canary_dag import CANARY, SECOND, start_canary

pytestmark = pytest.mark.slow


def log_rows(project, model: str) -> list:
    return project.sql("SELECT scoring_run, entity_id, arm, count(*) FROM mlops_prediction_log WHERE model = ? "
                       "GROUP BY scoring_run, entity_id, arm", (model,))


def test_a_retried_scoring_run_leaves_one_row_per_entity_and_arm(project, monkeypatch):
    from airflow_mlops import batch_scoring

    model = "score_retry"
    start_canary(project, model, retries=1, retry_delay="0s", **{"scoring.chunk_size": 100})
    real, calls = batch_scoring.score_chunk, []

    def fails_on_the_second_chunk(*args, **kwargs):  # the injected fault: half-way through the batch
        calls.append(1)
        if len(calls) == 2:
            raise ConnectionError("worker lost its connection")
        return real(*args, **kwargs)

    monkeypatch.setattr(batch_scoring, "score_chunk", fails_on_the_second_chunk)
    day = SECOND + timedelta(days=1)
    project.grow(day)
    run = run_dag(f"mlops_score__{model}", day)
    assert run["state"] == "success" and run["tries"]["score"] == 2
    rows = log_rows(project, model)
    assert len(rows) == 2 * 300 and {count for *_, count in rows} == {1}
    assert len({run_id for run_id, *_ in rows}) == 1
    published = project.sql(f"SELECT count(*), count(DISTINCT entity_id) FROM {model}_predictions")
    assert published == [(300, 300)]


def test_a_crash_between_the_decision_and_the_alias_move_heals_on_the_next_look(project):
    from airflow_mlops.hooks.mlflow import MLflowHook
    from tests.operators.test_retries import once

    model = "canary_heal"
    start_canary(project, model, **{"canary.steps": [0.0], "canary.min_labels_per_step": 200})
    project.grow(SECOND + timedelta(days=1))
    assert run_dag(f"mlops_score__{model}", SECOND + timedelta(days=1))["state"] == "success"
    project.grow(SECOND + timedelta(days=2))
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(MLflowHook, "set_alias", once(MLflowHook.set_alias, after=False,
                                                    when=lambda self, name, alias, version: alias == "champion"))
        look = run_dag(f"mlops_canary__{model}", SECOND + timedelta(days=2))
    assert look["results"]["analyse"]["action"] == "promote" and look["tasks"]["apply_decision"] == "failed"
    assert project.state(model).get(model).champion == "2"  # decided...
    assert project.mlflow.alias_version(model, "champion") == "1"  # ...but the alias never moved
    again = run_dag(f"mlops_canary__{model}", SECOND + timedelta(days=2))
    assert again["tasks"]["analyse"] == "skipped"  # nothing runs any more, and the aliases were reconciled
    assert project.mlflow.alias_version(model, "champion") == "2"
    assert project.mlflow.alias_version(model, "previous_champion") == "1"


def test_a_dry_run_reports_the_decision_without_acting(project):
    model = "canary_dry"
    start_canary(project, model, **{"canary.steps": [0.0], "canary.min_labels_per_step": 200,
                                    "canary.dry_run": True})
    for days in (1, 2):
        project.grow(SECOND + timedelta(days=days))
        run_dag(f"mlops_score__{model}", SECOND + timedelta(days=days))
    look = run_dag(f"mlops_canary__{model}", SECOND + timedelta(days=2))
    assert look["results"]["analyse"]["action"] == "promote"
    assert look["results"]["apply_decision"] == {"action": "promote", "applied": False, "dry_run": True,
                                                 "reason": look["results"]["analyse"]["reason"]}
    row = project.state(model).get(model)
    assert (row.phase, row.champion, row.challenger) == ("shadow", "1", "2")


def test_bad_input_is_refused_with_a_clear_message_and_no_state_change(project):
    model = "canary_bad_input"
    start_canary(project, model, retries=2, retry_delay="0s")
    before = project.state(model).get(model).row_version
    day = SECOND + timedelta(days=1)
    project.grow(day)

    # an entity id twice in one batch: nothing written
    project.sql("INSERT INTO loans SELECT loan_id, applied_at, income, amount, term, purpose, region, defaulted "
                "FROM loans WHERE applied_at >= ? LIMIT 1", (str(SECOND),))
    run = run_dag(f"mlops_score__{model}", day)
    assert run["tasks"]["score"] == "failed" and run["tries"]["score"] == 1
    assert log_rows(project, model) == []
    project.sql("DELETE FROM loans WHERE rowid = (SELECT max(rowid) FROM loans)")

    # a row without an entity id: nothing written
    project.sql("UPDATE loans SET loan_id = NULL WHERE rowid = (SELECT max(rowid) FROM loans)")
    run = run_dag(f"mlops_score__{model}", day)
    assert run["tasks"]["score"] == "failed" and run["tries"]["score"] == 1 and log_rows(project, model) == []
    project.sql("DELETE FROM loans WHERE loan_id IS NULL")

    # the challenger deleted from the registry: scoring refuses (no retries) and says how to get out
    project.client.delete_model_version(model, "2")
    run = run_dag(f"mlops_score__{model}", day)
    assert run["tasks"]["score"] == "failed" and run["tries"]["score"] == 1

    # a labels table that does not exist: the look fails clearly, nothing changes
    project.write_model(model, retries=2, retry_delay="0s", **{**CANARY, "canary.labels.table": "no_such_labels"})
    look = run_dag(f"mlops_canary__{model}", day)
    assert look["tasks"]["wait_for_labels"] == "failed" and look["tries"]["wait_for_labels"] == 1
    assert project.state(model).get(model).row_version == before


def test_matured_predictions_without_a_label_are_reported(project):
    model = "canary_labels"
    start_canary(project, model, **{"canary.labels.table": "outcomes", "canary.labels.entity_id": "loan_id",
                                    "canary.labels.label": "defaulted", "canary.min_labels_per_step": 100})
    project.grow(SECOND + timedelta(days=1))
    run_dag(f"mlops_score__{model}", SECOND + timedelta(days=1))
    # 20 outcomes have not arrived; two outcomes are for loans the canary never scored (ignored, not counted)
    project.sql("CREATE TABLE outcomes AS SELECT loan_id, defaulted FROM loans WHERE applied_at >= ? "
                "AND loan_id NOT IN (SELECT loan_id FROM loans WHERE applied_at >= ? ORDER BY loan_id LIMIT 20)",
                (str(SECOND), str(SECOND)))
    project.sql("INSERT INTO outcomes VALUES ('never-scored-1', 1), ('never-scored-2', 0)")
    look = run_dag(f"mlops_canary__{model}", SECOND + timedelta(days=2))
    analysis = look["results"]["analyse"]
    assert analysis["labelled"] == 280 and analysis["unlabelled"] == 20
    assert "(20 matured prediction(s) have no label yet: late outcomes, or canary.labels" in analysis["reason"]


def test_rollback_by_command_and_by_dag_param_through_the_atomic_path(project, capsys):
    from airflow.dag_processing.dagbag import DagBag

    from airflow_mlops.cli import main

    model = "canary_rollback"
    start_canary(project, model)
    config = str(project.dags_folder / "configs" / f"{model}.yaml")
    state = project.state(model)
    row = state.get(model)
    assert row.phase == "shadow"
    # v2 wins its canary; then a canary of v3 runs when someone rolls back: the canary ends, v2 keeps serving.
    state.apply_canary_decision(model, row_version=row.row_version, action="promote", reason="test", actor="t")
    version_2 = project.client.get_model_version(model, "2")
    project.client.create_model_version(model, version_2.source, run_id=version_2.run_id)
    state.start_canary(model, challenger="3", expected_champion="2", steps=[0.0], actor="t")
    assert main(["rollback", model, "--config", config, "--reason", "paged at 3am"]) == 0
    assert "the canary of version 3 is ended; version 2 serves alone" in capsys.readouterr().out
    row = state.get(model)
    assert (row.champion, row.previous_champion, row.challenger, row.phase) == ("2", "1", None, "rolled_back")
    assert project.mlflow.alias_version(model, "champion") == "2"
    assert project.mlflow.alias_version(model, "challenger") is None
    assert state.history(model)[-1]["action"] == "rollback_canary"
    assert state.history(model)[-1]["reason"] == "paged at 3am"
    # No canary now: the next rollback restores the previous champion.
    assert main(["rollback", model, "--config", config, "--reason", "v2 misbehaves"]) == 0
    assert "champion is version 1 again (was 2)" in capsys.readouterr().out
    assert (state.get(model).champion, state.get(model).previous_champion) == ("1", "2")
    assert project.mlflow.alias_version(model, "champion") == "1"
    # Roll forward again with the manual-trigger DAG and its reason param: the same atomic path.
    dag = DagBag(str(project.dags_folder)).get_dag(f"mlops_rollback__{model}")
    assert str(dag.test(run_conf={"reason": "roll forward"}).state) == "success"
    assert (state.get(model).champion, state.history(model)[-1]["reason"]) == ("2", "roll forward")
    assert project.mlflow.alias_version(model, "champion") == "2"


def test_a_ct_run_during_a_canary_does_not_register_over_its_challenger(project):
    model = "canary_busy"
    start_canary(project, model)
    third = SECOND + timedelta(days=7)
    project.grow(third)
    run = project.run(model, third)  # next week's scheduled training while v2's canary runs
    assert run["tasks"]["register"] == "skipped" and run["tasks"]["start_canary"] == "skipped", run["tasks"]
    assert run["tasks"]["promote"] == "skipped"
    row = project.state(model).get(model)
    assert (row.phase, row.champion, row.challenger) == ("shadow", "1", "2")
    assert sorted(int(v.version) for v in project.client.search_model_versions(f"name = '{model}'")) == [1, 2]


def test_a_rollback_whose_alias_move_fails_is_done_and_says_so(project, capsys):
    from airflow_mlops.cli import main
    from airflow_mlops.hooks.mlflow import MLflowHook
    from tests.operators.test_retries import once

    model = "rollback_alias"
    start_canary(project, model)
    config = str(project.dags_folder / "configs" / f"{model}.yaml")
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(MLflowHook, "set_alias", once(MLflowHook.set_alias, after=False))
        assert main(["rollback", model, "--config", config]) == 0
    out, err = capsys.readouterr()
    assert "the canary of version 2 is ended" in out
    assert "the MLflow aliases were not moved" in err and "Do not run the rollback again" in err
    row = project.state(model).get(model)
    assert (row.phase, row.champion, row.challenger) == ("rolled_back", "1", None)
    # The next task of the model reconciles the aliases from the state.
    project.grow(SECOND + timedelta(days=1))
    assert run_dag(f"mlops_score__{model}", SECOND + timedelta(days=1))["state"] == "success"
    assert project.mlflow.alias_version(model, "challenger") is None
    assert project.mlflow.alias_version(model, "champion") == "1"
