"""SQL for the reporting read model (metric_counts)."""

# Stands for "no campaign" / "no run" in the key columns (see the migration).
NONE = "00000000-0000-0000-0000-000000000000"


def add_counts(tx, org_id, day, counts):
    """Add the increments to their counters in one statement; call it inside the transaction that
    recorded the event as processed, so a redelivered event never adds twice."""
    if not counts:
        return 0
    rows = [(org_id, day, c.channel, c.campaign_id or NONE, c.run_id or NONE, c.is_test, c.metric, c.n)
            for c in counts]
    return tx.values(
        "INSERT INTO metric_counts (org_id, day, channel, campaign_id, run_id, is_test, metric, count) "
        "VALUES %s "
        "ON CONFLICT (org_id, day, channel, campaign_id, run_id, is_test, metric) "
        "DO UPDATE SET count = metric_counts.count + EXCLUDED.count, updated_at = now()",
        rows,
        template="(%s::uuid, %s::date, %s, %s::uuid, %s::uuid, %s, %s, %s)",
    )


def first_mark(tx, org_id, run_id, mark):
    """True only the first time this run is marked (queued, completed)."""
    return tx.one(
        "INSERT INTO run_marks (run_id, mark, org_id) VALUES (%s, %s, %s) "
        "ON CONFLICT DO NOTHING RETURNING run_id", (run_id, mark, org_id)) is not None


def grouped_counts(tx, org_id, filters):
    """Totals and per channel / campaign / day sums in one scan (GROUPING SETS), filtered.

    The (org_id, day, ...) key index bounds the scan by organization and date range; campaign and
    run filters use their own (org_id, campaign_id|run_id) indexes."""
    where = ["org_id = %(org_id)s"]
    params = {"org_id": org_id}
    if filters.get("from") is not None:
        where.append("day >= %(from)s")
        params["from"] = filters["from"]
    if filters.get("to") is not None:
        where.append("day <= %(to)s")
        params["to"] = filters["to"]
    for field in ("channel", "campaign_id", "run_id"):
        if filters.get(field) is not None:
            where.append(f"{field} = %({field})s")
            params[field] = str(filters[field])
    if not filters.get("include_test"):
        where.append("NOT is_test")
    rows = tx.all(
        "SELECT CASE WHEN GROUPING(channel) = 0 THEN 'channel' "
        "            WHEN GROUPING(campaign_id) = 0 THEN 'campaign' "
        "            WHEN GROUPING(day) = 0 THEN 'day' ELSE 'total' END AS grouping, "
        "       channel, campaign_id, day, metric, sum(count) AS count "
        "FROM metric_counts WHERE " + " AND ".join(where) + " "
        "GROUP BY GROUPING SETS ((metric), (channel, metric), (campaign_id, metric), (day, metric))",
        params,
    )
    for row in rows:
        if row["campaign_id"] is not None and str(row["campaign_id"]) == NONE:
            row["campaign_id"] = None
    return rows
