-- Bulk replays (`POST …/webhooks/{id}/replay`): a replay is the set of one webhook's deliveries
-- of a time range and some finished states, as matched when it was asked for, handed back to the
-- senders a bounded batch at a time by the dispatchers' replay task (`webhooks_dispatcher::replay`).
--
-- `queued`: matches handed back so far (made `pending` and due again); `skipped`: matches left
-- alone because they had changed when their turn came (retried by hand meanwhile, or the webhook
-- was disabled or deleted: `stopped_reason`); `done`: of the queued, those whose new attempt has
-- been made (or that ended without one). Finished once queued + skipped = matched and done =
-- queued. `next_after`: the largest delivery id taken by a batch so far, where the next batch
-- starts; `in_flight_from`: the smallest id handed back and not done yet (`next_after` when none),
-- where the look for done ones starts (the done ones before it are deleted, and their index
-- entries, dead until vacuumed, are not walked again at every step).
CREATE TABLE replays (
    id              uuid        PRIMARY KEY,
    webhook_id      uuid        NOT NULL,
    idempotency_key text,
    from_at         timestamptz NOT NULL,
    to_at           timestamptz NOT NULL,
    states          text[]      NOT NULL,
    state           text        NOT NULL,
    matched         integer     NOT NULL DEFAULT 0,
    queued          integer     NOT NULL DEFAULT 0,
    skipped         integer     NOT NULL DEFAULT 0,
    done            integer     NOT NULL DEFAULT 0,
    next_after      uuid        NOT NULL DEFAULT '00000000-0000-0000-0000-000000000000',
    in_flight_from  uuid        NOT NULL DEFAULT '00000000-0000-0000-0000-000000000000',
    stopped_reason  text,
    created_at      timestamptz NOT NULL,
    finished_at     timestamptz
);
-- A key names one replay of its webhook: a second request with it finds the first one here.
CREATE UNIQUE INDEX replays_by_key ON replays (webhook_id, idempotency_key)
    WHERE idempotency_key IS NOT NULL;
CREATE INDEX replays_by_webhook ON replays (webhook_id, created_at DESC);
-- The replay task's turn reads the running ones only.
CREATE INDEX replays_running ON replays (created_at) WHERE state = 'running';

-- A replay's matches still to hand back or to see attempted, in delivery id order; a row is
-- deleted once its delivery is done (or skipped), so a finished replay keeps none. `attempts` is
-- the delivery's `attempt_count` when it was matched: a delivery handed back is done once it
-- counts more, and one that counts more before its turn has been retried meanwhile (skipped).
-- Not partitioned, and no reference to `deliveries` (whose key holds no day): a delivery whose
-- day retention dropped is simply not found, and counted as skipped or done.
CREATE TABLE replay_items (
    replay_id   uuid    NOT NULL,
    delivery_id uuid    NOT NULL,
    attempts    integer NOT NULL,
    PRIMARY KEY (replay_id, delivery_id)
);
