"""`airflow-mlops demo` end to end in its own home, as `make demo` runs it."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow


def test_demo_shows_champion_gate_bad_data_and_the_drift_loop(tmp_path):
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
    assert "asset_triggered, started by the drift event" in retrain and "gate " in retrain
    assert lines["- drift check 2025-05-29"].endswith("event held back (cooldown / already emitted)")
    assert "'champion': '" in summary and "mlflow" in summary and "airflow" in summary
    output = completed.stdout + completed.stderr
    assert "DeprecatedImportWarning" not in output, "skops' module probing is flooding the logs again"
    assert (tmp_path / "demo" / "airflow.db").exists() and (tmp_path / "demo" / "data.db").exists()
