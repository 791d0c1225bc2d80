"""Segment count over 1,000,000 contacts with a tag rule and a field rule (through the API), and
resolve_segment paged by keyset 1,000 at a time (through RPC, as the run worker calls it).

    .venv/bin/python -m bench.segments        # starts a private stack (like the tests)

Targets (issue 4): count <= 1 s; resolve pages at a steady rate (no offset scans: the last page
costs what the first does). Writes bench/results/segments.json."""
import json
import os
import statistics
import sys
import time
import uuid

import requests

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from bench.harness import private_stack, write_results  # noqa: E402

CONTACTS = int(os.environ.get("BENCH_CONTACTS", "1000000"))


def seed(stack, org_id, tag_id):
    """1M contacts straight into the contacts schema (the import path has its own bench); every
    third carries the tag, every fifth is in Europe/London, every 50th opted out of e-mail."""
    with stack.db("contacts") as conn, conn.cursor() as cur:
        cur.execute(
            "INSERT INTO contacts (id, org_id, name, email, phone, timezone, custom, created_at)"
            " SELECT md5(%s || g)::uuid, %s, 'Person ' || g, 'person' || g || '@example.com',"
            " '+1202555' || lpad((g %% 10000)::text, 4, '0'),"
            " (ARRAY['Europe/London','America/New_York','Asia/Tokyo','Europe/Paris','America/Chicago'])[1 + g %% 5],"
            " jsonb_build_object('plan', CASE WHEN g %% 2 = 0 THEN 'gold' ELSE 'basic' END, 'budget', g %% 90000),"
            " now() - (g || ' seconds')::interval"
            " FROM generate_series(1, %s) g", (org_id, org_id, CONTACTS))
        cur.execute("INSERT INTO contact_tags (tag_id, contact_id, org_id)"
                    " SELECT %s, id, org_id FROM contacts WHERE org_id = %s AND"
                    " ('x' || substr(md5(id::text), 1, 8))::bit(32)::int %% 3 = 0", (tag_id, org_id))
        cur.execute("INSERT INTO unsubscribes (org_id, channel, identifier, unsubscribed, source)"
                    " SELECT org_id, 'email', email, true, 'import' FROM contacts WHERE org_id = %s"
                    " AND ('x' || substr(md5(id::text), 9, 8))::bit(32)::int %% 50 = 0", (org_id,))
        conn.commit()
    conn = stack.db("contacts")
    conn.autocommit = True
    with conn.cursor() as cur:
        for table in ("contacts", "contact_tags", "unsubscribes"):
            cur.execute(f"VACUUM ANALYZE {table}")
    conn.close()


def run(stack):
    s = requests.Session()
    resp = s.post(f"{stack.url}/api/v1/signup", json={
        "organization": {"name": "Bench Segments", "description": "bench"},
        "owner": {"name": "Bench", "email": f"bench-{uuid.uuid4().hex[:8]}@example.org",
                  "password": "bench-password-123"}})
    resp.raise_for_status()
    org_id = resp.json()["organization"]["id"]
    s.headers.update({"Authorization": f"Bearer {resp.json()['token']}", "X-Organization-Id": org_id})
    tag = s.post(f"{stack.url}/api/v1/tags", json={"title": "Newsletter"}).json()
    started = time.perf_counter()
    seed(stack, org_id, tag["id"])
    seeded = time.perf_counter() - started
    seg = s.post(f"{stack.url}/api/v1/segments", json={"name": "London newsletter", "rules": {
        "match": "all", "rules": [{"type": "has_tag", "tag_id": tag["id"]},
                                  {"type": "field", "field": "timezone", "op": "equals", "value": "Europe/London"}]}}).json()
    counts = []
    for _ in range(5):
        t = time.perf_counter()
        answer = s.get(f"{stack.url}/api/v1/segments/{seg['id']}/count").json()
        counts.append(time.perf_counter() - t)
    custom = s.post(f"{stack.url}/api/v1/segments", json={"name": "Gold newsletter", "rules": {
        "match": "all", "rules": [{"type": "has_tag", "tag_id": tag["id"]},
                                  {"type": "custom", "key": "plan", "op": "equals", "value": "gold"}]}}).json()
    custom_times = []
    for _ in range(3):
        t = time.perf_counter()
        custom_answer = s.get(f"{stack.url}/api/v1/segments/{custom['id']}/count").json()
        custom_times.append(time.perf_counter() - t)
    pages, after, total, skipped = [], None, 0, 0
    ctx = {"org_id": org_id, "role": "system"}
    with stack.rpc(timeout=120) as rpc:
        while True:
            t = time.perf_counter()
            page = rpc.contacts.resolve_segment(ctx, {"segment_id": seg["id"], "channel": "email",
                                                      "after": after, "limit": 1000})
            pages.append(time.perf_counter() - t)
            total += len(page["contacts"])
            skipped += sum(1 for c in page["contacts"] if c["skip_reason"])
            after = page["next_cursor"]
            if not after:
                break
    tenth = max(1, len(pages) // 10)
    figures = {
        "contacts": CONTACTS, "seed_seconds": round(seeded, 1),
        "segment_count": answer["count"],
        "count_seconds": {"min": round(min(counts), 3), "median": round(statistics.median(counts), 3),
                          "max": round(max(counts), 3)},
        "custom_rule_count": custom_answer["count"],
        "custom_rule_count_seconds_median": round(statistics.median(custom_times), 3),
        "resolve": {"pages": len(pages), "contacts": total, "skipped": skipped,
                    "page_seconds_median": round(statistics.median(pages), 4),
                    "first_tenth_median": round(statistics.median(pages[:tenth]), 4),
                    "last_tenth_median": round(statistics.median(pages[-tenth:]), 4),
                    "contacts_per_second": round(total / sum(pages))},
        "target_count_seconds": 1.0, "load_average": os.getloadavg(),
    }
    print(json.dumps(figures, indent=2))
    return figures


def main():
    with private_stack() as stack:
        write_results("segments", run(stack))


if __name__ == "__main__":
    main()
