-- 0001: cards, tickets, sync challenges, orders and gate checks.
-- Serials and ticket IDs are 10-byte BLOBs; dates are integers YYYYMMDD,
-- times of day HHMM, check times YYYYMMDDhhmmss (local, as on the ticket);
-- instants are Unix microseconds.

-- The box's view of each card. status, plan and flags are JSON.
CREATE TABLE cards (
	serial     BLOB PRIMARY KEY CHECK (length(serial) = 10),
	registered INTEGER NOT NULL DEFAULT 0,
	msisdn     TEXT UNIQUE,
	public_key BLOB,
	certified  INTEGER NOT NULL DEFAULT 0,
	epoch      INTEGER NOT NULL DEFAULT 0,
	status     TEXT NOT NULL DEFAULT '{}',
	plan       TEXT NOT NULL DEFAULT '{}',
	flags      TEXT NOT NULL DEFAULT '[]'
) STRICT;

-- Every issued ticket and where it is. seq is the issue order.
CREATE TABLE tickets (
	seq          INTEGER PRIMARY KEY AUTOINCREMENT,
	id           BLOB NOT NULL UNIQUE CHECK (length(id) = 10),
	carrier      BLOB NOT NULL CHECK (length(carrier) = 10),
	raw          BLOB NOT NULL,
	use_date     INTEGER NOT NULL,
	use_time     INTEGER NOT NULL,
	state        TEXT NOT NULL CHECK (state IN ('box', 'delivering', 'card', 'returning', 'checked')),
	epoch        INTEGER NOT NULL DEFAULT 0,
	counter      INTEGER NOT NULL DEFAULT 0,
	check_gate   BLOB,
	check_time   INTEGER,
	check_source TEXT,
	off_card     INTEGER NOT NULL DEFAULT 0
) STRICT;
-- A card's tickets in issue order, however many other cards hold.
CREATE INDEX tickets_carrier ON tickets (carrier, seq);
-- Counts by state and the deny list (checked, by ID), from the index alone.
CREATE INDEX tickets_state ON tickets (state, id);

-- Sync challenges given and not yet used.
CREATE TABLE challenges (
	serial    BLOB NOT NULL,
	challenge BLOB NOT NULL,
	expires   INTEGER NOT NULL,
	PRIMARY KEY (serial, challenge)
) STRICT, WITHOUT ROWID;
CREATE INDEX challenges_expires ON challenges (expires);

-- Order answers under their idempotency keys.
CREATE TABLE orders (
	idem_key TEXT PRIMARY KEY,
	answer   BLOB NOT NULL,
	created  INTEGER NOT NULL
) STRICT;

-- Checks reported by gate journals; seq is the order they arrived in.
CREATE TABLE checks (
	seq        INTEGER PRIMARY KEY AUTOINCREMENT,
	ticket_id  BLOB NOT NULL,
	serial     BLOB NOT NULL,
	gate       BLOB NOT NULL,
	check_time INTEGER NOT NULL,
	nonce      BLOB NOT NULL,
	receipt    BLOB NOT NULL,
	received   INTEGER NOT NULL,
	UNIQUE (ticket_id, serial, gate, check_time)
) STRICT;
