"""Build the bundled DAGs of a model from its YAML config.

A model is one YAML file in ``dags/configs/`` plus a thin DAG file next to it (``dags/mlops_<model>.py``,
three lines, identical for every model except its name) that calls :func:`dags_for_file`. One file per model
is what makes a broken YAML an import error of *that* model's file only, naming the YAML file and the field,
while every other model's DAGs still load.

Parse time matters: this module imports Airflow's SDK, pydantic, PyYAML and our operator modules, which
import nothing heavy at module level. No connection, Variable or network is touched here.
"""

from __future__ import annotations

import time
from datetime import datetime
from pathlib import Path
from typing import Any

from airflow.sdk import DAG

from airflow_mlops.assets import drift_asset
from airflow_mlops.core.config import ModelConfig, load_config

CONFIG_DIR = "configs"
DAG_FILE_PREFIX = "mlops_"


def ct_schedule(config: ModelConfig):
    """Time schedule OR drift event: a drift-triggered retrain does not wait for the next slot."""
    from airflow.sdk import AssetOrTimeSchedule, CronTriggerTimetable

    asset = drift_asset(config.model)
    if config.schedule is None:
        return [asset]
    return AssetOrTimeSchedule(timetable=CronTriggerTimetable(config.schedule, timezone="UTC"), assets=[asset])


def _default_args(config: ModelConfig) -> dict[str, Any]:
    return {"owner": config.owner, "retries": config.retries, "retry_delay": config.retry_delay}


def build_ct_dag(config: ModelConfig, source: str | Path) -> DAG:
    """``mlops_ct__<model>``: extract -> validate -> train -> evaluate_gate -> register -> promote."""
    from airflow_mlops.operators.extract import ExtractTrainingDataOperator
    from airflow_mlops.operators.gate import EvaluationGateOperator
    from airflow_mlops.operators.registry import PromoteModelOperator, RegisterModelOperator
    from airflow_mlops.operators.training import TrainModelOperator
    from airflow_mlops.operators.validation import DataValidationOperator

    raw = config.model_dump(mode="json")
    with DAG(
        dag_id=f"mlops_ct__{config.model}",
        description=config.description or f"Continuous training of {config.model}",
        schedule=ct_schedule(config),
        start_date=datetime.fromisoformat(config.start_date),
        catchup=False,
        max_active_runs=1,
        default_args=_default_args(config),
        tags=["mlops", "continuous-training", config.model],
        doc_md=f"Continuous training of **{config.model}**, generated from `{Path(source).name}`. "
               "Steps: extract the window, validate it, train, judge the challenger against the champion, "
               "register, promote. Also triggered by drift events on "
               f"`mlops://{config.model}/drift`.",
    ) as dag:
        extract = ExtractTrainingDataOperator(task_id="extract", config=raw)
        validate = DataValidationOperator(task_id="validate", config=raw, data=extract.output)
        train = TrainModelOperator(task_id="train", config=raw, data=validate.output)
        gate = EvaluationGateOperator(task_id="evaluate_gate", config=raw, training=train.output)
        register = RegisterModelOperator(task_id="register", config=raw, gate=gate.output)
        promote = PromoteModelOperator(task_id="promote", config=raw, gate=gate.output,
                                       registration=register.output)
        if config.gate.on_inconclusive == "approve":
            from airflow_mlops.operators.approval import GateApprovalOperator

            approve = GateApprovalOperator(
                task_id="approve_challenger", subject=f"Promote the {config.model} challenger?",
                body="The evaluation gate was inconclusive: {{ ti.xcom_pull(task_ids='evaluate_gate') }}")
            register >> approve >> promote
    return dag


def build_drift_dag(config: ModelConfig, source: str | Path) -> DAG:
    """``mlops_drift__<model>``: check the latest window against the champion, emit a drift event if due."""
    from airflow.sdk import CronTriggerTimetable

    from airflow_mlops.operators.drift import DriftCheckOperator, EmitDriftEventOperator

    raw = config.model_dump(mode="json")
    drift = config.drift
    asset = drift_asset(config.model)
    schedule = CronTriggerTimetable(drift.schedule, timezone="UTC") if drift.schedule else None
    with DAG(
        dag_id=f"mlops_drift__{config.model}",
        description=f"Drift monitoring of {config.model}",
        schedule=schedule,
        start_date=datetime.fromisoformat(config.start_date),
        catchup=False,
        max_active_runs=1,  # the cooldown reads the previous event: checks must not overlap
        default_args=_default_args(config),
        tags=["mlops", "drift", config.model],
        doc_md=f"Drift monitoring of **{config.model}**, generated from `{Path(source).name}`. Compares the last "
               f"{drift.window} of data with the champion's training sample ({drift.backend} backend, "
               f"{drift.correction} correction at {drift.p_value}, dataset drift when >= {drift.drift_share:.0%} "
               f"of features drift). A confirmed drift emits an event on `{asset.uri}`, at most once per "
               f"{drift.cooldown}, which starts `mlops_ct__{config.model}`.",
    ) as dag:
        check = DriftCheckOperator(task_id="check_drift", config=raw)
        if drift.wait_for_data:
            from airflow_mlops.sensors.data import DataWindowSensor

            timeout = drift.wait_for_data.total_seconds()
            DataWindowSensor(task_id="wait_for_data", config=raw, lag=drift.data_lag, deferrable=True,
                             timeout=timeout, poke_interval=min(300.0, max(1.0, timeout / 20)),
                             retries=0) >> check
        EmitDriftEventOperator(task_id="emit_drift_event", config=raw, check=check.output,
                               inlets=[asset], outlets=[asset])
    return dag


def build_dags(config: ModelConfig, source: str | Path) -> dict[str, DAG]:
    dags = [build_ct_dag(config, source), build_drift_dag(config, source)]
    return {dag.dag_id: dag for dag in dags}


def config_path_for(dag_file: str | Path) -> Path:
    """``dags/mlops_credit_risk.py`` -> ``dags/configs/credit_risk.yaml`` (``.yml`` also accepted)."""
    dag_file = Path(dag_file)
    model = dag_file.stem.removeprefix(DAG_FILE_PREFIX)
    directory = dag_file.parent / CONFIG_DIR
    for suffix in (".yaml", ".yml"):
        if (candidate := directory / f"{model}{suffix}").exists():
            return candidate
    return directory / f"{model}.yaml"


def dags_for_file(dag_file: str | Path) -> dict[str, DAG]:
    """The DAGs of the model whose thin DAG file is ``dag_file``. Raises ConfigError for a broken YAML."""
    started = time.perf_counter()
    path = config_path_for(dag_file)
    config = load_config(path)
    dags = build_dags(config, path)
    elapsed_ms = (time.perf_counter() - started) * 1000
    for dag in dags.values():
        dag.doc_md = (dag.doc_md or "") + f"\n\n_Built from `{path.name}` in {elapsed_ms:.0f} ms._"
    return dags

