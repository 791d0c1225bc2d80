"""The Unsubscribe API's limit over a sliding minute, from per-minute counts (the counting itself
is PostgreSQL's, shared by every gateway: tests/contacts/integration/test_unsubscribe_api.py)."""
from services.contacts import ratelimit


def test_sixty_in_one_minute_pass_and_the_sixty_first_does_not():
    assert ratelimit.estimate(60, 0, 10.0) <= 60
    assert ratelimit.estimate(61, 0, 10.0) > 60


def test_a_burst_at_the_end_of_a_minute_still_counts_at_the_start_of_the_next():
    # 40 requests in the last seconds of the previous minute, 21 one second into this one.
    assert ratelimit.estimate(21, 40, 1.0) > 60
    # Half a minute later half of the previous minute's requests have aged out.
    assert ratelimit.estimate(21, 40, 30.0) <= 60


def test_retry_after_is_when_one_more_request_fits():
    assert ratelimit.retry_after(60, 0, 0.5) == 60       # full minute: until the next (capped)
    assert ratelimit.retry_after(60, 0, 59.5) == 2
    assert ratelimit.retry_after(30, 40, 10.0) == 7       # the previous minute's share shrinks
    assert 1 <= ratelimit.retry_after(59, 60, 59.9) <= 60
