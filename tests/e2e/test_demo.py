"""`airflow-mlops demo` end to end in its own home, as `make demo` runs it."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow


def test_demo_shows_champion_gate_bad_data_the_drift_loop_and_two_canaries(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "MLFLOW"))}
    command = [str(Path(sys.executable).with_name("airflow-mlops")), "demo", "--home", str(tmp_path / "demo")]
    completed = subprocess.run(command, env=env, capture_output=True, text=True, timeout=900)
    assert completed.returncode == 0, completed.stdout[-3000:] + completed.stderr[-3000:]
    summary = completed.stdout[completed.stdout.index("=== airflow-mlops demo summary ==="):]
    assert "- first model: run success; gate PASS" in summary and "champion is now version 1" in summary
    assert "- challenger vs champion: run success; gate " in summary and "vs champion" in summary
    assert "validation FAILED" in summary and "expect_column_values_to_be_between(amount)" in summary
    lines = {line.split(":")[0]: line for line in summary.splitlines() if line.startswith("- ")}
    assert "no drift" in lines["- drift check 2025-04-02"] and lines["- drift check 2025-04-02"].endswith("no event")
    assert "DRIFT" in lines["- drift check 2025-05-28"] and "event emitted on mlops://credit_risk/drift" in summary
    retrain = lines["- retraining triggered by the drift event"]
    assert "asset_triggered, started by the drift event" in retrain and "gate PASS" in retrain
    assert "refit on train + holdout (the drifted window)" in retrain
    assert lines["- drift check 2025-05-29"].endswith("event held back (cooldown / already emitted)")
    assert "'champion': '3'" in summary and "demo --serve-only --home" in summary
    # The canary chapter: the better challenger through shadow and 50% to champion, the mislabelled one rolled back.
    assert "credit_risk_canary: challenger trained on the drifted months: run success; gate PASS" in summary
    assert "canary of version 2 against champion 1 started" in summary
    good = summary[summary.index("- canary of credit_risk_canary:"):summary.index("- canary of credit_risk_mislab")]
    bad = summary[summary.index("- canary of credit_risk_mislabelled:"):]
    assert "now phase promoted, champion version 2 (previous 1)" in good
    assert "weight 0% (published champion 300 / challenger 0): ADVANCE - step 1 (0%) passed" in good
    assert "weight 50%" in good and "PROMOTE - last step (50%) passed with 300 labels: roc_auc" in good
    assert "now phase rolled_back, champion version 1" in bad
    assert "ROLLBACK - guardrail failed on 2 look(s), failure_limit 2: roc_auc" in bad and "FAIL" in bad
    # Readable: progress and summary only; the task logs (and the expected validation failure) are in demo.log.
    assert "Traceback" not in completed.stdout + completed.stderr and "[warning" not in completed.stdout
    assert len(completed.stdout.splitlines()) < 50
    log = (tmp_path / "demo" / "demo.log").read_text()
    assert "DataValidationFailed" in log
    assert "DeprecatedImportWarning" not in log, "skops' module probing is flooding the logs again"
    assert (tmp_path / "demo" / "airflow.db").exists() and (tmp_path / "demo" / "data.db").exists()
    serve_answers(tmp_path / "demo", env)


def serve_answers(home: Path, env: dict) -> None:
    """`airflow-mlops demo --serve-only`: the Airflow api-server answers (login, DAGs listed and paused) and the
    MLflow UI answers; SIGTERM stops every process it started."""
    import json
    import re
    import signal
    import time
    import urllib.request

    from tests.servers import free_port, wait_http

    port, mlflow_port = free_port(), free_port()
    command = [str(Path(sys.executable).with_name("airflow-mlops")), "demo", "--serve-only", "--home", str(home),
               "--port", str(port), "--mlflow-port", str(mlflow_port)]
    process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        first = process.stdout.readline()
        assert first.startswith(f"Airflow UI: http://127.0.0.1:{port}"), first + process.stdout.read()
        password = re.search(r"password (\S+)\)", first).group(1)
        request = urllib.request.Request(f"http://127.0.0.1:{port}/auth/token", method="POST",
                                         data=json.dumps({"username": "admin", "password": password}).encode(),
                                         headers={"Content-Type": "application/json"})
        token = json.load(urllib.request.urlopen(request, timeout=30))["access_token"]
        request = urllib.request.Request(f"http://127.0.0.1:{port}/api/v2/dags",
                                         headers={"Authorization": f"Bearer {token}"})
        dags = {d["dag_id"]: d for d in json.load(urllib.request.urlopen(request, timeout=30))["dags"]}
        assert dags["mlops_ct__credit_risk"]["is_paused"] and dags["mlops_drift__credit_risk"]["is_paused"]
        wait_http(f"http://127.0.0.1:{mlflow_port}/health", timeout=60)
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=120)
    assert process.returncode == 0
    time.sleep(1)
    for closed in (port, mlflow_port):
        with pytest.raises(OSError):
            urllib.request.urlopen(f"http://127.0.0.1:{closed}/", timeout=3)
