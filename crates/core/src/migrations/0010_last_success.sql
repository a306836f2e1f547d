-- When a webhook's endpoint last answered with success, as the API and the console show it. The
-- senders write it to the minute, not on every success: a healthy webhook's row gets a new version
-- at most once a minute however fast its deliveries go (`webhooks_sender::store::webhooks`).
ALTER TABLE webhooks ADD COLUMN last_success_at timestamptz;
