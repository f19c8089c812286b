"""MLflowHook: an Airflow connection of type ``mlflow`` turned into an MLflow client.

Credentials never go into ``os.environ``: MLflow reads tokens from environment variables, which every
subprocess would inherit and which crash reports dump. Instead a request-header provider (registered with
MLflow through the ``mlflow.request_header_provider`` entry point) adds the ``Authorization`` header while a
:meth:`MLflowHook.session` is open. The token is never logged.
"""

from __future__ import annotations

import base64
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cached_property
from typing import Any

from airflow.sdk import BaseHook

from airflow_mlops.hooks import mlflow_auth


@dataclass(frozen=True)
class MlflowSettings:
    tracking_uri: str
    registry_uri: str | None
    authorization: str | None  # a ready header value; never printed (repr hides it)
    ui_url: str | None = None  # where people open the MLflow UI, for extra links
    artifact_root: str | None = None  # for experiments we create, when the server has no default root

    def __repr__(self) -> str:
        return f"MlflowSettings(tracking_uri={self.tracking_uri!r}, registry_uri={self.registry_uri!r})"


def settings_from_connection(conn: Any) -> MlflowSettings:
    """Tracking URI from ``extra.tracking_uri`` or from host/port; auth from login/password."""
    extra = conn.extra_dejson if hasattr(conn, "extra_dejson") else {}
    uri = extra.get("tracking_uri")
    if not uri:
        host = (conn.host or "").rstrip("/")
        if not host:
            raise ValueError(f"connection {conn.conn_id!r}: set 'host' or extra 'tracking_uri' for MLflow")
        if "://" not in host:
            host = f"{extra.get('scheme', 'http')}://{host}"
        uri = f"{host}:{conn.port}" if conn.port else host
    authorization = None
    if conn.password:
        if conn.login:
            pair = base64.b64encode(f"{conn.login}:{conn.password}".encode()).decode()
            authorization = f"Basic {pair}"
        else:
            authorization = f"Bearer {conn.password}"
    ui_url = extra.get("ui_url") or (uri if uri.startswith(("http://", "https://")) else None)
    return MlflowSettings(uri, extra.get("registry_uri") or None, authorization, ui_url,
                          extra.get("artifact_root") or None)


class MLflowHook(BaseHook):
    """Talk to an MLflow tracking server / model registry through an Airflow connection.

    :param mlflow_conn_id: connection of type ``mlflow``. Host (and port) of the tracking server, or the
        ``tracking_uri`` extra for any URI MLflow accepts (``file:``, ``sqlite:``, ``databricks``);
        ``registry_uri`` extra when the registry lives elsewhere; ``ui_url`` extra for links when the UI is
        not the tracking URI; password = token (with login: basic auth).
    """

    conn_name_attr = "mlflow_conn_id"
    default_conn_name = "mlflow_default"
    conn_type = "mlflow"
    hook_name = "MLflow"

    def __init__(self, mlflow_conn_id: str = default_conn_name, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.mlflow_conn_id = mlflow_conn_id

    @cached_property
    def settings(self) -> MlflowSettings:
        return settings_from_connection(self.get_connection(self.mlflow_conn_id))

    def get_conn(self):
        from mlflow import MlflowClient

        return MlflowClient(tracking_uri=self.settings.tracking_uri, registry_uri=self.settings.registry_uri)

    @contextmanager
    def session(self):
        """Point MLflow's fluent API (``mlflow.start_run``, ``log_model``) at this connection for a block.

        The previous tracking/registry URIs are restored afterwards; auth is added per request.
        """
        import mlflow
        from mlflow.tracking._tracking_service import utils as tracking_utils

        settings = self.settings
        with mlflow_auth.authorization(settings.authorization):
            previous_tracking = tracking_utils._tracking_uri
            previous_registry = mlflow.get_registry_uri() if previous_tracking else None
            mlflow.set_tracking_uri(settings.tracking_uri)
            mlflow.set_registry_uri(settings.registry_uri or settings.tracking_uri)
            try:
                yield self.get_conn()
            finally:
                if previous_tracking:
                    mlflow.set_tracking_uri(previous_tracking)
                    mlflow.set_registry_uri(previous_registry)

    def test_connection(self) -> tuple[bool, str]:
        try:
            with self.session() as client:
                client.search_experiments(max_results=1)
        except Exception as error:  # the message is shown in the UI; it names no secret
            return False, f"MLflow is not reachable: {type(error).__name__}: {error}"
        return True, "MLflow tracking server reachable"


# --- models ----------------------------------------------------------------------------------------------

# Airflow 3's deprecated-import shims warn the first time each attribute is probed.
AIRFLOW_SHIM_WARNING = r"The `airflow\.[\w.]+` (attribute )?is deprecated"


@contextmanager
def quiet_model_io():
    """Silence Airflow's deprecated-import warnings while skops (MLflow's sklearn format) saves or loads.

    skops resolves every type by probing modules with ``getattr``; Airflow 3 keeps deprecated import shims that
    warn on each probe, which put 1,615 warning lines into one task's log (measured) and hide the real ones.
    Only that message is filtered, only for the block.
    """
    import warnings

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=AIRFLOW_SHIM_WARNING)
        yield


def load_sklearn_model(model_uri: str):
    import mlflow.sklearn

    with quiet_model_io():
        return mlflow.sklearn.load_model(model_uri)


# --- artifacts -------------------------------------------------------------------------------------------

def log_frame(client, run_id: str, frame, artifact_file: str) -> str:
    """Store a DataFrame as a Parquet artifact of ``run_id`` (overwriting: retries are safe)."""
    import os
    import tempfile

    directory, _, name = artifact_file.rpartition("/")
    with tempfile.TemporaryDirectory() as tmp:
        local = os.path.join(tmp, name)
        frame.to_parquet(local, index=False)
        client.log_artifact(run_id, local, directory or None)
    return artifact_file


def load_frame(client, run_id: str, artifact_file: str):
    import tempfile

    import pandas as pd

    with tempfile.TemporaryDirectory() as tmp:
        local = client.download_artifacts(run_id, artifact_file, tmp)
        return pd.read_parquet(local)


def load_json(client, run_id: str, artifact_file: str):
    import json
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        with open(client.download_artifacts(run_id, artifact_file, tmp)) as handle:
            return json.load(handle)


def alias_version(client, name: str, alias: str) -> str | None:
    """The version an alias points to, or None when the alias (or the model) does not exist."""
    from mlflow.exceptions import MlflowException

    try:
        return str(client.get_model_version_by_alias(name, alias).version)
    except MlflowException:
        return None
