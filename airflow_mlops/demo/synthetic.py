"""A seeded synthetic credit-risk data set that grows day by day and can drift.

Each day's rows depend only on (seed, day), so a table built incrementally equals one built at once, and a
test can regenerate any day. ``drift`` in [0, 1] moves the population (lower incomes, more debt
consolidation, a new region) and the relationship between features and default (concept drift), so both
data drift and a stale champion can be shown. ``bad=True`` injects the faults validation must catch.
"""

from __future__ import annotations

import hashlib
from datetime import date, datetime, timedelta

PURPOSES = ["car", "home", "education", "debt", "business"]
REGIONS = ["north", "south", "east", "west"]
DRIFT_REGION = "central"
FEATURES = ["income", "amount", "term", "purpose", "region"]
CATEGORICAL = ["purpose", "region"]


def _day_seed(seed: int, day: date) -> int:
    return int.from_bytes(hashlib.sha256(f"{seed}:{day.isoformat()}".encode()).digest()[:8], "little")


def generate_day(day: date, *, rows: int = 300, seed: int = 7, drift: float = 0.0, bad: bool = False):
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(_day_seed(seed, day))
    income = rng.lognormal(mean=10.8 - 0.35 * drift, sigma=0.45, size=rows)
    amount = rng.lognormal(mean=9.3 + 0.25 * drift, sigma=0.6, size=rows)
    term = rng.choice([36, 60], size=rows, p=[0.7 - 0.3 * drift, 0.3 + 0.3 * drift])
    purpose_p = np.array([0.25, 0.2, 0.15, 0.25, 0.15]) * (1 - drift) + np.array([0.1, 0.1, 0.1, 0.6, 0.1]) * drift
    purpose = rng.choice(PURPOSES, size=rows, p=purpose_p / purpose_p.sum())
    regions = REGIONS + [DRIFT_REGION]
    region_p = np.array([0.25, 0.25, 0.25, 0.25, 0.0]) * (1 - drift) + np.array([0.1, 0.1, 0.1, 0.1, 0.6]) * drift
    region = rng.choice(regions, size=rows, p=region_p / region_p.sum())

    burden = amount / income
    logit = (-2.2 + 3.2 * burden + 0.5 * (term == 60) + 0.6 * (purpose == "debt") - 0.4 * (purpose == "home")
             + 0.3 * (region == "south") - 0.7 * (np.log(income) - 10.8))
    # Concept drift: the burden effect weakens and the region effect flips, so an old champion degrades.
    logit = logit + drift * (-2.0 * burden + 1.0 * (region == DRIFT_REGION) - 0.6 * (region == "south"))
    defaulted = (rng.random(rows) < 1 / (1 + np.exp(-logit))).astype("int64")

    start = datetime(day.year, day.month, day.day)
    seconds = np.sort(rng.integers(0, 86_400, size=rows))
    frame = pd.DataFrame({
        "loan_id": [f"{day:%Y%m%d}-{i:05d}" for i in range(rows)],
        "applied_at": [start + timedelta(seconds=int(s)) for s in seconds],
        "income": income.round(2),
        "amount": amount.round(2),
        "term": term.astype("int64"),
        "purpose": purpose,
        "region": region,
        "defaulted": defaulted,
    })
    if bad:
        # The faults an upstream bug produces: missing incomes and negative amounts in a share of rows.
        broken = rng.random(rows) < 0.2
        frame.loc[broken, "income"] = np.nan
        frame.loc[rng.random(rows) < 0.05, "amount"] *= -1
    return frame


def generate(start: date, days: int, *, rows_per_day: int = 300, seed: int = 7, drift_from: date | None = None,
             drift_ramp_days: int = 7, bad_days: frozenset[date] = frozenset()):
    """Rows for ``days`` consecutive days from ``start``; drift ramps up linearly from ``drift_from``."""
    import pandas as pd

    frames = []
    for offset in range(days):
        day = start + timedelta(days=offset)
        drift = 0.0
        if drift_from is not None and day >= drift_from:
            drift = min(1.0, ((day - drift_from).days + 1) / max(drift_ramp_days, 1))
        frames.append(generate_day(day, rows=rows_per_day, seed=seed, drift=drift, bad=day in bad_days))
    return pd.concat(frames, ignore_index=True)


def write_sqlite(path: str, frame, table: str = "loans", *, replace: bool = False) -> int:
    """Append (or replace) rows in a SQLite table; timestamps are stored as ISO text, as SQLite has no type."""
    import sqlite3

    with sqlite3.connect(path) as connection:
        frame.to_sql(table, connection, if_exists="replace" if replace else "append", index=False)
    return len(frame)
