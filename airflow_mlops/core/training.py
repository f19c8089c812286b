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
from airflow_mlops.core.errors import EstimatorError


__all__ = ["EstimatorError", "fit_model", "score", "prepare_features"]


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
    """The feature frame a model sees: categoricals as text labels (:mod:`airflow_mlops.core.categories`;
    missing stays missing), numbers as float."""
    import pandas as pd

    from airflow_mlops.core.categories import category_labels

    features = pd.DataFrame(index=frame.index)
    for column in config.data.features:
        series = frame[column]
        if column in config.data.categorical:
            features[column] = category_labels(series)
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


def _providing_distributions(module: str, providers: dict[str, list[str]]) -> list[str]:
    """The installed distributions that provide ``module`` (dotted): for a namespace package such as ``google``
    or ``airflow``, only those whose files hold the deepest part of the path that exists."""
    candidates = sorted(set(providers.get(module.split(".", 1)[0]) or []))
    if len(candidates) <= 1:
        return candidates
    parts = module.split(".")
    files = {name: [str(f) for f in (metadata.distribution(name).files or [])] for name in candidates}
    for depth in range(len(parts), 0, -1):
        prefix = "/".join(parts[:depth])
        matching = [name for name in candidates
                    if any(f.startswith(prefix + "/") or f == prefix + ".py" for f in files[name])]
        if matching:
            return matching
    return candidates


def _local_install(distribution: str) -> str | None:
    """How a distribution was installed when it was not from a package index (editable, a path, a VCS URL)."""
    import json

    try:
        raw = metadata.distribution(distribution).read_text("direct_url.json")
    except (FileNotFoundError, metadata.PackageNotFoundError):
        return None
    if not raw:
        return None
    info = json.loads(raw)
    if (info.get("dir_info") or {}).get("editable"):
        return "an editable install"
    if "vcs_info" in info:
        return "a VCS checkout"
    if str(info.get("url", "")).startswith("file:"):
        return "a local path"
    return None


def pip_requirements(estimator_path: str, *, serialization_format: str = "skops") -> tuple[list[str], list[str]]:
    """Exact pins of what the logged model needs to load, and warnings about what was left out.

    Module names are mapped to the *installed distributions* that provide them (``sklearn`` ->
    ``scikit-learn==1.9.1``). A module no installed distribution provides (a package of your own, say
    ``my_company_models``), or one installed from a local path, an editable checkout or a VCS URL, is left out with a
    warning instead of becoming a PyPI requirement that anyone could register on PyPI (dependency confusion) for
    whoever serves the model.
    """
    providers = metadata.packages_distributions()
    modules = ["sklearn", "numpy", "pandas", "scipy", "skops" if serialization_format == "skops" else "cloudpickle"]
    estimator_module = estimator_path.rpartition(".")[0]
    if estimator_module.split(".", 1)[0] not in modules:
        modules.append(estimator_module)
    pins, warnings = [], []
    for module in modules:
        distributions = _providing_distributions(module, providers)
        if not distributions:
            warnings.append(f"module {module!r} (of training.estimator {estimator_path!r}) comes from no installed "
                            "distribution: it is not listed in the model's requirements; install it where the model "
                            "is served")
            continue
        for distribution in distributions:
            local = _local_install(distribution)
            if local:
                warnings.append(f"{distribution} (module {module!r}) is installed from {local}, not a package index: "
                                "it is not listed in the model's requirements; install it where the model is served")
                continue
            pin = f"{distribution}=={metadata.version(distribution)}"
            if pin not in pins:
                pins.append(pin)
    return pins, warnings


def package_versions() -> dict[str, str]:
    versions = {}
    for name in ("airflow-provider-mlops", "apache-airflow", "mlflow", "scikit-learn", "lightgbm", "pandas",
                 "numpy", "scipy", "great-expectations"):
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return versions
