-- 0001: cards, tickets, sync challenges, orders and gate checks.
-- Serials and ticket IDs are 10-byte BYTEA; dates are integers YYYYMMDD,
-- times of day HHMM, check times YYYYMMDDhhmmss (local, as on the ticket).

-- The box's view of each card.
CREATE TABLE cards (
	serial     BYTEA PRIMARY KEY CHECK (octet_length(serial) = 10),
	registered BOOLEAN NOT NULL DEFAULT FALSE,
	msisdn     TEXT UNIQUE,
	public_key BYTEA,
	certified  BOOLEAN NOT NULL DEFAULT FALSE,
	epoch      BIGINT NOT NULL DEFAULT 0,
	status     JSONB NOT NULL DEFAULT '{}',
	plan       JSONB NOT NULL DEFAULT '{}',
	flags      JSONB NOT NULL DEFAULT '[]'
);

-- Every issued ticket and where it is. seq is the issue order.
CREATE TABLE tickets (
	seq          BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	id           BYTEA NOT NULL UNIQUE CHECK (octet_length(id) = 10),
	carrier      BYTEA NOT NULL CHECK (octet_length(carrier) = 10),
	raw          BYTEA NOT NULL,
	use_date     INTEGER NOT NULL,
	use_time     INTEGER NOT NULL,
	state        TEXT NOT NULL CHECK (state IN ('box', 'delivering', 'card', 'returning', 'checked')),
	epoch        BIGINT NOT NULL DEFAULT 0,
	counter      BIGINT NOT NULL DEFAULT 0,
	check_gate   BYTEA,
	check_time   BIGINT,
	check_source TEXT,
	off_card     BOOLEAN NOT NULL DEFAULT FALSE
);
-- A card's tickets in issue order, however many other cards hold.
CREATE INDEX tickets_carrier ON tickets (carrier, seq);
-- Counts by state and the deny list (checked, by ID).
CREATE INDEX tickets_state ON tickets (state, id);

-- Sync challenges given and not yet used.
CREATE TABLE challenges (
	serial    BYTEA NOT NULL,
	challenge BYTEA NOT NULL,
	expires   TIMESTAMPTZ NOT NULL,
	PRIMARY KEY (serial, challenge)
);
CREATE INDEX challenges_expires ON challenges (expires);

-- Order answers under their idempotency keys.
CREATE TABLE orders (
	idem_key TEXT PRIMARY KEY,
	answer   BYTEA NOT NULL,
	created  TIMESTAMPTZ NOT NULL DEFAULT now()
);

-- Checks reported by gate journals; seq is the order they arrived in.
CREATE TABLE checks (
	seq        BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	ticket_id  BYTEA NOT NULL,
	serial     BYTEA NOT NULL,
	gate       BYTEA NOT NULL,
	check_time BIGINT NOT NULL,
	nonce      BYTEA NOT NULL,
	receipt    BYTEA NOT NULL,
	received   TIMESTAMPTZ NOT NULL,
	UNIQUE (ticket_id, serial, gate, check_time)
);
