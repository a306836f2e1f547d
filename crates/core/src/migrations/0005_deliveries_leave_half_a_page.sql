-- A lease is a new version of the row, heap-only when it fits on the row's page (see 0003). The
-- deliveries of a batch are inserted together, fill their pages together and are leased together:
-- with 30% of each page free, 793 of 2,000 leases of one claim fit, and every other row moved to
-- another page with a new entry in every index of the table. With half of each new page free,
-- 1,938 of 2,000 fit (a lease adds 8 bytes and a line pointer, so the last row of a page may
-- still miss). New pages hold fewer rows; the updates that follow write far less.
ALTER TABLE deliveries SET (fillfactor = 50);
