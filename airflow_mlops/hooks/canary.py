"""The canary's evidence, read from the prediction log (state connection) and the labels source.

The join of the two arms' scores with matured labels and the published counts are SQL (one query each, the
aggregation and the join in the database); only the labelled pairs come back, three numbers per entity. When the
labels live in another database than the prediction log, the two sides are read separately and joined in memory.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from airflow_mlops.core import names
from airflow_mlops.hooks.dialects import PARAM, naive_utc


def data_time(moment: datetime) -> str:
    """How data times are written in the prediction log: naive UTC ISO text to the second (sorts as time)."""
    return naive_utc(moment).isoformat(timespec="seconds")


@dataclass
class LabelSource:
    """Where labels are: a database, its table or query, the entity and label columns."""

    database: Any
    table: str | None
    query: str | None
    entity_id: str
    label: str

    @classmethod
    def of(cls, config, database) -> LabelSource:
        labels, data = config.canary.labels, config.data
        table = labels.table or (None if labels.query else data.table)
        query = labels.query or (None if labels.table else data.query)
        return cls(database, table, query, labels.entity_id or data.entity_id, labels.label or data.target)

    def labels_sql(self) -> str:
        d = self.database.dialect
        entity, label = d.quote(self.entity_id), d.quote(self.label)
        # One label per entity (the largest if a source repeats it).
        text = d.entity_text(entity)
        return (f"SELECT {text} AS entity_id, MAX({label}) AS label "
                f"FROM {self.source_sql()} WHERE {label} IS NOT NULL AND {entity} IS NOT NULL GROUP BY {text}")

    def joined_sql(self, pairs_sql: str, select: str) -> str:
        """``pairs_sql`` (aliased ``p``, one row per entity) joined with this source's labels (aliased ``l``) in the
        same database."""
        d = self.database.dialect
        return (f"SELECT {select} FROM ({pairs_sql}) p JOIN (SELECT * FROM {self.source_sql()}) l "
                f"ON {self.match('l', 'p.entity_id')} WHERE l.{d.quote(self.label)} IS NOT NULL")

    def source_sql(self) -> str:
        return self.database.dialect.source_sql(table=self.table, query=self.query)

    def match(self, alias: str, logged_id: str) -> str:
        """The condition that row ``alias`` of this source labels the entity whose logged id is ``logged_id`` (ids
        compared as the log writes them: text)."""
        d = self.database.dialect
        return f"{d.entity_text(f'{alias}.{d.quote(self.entity_id)}')} = {logged_id}"


def _latest_per_entity(d, columns: list[tuple[str, str]], source: str, order: str) -> str:
    """``columns`` ((expression, name) pairs) of the first row per ``c.entity_id`` of ``source`` (``FROM ... WHERE
    ...``) in ``order``: PostgreSQL's DISTINCT ON (one sort, a third faster than the window), a ROW_NUMBER window
    elsewhere."""
    selected = ", ".join(f"{expression} AS {name}" for expression, name in columns)
    if d.name == "postgres":
        return f"SELECT DISTINCT ON (c.entity_id) {selected} {source} ORDER BY c.entity_id, {order}"
    return (f"SELECT {', '.join(name for _, name in columns)} FROM (SELECT {selected}, ROW_NUMBER() OVER "
            f"(PARTITION BY c.entity_id ORDER BY {order}) AS latest {source}) ranked WHERE latest = 1")


# An entity scored by several runs of one step (a window longer than the schedule, a customer table rescored daily)
# has one outcome, so only its latest matured prediction counts; repeats would pass for independent evidence.
LATEST = "c.scored_at DESC, c.scoring_run DESC"


def _arms_sql(state, model: str, canary_id: str, step: int, matured_before: datetime,
              labels: LabelSource | None = None) -> tuple[str, list]:
    """``FROM ... WHERE ...`` of the step's matured champion predictions (``c``) beside the same run's challenger
    prediction (``h``), and with ``labels``, left-joined with the entity's label rows (``l``)."""
    d = state.dialect
    log = d.quote(state.table(names.PREDICTION_LOG_TABLE))
    labelled = ""
    if labels is not None:
        labelled = (f"LEFT JOIN (SELECT * FROM {labels.source_sql()}) l ON {labels.match('l', 'c.entity_id')} "
                    f"AND l.{d.quote(labels.label)} IS NOT NULL ")
    sql = (f"FROM {log} c JOIN {log} h ON h.model = c.model AND h.scoring_run = c.scoring_run "
           f"AND h.entity_id = c.entity_id AND h.arm = {PARAM} {labelled}"
           f"WHERE c.model = {PARAM} AND c.canary_id = {PARAM} AND c.step = {PARAM} AND c.arm = {PARAM} "
           f"AND c.scored_at <= {PARAM}")
    return sql, [names.CHALLENGER, model, canary_id, step, names.CHAMPION, data_time(matured_before)]


def _pairs_sql(state, model: str, canary_id: str, step: int, matured_before: datetime) -> tuple[str, list]:
    """Both arms' scores of the step's matured predictions, the latest per entity."""
    source, params = _arms_sql(state, model, canary_id, step, matured_before)
    columns = [("c.entity_id", "entity_id"), ("c.score", "champion"), ("h.score", "challenger")]
    return _latest_per_entity(state.dialect, columns, source, LATEST), params


def _labelled_pairs_sql(state, labels: LabelSource, model: str, canary_id: str, step: int,
                        matured_before: datetime) -> tuple[str, list]:
    """:func:`_pairs_sql` with each entity's label (NULL when none has arrived) in the same database. The labels
    are joined before the latest prediction is picked, so one sort does both: the latest run first, then the
    largest label when the source repeats one (as labels_sql() defines it). 40% faster than joining the labels to
    the picked pairs and grouping again."""
    d = state.dialect
    source, params = _arms_sql(state, model, canary_id, step, matured_before, labels)
    label = f"l.{d.quote(labels.label)}"
    # No NULLS LAST needed: the join skips NULL labels, so an entity's rows all have labels or are its one NULL row.
    order = f"{LATEST}, {label} DESC"
    columns = [("c.score", "champion"), ("h.score", "challenger"), (label, "label")]
    return _latest_per_entity(d, columns, source, order), params


def published_counts(state, model: str, canary_id: str, step: int) -> dict[str, int]:
    """How many distinct entities each arm's score was published for in the step's scoring runs (for the SRM test).
    Distinct: an entity's bucket is fixed for the canary, so a rescored entity is one observation, not several."""
    d = state.dialect
    log = d.quote(state.table(names.PREDICTION_LOG_TABLE))
    frame = state.db.read_sql(f"SELECT arm, COUNT(DISTINCT entity_id) AS n FROM {log} WHERE model = {PARAM} AND "
                              f"canary_id = {PARAM} AND step = {PARAM} AND published = 1 GROUP BY arm",
                              [model, canary_id, step])
    counts = {names.CHAMPION: 0, names.CHALLENGER: 0}
    counts.update({row.arm: int(row.n or 0) for row in frame.itertuples()})
    return counts


# One analysis query joins millions of rows: enough memory to hash them without spilling, and no JIT compile.
ANALYSIS_SETTINGS = {"work_mem": "256MB", "jit": "off"}


def matured_pairs(state, labels: LabelSource, model: str, canary_id: str, step: int, matured_before: datetime):
    """DataFrame ``champion, challenger, label`` with one row per entity of the step whose latest prediction has
    matured, labelled or not (``label`` NaN: the outcome is late, or the labels are keyed differently). Three
    numbers per entity cross the wire; the join is the database's."""
    if state.db.identity == labels.database.identity:
        sql, params = _labelled_pairs_sql(state, labels, model, canary_id, step, matured_before)
        frame = state.db.read_sql(sql, params, settings=ANALYSIS_SETTINGS)
    else:
        pairs = state.db.read_sql(*_pairs_sql(state, model, canary_id, step, matured_before),
                                  settings=ANALYSIS_SETTINGS)
        known = labels.database.read_sql(labels.labels_sql())
        frame = pairs.merge(known, on="entity_id", how="left")[["champion", "challenger", "label"]]
    return frame.reset_index(drop=True)


@dataclass
class LookEvidence:
    """What one look of a canary step is judged on."""

    published: dict[str, int]  # distinct entities published per arm in the step (the SRM test's counts)
    pairs: Any                 # DataFrame champion, challenger, label: the matured, labelled entities
    matured: int               # entities whose latest prediction has matured, labelled or not

    @property
    def unlabelled(self) -> int:
        return self.matured - len(self.pairs)


def look_evidence(state, labels: LabelSource, model: str, canary_id: str, step: int,
                  matured_before: datetime) -> LookEvidence:
    """The published counts and the matured pairs of a look. The counts are read on a second connection while
    the pairs are, so a database server with a spare core runs both at once (on the 2-core test machine, where
    the pairs' query already uses parallel workers, it saves 0.1-0.3 s of 2.5 s at 1M logged predictions)."""
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="mlops-published-counts") as pool:
        counting = pool.submit(published_counts, state, model, canary_id, step)
        matured = matured_pairs(state, labels, model, canary_id, step, matured_before)
        published = counting.result()
    labelled = matured[matured["label"].notna()].reset_index(drop=True)
    return LookEvidence(published=published, pairs=labelled, matured=len(matured))


def matured_label_count_sql(state, labels: LabelSource, model: str, canary_id: str, step: int,
                            matured_before: datetime) -> tuple[str, list] | None:
    """``SELECT count`` of matured labelled entities, for the label sensor (None when the labels are in another
    database: one query cannot join them, and the sensor does not wait)."""
    if state.db.identity != labels.database.identity:
        return None
    pairs_sql, params = _pairs_sql(state, model, canary_id, step, matured_before)
    return labels.joined_sql(pairs_sql, "COUNT(DISTINCT p.entity_id)"), params


ANALYSIS_COLUMNS = ["model", "canary_id", "look", "metric", "step", "weight", "champion_value", "challenger_value",
                    "estimate", "ci_low", "ci_high", "margin", "method", "n_labelled", "n_champion_published",
                    "n_challenger_published", "srm_p_value", "verdict", "decision", "reason", "created_at"]


def store_analysis(state, rows: list[dict[str, Any]], *, model: str, canary_id: str, look: str) -> None:
    """One row per guardrail metric of a look (replaced when the look is retried)."""
    with state.db.bulk_writer(state.table(names.CANARY_ANALYSIS_TABLE), ANALYSIS_COLUMNS,
                              replace={"model": model, "canary_id": canary_id, "look": look}) as write:
        write([tuple(row.get(column) for column in ANALYSIS_COLUMNS) for row in rows])
