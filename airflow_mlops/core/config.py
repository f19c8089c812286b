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

from airflow_mlops.core.durations import format_duration, parse_duration

Duration = Annotated[
    timedelta,
    BeforeValidator(parse_duration),
    PlainSerializer(format_duration, return_type=str),
]

_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_MODEL_NAME = re.compile(r"^[a-z][a-z0-9_]{0,62}$")
_DOTTED_PATH = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)+$")
_EXPECTATION = re.compile(r"^expect_[a-z0-9_]+$")

# Metrics the gate and canary understand, with their direction.
HIGHER_IS_BETTER = {"roc_auc": True, "average_precision": True, "accuracy": True, "f1": True,
                    "log_loss": False, "brier": False}
Metric = Literal["roc_auc", "average_precision", "accuracy", "f1", "log_loss", "brier"]


class ConfigError(ValueError):
    """A model config is invalid. ``str()`` reads ``<file>: <field>: <reason>``, one line per problem."""

    def __init__(self, source: str, problems: list[tuple[str, str]]):
        self.source = source
        self.problems = problems
        lines = [f"{source}: {field or '<root>'}: {reason}" for field, reason in problems]
        super().__init__("invalid model config\n" + "\n".join(lines))


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _check_identifier(value: str, what: str = "identifier") -> str:
    if not _IDENTIFIER.match(value):
        raise ValueError(f"{value!r} is not a valid {what} (letters, digits and '_', not starting with a digit)")
    return value


class DataConfig(_Strict):
    conn_id: str = "mlops_data"
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
        if (self.table is None) == (self.query is None):
            raise ValueError("set exactly one of 'table' or 'query'")
        if self.target in self.features:
            raise ValueError(f"the target {self.target!r} is also listed as a feature")
        unknown = [c for c in self.categorical if c not in self.features]
        if unknown:
            raise ValueError(f"categorical columns {unknown} are not in 'features'")
        if self.train_window <= timedelta(0) or self.holdout_window <= timedelta(0):
            raise ValueError("train_window and holdout_window must be positive")
        return self

    @property
    def numeric(self) -> list[str]:
        return [c for c in self.features if c not in self.categorical]


class ValidationConfig(_Strict):
    policy: Literal["fail", "warn", "quarantine"] = "fail"
    expectations: list[dict[str, dict[str, Any]]] = []

    @field_validator("expectations")
    @classmethod
    def _expectations(cls, value: list[dict[str, dict[str, Any]]]) -> list[dict[str, dict[str, Any]]]:
        for index, item in enumerate(value):
            if len(item) != 1:
                raise ValueError(f"item {index}: write one expectation per list item, as 'expect_x: {{kwargs}}'")
            (name,) = item
            if not _EXPECTATION.match(name):
                raise ValueError(f"item {index}: {name!r} is not a Great Expectations expectation name")
        return value


class TrainingConfig(_Strict):
    estimator: str = "lightgbm.LGBMClassifier"
    params: dict[str, Any] = {}
    seed: int = 42
    reference_sample_size: int = Field(default=10_000, ge=100, le=1_000_000)

    @field_validator("estimator")
    @classmethod
    def _estimator(cls, value: str) -> str:
        if not _DOTTED_PATH.match(value):
            raise ValueError(f"{value!r} is not a dotted import path such as 'lightgbm.LGBMClassifier'")
        return value


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

    @field_validator("minimum", "maximum")
    @classmethod
    def _known_metrics(cls, value: dict[str, float]) -> dict[str, float]:
        unknown = sorted(set(value) - set(HIGHER_IS_BETTER))
        if unknown:
            raise ValueError(f"unknown metrics {unknown}; known: {sorted(HIGHER_IS_BETTER)}")
        return value


class CanaryConfig(_Strict):
    enabled: bool = False
    steps: list[float] = [0.0, 0.05, 0.25, 0.5]
    label_delay: Duration = timedelta(days=7)
    min_labels_per_step: int = Field(default=500, ge=1)
    guardrails: dict[str, float] = {}
    failure_limit: int = Field(default=2, ge=1)

    @field_validator("steps")
    @classmethod
    def _steps(cls, value: list[float]) -> list[float]:
        if not value or any(not 0 <= s < 1 for s in value) or value != sorted(value):
            raise ValueError("steps must be increasing traffic shares in [0, 1)")
        return value


class DriftConfig(_Strict):
    schedule: str | None = "@daily"
    window: Duration = timedelta(days=7)
    backend: Literal["builtin", "alibi"] = "builtin"
    p_value: float = Field(default=0.05, gt=0, lt=1)
    correction: Literal["bh", "bonferroni", "none"] = "bh"
    drift_share: float = Field(default=0.5, gt=0, le=1)
    min_effect_size: float = Field(default=0.1, ge=0)
    min_sample_size: int = Field(default=100, ge=1)
    cooldown: Duration = timedelta(days=3)
    # Performance drift: the champion's metric on labelled rows of the window vs its holdout value.
    performance_margin: float = Field(default=0.02, ge=0)
    # The reference: the champion's stored training sample, or this SQL (run on the data connection).
    reference_query: str | None = None
    # Wait (deferred) up to this long for the window's data before checking; None = check right away.
    wait_for_data: Duration | None = None
    # The window counts as complete when its newest row is at most this old at the window's end.
    data_lag: Duration = timedelta(hours=1)
    # History of checks (for the UI), in the state connection; may be schema-qualified.
    reports_table: str = "drift_reports"

    @field_validator("reports_table")
    @classmethod
    def _reports_table(cls, value: str) -> str:
        for part in value.split("."):
            _check_identifier(part, "table name")
        return value


class MlflowConfig(_Strict):
    conn_id: str = "mlflow_default"
    experiment: str | None = None
    registered_model_name: str | None = None


class ModelConfig(_Strict):
    model: str
    description: str = ""
    owner: str = "mlops"
    schedule: str | None = "@weekly"
    start_date: str = "2024-01-01"
    retries: int = Field(default=2, ge=0, le=20)
    retry_delay: Duration = timedelta(minutes=5)
    state_conn_id: str | None = None
    data: DataConfig
    validation: ValidationConfig = ValidationConfig()
    training: TrainingConfig = TrainingConfig()
    gate: GateConfig = GateConfig()
    canary: CanaryConfig = CanaryConfig()
    drift: DriftConfig = DriftConfig()
    mlflow: MlflowConfig = MlflowConfig()

    @field_validator("model")
    @classmethod
    def _model_name(cls, value: str) -> str:
        if not _MODEL_NAME.match(value):
            raise ValueError(f"{value!r} must be lower case letters, digits and '_', starting with a letter")
        return value

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
    def quarantine_table(self) -> str:
        return self.data.quarantine_table or f"{self.model}_quarantine"

    def config_hash(self) -> str:
        """sha256 of the canonical JSON of the validated config (defaults filled in)."""
        canonical = json.dumps(self.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()


def _problems(error: ValidationError) -> list[tuple[str, str]]:
    problems = []
    for item in error.errors():
        field = ".".join(str(part) for part in item["loc"])
        message = item["msg"].removeprefix("Value error, ")
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


def load_config(path: str | Path) -> ModelConfig:
    """Read and validate one model YAML; raise :class:`ConfigError` naming the file and the field."""
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as error:
        raise ConfigError(str(path), [("", f"cannot read the file: {error.strerror}")]) from None
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        reason = getattr(error, "problem", None) or str(error)
        raise ConfigError(str(path), [(where, f"not valid YAML: {reason}")]) from None
    return parse_config(raw, str(path))
