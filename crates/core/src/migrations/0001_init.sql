-- Webhooks (subscriptions), the events they were matched against, one delivery per
-- (event, webhook), every attempt of a delivery, and the outbox of disable notifications.

CREATE TABLE webhooks (
    id              uuid PRIMARY KEY,
    project_code    text        NOT NULL,
    title           text        NOT NULL,
    url             text        NOT NULL,
    secret          text,
    events          text[]      NOT NULL,
    enabled         boolean     NOT NULL DEFAULT true,
    created_by      bigint,
    created_at      timestamptz NOT NULL,
    updated_at      timestamptz NOT NULL,
    deleted_at      timestamptz,
    -- health: first failed attempt since the last success, and what has failed since
    failing_since   timestamptz,
    failed_attempts integer     NOT NULL DEFAULT 0,
    last_error      text,
    disabled_at     timestamptz,
    disabled_reason text
);
CREATE INDEX webhooks_by_project ON webhooks (project_code, created_at) WHERE deleted_at IS NULL;

-- Dispatchers keep an in-memory index of enabled webhooks; tell them when one changes in a way
-- that matters for matching (not on every health update).
CREATE FUNCTION webhooks_notify_change() RETURNS trigger AS $$
BEGIN
    PERFORM pg_notify('webhooks_changed', COALESCE(NEW.id, OLD.id)::text);
    RETURN NULL;
END
$$ LANGUAGE plpgsql;

CREATE TRIGGER webhooks_changed_insert_delete AFTER INSERT OR DELETE ON webhooks
    FOR EACH ROW EXECUTE FUNCTION webhooks_notify_change();
CREATE TRIGGER webhooks_changed_update AFTER UPDATE ON webhooks
    FOR EACH ROW
    WHEN (OLD.enabled IS DISTINCT FROM NEW.enabled
          OR OLD.events IS DISTINCT FROM NEW.events
          OR OLD.deleted_at IS DISTINCT FROM NEW.deleted_at
          OR OLD.project_code IS DISTINCT FROM NEW.project_code)
    EXECUTE FUNCTION webhooks_notify_change();

-- One row per accepted event that matched at least one webhook; `body` is the exact HTTP body
-- every delivery of the event sends.
CREATE TABLE events (
    id           text PRIMARY KEY,
    event_name   text        NOT NULL,
    project_code text        NOT NULL,
    body         bytea       NOT NULL,
    received_at  timestamptz NOT NULL
);

-- state: pending (not attempted yet) | retrying | succeeded | failed (given up) | cancelled
-- next_attempt_at: when the sender's scheduler may pick the delivery up (also the end of a lease
-- while an attempt is in flight); NULL once finished.
CREATE TABLE deliveries (
    id               uuid PRIMARY KEY,
    event_id         text        NOT NULL REFERENCES events (id),
    webhook_id       uuid        NOT NULL REFERENCES webhooks (id),
    event_name       text        NOT NULL,
    state            text        NOT NULL,
    created_at       timestamptz NOT NULL,
    next_attempt_at  timestamptz,
    leased_until     timestamptz,
    first_attempt_at timestamptz,
    attempt_count    integer     NOT NULL DEFAULT 0,
    UNIQUE (event_id, webhook_id)
);
CREATE INDEX deliveries_due ON deliveries (next_attempt_at) WHERE state IN ('pending', 'retrying');
CREATE INDEX deliveries_by_webhook ON deliveries (webhook_id, created_at DESC);

CREATE TABLE attempts (
    delivery_id uuid        NOT NULL REFERENCES deliveries (id),
    at          timestamptz NOT NULL,
    success     boolean     NOT NULL,
    status_code integer,
    error       text,
    duration_ms integer     NOT NULL,
    response    text
);
CREATE INDEX attempts_by_delivery ON attempts (delivery_id, at);

-- Disable notifications are written here in the transaction that disables the webhook and
-- published (with confirms) from here, so a crash in between loses none and sends none twice.
CREATE TABLE notification_outbox (
    id         bigserial PRIMARY KEY,
    webhook_id uuid        NOT NULL,
    body       bytea       NOT NULL,
    created_at timestamptz NOT NULL
);
