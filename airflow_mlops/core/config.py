"""The model config: one YAML file per model, validated here.

Every error names the file, the field (dotted path) and the reason, so a broken config is fixable from the
Airflow import-error banner alone. Unknown fields are rejected: a typo must not silently fall back to a default.
"""

from __future__ import annotations

import hashlib
import json
import re
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    ValidationError,
    field_validator,
    model_validator,
)

from airflow_mlops.core.durations import format_duration, parse_duration, positive_duration
from airflow_mlops.core.errors import ConfigError
from airflow_mlops.core.expectations import EXPECTATION_TYPES

__all__ = ["ConfigError", "ModelConfig", "load_config", "parse_config"]

# A window or timeout: longer than zero. A non-negative duration (a cooldown, a lag) may be zero.
Duration = Annotated[
    timedelta,
    BeforeValidator(positive_duration),
    PlainSerializer(format_duration, return_type=str),
]
NonNegativeDuration = Annotated[
    timedelta,
    BeforeValidator(parse_duration),
    PlainSerializer(format_duration, return_type=str),
]
MAX_CONFIG_BYTES = 1_000_000
MAX_YAML_NODES = 20_000  # after alias expansion: a hand-written config has a few hundred
CRON_PRESETS = {"@hourly", "@daily", "@weekly", "@monthly", "@quarterly", "@yearly"}

# \Z, not $: "$" also matches before a trailing newline ("credit_risk\n" passed).
_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*\Z")
MODEL_NAME = re.compile(r"^[a-z][a-z0-9_]{0,62}\Z")
_DOTTED_PATH = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)+\Z")
_EXPECTATION = re.compile(r"^expect_[a-z0-9_]+\Z")

# Metrics the gate and canary understand, with their direction.
HIGHER_IS_BETTER = {"roc_auc": True, "average_precision": True, "accuracy": True, "f1": True,
                    "log_loss": False, "brier": False}
Metric = Literal["roc_auc", "average_precision", "accuracy", "f1", "log_loss", "brier"]


class _Strict(BaseModel):
    # No infinities or NaN anywhere: `non_inferiority_margin: .inf` made every gate PASS.
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


def check_schedule(value: str | None) -> str | None:
    """A cron expression (5 fields) or preset that actually fires; None = no time schedule."""
    if value is None:
        return value
    if value in CRON_PRESETS:
        return value
    if value.startswith("@"):
        raise ValueError(f"{value!r} is not a schedule preset; use one of {sorted(CRON_PRESETS)} or a cron expression")
    from datetime import datetime

    from croniter import CroniterBadCronError, CroniterBadDateError, croniter

    try:
        cron = croniter(value, datetime(2000, 1, 1))
    except (CroniterBadCronError, ValueError, KeyError) as error:
        raise ValueError(f"{value!r} is not a valid cron expression ({error})") from None
    if len(cron.expanded) != 5:
        raise ValueError(f"{value!r} must have 5 fields (minute hour day month weekday)")
    try:
        cron.get_next(datetime)
    except CroniterBadDateError:
        raise ValueError(f"{value!r} never fires (no such date)") from None
    return value


def _check_identifier(value: str, what: str = "identifier") -> str:
    if not _IDENTIFIER.match(value):
        raise ValueError(f"{value!r} is not a valid {what} (letters, digits and '_', not starting with a digit)")
    return value


ConnId = Annotated[str, Field(min_length=1, max_length=250)]


class DataConfig(_Strict):
    conn_id: ConnId = "mlops_data"
    table: str | None = None
    query: str | None = None
    timestamp_column: str
    entity_id: str
    target: str
    features: list[str] = Field(min_length=1)
    categorical: list[str] = []
    train_window: Duration = timedelta(days=180)
    holdout_window: Duration = timedelta(days=30)
    min_rows: int = Field(default=200, ge=1)
    quarantine_table: str | None = None
    # How timestamps are stored: ISO-8601 text or a timestamp type (iso), or numbers since 1970-01-01 UTC.
    timestamp_format: Literal["iso", "epoch_seconds", "epoch_milliseconds"] = "iso"

    @field_validator("query")
    @classmethod
    def _query(cls, value: str | None) -> str | None:
        if value is not None and not value.strip().rstrip(";").strip():
            raise ValueError("the query is empty")
        return value

    @field_validator("table", "quarantine_table")
    @classmethod
    def _table_name(cls, value: str | None) -> str | None:
        if value is None:
            return value
        # schema.table is allowed; each part must be an identifier (we quote, but refuse odd names early).
        for part in value.split("."):
            _check_identifier(part, "table name")
        return value

    @field_validator("timestamp_column", "entity_id", "target")
    @classmethod
    def _column(cls, value: str) -> str:
        return _check_identifier(value, "column name")

    @field_validator("features", "categorical")
    @classmethod
    def _columns(cls, value: list[str]) -> list[str]:
        for column in value:
            _check_identifier(column, "column name")
        if len(set(value)) != len(value):
            raise ValueError("columns are listed more than once")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> DataConfig:
        # "<field>: reason" messages are reported under data.<field> (see _problems).
        if (self.table is None) == (self.query is None):
            raise ValueError("table: set exactly one of 'table' or 'query'")
        if self.target in self.features:
            raise ValueError(f"features: the target {self.target!r} is also listed as a feature")
        unknown = [c for c in self.categorical if c not in self.features]
        if unknown:
            raise ValueError(f"categorical: columns {unknown} are not in 'features'")
        if self.entity_id == self.timestamp_column:
            raise ValueError(f"entity_id: {self.entity_id!r} is also the timestamp column")
        if self.target in (self.timestamp_column, self.entity_id):
            raise ValueError(f"target: {self.target!r} is also the timestamp column or the entity id")
        used = [c for c in (self.timestamp_column, self.entity_id) if c in self.features]
        if used:
            raise ValueError(f"features: {used} are the timestamp column / entity id, not features")
        if self.holdout_window > self.train_window:
            raise ValueError(f"holdout_window: {format_duration(self.holdout_window)} is longer than train_window "
                             f"({format_duration(self.train_window)})")
        return self

    @property
    def numeric(self) -> list[str]:
        return [c for c in self.features if c not in self.categorical]

    @property
    def window_columns(self) -> list[str]:
        """The columns a training window holds: entity id, time, features, target."""
        return list(dict.fromkeys([self.entity_id, self.timestamp_column, *self.features, self.target]))


class ValidationConfig(_Strict):
    policy: Literal["fail", "warn", "quarantine"] = "fail"
    # Where expectations run: in PostgreSQL over the window query (auto: when the data is in PostgreSQL and Great
    # Expectations can compute every expectation in SQL), or on the extracted snapshot in pandas.
    engine: Literal["auto", "database", "pandas"] = "auto"
    expectations: list[dict[str, dict[str, Any]]] = []

    @field_validator("expectations")
    @classmethod
    def _expectations(cls, value: list[dict[str, dict[str, Any]]]) -> list[dict[str, dict[str, Any]]]:
        for index, item in enumerate(value):
            if len(item) != 1:
                raise ValueError(f"item {index}: write one expectation per list item, as 'expect_x: {{kwargs}}'")
            (name,) = item
            if not _EXPECTATION.match(name) or name not in EXPECTATION_TYPES:
                import difflib

                close = difflib.get_close_matches(str(name), EXPECTATION_TYPES, n=1)
                hint = f" (did you mean {close[0]!r}?)" if close else ""
                raise ValueError(f"item {index}: {name!r} is not a Great Expectations expectation{hint}")
        return value


class TrainingConfig(_Strict):
    estimator: str = "lightgbm.LGBMClassifier"
    params: dict[str, Any] = {}
    seed: int = Field(default=42, ge=0, le=2**32 - 1)
    reference_sample_size: int = Field(default=10_000, ge=100, le=1_000_000)
    # After a PASS, fit once more on train + holdout and register that model (auto: drift-triggered runs only).
    refit: Literal["auto", "always", "never"] = "auto"
    # skops is safe to load; cloudpickle runs code when loaded and needs allow_pickle.
    serialization_format: Literal["skops", "cloudpickle"] = "skops"
    allow_pickle: bool = False

    @field_validator("estimator")
    @classmethod
    def _estimator(cls, value: str) -> str:
        if not _DOTTED_PATH.match(value):
            raise ValueError(f"{value!r} is not a dotted import path such as 'lightgbm.LGBMClassifier'")
        import importlib.util

        # Only the top-level package is looked up (without importing it): parsing a DAG must stay light.
        # `airflow-mlops validate-config` and the train task import the class and check it is a classifier.
        if importlib.util.find_spec(value.split(".", 1)[0]) is None:
            raise ValueError(f"{value!r}: package {value.split('.', 1)[0]!r} is not installed")
        return value

    @model_validator(mode="after")
    def _pickle_allowed(self) -> TrainingConfig:
        if self.serialization_format == "cloudpickle" and not self.allow_pickle:
            raise ValueError("serialization_format: 'cloudpickle' runs code when the model is loaded: "
                             "set allow_pickle: true to accept that")
        return self


class GateConfig(_Strict):
    metric: Metric = "roc_auc"
    minimum: dict[str, float] = {}
    maximum: dict[str, float] = {}
    non_inferiority_margin: float = Field(default=0.005, ge=0)
    confidence: float = Field(default=0.95, gt=0.5, lt=1)
    slices: list[str] = []
    min_slice_rows: int = Field(default=100, ge=10)
    bootstrap_samples: int = Field(default=1000, ge=100, le=100_000)
    on_inconclusive: Literal["fail", "approve", "promote"] = "fail"
    # How long the approval task waits for a human before it answers Reject itself.
    approval_timeout: Duration = timedelta(days=3)

    @field_validator("minimum", "maximum")
    @classmethod
    def _known_metrics(cls, value: dict[str, float]) -> dict[str, float]:
        unknown = sorted(set(value) - set(HIGHER_IS_BETTER))
        if unknown:
            raise ValueError(f"unknown metrics {unknown}; known: {sorted(HIGHER_IS_BETTER)}")
        return value


def _table_or_none(value: str | None) -> str | None:
    if value is not None:
        for part in value.split("."):
            _check_identifier(part, "table name")
    return value


class LabelsConfig(_Strict):
    """Where outcomes arrive for the canary analysis; each field defaults to the model's ``data`` source."""

    table: str | None = None
    query: str | None = None
    entity_id: str | None = None
    label: str | None = None

    @field_validator("table")
    @classmethod
    def _table(cls, value: str | None) -> str | None:
        return _table_or_none(value)

    @field_validator("entity_id", "label")
    @classmethod
    def _column(cls, value: str | None) -> str | None:
        return value if value is None else _check_identifier(value, "column name")

    @model_validator(mode="after")
    def _one_source(self) -> LabelsConfig:
        if self.table is not None and self.query is not None:
            raise ValueError("table: set at most one of 'table' or 'query'")
        return self


class CanaryConfig(_Strict):
    enabled: bool = False
    # Challenger traffic per step; 0.0 = shadow (both score, the champion's score is published). After the last
    # step passes, the challenger is promoted (full traffic), so no step is 1.0.
    steps: list[float] = [0.0, 0.05, 0.25, 0.5]
    label_delay: NonNegativeDuration = timedelta(days=7)
    min_labels_per_step: int = Field(default=500, ge=1)
    # metric -> non-inferiority margin (the challenger may be at most this much worse, lower CI bound)
    guardrails: dict[str, float] = {"roc_auc": 0.01}
    failure_limit: int = Field(default=2, ge=1)
    early_promotion: bool = False
    max_duration: Duration = timedelta(days=28)
    on_timeout: Literal["ask", "rollback", "promote"] = "ask"
    approval_timeout: Duration = timedelta(days=3)
    schedule: str | None = "@daily"
    confidence: float = Field(default=0.95, gt=0.5, lt=1)
    srm_p_value: float = Field(default=0.001, gt=0, lt=1)
    # How long a look waits (deferred) for enough matured labels before it analyses what there is.
    wait_for_labels: NonNegativeDuration = timedelta(hours=1)
    dry_run: bool = False
    labels: LabelsConfig = LabelsConfig()

    @field_validator("steps")
    @classmethod
    def _steps(cls, value: list[float]) -> list[float]:
        if not value or any(not 0 <= s < 1 for s in value):
            raise ValueError(f"{value}: every step is a traffic share in [0, 1) (full traffic is the promotion)")
        if any(b <= a for a, b in zip(value, value[1:], strict=False)):
            raise ValueError(f"{value}: steps must strictly increase")
        return value

    @field_validator("guardrails")
    @classmethod
    def _guardrails(cls, value: dict[str, float]) -> dict[str, float]:
        if not value:
            raise ValueError("at least one guardrail metric is needed: without one a canary would promote on label "
                             "counts and the traffic split alone")
        unknown = sorted(set(value) - set(HIGHER_IS_BETTER))
        if unknown:
            raise ValueError(f"unknown metrics {unknown}; known: {sorted(HIGHER_IS_BETTER)}")
        negative = [metric for metric, margin in value.items() if margin < 0]
        if negative:
            raise ValueError(f"margins must not be negative: {negative}")
        return value

    @field_validator("schedule")
    @classmethod
    def _schedule(cls, value: str | None) -> str | None:
        return check_schedule(value)


class ScoringConfig(_Strict):
    """Batch scoring (``mlops_score__<model>``): which rows to score and where predictions go."""

    conn_id: ConnId | None = None          # default: data.conn_id
    table: str | None = None               # default: the model's data source
    query: str | None = None
    timestamp_column: str | None = None    # default: data.timestamp_column; rows of [end - window, end)
    window: Duration = timedelta(days=1)
    schedule: str | None = "@daily"
    predictions_table: str | None = None   # default: <model>_predictions, in the scoring connection
    chunk_size: int = Field(default=50_000, ge=100, le=5_000_000)

    @field_validator("table", "predictions_table")
    @classmethod
    def _table(cls, value: str | None) -> str | None:
        return _table_or_none(value)

    @field_validator("predictions_table")
    @classmethod
    def _not_ours(cls, value: str | None) -> str | None:
        from airflow_mlops.core.names import PROVIDER_TABLES

        if value is not None and value.split(".")[-1].strip('"').lower() in PROVIDER_TABLES:
            raise ValueError(f"{value!r} is one of the provider's own tables {list(PROVIDER_TABLES)}: scoring would "
                             "overwrite the deployment state")
        return value

    @field_validator("timestamp_column")
    @classmethod
    def _column(cls, value: str | None) -> str | None:
        return value if value is None else _check_identifier(value, "column name")

    @field_validator("schedule")
    @classmethod
    def _schedule(cls, value: str | None) -> str | None:
        return check_schedule(value)

    @model_validator(mode="after")
    def _one_source(self) -> ScoringConfig:
        if self.table is not None and self.query is not None:
            raise ValueError("table: set at most one of 'table' or 'query'")
        return self


class DriftConfig(_Strict):
    schedule: str | None = "@daily"
    window: Duration = timedelta(days=7)
    backend: Literal["builtin", "alibi"] = "builtin"
    p_value: float = Field(default=0.05, gt=0, lt=1)
    correction: Literal["bh", "bonferroni", "none"] = "bh"
    drift_share: float = Field(default=0.5, gt=0, le=1)
    min_effect_size: float = Field(default=0.1, ge=0)
    min_sample_size: int = Field(default=100, ge=1)
    cooldown: NonNegativeDuration = timedelta(days=3)
    # Performance drift: the champion's metric on labelled rows of the window vs its holdout value.
    performance_margin: float = Field(default=0.02, ge=0)
    # The reference: the champion's stored training sample, or this SQL (run on the data connection).
    reference_query: str | None = None
    # Wait (deferred) up to this long for the window's data before checking; None = check right away.
    wait_for_data: Duration | None = None
    # The window counts as complete when its newest row is at most this old at the window's end.
    data_lag: NonNegativeDuration = timedelta(hours=1)
    # History of checks (for the UI), in the state connection; may be schema-qualified.
    reports_table: str = "drift_reports"

    @field_validator("schedule")
    @classmethod
    def _schedule(cls, value: str | None) -> str | None:
        return check_schedule(value)

    @field_validator("reports_table")
    @classmethod
    def _reports_table(cls, value: str) -> str:
        for part in value.split("."):
            _check_identifier(part, "table name")
        return value


class MlflowConfig(_Strict):
    conn_id: ConnId = "mlflow_default"
    experiment: str | None = None
    registered_model_name: str | None = None


class ModelConfig(_Strict):
    model: str
    description: str = ""
    owner: str = "mlops"
    schedule: str | None = "@weekly"
    start_date: str = "2024-01-01"
    retries: int = Field(default=2, ge=0, le=20)
    retry_delay: NonNegativeDuration = timedelta(minutes=5)
    state_conn_id: ConnId | None = None
    # PostgreSQL schema of the state tables (deployments, their log); ignored for SQLite.
    state_schema: str | None = None
    data: DataConfig
    validation: ValidationConfig = ValidationConfig()
    training: TrainingConfig = TrainingConfig()
    gate: GateConfig = GateConfig()
    canary: CanaryConfig = CanaryConfig()
    scoring: ScoringConfig = ScoringConfig()
    drift: DriftConfig = DriftConfig()
    mlflow: MlflowConfig = MlflowConfig()

    @field_validator("model")
    @classmethod
    def _model_name(cls, value: str) -> str:
        if not MODEL_NAME.match(value):
            raise ValueError(f"{value!r} must be lower case letters, digits and '_', starting with a letter")
        return value

    @field_validator("schedule")
    @classmethod
    def _schedule(cls, value: str | None) -> str | None:
        return check_schedule(value)

    @field_validator("state_schema")
    @classmethod
    def _state_schema(cls, value: str | None) -> str | None:
        return value if value is None else _check_identifier(value, "schema name")

    @field_validator("start_date")
    @classmethod
    def _start_date(cls, value: str) -> str:
        from datetime import datetime

        datetime.fromisoformat(value)  # raises a ValueError pydantic reports with the field
        return value

    @model_validator(mode="after")
    def _slices_exist(self) -> ModelConfig:
        unknown = [s for s in self.gate.slices if s not in self.data.features]
        if unknown:
            raise ValueError(f"gate.slices {unknown} are not in data.features")
        return self

    # Derived names, so every operator and DAG agrees on them.
    @property
    def registered_model_name(self) -> str:
        return self.mlflow.registered_model_name or self.model

    @property
    def experiment_name(self) -> str:
        return self.mlflow.experiment or f"mlops/{self.model}"

    @property
    def state_conn(self) -> str:
        return self.state_conn_id or self.data.conn_id

    @property
    def predictions_table(self) -> str:
        return self.scoring.predictions_table or f"{self.model}_predictions"

    @property
    def quarantine_table(self) -> str:
        return self.data.quarantine_table or f"{self.model}_quarantine"

    def config_hash(self) -> str:
        """sha256 of the canonical JSON of the validated config (defaults filled in)."""
        canonical = json.dumps(self.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()


_FIELD_PREFIX = re.compile(r"^([a-z_][a-z0-9_]*): (.+)$", re.S)


def _problems(error: ValidationError) -> list[tuple[str, str]]:
    problems = []
    for item in error.errors():
        field = ".".join(str(part) for part in item["loc"])
        message = item["msg"].removeprefix("Value error, ")
        prefixed = _FIELD_PREFIX.match(message)
        # A model validator (its input is the section's mapping) names the field it is about as a prefix.
        if item["type"] == "value_error" and prefixed and isinstance(item["input"], dict):
            field = f"{field}.{prefixed.group(1)}" if field else prefixed.group(1)
            message = prefixed.group(2)
        if item["type"] == "extra_forbidden":
            message = "unknown field (check the spelling)"
        problems.append((field, message))
    return problems


def parse_config(raw: Any, source: str = "<config>") -> ModelConfig:
    if not isinstance(raw, dict):
        raise ConfigError(source, [("", f"expected a mapping at the top level, got {type(raw).__name__}")])
    try:
        return ModelConfig.model_validate(raw)
    except ValidationError as error:
        raise ConfigError(source, _problems(error)) from None


def _expanded_size(node, memo: dict[int, int], open_nodes: set[int] | None = None) -> int:
    """Number of nodes ``node`` becomes once every alias is expanded (aliases share node objects). Refuses an alias
    that points back to one of its own ancestors (it expands forever) and a key given twice in one mapping."""
    open_nodes = set() if open_nodes is None else open_nodes
    key = id(node)
    if key in open_nodes:
        mark = node.start_mark
        raise ValueError(f"a recursive alias at line {mark.line + 1} refers to a mapping or list it is part of")
    if key in memo:
        return memo[key]
    open_nodes.add(key)
    if isinstance(node, yaml.MappingNode):
        seen: dict[str, int] = {}
        for k, _ in node.value:
            if isinstance(k, yaml.ScalarNode):
                if k.value in seen:
                    raise ValueError(f"key {k.value!r} appears twice in one mapping (lines {seen[k.value] + 1} "
                                     f"and {k.start_mark.line + 1}): the second would silently win")
                seen[k.value] = k.start_mark.line
        size = 1 + sum(_expanded_size(k, memo, open_nodes) + _expanded_size(v, memo, open_nodes)
                       for k, v in node.value)
    elif isinstance(node, yaml.SequenceNode):
        size = 1 + sum(_expanded_size(item, memo, open_nodes) for item in node.value)
    else:
        size = 1
    open_nodes.discard(key)
    memo[key] = size
    return size


def safe_load_yaml(text: str):
    """``yaml.safe_load`` that refuses documents whose aliases expand beyond :data:`MAX_YAML_NODES` nodes (an
    "alias bomb" of a few lines expands to billions of nodes: measured 96 s and 7.8 GB in the DAG processor)."""
    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        size = _expanded_size(node, {})
        if size > MAX_YAML_NODES:
            raise ValueError(f"the document expands to {size:,} nodes through its aliases (limit {MAX_YAML_NODES:,})")
        return loader.construct_document(node)
    finally:
        loader.dispose()


def load_config(path: str | Path) -> ModelConfig:
    """Read and validate one model YAML; raise :class:`ConfigError` naming the file and the field."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as error:
        raise ConfigError(str(path), [("", f"cannot read the file: {error.strerror}")]) from None
    if len(data) > MAX_CONFIG_BYTES:
        raise ConfigError(str(path), [("", f"the file has {len(data):,} bytes; a model config is at most "
                                           f"{MAX_CONFIG_BYTES:,}")])
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as error:
        raise ConfigError(str(path), [("", f"not UTF-8 text: byte 0x{data[error.start]:02x} at offset "
                                           f"{error.start}; save the file as UTF-8")]) from None
    try:
        raw = safe_load_yaml(text)
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        reason = getattr(error, "problem", None) or str(error)
        raise ConfigError(str(path), [(where, f"not valid YAML: {reason}")]) from None
    except (ValueError, RecursionError) as error:
        raise ConfigError(str(path), [("", f"refused: {error}")]) from None
    return parse_config(raw, str(path))


def check_deeply(config: ModelConfig) -> list[tuple[str, str]]:
    """Checks too heavy for DAG parsing (they import the estimator): ``airflow-mlops validate-config`` runs
    them. Returns ``[(field, reason)]``."""
    from airflow_mlops.core.errors import EstimatorError

    problems = []
    try:
        from airflow_mlops.core.training import load_estimator_class

        cls = load_estimator_class(config.training.estimator)
        from sklearn.base import is_classifier

        try:
            instance = cls()
        except Exception:  # needs constructor arguments: the train task builds it with training.params
            instance = None
        if instance is not None and hasattr(instance, "__sklearn_tags__") and not is_classifier(instance):
            problems.append(("training.estimator", f"{config.training.estimator} is not a classifier"))
    except EstimatorError as error:
        problems.append(("training.estimator", str(error).removeprefix("training.estimator ")))
    from airflow_mlops.core.errors import ValidationSetupError
    from airflow_mlops.core.validation import build_suite, ephemeral_context

    try:
        ephemeral_context()  # Great Expectations builds expectations only inside a context
        build_suite(config.validation, f"{config.model}_check")  # arguments checked by GX itself
    except ValidationSetupError as error:
        field, _, reason = str(error).partition(": ")
        problems.append((field, reason or str(error)))
    return problems
