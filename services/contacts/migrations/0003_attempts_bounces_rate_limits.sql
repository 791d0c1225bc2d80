-- The import worker counts its attempts at an import (one more each time it claims it): a file
-- that kills the worker every time is failed after a few attempts instead of retried forever.
ALTER TABLE imports ADD COLUMN attempts integer NOT NULL DEFAULT 0;

-- Addresses a hard bounce showed undeliverable, per organization and channel (e-mail today):
-- reachable() answers false and resolve_segment skips them (`undeliverable`) until an admin
-- clears the mark. Keyed by the normalised identifier, like consent.
CREATE TABLE undeliverable (
    org_id uuid NOT NULL,
    channel text NOT NULL CHECK (channel IN ('email', 'sms', 'phone')),
    identifier text NOT NULL,
    bounced_at timestamptz NOT NULL DEFAULT now(),
    diagnostic text,
    communication_id text,
    PRIMARY KEY (org_id, channel, identifier)
);

-- The Unsubscribe API's per-client request counter, shared by every gateway process: one row per
-- client and minute, incremented atomically (INSERT ... ON CONFLICT DO UPDATE RETURNING).
CREATE TABLE api_rate_counts (
    client_id text NOT NULL,
    window_start timestamptz NOT NULL,
    count integer NOT NULL,
    PRIMARY KEY (client_id, window_start)
);
CREATE INDEX api_rate_counts_window ON api_rate_counts (window_start);
