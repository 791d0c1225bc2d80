-- The run worker takes a lease on a run while it works one page of the audience: `lease_until`
-- (renewed while the page is being written, cleared when it commits) and `lease_token` (which
-- worker holds it, so a worker whose lease was taken over can neither renew nor commit). The
-- stalled-run sweep re-queues only runs whose lease expired (or that sat unleased too long).
ALTER TABLE runs ADD COLUMN lease_until timestamptz;
ALTER TABLE runs ADD COLUMN lease_token uuid;
DROP INDEX IF EXISTS runs_in_progress;
CREATE INDEX runs_in_progress ON runs (lease_until, updated_at)
    WHERE status IN ('queued', 'running') AND NOT audience_exhausted;

-- Replies are counted per run and organization (every query is scoped by org_id).
ALTER TABLE run_replies ADD COLUMN org_id uuid;
UPDATE run_replies r SET org_id = runs.org_id FROM runs WHERE runs.id = r.run_id;
