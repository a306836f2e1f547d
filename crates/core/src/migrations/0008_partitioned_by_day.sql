-- Retention: events, deliveries and attempts live in daily range partitions, so that what is older
-- than RETENTION goes by detaching and dropping a partition rather than by deleting rows (which
-- would leave dead tuples and index entries for vacuum, and write as much as the inserts did).
-- The services create the partitions of the coming days themselves (`webhooks_core::retention`).
--
-- - events by `received_at`. A unique index on a partitioned table must hold the partition key,
--   so the events' key becomes (id, received_at) and no longer tells a redelivered event: that is
--   `event_keys`, unpartitioned, one row per event id, whose rows go with their event's partition.
-- - deliveries by `id`: a UUIDv7 whose first 48 bits are its creation time in milliseconds, so a
--   day's range of ids is a day's deliveries, and the primary key stays `id` alone: the lookups
--   by id that every attempt makes find their partition from the id itself.
-- - attempts by `delivery_id`, on the same bounds: a delivery's attempts are in the partition of
--   its day and go with it.
--
-- An installation with rows keeps them where they are: each old table becomes the first partition
-- (`*_legacy`), holding everything up to the end of the day of the upgrade (or of its newest row),
-- attached without copying a row; it is dropped as a whole once that end is older than RETENTION.
-- Its fillfactor (deliveries) and its indexes stay, renamed, as the partitions of the new ones.

CREATE TABLE event_keys (id text PRIMARY KEY);
INSERT INTO event_keys (id) SELECT id FROM events;

-- The old key (id) makes way for the partitioned table's (id, received_at), built on attach.
ALTER TABLE events DROP CONSTRAINT events_pkey;
ALTER TABLE events RENAME TO events_legacy;
ALTER TABLE deliveries RENAME TO deliveries_legacy;
ALTER INDEX deliveries_pkey RENAME TO deliveries_legacy_pkey;
ALTER INDEX deliveries_due RENAME TO deliveries_legacy_due;
ALTER INDEX deliveries_by_webhook RENAME TO deliveries_legacy_by_webhook;
ALTER TABLE attempts RENAME TO attempts_legacy;
ALTER INDEX attempts_by_delivery RENAME TO attempts_legacy_by_delivery;

CREATE TABLE events (
    id           text        NOT NULL,
    event_name   text        NOT NULL,
    project_code text        NOT NULL,
    body         bytea       NOT NULL,
    received_at  timestamptz NOT NULL,
    PRIMARY KEY (id, received_at)
) PARTITION BY RANGE (received_at);

-- Partitions are created with fillfactor 50 (see 0005): a partitioned table holds no storage
-- settings of its own.
CREATE TABLE deliveries (
    id               uuid        NOT NULL PRIMARY KEY,
    event_id         text        NOT NULL,
    webhook_id       uuid        NOT NULL,
    event_name       text        NOT NULL,
    state            text        NOT NULL,
    created_at       timestamptz NOT NULL,
    next_attempt_at  timestamptz,
    leased_until     timestamptz,
    first_attempt_at timestamptz,
    attempt_count    integer     NOT NULL DEFAULT 0,
    attempts_pruned  integer     NOT NULL DEFAULT 0
) PARTITION BY RANGE (id);
CREATE INDEX deliveries_due ON deliveries (next_attempt_at) WHERE state IN ('pending', 'retrying');
CREATE INDEX deliveries_by_webhook ON deliveries (webhook_id, created_at DESC);

CREATE TABLE attempts (
    delivery_id uuid        NOT NULL,
    at          timestamptz NOT NULL,
    success     boolean     NOT NULL,
    status_code integer,
    error       text,
    duration_ms integer     NOT NULL,
    response    text
) PARTITION BY RANGE (delivery_id);
CREATE INDEX attempts_by_delivery ON attempts (delivery_id, at);

DO $$
DECLARE
    newest timestamptz;
    bound  timestamptz;
    millis text;
    id_bound uuid;
BEGIN
    IF NOT EXISTS (SELECT 1 FROM events_legacy) AND NOT EXISTS (SELECT 1 FROM deliveries_legacy)
       AND NOT EXISTS (SELECT 1 FROM attempts_legacy) THEN
        DROP TABLE attempts_legacy, deliveries_legacy, events_legacy;
        RETURN;
    END IF;
    SELECT greatest(now(), (SELECT max(received_at) FROM events_legacy),
                    (SELECT max(created_at) FROM deliveries_legacy))
      INTO newest;
    bound := (date_trunc('day', newest AT TIME ZONE 'UTC') + interval '1 day') AT TIME ZONE 'UTC';
    -- The smallest UUIDv7 of that instant: its milliseconds in the first 48 bits, zeros after.
    millis := lpad(to_hex((extract(epoch FROM bound) * 1000)::bigint), 12, '0');
    id_bound := (substr(millis, 1, 8) || '-' || substr(millis, 9, 4) || '-0000-0000-000000000000')::uuid;
    EXECUTE format('ALTER TABLE events ATTACH PARTITION events_legacy FOR VALUES FROM (MINVALUE) TO (%L)', bound);
    EXECUTE format('ALTER TABLE deliveries ATTACH PARTITION deliveries_legacy FOR VALUES FROM (MINVALUE) TO (%L)', id_bound);
    EXECUTE format('ALTER TABLE attempts ATTACH PARTITION attempts_legacy FOR VALUES FROM (MINVALUE) TO (%L)', id_bound);
END
$$;
