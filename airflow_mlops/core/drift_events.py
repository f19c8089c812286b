"""When a confirmed drift becomes a retraining trigger: cooldown and de-duplication (pure logic).

The drift DAG may run daily while drift persists for weeks; one event per run would start a retrain per
run (a "drift storm"). An event is emitted only when
* drift is confirmed (dataset drift or performance drift),
* it is not a repeat for the same window (a re-run or a cleared task of the same check), and
* at least ``cooldown`` has passed since the window of the previous drift event.
Time is the *data* time of the checks (their window ends, recorded in each event's extra), not the wall clock,
so backfills and replays decide exactly as the live runs did. Events someone else emitted without a window
end (a manual event from the UI, say) count at their timestamp.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

WINDOW_END_KEY = "window_end"


@dataclass(frozen=True)
class EmitDecision:
    emit: bool
    reason: str


def _utc(value: datetime | str) -> datetime:
    moment = value if isinstance(value, datetime) else datetime.fromisoformat(str(value))
    return moment.replace(tzinfo=timezone.utc) if moment.tzinfo is None else moment.astimezone(timezone.utc)


def event_time(extra: dict[str, Any] | None, timestamp: datetime | str | None) -> datetime | None:
    """The data time an earlier drift event stands for: its window end, else when it was emitted."""
    if extra and extra.get(WINDOW_END_KEY):
        return _utc(extra[WINDOW_END_KEY])
    return _utc(timestamp) if timestamp is not None else None


def should_emit(summary: dict[str, Any], window_end: datetime | str, cooldown: timedelta,
                last_event: dict[str, Any] | None) -> EmitDecision:
    """Decide whether this check emits a drift event.

    :param summary: the drift report summary (``dataset_drift``, ``performance_drift``, ``status``).
    :param window_end: end of the window this check looked at.
    :param last_event: the previous event on the drift asset as ``{"extra": ..., "timestamp": ...}``, or None.
    """
    reasons = [name for name in ("dataset_drift", "performance_drift") if summary.get(name)]
    if not reasons:
        return EmitDecision(False, f"no confirmed drift (status {summary.get('status')}): no event")
    now = _utc(window_end)
    if last_event is not None:
        previous = event_time(last_event.get("extra"), last_event.get("timestamp"))
        if previous is not None:
            if previous >= now:
                return EmitDecision(False, f"an event for the window ending {previous.isoformat()} was already "
                                           "emitted (de-duplicated)")
            if now - previous < cooldown:
                left = cooldown - (now - previous)
                return EmitDecision(False, f"in cooldown: the previous drift event was for "
                                           f"{previous.isoformat()}, {now - previous} before this window; "
                                           f"cooldown {cooldown}, {left} left")
    return EmitDecision(True, f"{' and '.join(r.replace('_', ' ') for r in reasons)} confirmed: emitting")
