-- A webhook's secret can be rotated with a grace period: until `previous_secret_until`, the
-- secret it replaced still signs its deliveries, beside the new one, so that a receiver can
-- switch to the new secret at any moment of the grace without refusing a delivery.
ALTER TABLE webhooks
    ADD COLUMN previous_secret       text,
    ADD COLUMN previous_secret_until timestamptz;
