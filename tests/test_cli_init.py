"""`airflow-mlops init`: the bundled DAG file and example config into a DAGs folder, never overwriting."""

from __future__ import annotations

from airflow_mlops.cli import main


def test_init_writes_once_keeps_edits_and_force_overwrites(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("AIRFLOW__CORE__DAGS_FOLDER", str(tmp_path / "dags"))
    assert main(["init"]) == 0
    config = tmp_path / "dags" / "configs" / "credit_risk.yaml"
    assert (tmp_path / "dags" / "mlops_credit_risk.py").exists() and config.read_text().startswith("#")
    config.write_text("model: credit_risk  # ours\n")
    assert main(["init"]) == 0 and "kept" in capsys.readouterr().out
    assert config.read_text() == "model: credit_risk  # ours\n"
    assert main(["init", "--force"]) == 0 and config.read_text() != "model: credit_risk  # ours\n"


def test_init_defaults_to_airflow_home_and_says_clearly_when_it_cannot_write(tmp_path, monkeypatch, capsys):
    monkeypatch.delenv("AIRFLOW__CORE__DAGS_FOLDER", raising=False)
    monkeypatch.setenv("AIRFLOW_HOME", str(tmp_path / "home"))
    assert main(["init"]) == 0
    assert (tmp_path / "home" / "dags" / "mlops_credit_risk.py").exists()
    blocker = tmp_path / "not_a_folder"
    blocker.write_text("a file where the DAGs folder should be")
    assert main(["init", "--dags-folder", str(blocker)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("airflow-mlops init: error: cannot write into") and "Traceback" not in err
    assert blocker.read_text() == "a file where the DAGs folder should be"


def test_every_command_defaults_to_the_same_dags_folder(tmp_path, monkeypatch, capsys):
    """init, new-model and rollback all look where Airflow looks (rollback used ./dags, new-model ./dags)."""
    monkeypatch.delenv("AIRFLOW__CORE__DAGS_FOLDER", raising=False)
    monkeypatch.setenv("AIRFLOW_HOME", str(tmp_path / "home"))
    monkeypatch.chdir(tmp_path)
    dags = tmp_path / "home" / "dags"
    assert main(["rollback", "churn"]) == 2
    assert str(dags / "configs" / "churn.yaml") in capsys.readouterr().err
    assert main(["new-model", "churn"]) == 0
    assert (dags / "configs" / "churn.yaml").exists() and (dags / "mlops_churn.py").exists()
    assert not (tmp_path / "dags").exists()
