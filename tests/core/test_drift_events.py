from datetime import datetime, timedelta, timezone

from airflow_mlops.core.drift_events import event_time, should_emit

DRIFT = {"status": "drift", "dataset_drift": True, "performance_drift": False}
END = datetime(2025, 3, 20, tzinfo=timezone.utc)
COOLDOWN = timedelta(days=3)


def test_no_drift_never_emits():
    for summary in ({"status": "no_drift", "dataset_drift": False}, {"status": "insufficient_data"}):
        decision = should_emit(summary, END, COOLDOWN, None)
        assert not decision.emit and "no confirmed drift" in decision.reason


def test_first_drift_and_performance_drift_emit():
    assert should_emit(DRIFT, END, COOLDOWN, None).emit
    decision = should_emit({"status": "no_drift", "performance_drift": True}, END, COOLDOWN, None)
    assert decision.emit and "performance drift" in decision.reason


def test_cooldown_is_measured_in_data_time():
    last = {"extra": {"window_end": (END - timedelta(days=2)).isoformat()}, "timestamp": "2030-01-01T00:00:00"}
    decision = should_emit(DRIFT, END, COOLDOWN, last)
    assert not decision.emit and "in cooldown" in decision.reason and "1 day, 0:00:00 left" in decision.reason
    assert should_emit(DRIFT, END + timedelta(days=1), COOLDOWN, last).emit  # exactly the cooldown later


def test_same_window_is_deduplicated_even_without_cooldown():
    last = {"extra": {"window_end": "2025-03-20T00:00:00"}, "timestamp": None}  # naive = UTC
    decision = should_emit(DRIFT, END, timedelta(0), last)
    assert not decision.emit and "de-duplicated" in decision.reason


def test_events_without_window_end_count_at_their_timestamp():
    assert event_time({}, "2025-03-19T12:00:00+01:00") == datetime(2025, 3, 19, 11, tzinfo=timezone.utc)
    assert not should_emit(DRIFT, END, COOLDOWN, {"extra": None, "timestamp": END - timedelta(hours=1)}).emit
    assert event_time(None, None) is None
    assert should_emit(DRIFT, END, COOLDOWN, {"extra": {}, "timestamp": None}).emit
