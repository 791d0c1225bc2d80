-- One live run of a campaign at a time: a second one would draft and send to the same contacts
-- again. start_run checks first (and names the active run); this index is what makes it true
-- under concurrency. Test runs may overlap (they only reach the organization's test recipients).
--
-- Before the index: where a campaign already has several live runs in progress, the oldest keeps
-- going and the others are cancelled, their drafts still waiting rejected (one-off cleanup; no
-- drafts_rejected events are emitted for it).
WITH active AS (
    SELECT id, row_number() OVER (PARTITION BY campaign_id ORDER BY created_at, id) AS n
    FROM runs WHERE run_type = 'live' AND status IN ('queued', 'running')
), dup AS (
    UPDATE runs SET status = 'cancelled', finished_at = now(), updated_at = now(),
        error = 'cancelled: another live run of this campaign was already in progress'
    WHERE id IN (SELECT id FROM active WHERE n > 1) RETURNING id
), waiting AS (
    SELECT id, status FROM drafts
    WHERE run_id IN (SELECT id FROM dup) AND status IN ('generating', 'pending_approval')
), rejected AS (
    UPDATE drafts d SET status = 'rejected', updated_at = now() FROM waiting w
    WHERE d.id = w.id RETURNING d.id, d.org_id, w.status AS from_status
)
INSERT INTO draft_history (draft_id, org_id, from_status, to_status, actor, note)
SELECT id, org_id, from_status, 'rejected', 'system', 'run cancelled: duplicate live run'
FROM rejected;

CREATE UNIQUE INDEX runs_one_active_live ON runs (campaign_id)
    WHERE run_type = 'live' AND status IN ('queued', 'running');
