-- The import worker (services/contacts/import_worker.py) runs queued imports in its own process;
-- the organization defaults an import runs with are recorded when it is queued.
ALTER TABLE imports ADD COLUMN defaults jsonb NOT NULL DEFAULT '{}'::jsonb;
-- The worker looks for queued (and orphaned running) imports.
CREATE INDEX imports_open ON imports (created_at) WHERE status IN ('queued', 'running');
