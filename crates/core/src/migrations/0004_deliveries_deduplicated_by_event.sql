-- A delivery is inserted only in the transaction that inserts its event, and only when that insert
-- was new (events are unique by id), so the unique index on (event_id, webhook_id) guarded
-- nothing the events' key does not. It cost an entry on every insert and every outcome update.
-- The deliveries of a redelivered event that are still waiting are found through the due index.
ALTER TABLE deliveries DROP CONSTRAINT IF EXISTS deliveries_event_id_webhook_id_key;
