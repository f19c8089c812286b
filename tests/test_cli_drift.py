"""``airflow-mlops drift``: files or SQL in, report out, exit status 1 on drift / 0 without / 2 on bad input."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from airflow_mlops.cli import main
from tests.helpers import BUNDLED


def frames(seed: int = 0, shift: float = 0.0, n: int = 800):
    rng = np.random.default_rng(seed)

    def one(s):
        return pd.DataFrame({"income": rng.lognormal(10.8 - s, 0.45, n), "amount": rng.lognormal(9.3, 0.6, n),
                             "term": rng.choice([36, 60], n), "purpose": rng.choice(["car", "home", "debt"], n),
                             "region": rng.choice(["north", "south"], n)})
    return one(0.0), one(shift)


@pytest.fixture
def files(tmp_path):
    ref, same = frames()
    _, moved = frames(seed=1, shift=0.5)
    ref.to_csv(tmp_path / "ref.csv", index=False)
    same.to_parquet(tmp_path / "same.parquet")
    moved.to_parquet(tmp_path / "moved.parquet")
    return tmp_path


def run(capsys, *argv):
    status = main(["drift", *argv])
    captured = capsys.readouterr()
    return status, captured.out, captured.err


def test_exit_status_tells_drift_from_no_drift(files, capsys):
    status, out, err = run(capsys, "--reference", str(files / "ref.csv"), "--current", str(files / "same.parquet"))
    assert status == 0 and json.loads(out)["status"] == "no_drift" and err.startswith("drift: no_drift")
    status, out, _ = run(capsys, "--reference", str(files / "ref.csv"), "--current", str(files / "moved.parquet"),
                         "--drift-share", "0.2")
    report = json.loads(out)
    assert status == 1 and report["dataset_drift"] and report["drifted_features"] == ["income"]
    assert report["settings"]["drift_share"] == 0.2


def test_config_supplies_features_and_settings_and_html_output(files, capsys, tmp_path):
    output = tmp_path / "report.html"
    status, out, _ = run(capsys, "--reference", str(files / "ref.csv"), "--current", str(files / "moved.parquet"),
                         "--config", str(BUNDLED / "configs" / "credit_risk.yaml"), "--format", "html",
                         "--output", str(output))
    page = output.read_text()
    assert out == "" and page.startswith("<!doctype html>") and "Drift report: credit_risk" in page
    assert page.count("<svg") == 5 and "<script" not in page
    assert status == 0  # 1 of 5 features drifted; the config's drift_share is 0.5


def test_sql_sources_sqlite_and_postgres(files, capsys, tmp_path, postgres_schema):
    import psycopg

    from tests.conftest import POSTGRES_URL

    ref, _ = frames()
    _, moved = frames(seed=1, shift=0.5)
    database = tmp_path / "data.db"
    with sqlite3.connect(database) as connection:
        ref.to_sql("ref", connection, index=False)
        moved.to_sql("cur", connection, index=False)
    status, out, _ = run(capsys, "--conn-uri", f"sqlite:///{database}", "--reference", "select * from ref",
                         "--current", "select * from cur", "--categorical", "term", "--drift-share", "0.2")
    assert status == 1 and json.loads(out)["drifted_features"] == ["income"]
    with psycopg.connect(POSTGRES_URL, autocommit=True) as connection:
        connection.execute(f'CREATE TABLE "{postgres_schema}".loans (income float8, region text)')
        with connection.cursor().copy(f'COPY "{postgres_schema}".loans FROM STDIN') as copy:
            for row in ref[["income", "region"]].itertuples(index=False):
                copy.write_row(row)
    query = f'select income, region from "{postgres_schema}".loans'
    status, out, _ = run(capsys, "--conn-uri", POSTGRES_URL, "--reference", query, "--current", str(files / "ref.csv"),
                         "--features", "income", "region")
    assert status == 0 and json.loads(out)["share"] == 0.0


@pytest.mark.parametrize("argv,message", [
    (["--reference", "nope.csv", "--current", "nope.csv"], "--reference: no such file 'nope.csv'"),
    (["--reference", "{ref}", "--current", "{bad}"], "only in reference ['amount', 'term', 'purpose', 'region']"),
    (["--reference", "{ref}", "--current", "{text}"], "'income' is float64 in reference but object in current"),
    (["--reference", "{ref}", "--current", "{ref}", "--config", "{yaml}"], "data.features: Field required"),
    (["--conn-uri", "mysql://x", "--reference", "select 1", "--current", "select 1"], "unsupported database"),
    (["--conn-uri", "sqlite:///{db}", "--reference", "select * from missing", "--current", "select 1"],
     "--reference: query failed on sqlite: Execution failed on sql 'select * from missing': no such table"),
])
def test_bad_input_is_one_clear_line_and_exit_2(files, capsys, tmp_path, argv, message):
    ref, _ = frames()
    ref[["income"]].to_csv(tmp_path / "bad.csv", index=False)
    ref.assign(income="unknown").to_csv(tmp_path / "text.csv", index=False)
    (tmp_path / "model.yaml").write_text("model: m\ndata: {table: t, timestamp_column: ts, entity_id: id, "
                                         "target: y}\n")
    values = {"ref": files / "ref.csv", "bad": tmp_path / "bad.csv", "text": tmp_path / "text.csv",
              "yaml": tmp_path / "model.yaml", "db": tmp_path / "empty.db"}
    status, out, err = run(capsys, *[a.format(**values) for a in argv])
    assert status == 2 and out == ""
    assert message in err and "Traceback" not in err
    assert err.startswith("airflow-mlops drift: error:")


def test_console_script(files):
    script = Path(sys.executable).with_name("airflow-mlops")
    completed = subprocess.run([str(script), "drift", "--reference", str(files / "ref.csv"), "--current",
                                str(files / "moved.parquet"), "--min-effect-size", "0", "--drift-share", "0.1"],
                               capture_output=True, text=True, timeout=300)
    assert completed.returncode == 1, completed.stderr
    assert json.loads(completed.stdout)["dataset_drift"] is True
