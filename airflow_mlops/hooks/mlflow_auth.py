"""Per-request MLflow authentication without environment variables.

MLflow loads :class:`AirflowConnectionHeaderProvider` through the ``mlflow.request_header_provider`` entry
point. It adds the Authorization header of the MLflowHook session that is open in this process, if any.
This module imports nothing heavy and no Airflow, because MLflow imports it in every process that uses it.
"""

from __future__ import annotations

import threading
from contextlib import contextmanager

_lock = threading.RLock()
_active: str | None = None


@contextmanager
def authorization(header_value: str | None):
    """Make ``header_value`` the Authorization header of MLflow requests for the duration of the block."""
    global _active
    with _lock:
        previous, _active = _active, header_value
        try:
            yield
        finally:
            _active = previous


class AirflowConnectionHeaderProvider:
    def in_context(self) -> bool:
        return _active is not None

    def request_headers(self) -> dict[str, str]:
        value = _active
        return {"Authorization": value} if value else {}
