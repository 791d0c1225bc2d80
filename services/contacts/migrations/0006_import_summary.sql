-- The contacts an import wrote and what they lack (the result's `summary`), counted once by the
-- import as it writes them instead of on every read of a finished import (which looked up each
-- of them again: a quarter of a second for 100,000). NULL for imports finished before this.
ALTER TABLE imports ADD COLUMN IF NOT EXISTS written jsonb;
