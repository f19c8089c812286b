"""MLflowHook: an Airflow connection of type ``mlflow`` turned into a client-scoped MLflow client.

* No process-global client state: each hook has its own ``MlflowClient`` (tracking and registry URI of its
  connection); nothing calls ``mlflow.set_tracking_uri``. Credentials never go into ``os.environ``: a request-auth
  provider (``hooks/mlflow_auth.py``) adds the ``Authorization`` header of the session open in the current
  context, and only to requests for that session's tracking server. The token or password is never logged
  (settings hide it in ``repr``, Airflow's masker knows the derived header, userinfo is cut out of URIs).
* The hook owns the MLflow I/O the operators share: find-or-create of runs by an idempotency tag, artifacts,
  aliases, idempotent registration and verified model loading. MLflow's client retries a POST whose response
  was lost, which can create a second run or version: every create is followed by a search, the first object
  is kept and extras are deleted.
* MLflow's HTTP retry budget is bounded (connection extras ``request_timeout``, ``max_retries``) and
  :meth:`MLflowHook.ensure_reachable` fails within ``max_wait`` seconds with an error naming the connection.
"""

from __future__ import annotations

import base64
import json
import os
import tempfile
import time
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cached_property
from typing import Any

from airflow.sdk import BaseHook

from airflow_mlops.core import names
from airflow_mlops.core.errors import MLflowUnavailable, MLOpsError, is_transient
from airflow_mlops.hooks import mlflow_auth

DEFAULT_REQUEST_TIMEOUT = 30.0   # seconds per HTTP request
DEFAULT_MAX_RETRIES = 2          # MLflow's own retries per request (its default, 7, takes ~4 minutes)
CONNECTION_TEST_WAIT = 5.0      # seconds the connection form's test keeps trying
DEFAULT_MAX_WAIT = 60.0          # seconds ensure_reachable keeps trying before giving up


@dataclass(frozen=True)
class MlflowSettings:
    tracking_uri: str
    registry_uri: str | None
    authorization: str | None  # a ready header value; never printed (repr hides it)
    ui_url: str | None = None  # where people open the MLflow UI, for extra links
    artifact_root: str | None = None  # for experiments we create, when the server has no default root
    conn_id: str = "mlflow_default"
    request_timeout: float = DEFAULT_REQUEST_TIMEOUT
    max_retries: int = DEFAULT_MAX_RETRIES
    max_wait: float = DEFAULT_MAX_WAIT

    def __repr__(self) -> str:
        return (f"MlflowSettings(conn_id={self.conn_id!r}, tracking_uri={self.tracking_uri!r}, "
                f"registry_uri={self.registry_uri!r})")

    @property
    def is_http(self) -> bool:
        return self.tracking_uri.startswith(("http://", "https://"))


def _number(extra: dict, key: str, default: float, conn_id: str, cast=float):
    value = extra.get(key, default)
    try:
        value = cast(value)
    except (TypeError, ValueError):
        raise MLOpsError(f"connection {conn_id!r}: extra {key!r} must be a number, got {value!r}") from None
    if value < 0:
        raise MLOpsError(f"connection {conn_id!r}: extra {key!r} must not be negative")
    return value


def _split_userinfo(uri: str) -> tuple[str, str | None, str | None]:
    """``http://user:pw@host`` -> (``http://host``, user, pw): credentials never stay in a URI we print or link."""
    from urllib.parse import unquote, urlsplit, urlunsplit

    parts = urlsplit(uri)
    if not parts.scheme.startswith("http") or "@" not in parts.netloc:
        return uri, None, None
    host = parts.netloc.rsplit("@", 1)[1]
    return (urlunsplit(parts._replace(netloc=host)), unquote(parts.username) if parts.username else None,
            unquote(parts.password) if parts.password else None)


def settings_from_connection(conn: Any) -> MlflowSettings:
    """Tracking URI from ``extra.tracking_uri`` or from host/port; auth from login/password."""
    extra = conn.extra_dejson if hasattr(conn, "extra_dejson") else {}
    conn_id = getattr(conn, "conn_id", None) or "mlflow"
    uri = extra.get("tracking_uri")
    if not uri:
        host = (conn.host or "").rstrip("/")
        if not host:
            raise MLOpsError(f"connection {conn_id!r}: set 'host' or extra 'tracking_uri' for MLflow")
        if "://" not in host:
            host = f"{extra.get('scheme', 'http')}://{host}"
        uri = f"{host}:{conn.port}" if conn.port else host
    uri, uri_login, uri_password = _split_userinfo(uri)
    login, password = conn.login or uri_login, conn.password or uri_password
    authorization = None
    if password:
        _mask(password)
        if login:
            pair = base64.b64encode(f"{login}:{password}".encode()).decode()
            authorization = f"Basic {pair}"
        else:
            authorization = f"Bearer {password}"
        _mask(authorization)
    ui_url = _split_userinfo(extra.get("ui_url") or "")[0] or (uri if uri.startswith(("http://", "https://"))
                                                               else None)
    registry_uri = _split_userinfo(extra["registry_uri"])[0] if extra.get("registry_uri") else None
    return MlflowSettings(
        uri, registry_uri, authorization, ui_url, extra.get("artifact_root") or None,
        conn_id=conn_id,
        request_timeout=_number(extra, "request_timeout", DEFAULT_REQUEST_TIMEOUT, conn_id),
        max_retries=_number(extra, "max_retries", DEFAULT_MAX_RETRIES, conn_id, int),
        max_wait=_number(extra, "max_wait", DEFAULT_MAX_WAIT, conn_id))


def _mask(value: str) -> None:
    """Airflow masks the connection's password in task logs; the header derived from it is ours to mask."""
    try:
        from airflow.sdk.log import mask_secret
    except ImportError:  # pragma: no cover - outside an Airflow 3 environment
        return
    mask_secret(value)
    mask_secret(value.split(" ", 1)[-1])


def _apply_process_settings(settings: MlflowSettings, conn_id: str) -> None:
    """Process-wide MLflow settings (MLflow reads them from the environment on each request; none is secret):
    * the HTTP retry budget: per process, not per client (MLflow has no per-client setting). A task process
      talks to one MLflow connection; values the deployment set in the environment win;
    * ``MLFLOW_TRACKING_AUTH``: the name of our request-auth provider, so requests carry the session's header."""
    for variable, value in (("MLFLOW_HTTP_REQUEST_MAX_RETRIES", settings.max_retries),
                            ("MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR", 1),
                            ("MLFLOW_HTTP_REQUEST_TIMEOUT", int(max(1, settings.request_timeout)))):
        os.environ.setdefault(variable, str(value))
    if settings.authorization:
        current = os.environ.setdefault("MLFLOW_TRACKING_AUTH", mlflow_auth.PROVIDER_NAME)
        if current != mlflow_auth.PROVIDER_NAME:
            raise MLOpsError(f"connection {conn_id!r} has credentials, but MLFLOW_TRACKING_AUTH={current!r} is set in "
                             "the environment: unset it so the connection's credentials are used")


def _first(items, key):
    return sorted(items, key=key)[0] if items else None


class MLflowHook(BaseHook):
    """Talk to an MLflow tracking server / model registry through an Airflow connection.

    :param mlflow_conn_id: connection of type ``mlflow``. Host (and port) of the tracking server, or the
        ``tracking_uri`` extra for any URI MLflow accepts (``file:``, ``sqlite:``, ``databricks``);
        ``registry_uri`` extra when the registry lives elsewhere; ``ui_url`` extra for links when the UI is
        not the tracking URI; password = token (Bearer), or login + password (basic auth); ``request_timeout``
        (seconds per request, 30), ``max_retries`` (per request, 2) and ``max_wait`` (seconds
        :meth:`ensure_reachable` keeps trying, 60) bound how long an unreachable server can hold a task.
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

    @cached_property
    def client(self):
        from mlflow import MlflowClient

        _apply_process_settings(self.settings, self.mlflow_conn_id)
        return MlflowClient(tracking_uri=self.settings.tracking_uri, registry_uri=self.settings.registry_uri)

    def get_conn(self):
        return self.client

    @contextmanager
    def session(self):
        """The client, with this connection's credentials on every request made in this context."""
        client = self.client
        with mlflow_auth.authorization(self.settings.tracking_uri, self.settings.authorization):
            yield client

    # --- reachability -------------------------------------------------------------------------------------

    def ensure_reachable(self, max_wait: float | None = None) -> None:
        """Fail fast when the tracking server cannot be used: ``MLflowUnavailable`` (retryable) after at most
        ``max_wait`` seconds (default: the connection's), or a non-retryable error when it rejects the credentials.
        Local stores pass."""
        import requests

        settings = self.settings
        if not settings.is_http:
            return
        max_wait = settings.max_wait if max_wait is None else min(max_wait, settings.max_wait)
        url = settings.tracking_uri.rstrip("/") + "/api/2.0/mlflow/experiments/search"
        headers = {"Authorization": settings.authorization} if settings.authorization else {}
        deadline = time.monotonic() + max_wait
        delay, last = 0.5, "no answer"
        while True:
            remaining = deadline - time.monotonic()
            try:
                response = requests.get(url, params={"max_results": 1}, headers=headers,
                                        timeout=max(0.5, min(settings.request_timeout, remaining)))
            except requests.RequestException as error:
                last = type(error).__name__
            else:
                if response.status_code in (401, 403):
                    raise MLOpsError(f"MLflow connection {self.mlflow_conn_id!r} was refused (HTTP "
                                     f"{response.status_code}): check its login/password or token")
                if response.status_code < 500:
                    return
                last = f"HTTP {response.status_code}"
            if time.monotonic() + delay > deadline:
                raise MLflowUnavailable(f"MLflow connection {self.mlflow_conn_id!r} ({settings.tracking_uri}) is not "
                                        f"reachable: {last} after {max_wait:.0f}s (extra 'max_wait')")
            time.sleep(delay)
            delay = min(delay * 2, 5.0)

    def test_connection(self) -> tuple[bool, str]:
        try:
            # The UI's "Test" button waits for this answer: a few seconds, not a task's patience.
            self.ensure_reachable(max_wait=CONNECTION_TEST_WAIT)
            with self.session() as client:
                client.search_experiments(max_results=1)
        except Exception as error:  # the message is shown in the UI; it names no secret
            return False, f"MLflow is not reachable: {type(error).__name__}: {error}"
        return True, "MLflow tracking server reachable"

    # --- experiments and runs -----------------------------------------------------------------------------

    def experiment_id(self, name: str) -> str:
        from mlflow.exceptions import MlflowException

        with self.session() as client:
            experiment = client.get_experiment_by_name(name)
            if experiment is not None:
                return experiment.experiment_id
            root = self.settings.artifact_root
            location = f"{root.rstrip('/')}/{name.replace('/', '_')}" if root else None
            try:
                return client.create_experiment(name, artifact_location=location)
            except MlflowException:  # created concurrently, or created and its response lost
                experiment = client.get_experiment_by_name(name)
                if experiment is None:
                    raise
                return experiment.experiment_id

    def runs_tagged(self, experiment_id: str, tag: str, value: str) -> list:
        """Active runs with ``tag = value``, oldest first."""
        with self.session() as client:
            runs = client.search_runs([experiment_id], filter_string=f"tags.`{tag}` = '{value}'", max_results=100)
        return sorted(runs, key=lambda run: (run.info.start_time or 0, run.info.run_id))

    def find_or_create_run(self, experiment_id: str, *, key_tag: str, key: str, tags: dict[str, str],
                           run_name: str):
        """The run tagged ``key_tag = key``, created if none exists. Returns ``(run, reused)``.

        A create whose response was lost (MLflow retries the POST, or raises) may leave two runs with one key:
        the oldest is kept and the others are deleted, so every caller converges on the same run.
        """
        existing = self.runs_tagged(experiment_id, key_tag, key)
        if existing:
            return self._dedupe_runs(existing), True
        with self.session() as client:
            try:
                client.create_run(experiment_id, tags={key_tag: key, **tags}, run_name=run_name)
            except Exception:
                if not self.runs_tagged(experiment_id, key_tag, key):
                    raise
        return self._dedupe_runs(self.runs_tagged(experiment_id, key_tag, key)), False

    def _dedupe_runs(self, runs: list):
        keep, extras = runs[0], runs[1:]
        with self.session() as client:
            for extra in extras:
                self.log.warning("Deleting duplicate MLflow run %s (same idempotency key as %s)", extra.info.run_id,
                                 keep.info.run_id)
                client.delete_run(extra.info.run_id)
        return keep

    def finish_run(self, run_id: str, result: dict | None = None, status: str = "FINISHED") -> None:
        with self.session() as client:
            if result is not None:
                client.set_tag(run_id, names.RESULT, json.dumps(result, sort_keys=True, default=str)[:5000])
            client.set_terminated(run_id, status=status)

    # --- artifacts ----------------------------------------------------------------------------------------

    def log_frame(self, run_id: str, frame, artifact_file: str) -> str:
        """Store a DataFrame as a Parquet artifact of ``run_id`` (overwriting: retries are safe)."""
        directory, _, name = artifact_file.rpartition("/")
        with tempfile.TemporaryDirectory() as tmp, self.session() as client:
            local = os.path.join(tmp, name)
            frame.to_parquet(local, index=False)
            client.log_artifact(run_id, local, directory or None)
        return artifact_file

    def load_frame(self, run_id: str, artifact_file: str):
        import pandas as pd

        with tempfile.TemporaryDirectory() as tmp, self.session() as client:
            return pd.read_parquet(client.download_artifacts(run_id, artifact_file, tmp))

    def load_json(self, run_id: str, artifact_file: str):
        with tempfile.TemporaryDirectory() as tmp, self.session() as client:
            with open(client.download_artifacts(run_id, artifact_file, tmp)) as handle:
                return json.load(handle)

    def log_json(self, run_id: str, payload: Any, artifact_file: str) -> None:
        """Strict JSON (NaN and infinities become null), so every reader can parse it."""
        from airflow_mlops.core.jsonsafe import strict_json

        with self.session() as client:
            client.log_text(run_id, strict_json(payload, indent=1), artifact_file)

    def log_text(self, run_id: str, text: str, artifact_file: str) -> None:
        with self.session() as client:
            client.log_text(run_id, text, artifact_file)

    # --- registry -----------------------------------------------------------------------------------------

    def version_of_run(self, name: str, version: str | None, run_id: str) -> bool:
        """Whether ``version`` of ``name`` was registered from ``run_id`` (a retried registration of one run)."""
        if version is None:
            return False
        with self.session() as client:
            return client.get_model_version(name, version).run_id == run_id

    def alias_version(self, name: str, alias: str) -> str | None:
        """The version an alias points to, or None when the alias or the model does not exist.

        Any other error (the server unreachable, say) is raised: "could not look" is not "no champion".
        """
        from mlflow.exceptions import MlflowException

        with self.session() as client:
            try:
                return str(client.get_model_version_by_alias(name, alias).version)
            except MlflowException as error:
                if error.error_code in ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE", "NOT_FOUND"):
                    return None
                raise

    def aliases(self, name: str) -> dict[str, str]:
        """``{alias: version}`` of a registered model (empty when it does not exist)."""
        from mlflow.exceptions import MlflowException

        with self.session() as client:
            try:
                model = client.get_registered_model(name)
            except MlflowException as error:
                if error.error_code == "RESOURCE_DOES_NOT_EXIST":
                    return {}
                raise
        return {alias: str(version) for alias, version in (model.aliases or {}).items()}

    def set_alias(self, name: str, alias: str, version: str | None) -> None:
        """Point ``alias`` at ``version``; ``None`` removes the alias. Idempotent."""
        current = self.aliases(name).get(alias)
        if current == (str(version) if version is not None else None):
            return
        with self.session() as client:
            if version is None:
                client.delete_registered_model_alias(name, alias)
            else:
                client.set_registered_model_alias(name, alias, str(version))

    def find_or_create_version(self, name: str, *, run_id: str, source: str, tags: dict[str, str],
                               timeout: float = 300.0) -> str:
        """The version registered from ``run_id`` *with this source*, created if none exists; waits until READY.

        A create whose response was lost may leave two such versions: the lowest is kept and the others are
        deleted, so a retried registration never leaves an orphan or a second candidate. Versions of the same run
        with another source (someone else's registration) are neither reused nor touched.
        """
        from mlflow.exceptions import MlflowException

        with self.session() as client:
            try:
                client.create_registered_model(name)
            except MlflowException as error:
                if error.error_code != "RESOURCE_ALREADY_EXISTS":
                    raise
            versions = self._versions_of_run(client, name, run_id, source)
            if not versions:
                try:
                    client.create_model_version(name, source, run_id=run_id, tags=tags)
                except Exception:
                    if not self._versions_of_run(client, name, run_id, source):
                        raise
                versions = self._versions_of_run(client, name, run_id, source)
            keep = versions[0]
            for extra in versions[1:]:
                self.log.warning("Deleting duplicate version %s of %s (same run %s as version %s)", extra.version,
                                 name, run_id, keep.version)
                client.delete_model_version(name, extra.version)
            version = str(keep.version)
            deadline = time.monotonic() + timeout
            while (status := client.get_model_version(name, version).status) != "READY":
                if status == "FAILED_REGISTRATION" or time.monotonic() > deadline:
                    raise MLOpsError(f"model version {name}/{version} is {status}, not READY")
                time.sleep(1)
        return version

    @staticmethod
    def _versions_of_run(client, name: str, run_id: str, source: str) -> list:
        found = client.search_model_versions(f"name = '{name}' and run_id = '{run_id}'")
        return sorted((v for v in found if v.source.rstrip("/") == source.rstrip("/")), key=lambda v: int(v.version))

    def model_version(self, name: str, version: str):
        with self.session() as client:
            return client.get_model_version(name, str(version))

    def set_version_tags(self, name: str, version: str, tags: dict[str, str]) -> None:
        with self.session() as client:
            for key, value in tags.items():
                client.set_model_version_tag(name, str(version), key, value)

    # --- models -------------------------------------------------------------------------------------------

    @staticmethod
    def integrity_tags(tags: dict[str, str]) -> dict[str, str | None]:
        return {"expected_sha256": tags.get(names.MODEL_SHA256), "expected_flavor": tags.get(names.MODEL_FLAVOR),
                "expected_format": tags.get(names.MODEL_FORMAT)}

    def run_model(self, run_id: str) -> tuple[str, dict[str, str | None]]:
        """(artifact URI, recorded integrity) of the model a training run logged."""
        with self.session() as client:
            run = client.get_run(run_id)
        tags = run.data.tags
        path = tags.get(names.MODEL_ARTIFACT_PATH, names.MODEL_ARTIFACT)
        return f"{run.info.artifact_uri.rstrip('/')}/{path}", self.integrity_tags(tags)

    def version_model(self, name: str, version: str) -> tuple[str, dict[str, str | None]]:
        """(artifact URI, recorded integrity) of a registered version: the files ``models:/<name>/<version>``
        resolves to (what serving loads), and the tags set when it was registered."""
        found = self.model_version(name, version)
        with self.session() as client:
            uri = client.get_model_version_download_uri(name, str(version))
        return uri, self.integrity_tags(dict(found.tags or {}))

    @contextmanager
    def verified_model_dir(self, artifact_uri: str, *, expected: dict[str, str | None], allow_pickle: bool = False,
                           what: str = "the model"):
        """Download a model's files into a private folder and verify them (sha256, flavour, format) before
        anything deserializes them. Yields the local path; raises ``ModelIntegrityError``."""
        import mlflow.artifacts

        from airflow_mlops.core.integrity import verify_model_dir

        with tempfile.TemporaryDirectory(prefix="mlops-model-") as tmp, self.session():
            local = mlflow.artifacts.download_artifacts(artifact_uri=artifact_uri, dst_path=tmp,
                                                        tracking_uri=self.settings.tracking_uri,
                                                        registry_uri=self.settings.registry_uri)
            verify_model_dir(local, allow_pickle=allow_pickle, what=what, **expected)
            yield local

    def load_run_model(self, run_id: str, *, allow_pickle: bool = False):
        """The verified pipeline a training run logged."""
        from airflow_mlops.core.model_package import load_pipeline

        uri, expected = self.run_model(run_id)
        with self.verified_model_dir(uri, expected=expected, allow_pickle=allow_pickle,
                                     what=f"the model of run {run_id}") as local:
            return load_pipeline(local)

    def load_version_model(self, name: str, version: str, *, allow_pickle: bool = False):
        """The verified pipeline of a registered version."""
        from airflow_mlops.core.model_package import load_pipeline

        uri, expected = self.version_model(name, version)
        with self.verified_model_dir(uri, expected=expected, allow_pickle=allow_pickle,
                                     what=f"{name} version {version}") as local:
            return load_pipeline(local)

    def verify_version(self, name: str, version: str, *, allow_pickle: bool = False) -> str:
        """Download and verify a registered version's files without loading them; returns the digest."""
        uri, expected = self.version_model(name, version)
        with self.verified_model_dir(uri, expected=expected, allow_pickle=allow_pickle,
                                     what=f"{name} version {version}"):
            return expected["expected_sha256"] or ""


def mlflow_unreachable(error: BaseException, conn_id: str) -> MLflowUnavailable | None:
    """An ``MLflowUnavailable`` naming the connection when ``error`` says MLflow could not be reached."""
    if isinstance(error, MLflowUnavailable):
        return error
    if isinstance(error, MLOpsError) or not is_transient(error):
        return None
    reason = " ".join(str(error).split())[:300]
    return MLflowUnavailable(f"MLflow connection {conn_id!r} is not reachable: {reason}")
