-- Cheaper 100,000-row imports (bench/import_contacts.py).
-- import_rows are written only by their own import, in the transaction that finishes it, and
-- imports are never deleted: the foreign key checked each of the 100,000 rows one by one
-- (about 0.9 s an import) and guarded nothing the writer does not.
ALTER TABLE import_rows DROP CONSTRAINT IF EXISTS import_rows_import_id_fkey;
-- The custom-data index (segment rules `custom equals`) takes new entries into its pending list
-- (fastupdate) up to 64 MB instead of 4 MB: an import's entries are merged by autovacuum rather
-- than inside the import. Queries read the pending list until then.
ALTER INDEX contacts_custom SET (gin_pending_list_limit = 65536);
