"""Estimator construction, seeded fitting and scoring for tabular binary classifiers.

The fitted object is a plain scikit-learn ``Pipeline`` (preprocessing + estimator) so the MLflow model needs
only scikit-learn (and LightGBM when used) to load: no airflow_mlops code in the serving environment.
* LightGBM: categoricals are ordinal-encoded (unknown and missing -> -1, which LightGBM treats as missing)
  and declared as categorical features, so LightGBM splits on them natively; numeric NaN is kept.
* Other scikit-learn estimators: median imputation + scaling for numbers, one-hot encoding with an explicit
  missing level for categories (unknown categories at scoring time are ignored, not an error).
"""

from __future__ import annotations

import importlib
import inspect
from importlib import metadata

from airflow_mlops.core.config import ModelConfig


class EstimatorError(ValueError):
    """The configured estimator cannot be imported or built from its parameters."""


def load_estimator_class(path: str):
    module_name, _, class_name = path.rpartition(".")
    try:
        module = importlib.import_module(module_name)
    except ImportError as error:
        raise EstimatorError(f"training.estimator {path!r}: cannot import module {module_name!r} ({error})") from None
    try:
        cls = getattr(module, class_name)
    except AttributeError:
        raise EstimatorError(f"training.estimator {path!r}: module {module_name!r} has no {class_name!r}") from None
    if not inspect.isclass(cls) or not hasattr(cls, "fit") or not hasattr(cls, "predict_proba"):
        raise EstimatorError(f"training.estimator {path!r} is not a classifier class with fit and predict_proba")
    return cls


def is_lightgbm(path: str) -> bool:
    return path.split(".", 1)[0] == "lightgbm"


def build_estimator(config: ModelConfig):
    cls = load_estimator_class(config.training.estimator)
    params = dict(config.training.params)
    accepted = inspect.signature(cls).parameters
    if "random_state" in accepted:
        params.setdefault("random_state", config.training.seed)
    if is_lightgbm(config.training.estimator):
        # Reproducible and quiet by default; a config can still override each of these.
        params.setdefault("deterministic", True)
        params.setdefault("force_row_wise", True)
        params.setdefault("verbose", -1)
    try:
        return cls(**params)
    except TypeError as error:
        raise EstimatorError(f"training.params do not fit {config.training.estimator}: {error}") from None


def build_pipeline(config: ModelConfig):
    """Return ``(pipeline, fit_params)`` for the configured estimator."""
    from sklearn.compose import ColumnTransformer
    from sklearn.impute import SimpleImputer
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder, OrdinalEncoder, StandardScaler

    estimator = build_estimator(config)
    categorical, numeric = config.data.categorical, config.data.numeric
    fit_params = {}
    if is_lightgbm(config.training.estimator):
        encoder = OrdinalEncoder(handle_unknown="use_encoded_value", unknown_value=-1,
                                 encoded_missing_value=-1, dtype="float64")
        preprocess = ColumnTransformer([("cat", encoder, categorical), ("num", "passthrough", numeric)])
        if categorical:
            fit_params["model__categorical_feature"] = list(range(len(categorical)))
    else:
        categories = Pipeline([("impute", SimpleImputer(strategy="constant", fill_value="__missing__")),
                               ("onehot", OneHotEncoder(handle_unknown="ignore"))])
        numbers = Pipeline([("impute", SimpleImputer(strategy="median")), ("scale", StandardScaler())])
        preprocess = ColumnTransformer([("cat", categories, categorical), ("num", numbers, numeric)])
    return Pipeline([("preprocess", preprocess), ("model", estimator)]), fit_params


def prepare_features(frame, config: ModelConfig):
    """The feature frame a model sees: categoricals as strings (missing stays missing), numbers as float."""
    import numpy as np
    import pandas as pd

    features = pd.DataFrame(index=frame.index)
    for column in config.data.features:
        series = frame[column]
        if column in config.data.categorical:
            features[column] = series.astype(str).astype(object).where(series.notna(), np.nan)
        else:
            features[column] = pd.to_numeric(series, errors="coerce").astype("float64")
    return features


def fit_model(frame, config: ModelConfig):
    pipeline, fit_params = build_pipeline(config)
    target = frame[config.data.target].astype("int64").to_numpy()
    pipeline.fit(prepare_features(frame, config), target, **fit_params)
    return pipeline


def score(model, frame, config: ModelConfig):
    """Probability of class 1 from a fitted pipeline or an MLflow pyfunc/sklearn model."""
    import numpy as np

    features = prepare_features(frame, config)
    if hasattr(model, "predict_proba"):
        return np.asarray(model.predict_proba(features))[:, 1]
    raise TypeError(f"{type(model).__name__} has no predict_proba")


def skops_trusted_types(model) -> list[str]:
    """Types of our own fitted pipeline that skops (MLflow's safe sklearn format) must be told to trust.

    We built the object ourselves in this process, so trusting exactly its types is safe; loading a model
    from elsewhere still refuses anything outside this list.
    """
    import skops.io

    return sorted(skops.io.get_untrusted_types(data=skops.io.dumps(model)))


def pip_requirements(estimator_path: str) -> list[str]:
    """Exact pins of what the logged model needs to load, so MLflow does not infer them (slow) or drift."""
    names = ["scikit-learn", "numpy", "pandas", "scipy", "skops"]
    if is_lightgbm(estimator_path):
        names.append("lightgbm")
    top = estimator_path.split(".", 1)[0]
    if top not in {"sklearn", "lightgbm"}:
        names.append(top)
    pins = []
    for name in names:
        try:
            pins.append(f"{name}=={metadata.version(name)}")
        except metadata.PackageNotFoundError:
            pins.append(name)
    return pins


def package_versions() -> dict[str, str]:
    versions = {}
    for name in ("airflow-provider-mlops", "apache-airflow", "mlflow", "scikit-learn", "lightgbm", "pandas",
                 "numpy", "scipy", "great-expectations"):
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return versions
