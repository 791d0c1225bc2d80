"""What each event counts, and how counters become an analytics answer. Pure functions: no
nameko, no SQL, so the rules are tested without a broker or a database."""
import datetime

# The metrics the contract promises (docs/architecture.md), in the order answers list them.
# `runs` and `runs_completed` are additive: they count run_queued and run_completed events.
METRICS = ("targeted", "skipped", "drafted", "approved", "rejected", "sent", "failed", "replied",
           "runs", "runs_completed")
CHANNELS = ("email", "sms", "phone")


class Count:
    """One increment: `n` more of `metric` for this channel/campaign/run/test bucket."""

    __slots__ = ("channel", "campaign_id", "run_id", "is_test", "metric", "n")

    def __init__(self, channel, campaign_id, run_id, is_test, metric, n):
        self.channel, self.campaign_id, self.run_id = channel, campaign_id, run_id
        self.is_test, self.metric, self.n = bool(is_test), metric, int(n)

    def key(self):
        return (self.channel, self.campaign_id, self.run_id, self.is_test, self.metric)

    def __repr__(self):
        return f"Count({self.metric}={self.n} {self.channel} run={self.run_id} test={self.is_test})"


def event_day(payload, now=None):
    """The UTC day an event counts on: its `occurred_at` when it carries one, else now."""
    value = payload.get("occurred_at")
    if value:
        try:
            moment = datetime.datetime.fromisoformat(str(value).replace("Z", "+00:00"))
            if moment.tzinfo is None:
                moment = moment.replace(tzinfo=datetime.timezone.utc)
            return moment.astimezone(datetime.timezone.utc).date()
        except ValueError:
            pass
    now = now or datetime.datetime.now(datetime.timezone.utc)
    return now.astimezone(datetime.timezone.utc).date()


def _run_bucket(p):
    return p.get("channel") or "email", p.get("campaign_id"), p.get("run_id"), p.get("is_test", False)


def run_queued(p):
    channel, campaign_id, run_id, _ = _run_bucket(p)
    return [Count(channel, campaign_id, run_id, p.get("run_type") == "test", "runs", 1)]


def run_progress(p):
    bucket = _run_bucket(p)
    return [Count(*bucket, metric, p.get(metric) or 0)
            for metric in ("targeted", "skipped", "drafted") if p.get(metric)]


def drafts_approved(p):
    n = len(p.get("drafts") or [])
    return [Count(*_run_bucket(p), "approved", n)] if n else []


def drafts_rejected(p):
    n = len(p.get("draft_ids") or [])
    return [Count(*_run_bucket(p), "rejected", n)] if n else []


def run_completed(p):
    # The run's counts were already counted step by step from the events above; counting
    # them again here would double them. The completion itself is what this event adds.
    return [Count(*_run_bucket(p), "runs_completed", 1)]


def communications_sent(p):
    """One batch of send results may span runs (replies, retries): group per run and status."""
    channel = p.get("channel") or "email"
    is_test = p.get("is_test", False)
    grouped = {}
    for result in p.get("results") or []:
        metric = "sent" if result.get("status") == "sent" else "failed"
        key = (result.get("campaign_id"), result.get("run_id"), metric)
        grouped[key] = grouped.get(key, 0) + 1
    return [Count(channel, campaign_id, run_id, is_test, metric, n)
            for (campaign_id, run_id, metric), n in grouped.items()]


def reply_received(p):
    """A reply is an answer to a message we sent (messaging found the one it answers); mail
    that answers nothing of ours is in the feed but is not a reply."""
    if not p.get("in_reply_to_communication_id"):
        return []
    return [Count(p.get("channel") or "email", p.get("campaign_id"), p.get("run_id"),
                  p.get("is_test", False), "replied", 1)]


COUNTERS = {
    "campaigns.run_queued": run_queued,
    "campaigns.run_progress": run_progress,
    "campaigns.drafts_approved": drafts_approved,
    "campaigns.drafts_rejected": drafts_rejected,
    "campaigns.run_completed": run_completed,
    "messaging.communications_sent": communications_sent,
    "messaging.reply_received": reply_received,
}


# Events that count a run once however often they arrive (a resumed run is queued again).
RUN_MARKS = {"campaigns.run_queued": "queued", "campaigns.run_completed": "completed"}


def counts_for(event, payload):
    """The increments one event adds, merged per bucket (one upsert row per key)."""
    merged = {}
    for c in COUNTERS[event](payload):
        if c.n <= 0:
            continue
        if c.key() in merged:
            merged[c.key()].n += c.n
        else:
            merged[c.key()] = c
    return list(merged.values())


def zero():
    return {m: 0 for m in METRICS}


def summarize(rows):
    """Grouped counter rows -> the analytics answer.

    rows: dicts with `grouping` in total|channel|campaign|day, the group's value in
    `channel`/`campaign_id`/`day`, and `metric`, `count`.
    """
    totals = zero()
    by = {"channel": {}, "campaign": {}, "day": {}}
    for row in rows:
        metric, n = row["metric"], int(row["count"])
        if metric not in totals:
            continue
        grouping = row["grouping"]
        if grouping == "total":
            totals[metric] += n
            continue
        field = {"channel": "channel", "campaign": "campaign_id", "day": "day"}[grouping]
        value = row[field]
        if isinstance(value, (datetime.date,)):
            value = value.isoformat()
        elif value is not None:
            value = str(value)
        entry = by[grouping].setdefault(value, dict({field: value}, **zero()))
        entry[metric] += n
    return {
        "totals": totals,
        "by_channel": [by["channel"][k] for k in sorted(by["channel"])],
        # Campaign-less counts (e.g. a reply to a one-off message) come last, as campaign_id null.
        "by_campaign": [by["campaign"][k] for k in sorted(by["campaign"], key=lambda k: (k is None, k or ""))],
        "by_day": [by["day"][k] for k in sorted(by["day"])],
    }
