-- A sender's lease now writes `leased_until` alone, which no index covers, so the claim can be a
-- heap-only update (no new index entries) when the row's page has room for the new version.
-- Leave that room on new pages. `next_attempt_at` keeps the time the delivery is due; a delivery
-- is taken by the scheduler once it is due and not under an unexpired lease.
ALTER TABLE deliveries SET (fillfactor = 70);
