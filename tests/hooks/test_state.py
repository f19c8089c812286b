"""Deployment state (SQLite and the local PostgreSQL): versioned migrations, compare-and-set promotion, and
concurrent promotions from separate processes with exactly one winner and nothing lost."""

from __future__ import annotations

import json
import subprocess
import sys
import time

import pytest

from airflow_mlops.core.errors import PromotionConflict
from airflow_mlops.hooks.database import Database
from airflow_mlops.hooks.dialects import PARAM
from airflow_mlops.hooks.state import MIGRATIONS, StateStore
from tests.conftest import POSTGRES_URL


@pytest.fixture(params=["sqlite", "postgres"])
def store_spec(request, tmp_path):
    """(database URI, schema) of a fresh state store in each dialect."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'state.db'}", None
    return POSTGRES_URL, request.getfixturevalue("postgres_schema")


def store(spec) -> StateStore:
    uri, schema = spec
    return StateStore(Database.from_uri(uri), schema=schema)


def test_migrations_are_versioned_and_idempotent(store_spec):
    state = store(store_spec)
    assert state.schema_version() == 0
    assert state.migrate() == MIGRATIONS[-1][0]
    assert store(store_spec).migrate() == MIGRATIONS[-1][0]  # a second process: nothing to do
    assert store(store_spec).schema_version() == MIGRATIONS[-1][0]


def _log_indexes(state: StateStore) -> set[str]:
    if state.dialect.name == "sqlite":
        rows = state.db.read_sql(f"SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = {PARAM}",
                                 ["mlops_prediction_log"])
    else:
        rows = state.db.read_sql(f"SELECT indexname AS name FROM pg_indexes WHERE schemaname = {PARAM} "
                                 f"AND tablename = {PARAM}", [state.schema, "mlops_prediction_log"])
    return set(rows["name"])


def test_upgrading_a_version_2_store_drops_the_entity_index_and_keeps_the_log(store_spec, monkeypatch):
    from airflow_mlops.hooks import state as state_module

    monkeypatch.setattr(state_module, "MIGRATIONS", MIGRATIONS[:2])  # a store made by the previous release
    old = store(store_spec)
    assert old.migrate() == 2 and "mlops_prediction_log_entity_idx" in _log_indexes(old)
    columns = ["model", "scoring_run", "entity_id", "model_version", "arm", "published", "scored_at"]
    with old.db.bulk_writer(old.table("mlops_prediction_log"), columns) as write:
        write([("m", "r1", "e1", "1", "champion", 1, "2025-01-01T00:00:00")])
    monkeypatch.setattr(state_module, "MIGRATIONS", MIGRATIONS)
    monkeypatch.setattr(state_module, "_MIGRATED", set())  # a new process of the new release
    upgraded = store(store_spec)
    assert upgraded.migrate() == 3 and upgraded.schema_version() == 3
    assert "mlops_prediction_log_entity_idx" not in _log_indexes(upgraded)
    assert "mlops_prediction_log_canary_idx" in _log_indexes(upgraded)
    log_table = upgraded.dialect.quote(upgraded.table("mlops_prediction_log"))
    log = upgraded.db.read_sql(f"SELECT entity_id FROM {log_table}")
    assert log["entity_id"].tolist() == ["e1"]


def test_compare_and_set_promotion(store_spec):
    state = store(store_spec)
    first = state.ensure("m", registered_model="m", actor="import")
    assert (first.champion, first.row_version) == (None, 1)
    done = state.promote("m", expected=None, new="1", actor="run-1", reason="first model")
    assert done.applied and (done.deployment.champion, done.deployment.previous_champion) == ("1", None)
    again = state.promote("m", expected=None, new="1", actor="run-1 retry")  # a retry after success
    assert not again.applied and again.deployment.row_version == done.deployment.row_version
    second = state.promote("m", expected="1", new="2", actor="run-2")
    assert (second.deployment.champion, second.deployment.previous_champion) == ("2", "1")
    with pytest.raises(PromotionConflict, match="is version 2 .promote by run-2 .*taken against 1"):
        state.promote("m", expected="1", new="3", actor="run-3")
    assert state.get("m").champion == "2"
    log = [(r["row_version"], r["action"], r["from_version"], r["to_version"]) for r in state.history("m")]
    assert log == [(1, "import", None, None), (2, "promote", None, "1"), (3, "promote", "1", "2")]


def test_existing_rows_are_never_overwritten_by_an_import(store_spec):
    state = store(store_spec)
    state.ensure("m", registered_model="m", champion="4", previous_champion="3", actor="import")
    assert state.ensure("m", registered_model="m", champion="9", actor="other").champion == "4"


RACE = """
import json, sys, time
from airflow_mlops.core.errors import PromotionConflict
from airflow_mlops.hooks.database import Database
from airflow_mlops.hooks.dialects import PARAM
from airflow_mlops.hooks.state import StateStore
uri, schema, new, start = sys.argv[1], sys.argv[2] or None, sys.argv[3], float(sys.argv[4])
state = StateStore(Database.from_uri(uri), schema=schema)
state.migrate()
time.sleep(max(0.0, start - time.time()))
try:
    print(json.dumps({"won": state.promote("m", expected="1", new=new, actor="proc-" + new).applied}))
except PromotionConflict as error:
    print(json.dumps({"won": False, "conflict": str(error)}))
"""


def test_concurrent_promotions_in_separate_processes_have_one_winner(store_spec):
    state = store(store_spec)
    state.ensure("m", registered_model="m", champion="1", actor="import")
    uri, schema = store_spec
    start = time.time() + 6  # after every interpreter has started and migrated
    contenders = ["2", "3", "4"]
    processes = [subprocess.Popen([sys.executable, "-c", RACE, uri, schema or "", new, str(start)],
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for new in contenders]
    results = []
    for process in processes:
        out, err = process.communicate(timeout=120)
        assert process.returncode == 0, err[-2000:]
        results.append(json.loads(out.strip().splitlines()[-1]))
    winners = [new for new, result in zip(contenders, results, strict=True) if result["won"]]
    assert len(winners) == 1, results
    assert all("another promotion won" in r["conflict"] for r in results if not r["won"])
    row = state.get("m")
    assert (row.champion, row.previous_champion) == (winners[0], "1")  # the overwritten champion is kept
    promotions = [r for r in state.history("m") if r["action"] == "promote"]
    assert [(r["from_version"], r["to_version"]) for r in promotions] == [("1", winners[0])]


def test_promoting_the_champion_over_itself_keeps_the_rollback_target(store_spec):
    """A re-run compares the champion with itself (PASS) and promotes it again: nothing may change, above all
    not previous_champion (it became the champion itself, and the version to roll back to was lost)."""
    state = store(store_spec)
    state.ensure("m", registered_model="m", champion="1", actor="import")
    state.promote("m", expected="1", new="2", actor="run")
    again = state.promote("m", expected="2", new="2", actor="re-run")
    assert not again.applied and (again.deployment.champion, again.deployment.previous_champion) == ("2", "1")
    assert [r["action"] for r in state.history("m")] == ["import", "promote"]


ENSURE = """
import json, sys, time
from airflow_mlops.hooks.database import Database
from airflow_mlops.hooks.dialects import PARAM
from airflow_mlops.hooks.state import StateStore
state = StateStore(Database.from_uri(sys.argv[1]), schema=sys.argv[2] or None)
state.migrate()
time.sleep(max(0.0, float(sys.argv[3]) - time.time()))
print(json.dumps(state.ensure("m", registered_model="m", champion="1", actor=sys.argv[4]).champion))
"""


def test_first_runs_racing_to_create_the_state_both_succeed(store_spec):
    """The CT and drift DAGs of a new model may both create its row at once: on PostgreSQL the log entry of
    the loser hit a duplicate key and failed its task for good."""
    uri, schema = store_spec
    store(store_spec).migrate()
    start = time.time() + 5
    processes = [subprocess.Popen([sys.executable, "-c", ENSURE, uri, schema or "", str(start), f"p{i}"],
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for i in range(4)]
    for process in processes:
        out, err = process.communicate(timeout=120)
        assert process.returncode == 0, err[-2000:]
        assert json.loads(out.strip().splitlines()[-1]) == "1"
    assert [r["action"] for r in store(store_spec).history("m")] == ["import"]


@pytest.mark.postgres
def test_a_dict_cursor_connection_still_reads_rows(postgres_schema, monkeypatch):
    """Postgres connections may ask for dict rows in their extras; the state store reads rows by position."""
    from airflow_mlops.hooks.data import SqlDataHook

    monkeypatch.setenv("AIRFLOW_CONN_DICTS", json.dumps({
        "conn_type": "postgres", "host": "127.0.0.1", "port": 5432, "login": "postgres", "schema": "test",
        "extra": {"cursor": "dictcursor"}}))
    state = StateStore(SqlDataHook("dicts").database, schema=postgres_schema)
    assert state.ensure("m", registered_model="m", champion="7", actor="x").champion == "7"
    assert state.get("m").champion == "7" and state.migrate() == MIGRATIONS[-1][0]


def test_a_canary_is_refused_while_one_runs_and_against_a_moved_champion(store_spec):
    from airflow_mlops.core.errors import CanaryRefused

    state = store(store_spec)
    state.ensure("m", registered_model="m", champion="1", actor="import")
    started = state.start_canary("m", challenger="2", expected_champion="1", steps=[0.0, 0.5], actor="ct")
    assert started.applied and started.deployment.phase == "shadow" and len(started.deployment.salt) == 16
    assert not state.start_canary("m", challenger="2", expected_champion="1", steps=[0.0], actor="retry").applied
    with pytest.raises(CanaryRefused, match="a canary of m version 2 is running since .* not starting one for "
                                            "version 3"):
        state.start_canary("m", challenger="3", expected_champion="1", steps=[0.0], actor="ct")
    assert state.get("m").row_version == started.deployment.row_version  # no state change


DECIDE = """
import json, sys, time
from airflow_mlops.core.errors import PromotionConflict
from airflow_mlops.hooks.database import Database
from airflow_mlops.hooks.dialects import PARAM
from airflow_mlops.hooks.state import StateStore
uri, schema, action = sys.argv[1], sys.argv[2] or None, sys.argv[3]
row_version, start = int(sys.argv[4]), float(sys.argv[5])
state = StateStore(Database.from_uri(uri), schema=schema)
state.migrate()
time.sleep(max(0.0, start - time.time()))
try:
    applied = state.apply_canary_decision("m", row_version=row_version, action=action, reason="look", actor=action,
                                          next_step=1, next_weight=0.5).applied
    print(json.dumps({"applied": applied}))
except PromotionConflict as error:
    print(json.dumps({"applied": False, "conflict": str(error)}))
"""


def test_concurrent_decisions_on_one_deployment_exactly_one_applies(store_spec):
    state = store(store_spec)
    state.ensure("m", registered_model="m", champion="1", actor="import")
    row = state.start_canary("m", challenger="2", expected_champion="1", steps=[0.0, 0.5], actor="ct").deployment
    uri, schema = store_spec
    start = time.time() + 5
    actions = ["advance", "rollback", "promote"]
    processes = [subprocess.Popen([sys.executable, "-c", DECIDE, uri, schema or "", action, str(row.row_version),
                                   str(start)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
                 for action in actions]
    results = []
    for process in processes:
        out, err = process.communicate(timeout=120)
        assert process.returncode == 0, err[-2000:]
        results.append(json.loads(out.strip().splitlines()[-1]))
    winners = [action for action, result in zip(actions, results, strict=True) if result["applied"]]
    assert len(winners) == 1, results
    assert all("another decision was applied first" in r["conflict"] or "changed meanwhile" in r["conflict"]
               for r in results if not r["applied"])
    decisions = [r["action"] for r in state.history("m") if r["action"].startswith("canary_")]
    assert decisions == [f"canary_{winners[0]}"]


def test_a_running_canary_keeps_its_challenger_and_rejects_a_malformed_advance(store_spec):
    from airflow_mlops.core.errors import CanaryRefused

    state = store(store_spec)
    state.ensure("m", registered_model="m", champion="1", actor="import")
    row = state.start_canary("m", challenger="2", expected_champion="1", steps=[0.0, 0.05, 0.5], actor="ct").deployment
    # A weekly CT run registers v3 while v2's canary runs: v3 must not inherit v2's canary (and be promoted by it).
    with pytest.raises(CanaryRefused, match="a canary of m version 2 is running .* version 3 cannot become"):
        state.set_challenger("m", "3", actor="ct-next-week")
    assert state.set_challenger("m", "2", actor="retry").applied is False  # the same challenger: a no-op
    with pytest.raises(ValueError, match="an advance needs a later step and its weight"):
        state.apply_canary_decision("m", row_version=row.row_version, action="advance", reason="", actor="t")
    after = state.get("m")
    assert (after.challenger, after.step, after.weight, after.row_version) == ("2", 0, 0.0, row.row_version)


def test_rollback_by_hand_ends_a_canary_and_keeps_the_champion(store_spec):
    from airflow_mlops.core.errors import CanaryRefused

    state = store(store_spec)
    state.ensure("m", registered_model="m", champion="1", actor="import")
    # The first model's canary: nothing to restore, but the canary can always be stopped.
    state.start_canary("m", challenger="2", expected_champion="1", steps=[0.0, 0.5], actor="ct")
    ended = state.rollback("m", actor="oncall", reason="stop it").deployment
    assert (ended.champion, ended.previous_champion, ended.challenger, ended.phase) == ("1", None, None,
                                                                                         "rolled_back")
    assert state.history("m")[-1]["action"] == "rollback_canary"
    with pytest.raises(CanaryRefused, match="no previous champion"):  # no canary, nothing to restore
        state.rollback("m", actor="oncall")
    assert state.get("m").row_version == ended.row_version
