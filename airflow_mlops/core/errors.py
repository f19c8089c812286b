"""One exception base for everything airflow-mlops raises on purpose, with a ``retryable`` flag.

Deterministic failures (a bad config, bad data, a failed expectation, an estimator that cannot be built, a model
artifact that fails its integrity check, a promotion that lost its compare-and-set) give the same result on
every try: the operators turn them into ``AirflowFailException`` so the task fails at once instead of burning
its retries. Transient failures (MLflow or the database unreachable) keep ``retryable = True`` and are retried.
Every raise keeps its cause (``raise ... from error``). Nothing here imports Airflow.
"""

from __future__ import annotations

import errno


class MLOpsError(Exception):
    """Base of airflow-mlops' own errors. ``retryable`` says whether trying again can help."""

    retryable: bool = False

    def __init__(self, message: str = "", *, retryable: bool | None = None):
        super().__init__(message)
        if retryable is not None:
            self.retryable = retryable


class ConfigError(MLOpsError, ValueError):
    """A model config is invalid. ``str()`` reads ``<file>: <field>: <reason>``, one line per problem."""

    def __init__(self, source: str, problems: list[tuple[str, str]]):
        self.source = source
        self.problems = problems
        lines = [f"{source}: {field or '<root>'}: {reason}" for field, reason in problems]
        super().__init__("invalid model config\n" + "\n".join(lines))


class DataProblem(MLOpsError, ValueError):
    """The data cannot be used; ``problems`` lists every cause found, not only the first."""

    def __init__(self, problems: list[str]):
        self.problems = problems
        super().__init__("; ".join(problems))


class DataValidationFailed(MLOpsError, ValueError):
    """The data broke expectations and the policy says fail."""

    def __init__(self, message: str, report: dict):
        self.report = report
        super().__init__(message)


class ValidationSetupError(MLOpsError, ValueError):
    """An expectation in the config is unknown or has wrong arguments."""


class EstimatorError(MLOpsError, ValueError):
    """The configured estimator cannot be imported or built from its parameters."""


class DriftInputError(MLOpsError, ValueError):
    """Reference and current data cannot be compared; the message says which columns and why."""


class DataSourceError(MLOpsError, ValueError):
    """The configured table, query or connection cannot be read; the message names which and why.

    Retryable when the database could not be reached (refused, timed out); not when the SQL or the table is wrong.
    """


class ModelIntegrityError(MLOpsError):
    """A model artifact does not match what was recorded when it was logged (sha256, flavour or format), or
    uses a serialization format the config does not allow. Loading it could run foreign code: refused."""


class MLflowUnavailable(MLOpsError):
    """The MLflow tracking server or registry could not be reached within the configured time."""

    retryable = True


class PromotionConflict(MLOpsError):
    """The deployment state changed since the decision was taken (another promotion won the compare-and-set)."""


class CanaryRefused(MLOpsError):
    """A canary cannot start or act in the deployment's current state (one is running, no champion, ...)."""


class NotApproved(MLOpsError):
    """Promotion was asked for a challenger that neither the gate nor a human approved."""


_TRANSIENT_ERRNOS = {errno.ECONNREFUSED, errno.ECONNRESET, errno.ECONNABORTED, errno.ETIMEDOUT,
                     errno.EHOSTUNREACH, errno.ENETUNREACH, errno.EPIPE}
# Transport errors of requests/urllib3/http.client and DB-API drivers, by name (core imports none of them).
_TRANSPORT_NAMES = {"ConnectionError", "ConnectTimeout", "ReadTimeout", "Timeout", "MaxRetryError",
                    "NewConnectionError", "ProtocolError", "RemoteDisconnected", "IncompleteRead",
                    "OperationalError", "InterfaceError"}
# Read only from transport errors: a driver's OperationalError says "no such table" as well as "connection refused".
_TRANSIENT_TEXT = ("max retries exceeded", "connection refused", "connection reset", "timed out", "timeout expired",
                   "temporarily unavailable", "could not connect to server", "server closed the connection",
                   "remote end closed connection", "name or service not known", "no route to host",
                   "network is unreachable", "service unavailable", "bad gateway", "gateway timeout",
                   "database is locked")
# SQLSTATE classes/codes worth a retry: connection exceptions, insufficient resources, operator intervention
# (shutdown, cannot connect now), serialization failures and deadlocks. Authentication (28), a missing database
# (3D000) or a syntax error (42) are not.
_TRANSIENT_SQLSTATE_CLASSES = {"08", "53", "57"}
_TRANSIENT_SQLSTATES = {"40001", "40P01"}


def chain(error: BaseException):
    """The error and its causes/contexts, outermost first (cycles cut)."""
    seen: set[int] = set()
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        yield error
        error = error.__cause__ or error.__context__


def _verdict(item: BaseException) -> bool | None:
    """True/False when this exception alone decides, None to look at its causes."""
    if isinstance(item, MLOpsError):
        return item.retryable
    if type(item).__name__ == "RestException" and hasattr(item, "get_http_status_code"):
        status = item.get_http_status_code()  # the server answered: its status says whether to retry
        return status >= 500 or status in (408, 429)
    sqlstate = getattr(item, "sqlstate", None) or getattr(item, "pgcode", None)
    if isinstance(sqlstate, str) and len(sqlstate) == 5:
        return sqlstate[:2] in _TRANSIENT_SQLSTATE_CLASSES or sqlstate in _TRANSIENT_SQLSTATES
    if isinstance(item, (ConnectionError, TimeoutError)):
        return True
    if isinstance(item, OSError) and item.errno in _TRANSIENT_ERRNOS:
        return True
    if isinstance(item, OSError) or type(item).__name__ in _TRANSPORT_NAMES:
        text = str(item).lower()
        if any(marker in text for marker in _TRANSIENT_TEXT):
            return True
    return None


def is_transient(error: BaseException) -> bool:
    """Whether an error (or one of its causes) says a service could not be reached, rather than that the request
    was wrong. MLflow errors are judged by the HTTP status the server answered with, database errors by SQLSTATE,
    and message text only for transport-level errors."""
    for item in chain(error):
        verdict = _verdict(item)
        if verdict is not None:
            return verdict
    return False


def is_rejected_request(error: BaseException) -> bool:
    """The MLflow server answered and refused the request (a 4xx other than 408/429): retrying cannot help."""
    for item in chain(error):
        if type(item).__name__ == "RestException" and hasattr(item, "get_http_status_code"):
            status = item.get_http_status_code()
            return 400 <= status < 500 and status not in (408, 429)
    return False
