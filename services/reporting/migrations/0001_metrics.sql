-- Analytics read model: one counter per organization, UTC day, channel, campaign, run, test flag
-- and metric, built only from other services' events (never from their tables or RPC).
-- campaign_id/run_id use the nil UUID for "none" (e.g. a reply to a one-off message) rather than
-- NULL, so the upsert key is a plain unique constraint on every PostgreSQL version we support
-- (NULLS NOT DISTINCT needs 15+); store.py maps it back to null.
CREATE TABLE metric_counts (
    org_id uuid NOT NULL,
    day date NOT NULL,
    channel text NOT NULL,
    campaign_id uuid NOT NULL,
    run_id uuid NOT NULL,
    is_test boolean NOT NULL,
    metric text NOT NULL,
    count bigint NOT NULL DEFAULT 0,
    updated_at timestamptz NOT NULL DEFAULT now(),
    -- The upsert target; its prefix (org_id, day) serves date-range queries.
    PRIMARY KEY (org_id, day, channel, campaign_id, run_id, is_test, metric)
);
-- The campaign and run filters.
CREATE INDEX metric_counts_campaign ON metric_counts (org_id, campaign_id, day);
CREATE INDEX metric_counts_run ON metric_counts (org_id, run_id);
