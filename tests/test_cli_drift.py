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
     "failed: no such table: missing"),
])
def test_bad_input_is_one_clear_line_and_exit_2(files, capsys, tmp_path, argv, message):
    ref, _ = frames()
    ref[["income"]].to_csv(tmp_path / "bad.csv", index=False)
    ref.assign(income="unknown").to_csv(tmp_path / "text.csv", index=False)
    (tmp_path / "model.yaml").write_text("model: m\ndata: {table: t, timestamp_column: ts, entity_id: id, "
                                         "target: y}\n")
    sqlite3.connect(tmp_path / "empty.db").close()
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


# --- hostile and mistaken input (found by probing: writes were committed, passwords echoed, tracebacks) -----------

def _loans(n=300):
    ref, _ = frames(n=n)
    return ref


def test_sql_sources_are_read_only_on_sqlite(tmp_path, capsys):
    database = tmp_path / "data.db"
    with sqlite3.connect(database) as connection:
        _loans().to_sql("loans", connection, index=False)
    uri = f"sqlite:///{database}"
    for statement in ("DELETE FROM loans RETURNING *", "DROP TABLE loans", "select 1; delete from loans"):
        status, out, err = run(capsys, "--conn-uri", uri, "--reference", "select * from loans", "--current", statement)
        assert status == 2 and out == "" and "Traceback" not in err, err
    with sqlite3.connect(database) as connection:
        assert connection.execute("SELECT count(*) FROM loans").fetchone()[0] == 300
    # A typo in the path is an error, never a new empty database.
    status, _, err = run(capsys, "--conn-uri", f"sqlite:///{tmp_path}/typo.db", "--reference", "select 1",
                         "--current", "select 1")
    assert status == 2 and "no SQLite database file" in err and not (tmp_path / "typo.db").exists()


def test_sql_sources_are_read_only_on_postgres(postgres_schema, capsys):
    import psycopg

    from tests.conftest import POSTGRES_URL

    table = f'"{postgres_schema}".loans'
    with psycopg.connect(POSTGRES_URL, autocommit=True) as connection:
        connection.execute(f"CREATE TABLE {table} (income float8, region text)")
        with connection.cursor().copy(f"COPY {table} FROM STDIN") as copy:
            for row in _loans()[["income", "region"]].itertuples(index=False):
                copy.write_row(row)
    for statement in (f"DELETE FROM {table} RETURNING *", f"DROP TABLE {table}",
                      f"COMMIT; DELETE FROM {table} RETURNING *",
                      f"SET default_transaction_read_only = off; DELETE FROM {table} RETURNING *"):
        status, out, err = run(capsys, "--conn-uri", POSTGRES_URL, "--reference", f"select * from {table}",
                               "--current", statement, "--features", "income", "region")
        assert status == 2 and out == "" and "Traceback" not in err, (statement, err)
    with psycopg.connect(POSTGRES_URL) as connection:
        assert connection.execute(f"SELECT count(*) FROM {table}").fetchone()[0] == 300
    # Reading works (a LIKE with % included), and leaves nothing behind.
    status, out, _ = run(capsys, "--conn-uri", POSTGRES_URL, "--reference", f"select * from {table}",
                         "--current", f"select * from {table} where region like '%o%'", "--features", "income")
    assert status == 0 and json.loads(out)["n_current"] == 300


@pytest.mark.parametrize("uri", ["postgresql://etl:hunter2-pw@127.0.0.1:1/warehouse",
                                 "postgresql://etl:hunter2-pw@127.0.0.1:notaport/warehouse",
                                 "postgresql://etl:hunter2-pw@bad host/warehouse",
                                 "postgresql://etl:hunter2-pw@127.0.0.1:5432/test?sslmode=nonsense"])
def test_a_bad_connection_uri_never_echoes_the_password(uri, capsys):
    status, out, err = run(capsys, "--conn-uri", uri, "--reference", "select 1", "--current", "select 1")
    assert status == 2 and out == "" and "Traceback" not in err
    assert "hunter2" not in err and err.startswith("airflow-mlops drift: error:")


@pytest.mark.parametrize("option,value", [("--p-value", "0"), ("--p-value", "1.5"), ("--p-value", "nan"),
                                          ("--drift-share", "0"), ("--drift-share", "2"),
                                          ("--min-effect-size", "-0.1"), ("--min-sample-size", "0")])
def test_thresholds_are_range_checked(files, capsys, option, value):
    with pytest.raises(SystemExit) as exit_:
        main(["drift", "--reference", str(files / "ref.csv"), "--current", str(files / "ref.csv"), option, value])
    assert exit_.value.code == 2 and f"argument {option}: {value} is outside" in capsys.readouterr().err


def test_output_errors_exit_2_and_reports_are_strict_json(files, capsys, tmp_path):
    status, _, err = run(capsys, "--reference", str(files / "ref.csv"), "--current", str(files / "moved.parquet"),
                         "--output", str(tmp_path / "missing-dir" / "report.json"))
    assert status == 2 and "--output: cannot write" in err and "Traceback" not in err
    ref, cur = frames()
    cur.loc[:50, "income"] = np.inf
    cur.to_parquet(tmp_path / "inf.parquet")
    status, out, _ = run(capsys, "--reference", str(files / "ref.csv"), "--current", str(tmp_path / "inf.parquet"))
    json.loads(out, parse_constant=lambda name: pytest.fail(f"{name} in the JSON report"))


def test_only_queries_run_even_on_a_read_only_connection(tmp_path, capsys, postgres_schema):
    """A read-only transaction still let COPY ... TO PROGRAM run a command and ATTACH / VACUUM INTO create files:
    the CLI runs what it is given as a subquery, so anything that is not a query is refused before it runs."""
    from tests.conftest import POSTGRES_URL

    database = tmp_path / "data.db"
    with sqlite3.connect(database) as connection:
        _loans().to_sql("loans", connection, index=False)
    for statement in (f"ATTACH DATABASE '{tmp_path}/new.db' AS n", f"VACUUM INTO '{tmp_path}/new.db'",
                      "PRAGMA query_only = 0", "select * from loans; select 1"):
        status, _, err = run(capsys, "--conn-uri", f"sqlite:///{database}", "--reference", "select * from loans",
                             "--current", statement)
        assert status == 2 and "Traceback" not in err, (statement, err)
    assert not (tmp_path / "new.db").exists()
    for statement in (f"COPY (select 1) TO PROGRAM 'touch {tmp_path}/ran'", f"COPY (select 1) TO '{tmp_path}/out'",
                      "SET default_transaction_read_only = off"):
        status, _, err = run(capsys, "--conn-uri", POSTGRES_URL, "--reference", "select 1 as x",
                             "--current", statement)
        assert status == 2 and "Traceback" not in err, (statement, err)
    assert not (tmp_path / "ran").exists() and not (tmp_path / "out").exists()


def test_postgres_numeric_columns_are_compared_as_numbers(capsys, postgres_schema):
    import psycopg

    from tests.conftest import POSTGRES_URL

    ref, moved = frames(n=2000)[0], frames(seed=1, shift=0.5, n=2000)[1]
    with psycopg.connect(POSTGRES_URL, autocommit=True) as connection:
        for name, frame in (("ref", ref), ("cur", moved)):
            connection.execute(f'CREATE TABLE "{postgres_schema}".{name} (income numeric, region text)')
            with connection.cursor().copy(f'COPY "{postgres_schema}".{name} FROM STDIN') as copy:
                for row in frame[["income", "region"]].itertuples(index=False):
                    copy.write_row(row)
    status, out, _ = run(capsys, "--conn-uri", POSTGRES_URL, "--reference", f'select * from "{postgres_schema}".ref',
                         "--current", f'select * from "{postgres_schema}".cur', "--drift-share", "0.5")
    income = next(f for f in json.loads(out)["features"] if f["feature"] == "income")
    assert status == 1 and income["test"] == "ks" and income["status"] == "drift"


@pytest.mark.parametrize("uri, secret, kept", [
    ("postgresql://etl@127.0.0.1:1/test?password=hunter2%zz", "hunter2", "percent-encoded"),
    ("postgresql://e:hunter2-pw@127.0.0.1:1/test", "hunter2", "reference"),
])
def test_passwords_are_redacted_and_user_names_are_not(capsys, uri, secret, kept):
    status, _, err = run(capsys, "--conn-uri", uri, "--reference", "select 1", "--current", "select 1")
    assert status == 2 and secret not in err and kept in err
