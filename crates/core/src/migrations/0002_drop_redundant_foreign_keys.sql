-- The writes already guarantee these references: a delivery is inserted in the statement that
-- inserts its event and joins its (enabled) webhook, an attempt is written for a leased delivery,
-- and nothing is ever deleted (webhooks are soft-deleted). Checking them again cost a third of the
-- dispatcher's recording time.
ALTER TABLE deliveries DROP CONSTRAINT IF EXISTS deliveries_event_id_fkey;
ALTER TABLE deliveries DROP CONSTRAINT IF EXISTS deliveries_webhook_id_fkey;
ALTER TABLE attempts DROP CONSTRAINT IF EXISTS attempts_delivery_id_fkey;
