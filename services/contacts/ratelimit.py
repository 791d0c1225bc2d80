"""The Unsubscribe API's request limit (60 a minute per client), counted in PostgreSQL so every
gateway process shares one count. One row per client and minute, incremented atomically
(INSERT ... ON CONFLICT DO UPDATE RETURNING count); the limit applies to a sliding minute,
estimated from this minute's count and the previous minute's weighted by how much of it is still
inside the last 60 seconds. A refused request is not counted (its transaction rolls back), so a
client that keeps trying is let in again as soon as its earlier requests age out."""
import math
import random

from services.common.errors import RateLimited

LIMIT = 60
WINDOW = 60.0

COUNT_SQL = """
INSERT INTO api_rate_counts (client_id, window_start, count)
VALUES (%s, date_trunc('minute', now()), 1)
ON CONFLICT (client_id, window_start) DO UPDATE SET count = api_rate_counts.count + 1
RETURNING count, extract(epoch FROM now() - window_start)::float8 AS elapsed,
  (SELECT p.count FROM api_rate_counts p WHERE p.client_id = %s
     AND p.window_start = date_trunc('minute', now()) - interval '1 minute') AS previous
"""


def estimate(current, previous, elapsed, window=WINDOW):
    """Requests in the last `window` seconds, from this window's and the previous one's counts."""
    return (previous or 0) * max(window - elapsed, 0.0) / window + current


def retry_after(current, previous, elapsed, limit=LIMIT, window=WINDOW):
    """Seconds (1..60) until one more request fits, `current` counting the requests let in."""
    previous = previous or 0
    if current + 1 <= limit and previous:
        # The previous minute's share has to shrink enough.
        wait = window - elapsed - (limit - 1 - current) * window / previous
    else:
        # This minute is full: into the next one, until this minute's share leaves room.
        wait = (window - elapsed) + max(window - (limit - 1) * window / max(current, 1), 0.0)
    return int(min(max(math.ceil(wait), 1), window))


def count_request(tx, client_id, limit=LIMIT):
    """Counts one request of `client_id`; RateLimited (not counted) past the limit."""
    row = tx.one(COUNT_SQL, (client_id, client_id))
    current, previous, elapsed = row["count"], row["previous"] or 0, row["elapsed"]
    if estimate(current, previous, elapsed) > limit:
        raise RateLimited(f"{limit} requests per minute per client",
                          retry_after=retry_after(current - 1, previous, elapsed, limit))
    if random.random() < 0.02:
        tx.execute("DELETE FROM api_rate_counts WHERE window_start < now() - interval '10 minutes'")
    return {"count": current, "limit": limit}
