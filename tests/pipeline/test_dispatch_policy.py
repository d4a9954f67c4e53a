"""The retry policy: backoff with jitter, Retry-After honoured up to the same cap."""

from __future__ import annotations

from app.pipeline.dispatch import RetryPolicy


def test_retry_after_is_honoured_up_to_the_max_delay() -> None:
    policy = RetryPolicy(max_attempts=5, base_delay=1, max_delay=300)
    assert policy.delay(1, retry_after=7) == 7
    assert policy.delay(1, retry_after=3600) == 300
    assert policy.delay(1, retry_after=-5) == 0


def test_backoff_stays_within_half_and_all_of_its_ceiling() -> None:
    policy = RetryPolicy(max_attempts=5, base_delay=1, max_delay=10)
    for attempt, ceiling in ((1, 1), (3, 4), (10, 10)):
        for _ in range(50):
            assert ceiling / 2 <= policy.delay(attempt) <= ceiling
