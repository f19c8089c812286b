"""DAG integrity: the bundled DAGs load, parse light (no heavy imports, no connections), and a broken YAML
is an import error of its own model only."""

from __future__ import annotations

import json
import os
from datetime import timedelta
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.helpers import BUNDLED, bundled_config

BUNDLED_DAGS = ["mlops_ct__credit_risk", "mlops_drift__credit_risk", "mlops_rollback__credit_risk",
                "mlops_score__credit_risk"]
HEAVY = ["pandas", "sklearn", "lightgbm", "mlflow", "great_expectations", "alibi_detect"]

PARSE_SCRIPT = """
import json, sys
from airflow.dag_processing.dagbag import DagBag
from airflow.sdk import BaseHook
from airflow.models.connection import Connection
lookups = []
def spy(kind):
    def record(*args, **kwargs):
        lookups.append(kind)
        raise RuntimeError("connection lookup at parse time")
    return record
BaseHook.get_connection = classmethod(spy("BaseHook.get_connection"))
Connection.get_connection_from_secrets = classmethod(spy("Connection.get_connection_from_secrets"))
before = set(sys.modules)
bag = DagBag(sys.argv[1])
heavy = sorted(m for m in %(heavy)r if m in sys.modules and m not in before)
print(json.dumps({"dags": sorted(bag.dag_ids), "errors": bag.import_errors, "heavy": heavy,
                  "lookups": lookups, "warnings": {k: list(v) for k, v in bag.captured_warnings.items()}}))
""" % {"heavy": HEAVY}


def parse(folder: Path) -> dict:
    env = {**os.environ, "AIRFLOW__CORE__DAGS_FOLDER": str(folder)}
    completed = subprocess.run([sys.executable, "-c", PARSE_SCRIPT, str(folder)], capture_output=True, text=True,
                               env=env, timeout=300)
    assert completed.returncode == 0, completed.stderr[-3000:]
    return json.loads(completed.stdout.strip().splitlines()[-1])


def test_bundled_dags_load_light_and_without_connections():
    result = parse(BUNDLED)
    assert result["errors"] == {}
    assert result["dags"] == BUNDLED_DAGS
    assert result["heavy"] == [], f"heavy modules imported at parse time: {result['heavy']}"
    assert result["lookups"] == []


def test_broken_yaml_is_an_import_error_of_its_model_only(tmp_path):
    shutil.copytree(BUNDLED, tmp_path, dirs_exist_ok=True)
    shutil.copy(BUNDLED / "mlops_credit_risk.py", tmp_path / "mlops_fraud.py")
    (tmp_path / "configs" / "fraud.yaml").write_text(
        yaml.safe_dump(bundled_config(model="fraud", **{"gate.non_inferiority_margin": "small"})))
    result = parse(tmp_path)
    assert result["dags"] == BUNDLED_DAGS
    assert [Path(p).name for p in result["errors"]] == ["mlops_fraud.py"]
    message = next(iter(result["errors"].values()))
    assert "configs/fraud.yaml: gate.non_inferiority_margin" in message


def test_dag_shape():
    from airflow.dag_processing.dagbag import DagBag

    dag = DagBag(str(BUNDLED)).dags["mlops_ct__credit_risk"]
    order = ["extract", "validate", "train", "evaluate_gate", "refit", "register", "route_challenger", "promote"]
    assert set(dag.task_ids) == {*order, "finish_pipeline_run"}
    for upstream, downstream in zip(order, order[1:], strict=False):
        assert downstream in dag.get_task(upstream).downstream_task_ids
    # The parent MLflow run is closed after everything else, without deciding the DAG run's state.
    finish = dag.get_task("finish_pipeline_run")
    assert finish.is_teardown and finish.upstream_task_ids == {"promote"}
    assert dag.max_active_runs == 1 and "mlops" in dag.tags
    schedule = dag.timetable
    assert type(schedule).__name__ == "AssetOrTimeSchedule"
    assert [asset.uri for asset in schedule.asset_condition.objects] == ["mlops://credit_risk/drift"]


def test_drift_dag_shape():
    from airflow.dag_processing.dagbag import DagBag

    dag = DagBag(str(BUNDLED)).dags["mlops_drift__credit_risk"]
    assert dag.get_task("check_drift").downstream_task_ids == {"emit_drift_event"}
    emit = dag.get_task("emit_drift_event")
    # The event goes out on the Asset the CT DAG is scheduled on; it is also an inlet, to read the last event.
    assert [a.uri for a in emit.outlets] == [a.uri for a in emit.inlets] == ["mlops://credit_risk/drift"]
    assert type(dag.timetable).__name__ == "CronTriggerTimetable" and dag.max_active_runs == 1
    assert "wait_for_data" not in dag.task_ids


def test_drift_dag_waits_for_data_when_configured():
    from airflow_mlops.core.config import parse_config
    from airflow_mlops.dag_factory import build_drift_dag

    dag = build_drift_dag(parse_config(bundled_config(**{"drift.wait_for_data": "6h"})), "x.yaml")
    wait = dag.get_task("wait_for_data")
    assert wait.downstream_task_ids == {"check_drift"} and wait.deferrable and wait.timeout == 6 * 3600
    assert wait.poke_interval == 300 and wait.retries == 0


def test_provider_info_is_valid_and_listed():
    import jsonschema
    from importlib.resources import files

    from airflow_mlops import get_provider_info

    schema = json.loads((files("airflow") / "provider_info.schema.json").read_text())
    jsonschema.validate(get_provider_info(), schema)
    airflow = Path(sys.executable).with_name("airflow")
    listed = subprocess.run([str(airflow), "providers", "list", "-o", "json"], capture_output=True, text=True,
                            timeout=300)
    assert listed.returncode == 0, listed.stderr[-2000:]
    packages = {p["package_name"] for p in json.loads(listed.stdout[listed.stdout.index("["):])}
    assert "airflow-provider-mlops" in packages


@pytest.mark.parametrize("module", ["airflow_mlops.operators.extract", "airflow_mlops.operators.validation",
                                    "airflow_mlops.operators.training", "airflow_mlops.operators.gate",
                                    "airflow_mlops.operators.registry", "airflow_mlops.operators.drift",
                                    "airflow_mlops.sensors.data", "airflow_mlops.triggers.data",
                                    "airflow_mlops.operators.canary", "airflow_mlops.operators.scoring",
                                    "airflow_mlops.operators.pipeline", "airflow_mlops.sensors.labels",
                                    "airflow_mlops.triggers.sql",
                                    "airflow_mlops.dag_factory"])
def test_operator_modules_import_nothing_heavy(module):
    code = f"import sys, json; import {module}; print(json.dumps(sorted(m for m in {HEAVY!r} if m in sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert json.loads(out.stdout.strip().splitlines()[-1]) == []


def test_inconclusive_approval_step_is_added_only_when_configured():
    from airflow_mlops.core.config import parse_config
    from airflow_mlops.dag_factory import build_ct_dag

    plain = build_ct_dag(parse_config(bundled_config()), "credit_risk.yaml")
    assert "approve_challenger" not in plain.task_ids
    approving = build_ct_dag(parse_config(bundled_config(**{"gate.on_inconclusive": "approve",
                                                            "gate.approval_timeout": "2d"})), "x.yaml")
    approve = approving.get_task("approve_challenger")
    assert approve.upstream_task_ids == {"route_challenger"} and approve.downstream_task_ids == {"promote"}
    # An unanswered question cannot block later runs (max_active_runs=1): it times out as Reject.
    assert approve.response_timeout == timedelta(days=2) and approve.defaults == ["Reject"]
    assert approving.get_task("promote").approval is not None


SERIALIZE_SCRIPT = """
import hashlib, json, sys
from airflow.dag_processing.dagbag import DagBag
from airflow.serialization.serialized_objects import DagSerialization
bag = DagBag(sys.argv[1])
print(json.dumps({dag_id: hashlib.sha256(json.dumps(DagSerialization.to_dict(dag), sort_keys=True,
                                                    default=str).encode()).hexdigest()
                  for dag_id, dag in sorted(bag.dags.items())}))
"""


def test_two_parses_serialize_identically():
    """Anything that changes between parses (the parse time in doc_md did) makes a new DAG version per parse:
    one CT run spanned DAG versions 5, 6 and 7 under a real scheduler."""
    digests = []
    env = {**os.environ, "AIRFLOW__CORE__DAGS_FOLDER": str(BUNDLED)}
    for _ in range(2):
        completed = subprocess.run([sys.executable, "-c", SERIALIZE_SCRIPT, str(BUNDLED)], capture_output=True,
                                   text=True, timeout=300, env=env)
        assert completed.returncode == 0, completed.stderr[-2000:]
        digests.append(json.loads(completed.stdout.strip().splitlines()[-1]))
    assert set(digests[0]) == set(BUNDLED_DAGS)
    assert digests[0] == digests[1]


def test_the_plugin_is_registered_once_with_eager_provider_discovery():
    code = ("import json; from airflow import plugins_manager as pm; "
            "print(json.dumps({'errors': pm.get_import_errors(), "
            "'plugins': [p.name for p in pm._get_plugins()[0]]}))")
    env = {**os.environ, "AIRFLOW__CORE__LAZY_DISCOVER_PROVIDERS": "False"}
    completed = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, env=env)
    assert completed.returncode == 0, completed.stderr[-2000:]
    result = json.loads(completed.stdout.strip().splitlines()[-1])
    assert result["plugins"].count("airflow_mlops") == 1
    assert not [e for e in result["errors"].values() if "already registered" in e]


def test_canary_scoring_and_rollback_dags():
    """The CT DAG branches visibly (promote | start canary | ask); the canary DAG waits for labels, analyses, asks
    only when it must, applies; it starts on the canary Asset the CT DAG updates."""
    from airflow_mlops.core.config import parse_config
    from airflow_mlops.dag_factory import build_dags

    dags = build_dags(parse_config(bundled_config(**{"canary.enabled": True, "gate.on_inconclusive": "approve"})),
                      "x.yaml")
    assert sorted(dags) == sorted([*BUNDLED_DAGS, "mlops_canary__credit_risk"])
    # A CT system must not start promoting because a file appeared: every bundled DAG starts paused.
    assert all(dag.is_paused_upon_creation is True for dag in dags.values())
    ct = dags["mlops_ct__credit_risk"]
    assert ct.get_task("route_challenger").downstream_task_ids == {"promote", "start_canary", "approve_challenger"}
    assert [a.uri for a in ct.get_task("start_canary").outlets] == ["mlops://credit_risk/canary"]
    assert ct.get_task("promote").trigger_rule == "none_failed_min_one_success"
    canary = dags["mlops_canary__credit_risk"]
    chain = ["wait_for_labels", "analyse", "ask", "apply_decision"]
    for upstream, downstream in zip(chain, chain[1:], strict=False):
        assert downstream in canary.get_task(upstream).downstream_task_ids
    assert canary.get_task("wait_for_labels").deferrable and canary.max_active_runs == 1
    assert [a.uri for a in canary.timetable.asset_condition.objects] == ["mlops://credit_risk/canary"]
    assert canary.get_task("ask").defaults == ["Rollback"]
    rollback = dags["mlops_rollback__credit_risk"]
    assert type(rollback.timetable).__name__ == "NullTimetable" and "reason" in rollback.params
