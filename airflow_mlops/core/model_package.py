"""How a trained pipeline is packaged as an MLflow model, and loaded back.

The package is an MLflow *code model* (``python_function`` flavour, loader ``mlflow.pyfunc.loaders.code_model``):
* ``artifacts/pipeline.skops``: the fitted scikit-learn ``Pipeline`` in skops' safe format, with the exact list of
  types skops must trust (``artifacts/trusted_types.json``), which are the types of the pipeline we just fitted;
* ``score_model.py``: a dozen lines (below) that load it and make ``predict`` return the **positive-class
  probability** as a 1-D float array: the score the gate, drift and canary use, and what the signature declares.
  It imports only MLflow and skops: serving needs no airflow-mlops.
Nothing is pickled unless the config asks for ``training.serialization_format: cloudpickle`` (and allows pickle).

Input contract (``predict``): a DataFrame with the model's feature columns; categorical features as strings
(missing = null), numeric features as floats (missing = NaN). :func:`airflow_mlops.core.training.prepare_features`
turns raw rows into that shape.
"""

from __future__ import annotations

import json
import os
import tempfile
import warnings
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from airflow_mlops.core.integrity import directory_sha256

FLAVOR = "python_function"
CODE_FILE = "score_model.py"
PIPELINE_KEY = "pipeline"
TRUSTED_TYPES_KEY = "trusted_types"

SCORE_MODEL_CODE = '''"""airflow-mlops score model: predict() returns the positive-class probability (1-D floats)."""
import json

import mlflow
import pandas as pd
from mlflow.pyfunc import PythonModel


class PositiveClassScore(PythonModel):
    def load_context(self, context):
        path = context.artifacts["pipeline"]
        if path.endswith(".skops"):
            import skops.io

            with open(context.artifacts["trusted_types"]) as handle:
                trusted = json.load(handle)
            self.pipeline = skops.io.load(path, trusted=trusted)
        else:  # cloudpickle, only when the model config allowed pickle
            import cloudpickle

            with open(path, "rb") as handle:
                self.pipeline = cloudpickle.load(handle)

    def predict(self, context, model_input: pd.DataFrame, params=None):
        return self.pipeline.predict_proba(model_input)[:, 1]


mlflow.models.set_model(PositiveClassScore())
'''


# Airflow 3's deprecated-import shims warn the first time each attribute is probed.
AIRFLOW_SHIM_WARNING = r"The `airflow\.[\w.]+` (attribute )?is deprecated"


@contextmanager
def quiet_model_io():
    """Silence Airflow's deprecated-import warnings while skops saves or loads a model.

    skops resolves every type by probing modules with ``getattr``; Airflow 3 keeps deprecated import shims that
    warn on each probe, which put 1,615 warning lines into one task's log (measured) and hide the real ones.
    Only that message is filtered, only for the block.
    """
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=AIRFLOW_SHIM_WARNING)
        yield


@dataclass(frozen=True)
class SavedModel:
    path: str
    sha256: str
    flavor: str
    format: str


def save_model_package(pipeline, path: str | Path, *, example, pip_requirements: list[str],
                       serialization_format: str = "skops") -> SavedModel:
    """Write ``pipeline`` as a code model into the (new) directory ``path``; return its digest and format."""
    import mlflow.pyfunc
    from mlflow.models import infer_signature

    path = Path(path)
    with tempfile.TemporaryDirectory() as staging, quiet_model_io():
        staging = Path(staging)
        code = staging / CODE_FILE
        code.write_text(SCORE_MODEL_CODE)
        artifacts = {}
        if serialization_format == "skops":
            import skops.io

            pipeline_file = staging / "pipeline.skops"
            skops.io.dump(pipeline, pipeline_file)
            trusted = sorted(skops.io.get_untrusted_types(file=pipeline_file))
            trusted_file = staging / "trusted_types.json"
            trusted_file.write_text(json.dumps(trusted, indent=1))
            artifacts = {PIPELINE_KEY: str(pipeline_file), TRUSTED_TYPES_KEY: str(trusted_file)}
        elif serialization_format == "cloudpickle":
            import cloudpickle

            pipeline_file = staging / "pipeline.pkl"
            pipeline_file.write_bytes(cloudpickle.dumps(pipeline))
            artifacts = {PIPELINE_KEY: str(pipeline_file)}
        else:
            raise ValueError(f"unknown serialization format {serialization_format!r}")
        signature = infer_signature(example, pipeline.predict_proba(example)[:, 1])
        with warnings.catch_warnings():
            # The signature is explicit; no input example is stored on purpose (it would copy training rows).
            warnings.filterwarnings("ignore", message=".*(type hints|input example).*")
            # uv_project_path: an empty folder, so MLflow does not copy the uv.lock/pyproject.toml of whatever
            # project the worker's current directory happens to be into the model.
            mlflow.pyfunc.save_model(str(path), python_model=str(code), artifacts=artifacts, signature=signature,
                                     pip_requirements=pip_requirements, uv_project_path=str(staging))
    return SavedModel(str(path), directory_sha256(path), FLAVOR, serialization_format)


def load_pipeline(path: str | Path):
    """The fitted pipeline inside a *verified* model directory (see :mod:`airflow_mlops.core.integrity`)."""
    import mlflow.pyfunc

    with quiet_model_io():
        model = mlflow.pyfunc.load_model(str(path))
    return model.unwrap_python_model().pipeline


def minimal_subprocess_env(home: str, *, allow_pickle: bool) -> dict[str, str]:
    """The environment of a child process that deserializes a model: no credentials, no connections.

    Only what the interpreter needs to start; ``HOME``/``TMPDIR`` point into a scratch folder.
    """
    env = {"PATH": os.environ.get("PATH", os.defpath), "HOME": home, "TMPDIR": home, "LANG": "C.UTF-8",
           "PYTHONNOUSERSITE": "1", "GIT_PYTHON_REFRESH": "quiet",
           "MLFLOW_ALLOW_PICKLE_DESERIALIZATION": "true" if allow_pickle else "false"}
    if os.environ.get("PYTHONPATH"):
        env["PYTHONPATH"] = os.environ["PYTHONPATH"]
    return env
