"""Names that cross modules: MLflow tag keys, alias names, artifact paths, model URIs, state table names.

Writers (operators) and readers (the UI plugin, the demo, tests) import these constants, so a rename cannot
leave one side behind. Nothing here imports anything heavy or Airflow.
"""

from __future__ import annotations

# --- registry aliases ----------------------------------------------------------------------------------------
CHAMPION = "champion"
CHALLENGER = "challenger"
PREVIOUS_CHAMPION = "previous_champion"
ALIASES = (CHAMPION, CHALLENGER, PREVIOUS_CHAMPION)

# --- MLflow tags (runs and model versions) ---------------------------------------------------------------------
TAG_PREFIX = "mlops."
# identity of a task try (run) and of a DAG run (parent run)
IDEMPOTENCY_KEY = "mlops.idempotency_key"
PIPELINE_KEY = "mlops.pipeline_key"
RESULT = "mlops.result"
# lineage
DAG_ID = "mlops.dag_id"
RUN_ID = "mlops.run_id"
TASK_ID = "mlops.task_id"
MAP_INDEX = "mlops.map_index"
MODEL = "mlops.model"
CONFIG_HASH = "mlops.config_hash"
CODE_VERSION = "mlops.code_version"
BUNDLE_VERSION = "mlops.bundle_version"
PACKAGE_VERSIONS = "mlops.package_versions"
TRIGGER = "mlops.trigger"
DRIFT_EVENT = "mlops.drift_event"
DRIFT_EVENTS = "mlops.drift_events"
# data
DATA_FINGERPRINT = "mlops.data_fingerprint"
DATA_RUN_ID = "mlops.data_run_id"
ROWS = "mlops.rows"
SCHEMA = "mlops.schema"
VALIDATION_RUN_ID = "mlops.validation_run_id"
VALIDATION_SUCCESS = "mlops.validation.success"
VALIDATION_ENGINE = "mlops.validation.engine"  # database | pandas
REFERENCE_ARTIFACT_TAG = "mlops.reference_artifact"
# the model a training run logged, and what it must look like when loaded again (integrity)
MODEL_ARTIFACT_PATH = "mlops.model_artifact_path"
MODEL_SHA256 = "mlops.model_sha256"
MODEL_FLAVOR = "mlops.model_flavor"
MODEL_FORMAT = "mlops.model_format"
REFIT = "mlops.refit"
REFIT_OF = "mlops.refit_of_run"
# gate
GATE_VERDICT = "mlops.gate.verdict"
GATE_DECISION = "mlops.gate.decision"
GATE_CHAMPION_VERSION = "mlops.gate.champion_version"
GATE_CHAMPION_STATUS = "mlops.gate.champion_status"
# registry
PROMOTED_BY = "mlops.promoted_by"
# drift
DRIFT_STATUS = "mlops.drift.status"
CHAMPION_VERSION = "mlops.champion_version"

# --- artifact paths inside MLflow runs -------------------------------------------------------------------------
DATA_ARTIFACT = "data/window.parquet"
VALIDATED_ARTIFACT = "data/validated.parquet"
REJECTED_ARTIFACT = "data/rejected.parquet"
EXTRACT_REPORT = "data/read_report.json"
VALIDATION_JSON = "validation/report.json"
VALIDATION_HTML = "validation/report.html"
REFERENCE_ARTIFACT = "reference/sample.parquet"
MODEL_ARTIFACT = "model"
CONFIG_ARTIFACT = "config/model.json"
GATE_JSON = "gate/report.json"
GATE_HTML = "gate/report.html"
DRIFT_JSON = "drift/report.json"
DRIFT_HTML = "drift/report.html"

# --- state tables (in the state connection) --------------------------------------------------------------------
SCHEMA_VERSION_TABLE = "mlops_schema_version"
DEPLOYMENTS_TABLE = "mlops_deployments"
DEPLOYMENT_LOG_TABLE = "mlops_deployment_log"
PREDICTION_LOG_TABLE = "mlops_prediction_log"
CANARY_ANALYSIS_TABLE = "mlops_canary_analysis"
PROVIDER_TABLES = (SCHEMA_VERSION_TABLE, DEPLOYMENTS_TABLE, DEPLOYMENT_LOG_TABLE, PREDICTION_LOG_TABLE,
                   CANARY_ANALYSIS_TABLE)


def model_version_uri(name: str, version: str | int) -> str:
    """``models:/<name>/<version>``: the registry URI of one version."""
    return f"models:/{name}/{version}"


def model_alias_uri(name: str, alias: str) -> str:
    """``models:/<name>@<alias>``: what a serving system loads."""
    return f"models:/{name}@{alias}"


def run_artifact_uri(run_id: str, path: str) -> str:
    return f"runs:/{run_id}/{path}"


def canary_asset_uri(model: str) -> str:
    """The Asset the CT DAG updates when it starts a canary; the canary DAG is scheduled on it."""
    return f"mlops://{model}/canary"


def drift_asset_uri(model: str) -> str:
    """The Asset the drift DAG updates and the CT DAG is scheduled on."""
    return f"mlops://{model}/drift"
