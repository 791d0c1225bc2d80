-- The dashboard's Going Live steps and headline counts.

-- Incoming email is the optional last Going Live step: the time the organization chose to defer
-- it (NULL: not deferred). Deferring lets the dashboard become operational without it.
ALTER TABLE email_settings ADD COLUMN incoming_email_skipped_at timestamptz;

-- "Emails sent" counts the organization's real (not test) outbound email that left us. The
-- predicate is written out literally in store.count_emails_sent so the planner can use this
-- partial index; an index-only scan counts a 100,000-message organization without reading rows.
CREATE INDEX communications_emails_sent ON communications (org_id)
    WHERE direction = 'outbound' AND channel = 'email' AND status IN ('sent', 'delivered')
      AND NOT is_test;

-- "Recently received": inbound messages are few beside outbound ones, so the feed index
-- (org_id, created_at DESC) would walk every outbound row before finding five inbound.
CREATE INDEX communications_inbound_recent ON communications (org_id, created_at DESC, id DESC)
    WHERE direction = 'inbound';
