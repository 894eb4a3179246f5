-- 0002: a ticket in the box that an order answered "card" (direct) is due
-- to its card: the card's next sync stores it before any other ticket of
-- the box, so that the order's answer holds whatever is ordered after it.
ALTER TABLE tickets ADD COLUMN due BOOLEAN NOT NULL DEFAULT FALSE;
