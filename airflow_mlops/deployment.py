"""Which version serves: decided atomically in the state table, then mirrored onto the MLflow aliases.

The state table (:mod:`airflow_mlops.hooks.state`) is the source of truth; the aliases ``champion``,
``previous_champion`` and ``challenger`` are reconciled from it after every change and at the start of every
gate, so a crash between the database update and the alias move heals on the next run. The first time a model
is seen, its row is imported from the aliases it already has.
"""

from __future__ import annotations

from dataclasses import dataclass

from airflow_mlops.core import names
from airflow_mlops.core.errors import MLOpsError
from airflow_mlops.hooks.state import Deployment, StateStore, Transition


def state_store(config, conn_id: str | None = None) -> StateStore:
    """The deployment state of a model config: its state connection (default the data connection; ``conn_id``
    overrides it) and schema."""
    from airflow_mlops.hooks.data import SqlDataHook

    return StateStore(SqlDataHook(data_conn_id=conn_id or config.state_conn).database, schema=config.state_schema)


@dataclass
class Deployments:
    """The state store and the MLflow hook of one model config."""

    state: StateStore
    mlflow: object  # MLflowHook
    model: str
    registered_model: str

    @classmethod
    def of(cls, config, mlflow, state_conn_id: str | None = None) -> Deployments:
        """The deployments of a model config, with this MLflow hook."""
        return cls(state_store(config, state_conn_id), mlflow, config.model, config.registered_model_name)

    def current(self, *, actor: str = "") -> Deployment:
        """The model's row; created from the registry aliases the first time (then reconciled from it)."""
        row = self.state.get(self.model)
        if row is None:
            aliases = self.mlflow.aliases(self.registered_model)
            row = self.state.ensure(self.model, registered_model=self.registered_model,
                                    champion=aliases.get(names.CHAMPION),
                                    previous_champion=aliases.get(names.PREVIOUS_CHAMPION), actor=actor)
        return row

    def reconcile(self) -> dict[str, tuple[str | None, str | None]]:
        """Move the MLflow aliases to what the state says *now*. Returns ``{alias: (was, now)}`` for the ones moved.

        It always re-reads the newest row (never mirrors a row a caller holds, which a later promotion may have
        overtaken) and repeats until the row did not change while the aliases moved, so two reconcilers that
        interleave both end on the newest state.
        """
        moved: dict[str, tuple[str | None, str | None]] = {}
        for _ in range(10):
            row = self.current()
            moved.update(self._apply(row))
            if self.state.get(self.model).row_version == row.row_version:
                return moved
        raise MLOpsError(f"the deployment state of {self.model} kept changing while its aliases were reconciled")

    def _apply(self, row: Deployment) -> dict[str, tuple[str | None, str | None]]:
        wanted = {names.CHAMPION: row.champion, names.PREVIOUS_CHAMPION: row.previous_champion,
                  names.CHALLENGER: row.challenger}
        present = self.mlflow.aliases(self.registered_model)
        moved = {}
        for alias, version in wanted.items():
            if present.get(alias) != version:
                if version is None and alias not in present:
                    continue
                try:
                    self.mlflow.set_alias(self.registered_model, alias, version)
                except Exception as error:
                    if "RESOURCE_DOES_NOT_EXIST" not in str(getattr(error, "error_code", "")):
                        raise
                    raise MLOpsError(
                        f"the deployment state of {self.model} (row version {row.row_version}) names version "
                        f"{version} of {self.registered_model} as {alias}, but the registry has no such version: "
                        "the state connection and the MLflow connection disagree (two environments sharing one "
                        "state database?)") from error
                moved[alias] = (present.get(alias), version)
        return moved

    def promote(self, *, expected: str | None, new: str, actor: str, reason: str) -> Transition:
        self.current(actor=actor)  # the row must exist before the compare-and-set
        transition = self.state.promote(self.model, expected=expected, new=new, actor=actor, reason=reason)
        self.reconcile()
        return transition

    def register_challenger(self, version: str, *, actor: str) -> Transition:
        self.current(actor=actor)
        transition = self.state.set_challenger(self.model, version, actor=actor, reason="registered by the gate")
        self.reconcile()
        return transition

    def start_canary(self, *, challenger: str, expected_champion: str | None, steps: list[float],
                     actor: str, reason: str = "") -> Transition:
        self.current(actor=actor)
        transition = self.state.start_canary(self.model, challenger=challenger, expected_champion=expected_champion,
                                             steps=steps, actor=actor, reason=reason)
        self.reconcile()
        return transition

    def apply_canary_decision(self, *, row_version: int, action: str, reason: str, actor: str,
                              next_step: int | None = None, next_weight: float | None = None,
                              failed_look: bool = False) -> Transition:
        transition = self.state.apply_canary_decision(
            self.model, row_version=row_version, action=action, reason=reason, actor=actor, next_step=next_step,
            next_weight=next_weight, failed_look=failed_look)
        self.reconcile()
        return transition

    def rollback(self, *, actor: str, reason: str = "") -> tuple[Transition, str | None]:
        """(the transition, why the aliases could not be moved or None). A failed alias move does not undo or fail
        the rollback: the state changed (the source of truth) and the aliases follow at the next task; raising
        would invite a retry, and a second rollback rolls forward again."""
        transition = self.state.rollback(self.model, actor=actor, reason=reason)
        try:
            self.reconcile()
        except Exception as error:
            return transition, " ".join(str(error).split())[:500]
        return transition, None
