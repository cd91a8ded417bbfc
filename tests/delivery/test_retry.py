from datetime import UTC, datetime, timedelta

from hookpost.delivery.retry import next_attempt_at

NOW = datetime(2026, 1, 1, tzinfo=UTC)
SCHEDULE = [0.0, 5.0, 300.0]


def test_each_attempt_waits_its_step_of_the_schedule() -> None:
    assert next_attempt_at(SCHEDULE, 1, NOW, jitter=0) == NOW + timedelta(seconds=5)
    assert next_attempt_at(SCHEDULE, 2, NOW, jitter=0) == NOW + timedelta(seconds=300)


def test_the_schedule_runs_out() -> None:
    assert next_attempt_at(SCHEDULE, 3, NOW, jitter=0) is None


def test_jitter_stays_within_its_fraction_and_varies() -> None:
    waits = {(next_attempt_at(SCHEDULE, 2, NOW, jitter=0.2) - NOW).total_seconds() for _ in range(200)}
    assert all(240 <= wait <= 360 for wait in waits)
    assert len(waits) > 100
