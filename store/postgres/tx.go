package postgres

import (
	"context"
	"errors"
	"fmt"
	"github.com/simtix/simtix/store/internal/codec"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/simtix/simtix/box"
	"github.com/simtix/simtix/store"
	"github.com/simtix/simtix/ticketfmt"
)

// txn is one transaction. An ErrExists, ErrConflict or ErrNotFound it
// returns leaves the transaction usable: those cases are found without a
// failing statement (which would abort a PostgreSQL transaction).
type txn struct {
	tx      pgx.Tx
	channel string // Store.channel
}

var _ store.Tx = (*txn)(nil)

const cardCols = `serial, registered, msisdn, public_key, certified, epoch, status, plan, flags`

// LockCard creates the card if it is new, then takes its row lock
// (SELECT … FOR UPDATE) until the transaction ends.
func (t *txn) LockCard(ctx context.Context, serial ticketfmt.Serial) (*store.Card, error) {
	if _, err := t.tx.Exec(ctx, `INSERT INTO cards (serial) VALUES ($1) ON CONFLICT (serial) DO NOTHING`, serial[:]); err != nil {
		return nil, fmt.Errorf("postgres: lock card %v: %w", serial, err)
	}
	return t.card(ctx, serial, ` FOR UPDATE`)
}

// Card returns a card, or ErrNotFound.
func (t *txn) Card(ctx context.Context, serial ticketfmt.Serial) (*store.Card, error) {
	return t.card(ctx, serial, ``)
}

func (t *txn) card(ctx context.Context, serial ticketfmt.Serial, lock string) (*store.Card, error) {
	var (
		c                   store.Card
		ser, key            []byte
		msisdn              *string
		epoch               int64
		status, plan, flags []byte
	)
	err := t.tx.QueryRow(ctx, `SELECT `+cardCols+` FROM cards WHERE serial = $1`+lock, serial[:]).
		Scan(&ser, &c.Registered, &msisdn, &key, &c.Certified, &epoch, &status, &plan, &flags)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, fmt.Errorf("postgres: card %v: %w", serial, store.ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("postgres: card %v: %w", serial, err)
	}
	if err := codec.Fixed(c.Serial[:], ser, "serial"); err != nil {
		return nil, fmt.Errorf("postgres: card %v: %w", serial, err)
	}
	c.Epoch = uint32(epoch)
	if msisdn != nil {
		c.MSISDN = *msisdn
	}
	c.PublicKey = codec.OrNil(key)
	if err := codec.DecodeCard(&c.Card, status, plan, flags); err != nil {
		return nil, fmt.Errorf("postgres: %w", err)
	}
	return &c, nil
}

// PutCard writes a card's box state, registration and flags, creating it
// if it is new. It leaves the card's MSISDN alone (SetMSISDN sets it).
func (t *txn) PutCard(ctx context.Context, c *store.Card) error {
	status, plan, flags, err := codec.EncodeCard(&c.Card)
	if err != nil {
		return fmt.Errorf("postgres: %w", err)
	}
	_, err = t.tx.Exec(ctx, `INSERT INTO cards (serial, registered, public_key, certified, epoch, status, plan, flags)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
		ON CONFLICT (serial) DO UPDATE SET registered = excluded.registered, public_key = excluded.public_key,
			certified = excluded.certified, epoch = excluded.epoch, status = excluded.status,
			plan = excluded.plan, flags = excluded.flags`,
		c.Serial[:], c.Registered, codec.OrNil(c.PublicKey), c.Certified, int64(c.Epoch), status, plan, flags)
	if err != nil {
		return fmt.Errorf("postgres: put card %v: %w", c.Serial, err)
	}
	return nil
}

// SetMSISDN registers msisdn for the card, replacing the card's previous
// one, creating the card if it is new; an empty msisdn removes the card's
// registration. ErrExists if another card has it.
func (t *txn) SetMSISDN(ctx context.Context, serial ticketfmt.Serial, msisdn string) error {
	var value *string
	if msisdn != "" {
		value = &msisdn
		owner, err := t.SerialOf(ctx, msisdn)
		switch {
		case err == nil && owner == serial:
			return nil
		case err == nil:
			return fmt.Errorf("postgres: MSISDN %s is card %v's: %w", msisdn, owner, store.ErrExists)
		case !errors.Is(err, store.ErrNotFound):
			return err
		}
	}
	// A concurrent transaction may take the number after the check above:
	// the unique violation then is ErrExists, and the savepoint keeps this
	// transaction usable.
	sp, err := t.tx.Begin(ctx)
	if err != nil {
		return fmt.Errorf("postgres: set MSISDN of card %v: %w", serial, err)
	}
	_, err = sp.Exec(ctx, `INSERT INTO cards (serial, msisdn) VALUES ($1, $2)
		ON CONFLICT (serial) DO UPDATE SET msisdn = excluded.msisdn`, serial[:], value)
	if err != nil {
		if rerr := sp.Rollback(ctx); rerr != nil {
			return fmt.Errorf("postgres: set MSISDN of card %v: %w (and rolling back: %v)", serial, err, rerr)
		}
		if pgCode(err) == codeUniqueViolation {
			return fmt.Errorf("postgres: MSISDN %s: %w", msisdn, store.ErrExists)
		}
		return fmt.Errorf("postgres: set MSISDN of card %v: %w", serial, err)
	}
	if err := sp.Commit(ctx); err != nil {
		return fmt.Errorf("postgres: set MSISDN of card %v: %w", serial, err)
	}
	return nil
}

// SerialOf returns the card an MSISDN is registered for, or ErrNotFound.
func (t *txn) SerialOf(ctx context.Context, msisdn string) (ticketfmt.Serial, error) {
	var (
		s   ticketfmt.Serial
		ser []byte
	)
	err := t.tx.QueryRow(ctx, `SELECT serial FROM cards WHERE msisdn = $1`, msisdn).Scan(&ser)
	if errors.Is(err, pgx.ErrNoRows) {
		return s, fmt.Errorf("postgres: MSISDN %s: %w", msisdn, store.ErrNotFound)
	}
	if err == nil {
		err = codec.Fixed(s[:], ser, "serial")
	}
	if err != nil {
		return s, fmt.Errorf("postgres: MSISDN %s: %w", msisdn, err)
	}
	return s, nil
}

const ticketCols = `seq, id, carrier, raw, use_date, use_time, state, epoch, counter, check_gate, check_time, check_source, off_card, due`

// checkArgs returns the values of a ticket's check columns (all NULL
// without a check).
func checkArgs(tk *box.Ticket) (gate []byte, at *int64, source *string, err error) {
	c := tk.Check
	if c == nil {
		return nil, nil, nil, nil
	}
	v, err := codec.DateTimeInt(c.Time)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("ticket %v check: %w", tk.ID, err)
	}
	src := c.Source
	return append([]byte{}, c.Gate[:]...), &v, &src, nil
}

// insertTickets inserts a batch in order, in one statement; a row whose ID
// is taken is skipped, not an error (so the transaction is not aborted).
const insertTickets = `INSERT INTO tickets
	(id, carrier, raw, use_date, use_time, state, epoch, counter, check_gate, check_time, check_source, off_card, due)
SELECT u.id, u.carrier, u.raw, u.use_date, u.use_time, u.state, u.epoch, u.counter,
	u.check_gate, u.check_time, u.check_source, u.off_card, u.due
FROM unnest($1::bytea[], $2::bytea[], $3::bytea[], $4::int4[], $5::int4[], $6::text[], $7::int8[], $8::int8[],
	$9::bytea[], $10::int8[], $11::text[], $12::bool[], $13::bool[])
	WITH ORDINALITY AS u(id, carrier, raw, use_date, use_time, state, epoch, counter,
		check_gate, check_time, check_source, off_card, due, ord)
ORDER BY u.ord
ON CONFLICT (id) DO NOTHING
RETURNING id, seq`

// InsertTickets adds tickets in one statement and sets their Seq;
// ErrExists (and nothing inserted) if an ID is taken or repeated.
func (t *txn) InsertTickets(ctx context.Context, ts []*box.Ticket) error {
	if len(ts) == 0 {
		return nil
	}
	n := len(ts)
	var (
		ids, carriers, raws, gates = make([][]byte, n), make([][]byte, n), make([][]byte, n), make([][]byte, n)
		dates, times               = make([]int32, n), make([]int32, n)
		states, sources            = make([]string, n), make([]*string, n)
		epochs, counters           = make([]int64, n), make([]int64, n)
		checkTimes                 = make([]*int64, n)
		offCards, dues             = make([]bool, n), make([]bool, n)
	)
	pos := make(map[ticketfmt.ID]int, n)
	for i, tk := range ts {
		if _, dup := pos[tk.ID]; dup {
			return fmt.Errorf("postgres: ticket %v twice in one insert: %w", tk.ID, store.ErrExists)
		}
		pos[tk.ID] = i
		date, err := codec.DateInt(tk.Date)
		if err != nil {
			return fmt.Errorf("postgres: ticket %v: %w", tk.ID, err)
		}
		tod, err := codec.TimeInt(tk.Time)
		if err != nil {
			return fmt.Errorf("postgres: ticket %v: %w", tk.ID, err)
		}
		if gates[i], checkTimes[i], sources[i], err = checkArgs(tk); err != nil {
			return fmt.Errorf("postgres: %w", err)
		}
		ids[i], carriers[i], raws[i] = tk.ID[:], tk.Carrier[:], codec.OrEmpty(tk.Raw)
		dates[i], times[i] = int32(date), int32(tod)
		states[i], epochs[i], counters[i], offCards[i], dues[i] = string(tk.State), int64(tk.Epoch), int64(tk.Counter), tk.OffCard, tk.Due
	}
	rows, err := t.tx.Query(ctx, insertTickets, ids, carriers, raws, dates, times, states, epochs, counters,
		gates, checkTimes, sources, offCards, dues)
	if err != nil {
		return fmt.Errorf("postgres: insert tickets: %w", err)
	}
	seqs := make([]int64, n)
	inserted := make([]int64, 0, n)
	for rows.Next() {
		var (
			id  []byte
			seq int64
		)
		if err := rows.Scan(&id, &seq); err != nil {
			rows.Close()
			return fmt.Errorf("postgres: insert tickets: %w", err)
		}
		var tid ticketfmt.ID
		copy(tid[:], id)
		seqs[pos[tid]] = seq
		inserted = append(inserted, seq)
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("postgres: insert tickets: %w", err)
	}
	if len(inserted) < n {
		// Some IDs were taken: take the others back out.
		if _, err := t.tx.Exec(ctx, `DELETE FROM tickets WHERE seq = ANY($1)`, inserted); err != nil {
			return fmt.Errorf("postgres: insert tickets: undo: %w", err)
		}
		for i, tk := range ts {
			if seqs[i] == 0 {
				return fmt.Errorf("postgres: ticket %v: %w", tk.ID, store.ErrExists)
			}
		}
	}
	for i, tk := range ts {
		tk.Seq = seqs[i]
	}
	return nil
}

func scanTicket(sc interface{ Scan(...any) error }) (*box.Ticket, error) {
	var (
		tk                     box.Ticket
		id, carrier, raw, gate []byte
		date, tod              int32
		state                  string
		epoch, counter         int64
		checkTime              *int64
		source                 *string
	)
	err := sc.Scan(&tk.Seq, &id, &carrier, &raw, &date, &tod, &state, &epoch, &counter,
		&gate, &checkTime, &source, &tk.OffCard, &tk.Due)
	if err != nil {
		return nil, err
	}
	if err := codec.Fixed(tk.ID[:], id, "ticket ID"); err != nil {
		return nil, err
	}
	if err := codec.Fixed(tk.Carrier[:], carrier, "serial"); err != nil {
		return nil, err
	}
	tk.Raw = codec.OrEmpty(raw)
	tk.Date, tk.Time = codec.IntDate(int64(date)), codec.IntTime(int64(tod))
	tk.State = box.State(state)
	tk.Epoch, tk.Counter = uint32(epoch), uint32(counter)
	if checkTime != nil {
		tk.Check = &box.Check{Time: codec.IntDateTime(*checkTime)}
		if source != nil {
			tk.Check.Source = *source
		}
		if err := codec.Fixed(tk.Check.Gate[:], gate, "gate ID"); err != nil {
			return nil, err
		}
	}
	return &tk, nil
}

// Ticket returns one ticket, or ErrNotFound.
func (t *txn) Ticket(ctx context.Context, id ticketfmt.ID) (*box.Ticket, error) {
	tk, err := scanTicket(t.tx.QueryRow(ctx, `SELECT `+ticketCols+` FROM tickets WHERE id = $1`, id[:]))
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, fmt.Errorf("postgres: ticket %v: %w", id, store.ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("postgres: ticket %v: %w", id, err)
	}
	return tk, nil
}

// TicketsOf returns a carrier's tickets in issue order (by the carrier
// index: how many tickets other cards hold does not matter).
func (t *txn) TicketsOf(ctx context.Context, serial ticketfmt.Serial) ([]*box.Ticket, error) {
	rows, err := t.tx.Query(ctx, `SELECT `+ticketCols+` FROM tickets WHERE carrier = $1 ORDER BY seq`, serial[:])
	if err != nil {
		return nil, fmt.Errorf("postgres: tickets of %v: %w", serial, err)
	}
	defer rows.Close()
	ts, err := codec.Collect(rows, func(r codec.Rows) (*box.Ticket, error) { return scanTicket(r) })
	if err != nil {
		return nil, fmt.Errorf("postgres: tickets of %v: %w", serial, err)
	}
	return ts, nil
}

// MoveTicket writes t's state, authorisation, check, OffCard and Due if the
// stored ticket is in state from (as last committed: a concurrent move
// waits for the other to end, then finds the new state): ErrConflict if
// it is in another, ErrNotFound if there is no such ticket.
func (t *txn) MoveTicket(ctx context.Context, tk *box.Ticket, from box.State) error {
	gate, at, source, err := checkArgs(tk)
	if err != nil {
		return fmt.Errorf("postgres: %w", err)
	}
	tag, err := t.tx.Exec(ctx, `UPDATE tickets SET state = $1, epoch = $2, counter = $3,
		check_gate = $4, check_time = $5, check_source = $6, off_card = $7, due = $8
		WHERE id = $9 AND state = $10`,
		string(tk.State), int64(tk.Epoch), int64(tk.Counter), gate, at, source, tk.OffCard, tk.Due, tk.ID[:], string(from))
	if err != nil {
		return fmt.Errorf("postgres: move ticket %v: %w", tk.ID, err)
	}
	if tag.RowsAffected() == 1 {
		return nil
	}
	var cur string
	err = t.tx.QueryRow(ctx, `SELECT state FROM tickets WHERE id = $1`, tk.ID[:]).Scan(&cur)
	if errors.Is(err, pgx.ErrNoRows) {
		return fmt.Errorf("postgres: move ticket %v: %w", tk.ID, store.ErrNotFound)
	}
	if err != nil {
		return fmt.Errorf("postgres: move ticket %v: %w", tk.ID, err)
	}
	return fmt.Errorf("postgres: move ticket %v from %s: it is %s: %w", tk.ID, from, cur, store.ErrConflict)
}

// CountTickets returns how many tickets the store holds in each of the
// five states (zero included).
func (t *txn) CountTickets(ctx context.Context) (map[box.State]int, error) {
	counts := map[box.State]int{box.InBox: 0, box.Delivering: 0, box.OnCard: 0, box.Returning: 0, box.Checked: 0}
	rows, err := t.tx.Query(ctx, `SELECT state, COUNT(*) FROM tickets GROUP BY state`)
	if err != nil {
		return nil, fmt.Errorf("postgres: count tickets: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var (
			s string
			n int64
		)
		if err := rows.Scan(&s, &n); err != nil {
			return nil, fmt.Errorf("postgres: count tickets: %w", err)
		}
		counts[box.State(s)] = int(n)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("postgres: count tickets: %w", err)
	}
	return counts, nil
}

// PutChallenge keeps a challenge for a card until expires (the same
// challenge again only moves its expiry).
func (t *txn) PutChallenge(ctx context.Context, serial ticketfmt.Serial, challenge []byte, expires time.Time) error {
	_, err := t.tx.Exec(ctx, `INSERT INTO challenges (serial, challenge, expires) VALUES ($1, $2, $3)
		ON CONFLICT (serial, challenge) DO UPDATE SET expires = excluded.expires`,
		serial[:], codec.OrEmpty(challenge), expires)
	if err != nil {
		return fmt.Errorf("postgres: put challenge for %v: %w", serial, err)
	}
	return nil
}

// TakeChallenge uses a challenge once; ErrNotFound unless it was given for
// this serial, not used and not expired at now. It also deletes every
// challenge expired at now.
func (t *txn) TakeChallenge(ctx context.Context, serial ticketfmt.Serial, challenge []byte, now time.Time) error {
	var expires time.Time
	err := t.tx.QueryRow(ctx, `DELETE FROM challenges WHERE serial = $1 AND challenge = $2 RETURNING expires`,
		serial[:], codec.OrEmpty(challenge)).Scan(&expires)
	if errors.Is(err, pgx.ErrNoRows) {
		return fmt.Errorf("postgres: challenge for %v: %w", serial, store.ErrNotFound)
	}
	if err != nil {
		return fmt.Errorf("postgres: take challenge for %v: %w", serial, err)
	}
	if _, err := t.tx.Exec(ctx, `DELETE FROM challenges WHERE expires <= $1`, now); err != nil {
		return fmt.Errorf("postgres: expire challenges: %w", err)
	}
	if !now.Before(expires) {
		return fmt.Errorf("postgres: challenge for %v expired: %w", serial, store.ErrNotFound)
	}
	return nil
}

// PutOrder records an order's answer under its idempotency key; ErrExists
// if the key is taken (by a committed transaction, or by a concurrent one
// that then commits: this one waits to know).
func (t *txn) PutOrder(ctx context.Context, key string, answer []byte) error {
	tag, err := t.tx.Exec(ctx, `INSERT INTO orders (idem_key, answer) VALUES ($1, $2) ON CONFLICT (idem_key) DO NOTHING`,
		key, codec.OrEmpty(answer))
	if err != nil {
		return fmt.Errorf("postgres: put order %q: %w", key, err)
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("postgres: order %q: %w", key, store.ErrExists)
	}
	return nil
}

// Order returns the answer recorded under key, or ErrNotFound.
func (t *txn) Order(ctx context.Context, key string) ([]byte, error) {
	var answer []byte
	err := t.tx.QueryRow(ctx, `SELECT answer FROM orders WHERE idem_key = $1`, key).Scan(&answer)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, fmt.Errorf("postgres: order %q: %w", key, store.ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("postgres: order %q: %w", key, err)
	}
	return codec.OrEmpty(answer), nil
}

// AddCheck records a gate's check (Received now if zero); added is false if
// the same check was recorded before.
func (t *txn) AddCheck(ctx context.Context, c store.Check) (bool, error) {
	at, err := codec.DateTimeInt(c.Time)
	if err != nil {
		return false, fmt.Errorf("postgres: check of %v: %w", c.TicketID, err)
	}
	received := c.Received
	if received.IsZero() {
		received = time.Now()
	}
	tag, err := t.tx.Exec(ctx, `INSERT INTO checks (ticket_id, serial, gate, check_time, nonce, receipt, received)
		VALUES ($1, $2, $3, $4, $5, $6, $7)
		ON CONFLICT (ticket_id, serial, gate, check_time) DO NOTHING`,
		c.TicketID[:], c.Serial[:], c.Gate[:], at, codec.OrEmpty(c.Nonce), codec.OrEmpty(c.Receipt), received)
	if err != nil {
		return false, fmt.Errorf("postgres: add check of %v: %w", c.TicketID, err)
	}
	return tag.RowsAffected() == 1, nil
}

// ChecksOf returns a ticket's recorded checks by check time, then in the
// order they arrived.
func (t *txn) ChecksOf(ctx context.Context, id ticketfmt.ID) ([]store.Check, error) {
	rows, err := t.tx.Query(ctx, `SELECT `+codec.CheckColumns+`
		FROM checks WHERE ticket_id = $1 ORDER BY check_time, seq`, id[:])
	if err != nil {
		return nil, fmt.Errorf("postgres: checks of %v: %w", id, err)
	}
	defer rows.Close()
	cs, err := codec.Collect(rows, func(r codec.Rows) (store.Check, error) {
		var (
			tid, ser, gate, nonce, receipt []byte
			at                             int64
			received                       time.Time
		)
		if err := r.Scan(&tid, &ser, &gate, &at, &nonce, &receipt, &received); err != nil {
			return store.Check{}, err
		}
		c, err := codec.CheckRow(tid, ser, gate, at, nonce, receipt)
		c.Received = received
		return c, err
	})
	if err != nil {
		return nil, fmt.Errorf("postgres: checks of %v: %w", id, err)
	}
	return cs, nil
}

// DenyList returns the IDs of every checked ticket, in ascending order.
func (t *txn) DenyList(ctx context.Context) ([]ticketfmt.ID, error) {
	rows, err := t.tx.Query(ctx, `SELECT id FROM tickets WHERE state = 'checked' ORDER BY id`)
	if err != nil {
		return nil, fmt.Errorf("postgres: deny list: %w", err)
	}
	defer rows.Close()
	ids, err := codec.Collect(rows, codec.ScanID)
	if err != nil {
		return nil, fmt.Errorf("postgres: deny list: %w", err)
	}
	return ids, nil
}
