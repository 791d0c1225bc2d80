-- Unsubscribe groups take part in sending decisions and in the Unsubscribe API's group listings.
--
-- Every "may we send?" check (store.opted_out_sql) asks whether an address is opted out on a
-- channel in any group of the organization. unsubscribes_identity leads with (org_id, channel,
-- group_id): without group_id pinned it would walk every row of the organization's channel, so
-- the check probes (org_id, identifier) instead, among the rows that opt out only.
CREATE INDEX unsubscribes_opted_out ON unsubscribes (org_id, identifier) WHERE unsubscribed;
-- A group's listing (newest first, keyset on (updated_at, id)) and its opt-out count read this;
-- it is also the index the group foreign key's ON DELETE CASCADE needs.
CREATE INDEX unsubscribes_group_listing ON unsubscribes (group_id, updated_at DESC, id DESC)
    WHERE group_id IS NOT NULL;
