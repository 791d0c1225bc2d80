-- The stalled-run sweep (every replica, every minute) looks only at runs still paging their audience.
CREATE INDEX runs_in_progress ON runs (updated_at) WHERE status IN ('queued', 'running') AND NOT audience_exhausted;
