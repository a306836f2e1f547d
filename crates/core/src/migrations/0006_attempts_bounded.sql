-- A delivery keeps its first attempt and its most recent ones (see `ATTEMPTS_KEPT_RECENT` in
-- core's `delivery` module); the attempts removed between them are counted here, so the API can
-- say how many it does not show. A constant default: the column is added without rewriting the
-- table, and it is covered by no index, so counting keeps updates heap-only.
ALTER TABLE deliveries ADD COLUMN attempts_pruned integer NOT NULL DEFAULT 0;
