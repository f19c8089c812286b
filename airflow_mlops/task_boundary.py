"""The boundary of a task: whether a failure is worth a retry, and the checks made before any work.

Deterministic failures (an :class:`~airflow_mlops.core.errors.MLOpsError` that is not ``retryable``: config, data,
validation, estimator, integrity, promotion conflict) become ``AirflowFailException``: the task fails at once
instead of burning its retries on the same result. An MLflow that cannot be reached becomes ``MLflowUnavailable``
naming the connection, and is retried. Used by operators and sensors alike (no operator import here).
"""

from __future__ import annotations

import functools

from airflow_mlops.core.errors import MLOpsError, chain, is_rejected_request, is_transient

_MLFLOW_MODULES = ("mlflow", "requests", "urllib3", "http.client")


def translate_error(error: Exception, *, mlflow_conn_id: str | None = None) -> BaseException | None:
    """The exception a task should raise instead of ``error``, or None to let it through unchanged.

    * Airflow's own control-flow exceptions pass through.
    * A non-retryable :class:`MLOpsError` becomes ``AirflowFailException`` (no retry), cause kept.
    * An unreachable MLflow (errors of its client or transport) becomes ``MLflowUnavailable`` naming the
      connection id (retryable).
    """
    from airflow.sdk.exceptions import AirflowException, AirflowFailException

    if isinstance(error, AirflowException):
        return None
    if isinstance(error, MLOpsError):
        if error.retryable:
            return None
        return AirflowFailException(f"{type(error).__name__}: {error}")
    from_mlflow = any(type(item).__module__.startswith(_MLFLOW_MODULES) for item in chain(error))
    if mlflow_conn_id and from_mlflow and is_rejected_request(error):
        reason = " ".join(str(error).split())[:500]
        return AirflowFailException(f"MLflow connection {mlflow_conn_id!r} refused the request: {reason}")
    if mlflow_conn_id and from_mlflow and is_transient(error):
        from airflow_mlops.hooks.mlflow import mlflow_unreachable

        return mlflow_unreachable(error, mlflow_conn_id)
    return None


def task_boundary(method):
    """Wrap ``execute`` / ``execute_complete``: run the operator's preflight check, then translate errors
    (:func:`translate_error`). Every MLOps operator's entry points carry it (a test checks)."""

    @functools.wraps(method)
    def wrapper(self, context, *args, **kwargs):
        try:
            if getattr(self, "operator_extra_links", None) and hasattr(self, "persist_links") \
                    and method.__name__ == "execute":
                self.persist_links(context)  # so the links find their XCom even if the task skips early
            preflight = getattr(self, "preflight", None)
            if preflight is not None and method.__name__ == "execute":
                preflight()
            return method(self, context, *args, **kwargs)
        except Exception as error:
            replacement = translate_error(error, mlflow_conn_id=getattr(self, "resolved_mlflow_conn_id", None))
            if replacement is None:
                raise
            raise replacement from error

    wrapper.__mlops_task_boundary__ = True
    return wrapper
