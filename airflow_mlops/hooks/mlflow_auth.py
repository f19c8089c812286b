"""Per-request MLflow authentication: no environment variables, no process-global credentials, no other hosts.

MLflow loads :class:`AirflowConnectionAuthProvider` through the ``mlflow.request_auth_provider`` entry point when
``MLFLOW_TRACKING_AUTH=airflow_mlops`` (the hook sets that name; it is not a secret). Its ``requests`` auth object
sees each request's URL and adds the ``Authorization`` header of the :class:`MLflowHook` session whose tracking
server is that URL's origin (scheme, host, port):
* a session belongs to the *current context* (a ``ContextVar``: per thread and per asyncio task), so two sessions
  with different credentials in one process (the api-server plugin serves concurrent requests) never mix;
* MLflow transfers artifacts in worker threads that do not inherit the caller's context: for those, the header
  of the sessions open in the process *for that same origin* is used, and nothing when they disagree;
* a request to any other host (an artifact store elsewhere, another tracking server) never gets the header.

This module imports nothing heavy and no Airflow, because MLflow imports it in every process that uses it.
"""

from __future__ import annotations

import threading
from contextlib import contextmanager
from contextvars import ContextVar
from urllib.parse import urlsplit

PROVIDER_NAME = "airflow_mlops"
_DEFAULT_PORTS = {"http": 80, "https": 443}
_UNSET = object()
_current: ContextVar = ContextVar("airflow_mlops_mlflow_authorization", default=_UNSET)
_open_lock = threading.Lock()  # held only to update the list below, never across a yield
_open: list[tuple[str, str | None]] = []  # (origin, header value) of the sessions open in this process


def origin(url: str) -> str | None:
    """``scheme://host:port`` of an HTTP(S) URL (default ports made explicit), else None."""
    parts = urlsplit(url)
    if parts.scheme not in _DEFAULT_PORTS or not parts.hostname:
        return None
    return f"{parts.scheme}://{parts.hostname.lower()}:{parts.port or _DEFAULT_PORTS[parts.scheme]}"


@contextmanager
def authorization(tracking_uri: str, header_value: str | None):
    """Requests to ``tracking_uri``'s origin made in this context carry ``header_value`` during the block."""
    entry = (origin(tracking_uri) or "", header_value)
    token = _current.set(entry)
    with _open_lock:
        _open.append(entry)
    try:
        yield
    finally:
        _current.reset(token)
        with _open_lock:
            _open.remove(entry)


def header_for(url: str) -> str | None:
    """The Authorization header a request to ``url`` may carry, if any."""
    target = origin(url)
    if target is None:
        return None
    current = _current.get()
    if current is not _UNSET:
        return current[1] if current[0] == target else None
    with _open_lock:  # a worker thread of MLflow: only the sessions for this very server count
        values = {value for session_origin, value in _open if session_origin == target}
    return next(iter(values)) if len(values) == 1 else None


class _ConnectionAuth:
    """A ``requests`` auth callable (``requests.auth.AuthBase`` protocol)."""

    def __call__(self, request):
        value = header_for(request.url)
        if value:
            request.headers["Authorization"] = value
        return request


class AirflowConnectionAuthProvider:
    """MLflow request-auth provider (entry point ``mlflow.request_auth_provider``)."""

    def get_name(self) -> str:
        return PROVIDER_NAME

    def get_auth(self):
        return _ConnectionAuth()
