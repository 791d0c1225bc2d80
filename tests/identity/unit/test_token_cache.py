"""The gateway's token cache: hits are local, evictions are per user or organization, and an
answer fetched before an eviction is never stored after it."""
import datetime as dt

from gateway.auth import TokenCache


def who(user_id, org_id, minutes=60):
    expires = dt.datetime.now(dt.timezone.utc) + dt.timedelta(minutes=minutes)
    return {"user_id": user_id, "org_id": org_id, "organizations": [{"org_id": org_id}],
            "expires_at": expires.isoformat()}


def enabled_cache():
    c = TokenCache()
    c.enabled.set()
    return c


def test_cache_is_off_until_the_eviction_listener_runs():
    c = TokenCache()
    c.put("t", None, who("u", "o"), c.generation)
    assert c.get("t", None) is None


def test_cached_answer_is_served_until_its_user_or_org_is_evicted():
    c = enabled_cache()
    c.put("t1", None, who("u1", "o1"), c.generation)
    c.put("t2", "o1", who("u2", "o1"), c.generation)
    c.put("t3", None, who("u3", "o2"), c.generation)
    assert c.get("t1", None)["user_id"] == "u1"
    c.forget(user_id="u1")
    assert c.get("t1", None) is None and c.get("t2", "o1") is not None
    c.forget(org_id="o1")
    assert c.get("t2", "o1") is None and c.get("t3", None) is not None


def test_answer_fetched_before_an_eviction_is_not_stored():
    c = enabled_cache()
    generation = c.generation
    c.forget(user_id="u1")  # a lock arrives while the check is in flight
    c.put("t1", None, who("u1", "o1"), generation)
    assert c.get("t1", None) is None


def test_entries_never_outlive_the_session():
    c = enabled_cache()
    c.put("t", None, who("u", "o", minutes=-1), c.generation)
    assert c.get("t", None) is None
