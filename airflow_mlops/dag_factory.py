"""Build the bundled DAGs of a model from its YAML config.

A model is one YAML file in ``dags/configs/`` plus a thin DAG file next to it (``dags/mlops_<model>.py``,
three lines, identical for every model except its name) that calls :func:`dags_for_file`. One file per model
is what makes a broken YAML an import error of *that* model's file only, naming the YAML file and the field,
while every other model's DAGs still load.

Parse time matters: this module imports Airflow's SDK, pydantic, PyYAML and our operator modules, which
import nothing heavy at module level. No connection, Variable or network is touched here.
"""

from __future__ import annotations

import logging
import time
from datetime import datetime
from pathlib import Path
from typing import Any

from airflow.sdk import DAG

from airflow_mlops.assets import canary_asset, drift_asset
from airflow_mlops.core.config import ModelConfig, load_config

CONFIG_DIR = "configs"
DAG_FILE_PREFIX = "mlops_"
log = logging.getLogger(__name__)


def ct_schedule(config: ModelConfig):
    """Time schedule OR drift event: a drift-triggered retrain does not wait for the next slot."""
    from airflow.sdk import AssetOrTimeSchedule, CronTriggerTimetable

    asset = drift_asset(config.model)
    if config.schedule is None:
        return [asset]
    return AssetOrTimeSchedule(timetable=CronTriggerTimetable(config.schedule, timezone="UTC"), assets=[asset])


def _lifecycle(config: ModelConfig) -> dict[str, Any]:
    """Every bundled DAG: no backfill of missed intervals, and paused until someone switches it on (a CT system
    must not start promoting models because a file appeared in the DAGs folder)."""
    return {"start_date": datetime.fromisoformat(config.start_date), "catchup": False,
            "is_paused_upon_creation": True}


def _default_args(config: ModelConfig) -> dict[str, Any]:
    return {"owner": config.owner, "retries": config.retries, "retry_delay": config.retry_delay}


def _finish_pipeline(dag: DAG, raw: dict) -> None:
    """Close the DAG run's parent MLflow run after every other task (a teardown: it never changes the run's state)."""
    from airflow_mlops.operators.pipeline import FinishPipelineRunOperator

    leaves = [task for task in dag.tasks if not task.downstream_task_ids]
    finish = FinishPipelineRunOperator(task_id="finish_pipeline_run", config=raw, dag=dag, retries=0)
    leaves >> finish.as_teardown()


def build_ct_dag(config: ModelConfig, source: str | Path) -> DAG:
    """``mlops_ct__<model>``: extract -> validate -> train -> evaluate_gate -> refit -> register -> promote."""
    from airflow_mlops.operators.canary import RouteChallengerOperator
    from airflow_mlops.operators.extract import ExtractTrainingDataOperator
    from airflow_mlops.operators.gate import EvaluationGateOperator
    from airflow_mlops.operators.registry import PromoteModelOperator, RegisterModelOperator
    from airflow_mlops.operators.training import RefitModelOperator, TrainModelOperator
    from airflow_mlops.operators.validation import DataValidationOperator

    raw = config.model_dump(mode="json")
    with DAG(
        dag_id=f"mlops_ct__{config.model}",
        description=config.description or f"Continuous training of {config.model}",
        schedule=ct_schedule(config),
        **_lifecycle(config),
        max_active_runs=1,
        default_args=_default_args(config),
        tags=["mlops", "continuous-training", config.model],
        doc_md=f"Continuous training of **{config.model}**, generated from `{Path(source).name}`. "
               "Steps: extract the window, validate it, train, judge the challenger against the champion, "
               "refit on train + holdout after a PASS (drift-triggered runs), register, promote. Also triggered "
               f"by drift events on `mlops://{config.model}/drift`.",
    ) as dag:
        extract = ExtractTrainingDataOperator(task_id="extract", config=raw)
        validate = DataValidationOperator(task_id="validate", config=raw, data=extract.output)
        train = TrainModelOperator(task_id="train", config=raw, data=validate.output)
        gate = EvaluationGateOperator(task_id="evaluate_gate", config=raw, training=train.output)
        refit = RefitModelOperator(task_id="refit", config=raw, gate=gate.output)
        register = RegisterModelOperator(task_id="register", config=raw, gate=refit.output)
        # The gate's decision, visibly: promote | start the canary | ask for approval.
        route = RouteChallengerOperator(
            task_id="route_challenger", config=raw, gate=gate.output,
            canary_task="start_canary" if config.canary.enabled else None,
            approval_task="approve_challenger" if config.gate.on_inconclusive == "approve" else None)
        register >> route
        approval = None
        if config.gate.on_inconclusive == "approve":
            from airflow_mlops.operators.approval import GateApprovalOperator

            approve = GateApprovalOperator(
                task_id="approve_challenger", subject=f"Promote the {config.model} challenger?",
                response_timeout=config.gate.approval_timeout, defaults="Reject", retries=0,
                body="The evaluation gate was inconclusive: {{ ti.xcom_pull(task_ids='evaluate_gate') }}")
            route >> approve
            approval = approve.output
        promote = PromoteModelOperator(task_id="promote", config=raw, gate=gate.output, registration=register.output,
                                       approval=approval, trigger_rule="none_failed_min_one_success")
        route >> promote
        if config.canary.enabled:
            from airflow_mlops.operators.canary import StartCanaryOperator

            route >> StartCanaryOperator(task_id="start_canary", config=raw, gate=gate.output,
                                         registration=register.output, outlets=[canary_asset(config.model)])
    _finish_pipeline(dag, raw)
    return dag


def _cron(expression: str | None):
    from airflow.sdk import CronTriggerTimetable

    return CronTriggerTimetable(expression, timezone="UTC") if expression else None


def build_score_dag(config: ModelConfig, source: str | Path) -> DAG:
    """``mlops_score__<model>``: batch scoring with the champion, and both models during a canary."""
    from airflow_mlops.operators.scoring import BatchScoringOperator

    raw = config.model_dump(mode="json")
    with DAG(dag_id=f"mlops_score__{config.model}", description=f"Batch scoring with {config.model}",
             schedule=_cron(config.scoring.schedule), **_lifecycle(config), max_active_runs=1,
             default_args=_default_args(config),
             tags=["mlops", "scoring", config.model],
             doc_md=f"Scores the rows of the last {config.scoring.window} with the champion of **{config.model}** "
                    f"(generated from `{Path(source).name}`) into `{config.predictions_table}`. During a canary "
                    "both models score every row; the entity's bucket decides whose score is published.") as dag:
        BatchScoringOperator(task_id="score", config=raw)
    return dag


def build_canary_dag(config: ModelConfig, source: str | Path) -> DAG:
    """``mlops_canary__<model>``: wait for matured labels, analyse, (ask,) apply the decision."""
    from airflow.sdk import AssetOrTimeSchedule

    from airflow_mlops.operators.canary import (CanaryAnalysisOperator, CanaryApprovalOperator,
                                                CanaryDecisionOperator)
    from airflow_mlops.sensors.labels import CanaryLabelSensor

    raw = config.model_dump(mode="json")
    canary = config.canary
    asset = canary_asset(config.model)
    timetable = _cron(canary.schedule)
    schedule = AssetOrTimeSchedule(timetable=timetable, assets=[asset]) if timetable else [asset]
    wait = canary.wait_for_labels.total_seconds()
    with DAG(dag_id=f"mlops_canary__{config.model}", description=f"Canary deployment of {config.model}",
             schedule=schedule, **_lifecycle(config),
             max_active_runs=1, default_args=_default_args(config), tags=["mlops", "canary", config.model],
             doc_md=f"Looks at the running canary of **{config.model}** (generated from `{Path(source).name}`): "
                    f"steps {canary.steps}, guardrails {canary.guardrails}, {canary.min_labels_per_step} matured "
                    f"labels per step (label delay {canary.label_delay}), rollback after {canary.failure_limit} "
                    f"failed looks" + (" (dry run: decisions are reported, not applied)." if canary.dry_run else
                                       ".")) as dag:
        wait_for_labels = CanaryLabelSensor(task_id="wait_for_labels", config=raw, deferrable=True,
                                            timeout=wait + 600, poke_interval=max(1.0, min(300.0, wait / 20)),
                                            retries=0)
        analyse = CanaryAnalysisOperator(task_id="analyse", config=raw)
        ask = CanaryApprovalOperator(task_id="ask", config=raw, response_timeout=canary.approval_timeout, retries=0)
        apply = CanaryDecisionOperator(task_id="apply_decision", config=raw, analysis=analyse.output,
                                       approval=ask.output)
        wait_for_labels >> analyse >> ask >> apply
    return dag


def build_rollback_dag(config: ModelConfig, source: str | Path) -> DAG:
    """``mlops_rollback__<model>``: trigger it by hand to restore the previous champion (ends a canary)."""
    from airflow.sdk import Param

    from airflow_mlops.operators.canary import RollbackOperator

    raw = config.model_dump(mode="json")
    with DAG(dag_id=f"mlops_rollback__{config.model}", description=f"Roll {config.model} back",
             schedule=None, **_lifecycle(config),
             max_active_runs=1, default_args={**_default_args(config), "retries": 0},
             params={"reason": Param("rolled back by hand", type="string", description="why, for the log")},
             tags=["mlops", "rollback", config.model],
             doc_md=f"Trigger by hand: **{config.model}** goes back to its previous champion through the same "
                    "compare-and-set as every promotion; a running canary ends. Same as "
                    f"`airflow-mlops rollback {config.model}`.") as dag:
        RollbackOperator(task_id="rollback", config=raw, reason="{{ params.reason }}")
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
        **_lifecycle(config),
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
    _finish_pipeline(dag, raw)
    return dag


def build_dags(config: ModelConfig, source: str | Path) -> dict[str, DAG]:
    dags = [build_ct_dag(config, source), build_drift_dag(config, source), build_score_dag(config, source),
            build_rollback_dag(config, source)]
    if config.canary.enabled:
        dags.append(build_canary_dag(config, source))
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
    # Logged, not written into the DAG: anything that changes between parses makes a new DAG version.
    log.info("Built %s from %s in %.0f ms", ", ".join(dags), path.name, (time.perf_counter() - started) * 1000)
    return dags

