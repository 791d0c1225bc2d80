-- Runs already counted as queued / completed. campaigns re-emits run_queued (a new event) when it
-- resumes a stalled run, so the processed_events guard alone would count that run twice.
CREATE TABLE run_marks (
    run_id uuid NOT NULL,
    mark text NOT NULL,
    org_id uuid NOT NULL,
    marked_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (run_id, mark)
);
