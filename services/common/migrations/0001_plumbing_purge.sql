-- The hourly purge deletes old published events and handled-event marks by age.
CREATE INDEX outbox_published_at ON outbox (published_at) WHERE published_at IS NOT NULL;
CREATE INDEX processed_events_age ON processed_events (processed_at);
