"""The gate fails closed: a champion that exists but cannot be evaluated is never replaced automatically, an
artifact-store blip is retried, and a tampered champion's payload never runs in the drift check."""

from __future__ import annotations

import pickle
from datetime import timedelta
from pathlib import Path

import pytest

from airflow_mlops.operators.gate import decision_for
from tests.helpers import FIRST

pytestmark = pytest.mark.slow
SECOND = FIRST + timedelta(days=7)


def model_dir(project, model: str, version: str) -> Path:
    run_id = project.client.get_model_version(model, version).run_id
    (path,) = (project.root / "artifacts").glob(f"*/{run_id}/artifacts/model")
    return path


@pytest.mark.parametrize("verdict,on_inconclusive,status,expected", [
    ("PASS", "fail", "evaluated", "promote"), ("FAIL", "promote", "evaluated", "reject"),
    ("INCONCLUSIVE", "fail", "evaluated", "reject"), ("INCONCLUSIVE", "promote", "evaluated", "promote"),
    ("INCONCLUSIVE", "approve", "evaluated", "approve"),
    # a champion that could not be evaluated: never an automatic promotion
    ("INCONCLUSIVE", "promote", "unavailable", "reject"), ("INCONCLUSIVE", "fail", "unavailable", "reject"),
    ("INCONCLUSIVE", "approve", "unavailable", "approve"), ("PASS", "fail", "none", "promote")])
def test_decision_table(verdict, on_inconclusive, status, expected):
    assert decision_for(verdict, on_inconclusive, status) == expected


def test_a_corrupted_champion_makes_the_gate_inconclusive_not_first_model(project):
    # on_inconclusive: promote would promote any statistically inconclusive challenger; not this one.
    project.write_model("closed_ct", **{"gate.on_inconclusive": "promote", "gate.non_inferiority_margin": 0.5})
    project.grow(FIRST)
    assert project.run("closed_ct", FIRST)["results"]["promote"]["champion"] == "1"
    weights = model_dir(project, "closed_ct", "1") / "artifacts" / "pipeline.skops"
    weights.write_bytes(weights.read_bytes()[:100])  # truncated by a storage incident
    project.grow(SECOND)
    run = project.run("closed_ct", SECOND)
    gate = run["results"]["evaluate_gate"]
    assert gate["champion_version"] == "1" and gate["champion_status"] == "unavailable"
    assert gate["verdict"] == "INCONCLUSIVE" and gate["decision"] == "reject"
    assert run["tasks"]["register"] == "skipped" and run["tasks"]["promote"] == "skipped"
    report = project.mlflow.load_json(gate["challenger_run_id"], "gate/report.json")
    assert report["champion_status"] == "unavailable" and "ModelIntegrityError" in report["champion_error"]
    assert not any(reason.startswith("first model") for reason in report["reasons"])
    assert any("exists but could not be evaluated" in reason for reason in report["reasons"])
    assert project.mlflow.alias_version("closed_ct", "champion") == "1"
    assert project.state("closed_ct").get("closed_ct").champion == "1"


def test_an_artifact_store_blip_is_retried_not_judged(project, monkeypatch):
    from airflow_mlops.hooks.mlflow import MLflowHook

    project.write_model("blip_ct", retries=1, retry_delay="0s")
    project.grow(FIRST)
    assert project.run("blip_ct", FIRST)["state"] == "success"
    fired = []

    def flaky(self, *args, **kwargs):  # the injected fault: the first load of the champion fails in transit
        if not fired:
            fired.append(True)
            raise ConnectionError("artifact store: connection reset by peer")
        return original(self, *args, **kwargs)

    original = MLflowHook.load_version_model
    monkeypatch.setattr(MLflowHook, "load_version_model", flaky)
    project.grow(SECOND)
    run = project.run("blip_ct", SECOND)
    assert run["tries"]["evaluate_gate"] == 2 and fired
    assert run["results"]["evaluate_gate"]["champion_status"] == "evaluated"


def test_a_tampered_champion_is_refused_by_the_drift_check_and_its_payload_never_runs(project, tmp_path):
    project.write_model("tamper_ct")
    project.grow(FIRST)
    assert project.run("tamper_ct", FIRST)["state"] == "success"
    marker = tmp_path / "payload-ran"

    class Payload:
        def __reduce__(self):
            return (open, (str(marker), "w"))

    directory = model_dir(project, "tamper_ct", "1")
    (directory / "artifacts" / "pipeline.pkl").write_bytes(pickle.dumps(Payload()))
    mlmodel = directory / "MLmodel"
    mlmodel.write_text(mlmodel.read_text().replace("pipeline.skops", "pipeline.pkl"))
    run = project.check_drift("tamper_ct", FIRST + timedelta(days=3))
    assert run["tasks"]["check_drift"] == "failed" and run["tries"]["check_drift"] == 1
    assert not marker.exists()
    (check,) = project.task_runs("tamper_ct", "check_drift")
    report = project.mlflow.load_json(check.info.run_id, "drift/report.json")
    assert any("was NOT loaded" in reason and "cloudpickle" in reason for reason in report["reasons"])
