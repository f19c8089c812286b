"""Deployment state in the state connection: the source of truth for which model version serves.

``mlops_deployments`` has one row per model: champion, previous champion, challenger, phase and a
``row_version`` that every change increments. A promotion is one conditional UPDATE
(``... WHERE model = :m AND champion IS NOT DISTINCT FROM :expected``): of two promotions against the same
expected champion exactly one matches; the other changes nothing and is told who won. The MLflow aliases are
reconciled from this row afterwards (:mod:`airflow_mlops.deployment`), so a crash between the two heals on the
next run. Every change also writes a row to ``mlops_deployment_log`` keyed by (model, row_version), in the same
transaction: nothing that was ever champion is lost.

The schema is created and migrated by the provider (:data:`MIGRATIONS`), versioned in ``mlops_schema_version``,
under a lock (PostgreSQL advisory lock; SQLite ``BEGIN IMMEDIATE``) so concurrent first runs do not race.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, fields
from datetime import datetime, timezone
from typing import Any

from airflow_mlops.core import names
from airflow_mlops.core.errors import CanaryRefused, PromotionConflict
from airflow_mlops.hooks.database import Database
from airflow_mlops.hooks.dialects import PARAM, Dialect

COMPONENT = "state"
_ADVISORY_LOCK = 0x6D6C6F7073  # "mlops"
_MIGRATED: set[tuple[str, str | None]] = set()  # (database, schema) already at the newest version in this process


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")


@dataclass(frozen=True)
class Deployment:
    model: str
    registered_model: str | None
    champion: str | None
    previous_champion: str | None
    challenger: str | None
    phase: str | None
    row_version: int
    updated_at: str
    updated_by: str | None
    # the running (or last) canary; migration 2
    canary_id: str | None = None
    salt: str | None = None
    step: int | None = None
    weight: float | None = None
    failed_looks: int | None = None
    canary_started_at: str | None = None
    step_started_at: str | None = None

    @classmethod
    def columns(cls) -> list[str]:
        return [f.name for f in fields(cls)]

    @property
    def canary_active(self) -> bool:
        return self.phase in ("shadow", "canary")


@dataclass(frozen=True)
class Transition:
    """What a state change did: the row after it, and whether this call made it (False = already done)."""

    deployment: Deployment
    applied: bool


# --- schema migrations -----------------------------------------------------------------------------------------

def _v1(d: Dialect, table: Callable[[str], str]) -> list[str]:
    return [
        f"CREATE TABLE {d.quote(table(names.DEPLOYMENTS_TABLE))} ("
        f"model {d.TEXT} PRIMARY KEY, registered_model {d.TEXT}, champion {d.TEXT}, previous_champion {d.TEXT}, "
        f"challenger {d.TEXT}, phase {d.TEXT}, row_version {d.INTEGER} NOT NULL, updated_at {d.TEXT} NOT NULL, "
        f"updated_by {d.TEXT})",
        f"CREATE TABLE {d.quote(table(names.DEPLOYMENT_LOG_TABLE))} ("
        f"model {d.TEXT} NOT NULL, row_version {d.INTEGER} NOT NULL, action {d.TEXT} NOT NULL, "
        f"from_version {d.TEXT}, to_version {d.TEXT}, actor {d.TEXT}, reason {d.TEXT}, created_at {d.TEXT} NOT NULL, "
        "PRIMARY KEY (model, row_version))",
    ]


def _v2(d: Dialect, table: Callable[[str], str]) -> list[str]:
    deployments = d.quote(table(names.DEPLOYMENTS_TABLE))
    added = {"canary_id": d.TEXT, "salt": d.TEXT, "step": d.INTEGER, "weight": d.FLOAT,
             "failed_looks": d.INTEGER, "canary_started_at": d.TEXT, "step_started_at": d.TEXT}
    log, analysis = table(names.PREDICTION_LOG_TABLE), table(names.CANARY_ANALYSIS_TABLE)
    return [f"ALTER TABLE {deployments} ADD COLUMN {column} {kind}" for column, kind in added.items()] + [
        # every score of every arm of every scoring run: the canary's evidence
        f"CREATE TABLE {d.quote(log)} (model {d.TEXT} NOT NULL, scoring_run {d.TEXT} NOT NULL, "
        f"entity_id {d.TEXT} NOT NULL, model_version {d.TEXT} NOT NULL, arm {d.TEXT} NOT NULL, score {d.FLOAT}, "
        f"published {d.INTEGER} NOT NULL, bucket {d.FLOAT}, weight {d.FLOAT}, canary_id {d.TEXT}, step {d.INTEGER}, "
        f"scored_at {d.TEXT} NOT NULL, PRIMARY KEY (model, scoring_run, entity_id, model_version))",
        f"CREATE INDEX {d.quote(log.split('.')[-1] + '_canary_idx')} ON {d.quote(log)} (model, canary_id, step, arm)",
        f"CREATE INDEX {d.quote(log.split('.')[-1] + '_entity_idx')} ON {d.quote(log)} (model, entity_id)",
        # one row per guardrail metric per look
        f"CREATE TABLE {d.quote(analysis)} (model {d.TEXT} NOT NULL, canary_id {d.TEXT} NOT NULL, "
        f"look {d.TEXT} NOT NULL, metric {d.TEXT} NOT NULL, step {d.INTEGER}, weight {d.FLOAT}, "
        f"champion_value {d.FLOAT}, challenger_value {d.FLOAT}, estimate {d.FLOAT}, ci_low {d.FLOAT}, "
        f"ci_high {d.FLOAT}, margin {d.FLOAT}, method {d.TEXT}, n_labelled {d.INTEGER}, "
        f"n_champion_published {d.INTEGER}, n_challenger_published {d.INTEGER}, srm_p_value {d.FLOAT}, "
        f"verdict {d.TEXT}, decision {d.TEXT}, reason {d.TEXT}, created_at {d.TEXT} NOT NULL, "
        "PRIMARY KEY (model, canary_id, look, metric))",
    ]


def _v3(d: Dialect, table: Callable[[str], str]) -> list[str]:
    # No query reads the log by entity (a look filters by canary and step, a retry by scoring run: both have
    # their index), and each index costs every logged row: this one was ~30% of a canary scoring run's writes.
    return [f"DROP INDEX IF EXISTS {d.quote(table(names.PREDICTION_LOG_TABLE + '_entity_idx'))}"]


# (version, description, statements). Append only: a released migration never changes.
MIGRATIONS: list[tuple[int, str, Callable[[Dialect, Callable[[str], str]], list[str]]]] = [
    (1, "deployments and their change log", _v1),
    (2, "canary: deployment columns, prediction log, canary analysis", _v2),
    (3, "prediction log: drop the unused entity index", _v3),
]


class StateStore:
    """Deployment state tables of one database (``schema``: PostgreSQL schema to keep them in)."""

    def __init__(self, database: Database, *, schema: str | None = None) -> None:
        self.db = database
        self.schema = schema if database.dialect.name == "postgres" else None
        self._migrated = False

    @property
    def dialect(self) -> Dialect:
        return self.db.dialect

    def table(self, name: str) -> str:
        return f"{self.schema}.{name}" if self.schema else name

    def _t(self, name: str) -> str:
        return self.dialect.quote(self.table(name))

    # --- migrations ---------------------------------------------------------------------------------------

    def schema_version(self) -> int:
        with self.db.transaction() as cursor:
            if not self.dialect.table_exists(cursor, self.table(names.SCHEMA_VERSION_TABLE)):
                return 0
            self.db.execute(cursor, f"SELECT version FROM {self._t(names.SCHEMA_VERSION_TABLE)} "
                                    f"WHERE component = {PARAM}", [COMPONENT])
            row = cursor.fetchone()
        return int(row[0]) if row else 0

    def migrate(self) -> int:
        """Bring the tables to the newest schema version (idempotent; safe when several processes race).

        Checked once per process and database: reading the version takes no lock; only an out-of-date schema
        takes the migration lock and writes."""
        latest = MIGRATIONS[-1][0]
        key = (self.db.identity, self.schema)
        if self._migrated or key in _MIGRATED:
            return latest
        if self.schema_version() >= latest:
            self._migrated = True
            _MIGRATED.add(key)
            return latest
        d = self.dialect
        with self.db.transaction(exclusive=True) as cursor:
            if d.name == "postgres":
                self.db.execute(cursor, f"SELECT pg_advisory_xact_lock({_ADVISORY_LOCK})")
            self.db.execute(cursor, f"CREATE TABLE IF NOT EXISTS {self._t(names.SCHEMA_VERSION_TABLE)} ("
                                    f"component {d.TEXT} PRIMARY KEY, version {d.INTEGER} NOT NULL, "
                                    f"applied_at {d.TEXT} NOT NULL)")
            self.db.execute(cursor, f"SELECT version FROM {self._t(names.SCHEMA_VERSION_TABLE)} "
                                    f"WHERE component = {PARAM}", [COMPONENT])
            row = cursor.fetchone()
            current = int(row[0]) if row else 0
            for version, _description, statements in MIGRATIONS:
                if version <= current:
                    continue
                for statement in statements(d, self.table):
                    self.db.execute(cursor, statement)
                current = version
            self.db.execute(cursor, d.upsert(self.table(names.SCHEMA_VERSION_TABLE),
                                             ["component", "version", "applied_at"], ["component"],
                                             ["version", "applied_at"]), [COMPONENT, current, _now()])
        self._migrated = True
        _MIGRATED.add(key)
        return current

    # --- reading ------------------------------------------------------------------------------------------

    def _select(self) -> str:
        return f"SELECT {', '.join(Deployment.columns())} FROM {self._t(names.DEPLOYMENTS_TABLE)}"

    def _fetch(self, cursor, model: str) -> Deployment | None:
        self.db.execute(cursor, f"{self._select()} WHERE model = {PARAM}", [model])
        row = cursor.fetchone()
        return Deployment(*row) if row else None

    def get(self, model: str) -> Deployment | None:
        self.migrate()
        with self.db.transaction() as cursor:
            return self._fetch(cursor, model)

    def history(self, model: str) -> list[dict[str, Any]]:
        """The change log of a model, oldest first."""
        self.migrate()
        frame = self.db.read_sql(f"SELECT * FROM {self._t(names.DEPLOYMENT_LOG_TABLE)} WHERE model = {PARAM} "
                                 "ORDER BY row_version", [model])
        return frame.to_dict("records")

    # --- changes ------------------------------------------------------------------------------------------

    def ensure(self, model: str, *, registered_model: str, champion: str | None = None,
               previous_champion: str | None = None, actor: str = "") -> Deployment:
        """The model's row, created (row_version 1) with these versions if it does not exist yet: how an
        existing deployment's aliases are imported the first time. An existing row is never changed."""
        self.migrate()
        with self.db.transaction(exclusive=True) as cursor:
            existing = self._fetch(cursor, model)
            if existing is not None:
                return existing
            now = _now()
            self.db.execute(cursor, self.dialect.upsert(
                self.table(names.DEPLOYMENTS_TABLE), Deployment.columns(), ["model"]),
                [model, registered_model, champion, previous_champion, None, "promoted" if champion else None, 1,
                 now, actor] + [None] * 7)
            # Two first runs may race here (PostgreSQL does not serialise the reads above): only the one whose
            # insert created the row writes its log entry; the other simply reads the row the winner made.
            if cursor.rowcount == 1:
                self._log(cursor, model, 1, "import", None, champion, actor,
                          "state created from the registry aliases" if champion else "state created", now)
            return self._fetch(cursor, model)

    def _log(self, cursor, model, row_version, action, from_version, to_version, actor, reason, now) -> None:
        self.db.execute(cursor, f"INSERT INTO {self._t(names.DEPLOYMENT_LOG_TABLE)} (model, row_version, action, "
                                f"from_version, to_version, actor, reason, created_at) VALUES "
                                f"({', '.join([PARAM] * 8)})",
                        [model, row_version, action, from_version, to_version, actor, reason[:2000], now])

    def promote(self, model: str, *, expected: str | None, new: str, actor: str, reason: str = "",
                action: str = "promote") -> Transition:
        """Compare-and-set the champion: ``new`` becomes champion only if the champion is still ``expected``.

        The old champion becomes ``previous_champion``; a challenger equal to ``new`` is cleared. Returns
        ``applied=False`` when ``new`` is already the champion (a retry). Raises :class:`PromotionConflict`
        naming the current champion when someone else changed it.
        """
        self.migrate()
        d = self.dialect
        if new == expected:
            # Promoting the champion over itself (a re-run that compared the champion with itself) changes
            # nothing; an UPDATE would overwrite previous_champion, the rollback target.
            row = self.get(model)
            if row is not None and row.champion == new:
                return Transition(row, False)
        with self.db.transaction(exclusive=True) as cursor:
            now = _now()
            self.db.execute(cursor, f"UPDATE {self._t(names.DEPLOYMENTS_TABLE)} SET previous_champion = champion, "
                                    f"champion = {PARAM}, "
                                    f"challenger = CASE WHEN challenger = {PARAM} THEN NULL ELSE challenger END, "
                                    f"phase = {PARAM}, row_version = row_version + 1, updated_at = {PARAM}, "
                                    f"updated_by = {PARAM} WHERE model = {PARAM} AND "
                                    f"{d.null_safe_equals('champion')}",
                            [new, new, "promoted", now, actor, model, expected])
            updated = cursor.rowcount == 1
            row = self._fetch(cursor, model)
            if row is None:
                raise PromotionConflict(f"no deployment state for model {model!r}: it must be created first")
            if updated:
                self._log(cursor, model, row.row_version, action, expected, new, actor, reason, now)
                return Transition(row, True)
            origin = self._champion_origin(cursor, model, row.champion)
        if row.champion == new:
            return Transition(row, False)
        raise PromotionConflict(
            f"the champion of {model} is version {row.champion or 'none'} ({origin}), but this decision was taken "
            f"against {expected or 'no champion'}: another promotion won; not overwriting it")

    def _champion_origin(self, cursor, model: str, champion: str | None) -> str:
        """Who made ``champion`` the champion, from the change log."""
        self.db.execute(cursor, f"SELECT action, actor, created_at FROM {self._t(names.DEPLOYMENT_LOG_TABLE)} "
                                f"WHERE model = {PARAM} AND {self.dialect.null_safe_equals('to_version')} AND "
                                f"action <> {PARAM} ORDER BY row_version DESC", [model, champion, "register"])
        found = cursor.fetchone()
        return f"{found[0]} by {found[1] or 'unknown'} at {found[2]}" if found else "origin unknown"

    def set_challenger(self, model: str, version: str | None, *, actor: str, reason: str = "") -> Transition:
        """Record the registered challenger (or clear it). Idempotent."""
        self.migrate()
        with self.db.transaction(exclusive=True) as cursor:
            row = self._fetch(cursor, model)
            if row is None:
                raise PromotionConflict(f"no deployment state for model {model!r}: it must be created first")
            if row.challenger == version:
                return Transition(row, False)
            if row.canary_active:
                # The canary's challenger is scored, logged and judged under its canary id: swapping it would
                # promote a version that never went through the canary.
                raise CanaryRefused(f"a canary of {model} version {row.challenger} is running (phase {row.phase}, "
                                    f"step {(row.step or 0) + 1}, weight {row.weight or 0:.0%}): version {version} "
                                    "cannot become the challenger until it ends")
            return Transition(self._update(cursor, row, {"challenger": version},
                                           action="register" if version else "clear_challenger", from_version=None,
                                           to_version=version, actor=actor, reason=reason), True)

    # --- canary --------------------------------------------------------------------------------------------

    def _update(self, cursor, row: Deployment, changes: dict[str, Any], *, action: str, from_version: str | None,
                to_version: str | None, actor: str, reason: str) -> Deployment:
        """One compare-and-set on ``row_version``: applies only if nobody changed the row since it was read."""
        now = _now()
        assignments = ", ".join(f"{column} = {PARAM}" for column in changes)
        self.db.execute(cursor, f"UPDATE {self._t(names.DEPLOYMENTS_TABLE)} SET {assignments}, "
                                f"row_version = row_version + 1, updated_at = {PARAM}, updated_by = {PARAM} "
                                f"WHERE model = {PARAM} AND row_version = {PARAM}",
                        [*changes.values(), now, actor, row.model, row.row_version])
        if cursor.rowcount != 1:
            current = self._fetch(cursor, row.model)
            raise PromotionConflict(
                f"the deployment of {row.model} changed meanwhile (row version {row.row_version} -> "
                f"{current.row_version if current else 'gone'}, by {current.updated_by if current else 'unknown'}): "
                f"this {action} was decided on an old state and is not applied")
        self._log(cursor, row.model, row.row_version + 1, action, from_version, to_version, actor, reason, now)
        return self._fetch(cursor, row.model)

    def start_canary(self, model: str, *, challenger: str, expected_champion: str | None, steps: list[float],
                     actor: str, reason: str = "") -> Transition:
        """Start a canary of ``challenger`` against the champion the gate compared it with. Refused, changing
        nothing, while another canary runs, when the champion changed, or without a champion."""
        import secrets
        import uuid

        self.migrate()
        with self.db.transaction(exclusive=True) as cursor:
            row = self._fetch(cursor, model)
            if row is None or row.champion is None:
                raise CanaryRefused(f"{model} has no champion: the first model is promoted, not canaried")
            if row.canary_active:
                if row.challenger == challenger:
                    return Transition(row, False)  # a retry
                raise CanaryRefused(f"a canary of {model} version {row.challenger} is running since "
                                    f"{row.canary_started_at} (step {row.step + 1}, weight {row.weight:.0%}): "
                                    f"not starting one for version {challenger}")
            if row.champion != expected_champion:
                raise PromotionConflict(f"the champion of {model} is version {row.champion}, but version {challenger} "
                                        f"was judged against {expected_champion or 'no champion'}")
            if challenger == row.champion:
                raise CanaryRefused(f"version {challenger} is already the champion of {model}")
            now = _now()
            changes = {"challenger": challenger, "phase": "shadow" if steps[0] == 0 else "canary",
                       "canary_id": uuid.uuid4().hex, "salt": secrets.token_hex(8), "step": 0, "weight": steps[0],
                       "failed_looks": 0, "canary_started_at": now, "step_started_at": now}
            return Transition(self._update(cursor, row, changes, action="start_canary", from_version=row.champion,
                                           to_version=challenger, actor=actor, reason=reason), True)

    def apply_canary_decision(self, model: str, *, row_version: int, action: str, reason: str, actor: str,
                              next_step: int | None = None, next_weight: float | None = None,
                              failed_look: bool = False) -> Transition:
        """Apply a look's decision to the deployment it was taken on (``row_version``). Of two decisions on one
        deployment exactly one applies; the other raises :class:`PromotionConflict` and changes nothing."""
        self.migrate()
        with self.db.transaction(exclusive=True) as cursor:
            row = self._fetch(cursor, model)
            if row is None or row.row_version != row_version:
                raise PromotionConflict(f"the deployment of {model} is at row version "
                                        f"{row.row_version if row else 'none'}, this decision was taken on "
                                        f"{row_version}: another decision was applied first; not applying it")
            if not row.canary_active:
                raise CanaryRefused(f"no canary of {model} is running (phase {row.phase})")
            failed = (row.failed_looks or 0) + (1 if failed_look else 0)
            if action == "advance":
                if next_step is None or next_weight is None or next_step <= (row.step or 0):
                    raise ValueError(f"an advance needs a later step and its weight (got step {next_step}, weight "
                                     f"{next_weight}; the canary is at step {row.step})")
                changes = {"phase": "canary", "step": next_step, "weight": next_weight, "failed_looks": failed,
                           "step_started_at": _now()}
                versions = (row.champion, row.challenger)
            elif action == "hold":
                if not failed_look:
                    return Transition(row, False)  # nothing changes: no log entry for a quiet look
                changes, versions = {"failed_looks": failed}, (row.champion, row.challenger)
            elif action == "promote":
                changes = {"previous_champion": row.champion, "champion": row.challenger, "challenger": None,
                           "phase": "promoted", "weight": 0.0, "failed_looks": failed}
                versions = (row.champion, row.challenger)
            elif action in ("rollback", "abort"):
                changes = {"challenger": None, "phase": "rolled_back" if action == "rollback" else "aborted",
                           "weight": 0.0, "failed_looks": failed}
                versions = (row.challenger, row.champion)
            else:
                raise ValueError(f"unknown canary action {action!r}")
            return Transition(self._update(cursor, row, changes, action=f"canary_{action}", from_version=versions[0],
                                           to_version=versions[1], actor=actor, reason=reason), True)

    def rollback(self, model: str, *, actor: str, reason: str = "") -> Transition:
        """By hand. During a canary: end it (the challenger's traffic stops, the champion it was judged against keeps
        serving; action ``rollback_canary``). Otherwise: restore ``previous_champion`` (the version it replaces
        becomes the previous one, to roll forward again)."""
        self.migrate()
        with self.db.transaction(exclusive=True) as cursor:
            row = self._fetch(cursor, model)
            if row is not None and row.canary_active:
                changes = {"challenger": None, "phase": "rolled_back", "weight": 0.0}
                return Transition(self._update(cursor, row, changes, action="rollback_canary",
                                               from_version=row.challenger, to_version=row.champion, actor=actor,
                                               reason=reason), True)
            if row is None or row.previous_champion is None:
                raise CanaryRefused(f"{model} has no previous champion to roll back to")
            changes = {"champion": row.previous_champion, "previous_champion": row.champion, "challenger": None,
                       "phase": "rolled_back", "weight": 0.0}
            return Transition(self._update(cursor, row, changes, action="rollback", from_version=row.champion,
                                           to_version=row.previous_champion, actor=actor, reason=reason), True)
