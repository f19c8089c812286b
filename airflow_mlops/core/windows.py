"""Time windows of a continuous-training run, derived from the run's logical date.

The holdout is the most recent ``holdout_window`` before the run's end; training data is the
``train_window`` before that, so champion and challenger are judged out of time.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta


@dataclass(frozen=True)
class TrainingWindows:
    train_start: datetime
    holdout_start: datetime
    end: datetime

    def to_dict(self) -> dict[str, str]:
        return {"train_start": self.train_start.isoformat(), "holdout_start": self.holdout_start.isoformat(),
                "end": self.end.isoformat()}

    @classmethod
    def from_dict(cls, raw: dict[str, str]) -> TrainingWindows:
        return cls(*(datetime.fromisoformat(raw[k]) for k in ("train_start", "holdout_start", "end")))


def training_windows(end: datetime, train_window: timedelta, holdout_window: timedelta) -> TrainingWindows:
    holdout_start = end - holdout_window
    return TrainingWindows(holdout_start - train_window, holdout_start, end)
