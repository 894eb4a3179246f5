package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/simtix/simtix/box"
	"github.com/simtix/simtix/store"
	"github.com/simtix/simtix/store/internal/codec"
	"github.com/simtix/simtix/ticketfmt"
)

// txn is one transaction. An error it returns (ErrExists, ErrConflict,
// ErrNotFound included) leaves the transaction usable.
type txn struct {
	tx *sql.Tx
}

var _ store.Tx = (*txn)(nil)

const cardCols = `serial, registered, msisdn, public_key, certified, epoch, status, plan, flags`

// LockCard creates the card if it is new and returns it. The transaction
// already holds the database's write lock (BEGIN IMMEDIATE), so the card
// stays locked until it ends.
func (t *txn) LockCard(ctx context.Context, serial ticketfmt.Serial) (*store.Card, error) {
	if _, err := t.tx.ExecContext(ctx, `INSERT INTO cards (serial) VALUES (?) ON CONFLICT (serial) DO NOTHING`, serial[:]); err != nil {
		return nil, fmt.Errorf("sqlite: lock card %v: %w", serial, err)
	}
	return t.Card(ctx, serial)
}

// Card returns a card, or ErrNotFound.
func (t *txn) Card(ctx context.Context, serial ticketfmt.Serial) (*store.Card, error) {
	var (
		c                   store.Card
		ser, key            []byte
		msisdn              sql.NullString
		status, plan, flags []byte
	)
	err := t.tx.QueryRowContext(ctx, `SELECT `+cardCols+` FROM cards WHERE serial = ?`, serial[:]).
		Scan(&ser, &c.Registered, &msisdn, &key, &c.Certified, &c.Epoch, &status, &plan, &flags)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("sqlite: card %v: %w", serial, store.ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("sqlite: card %v: %w", serial, err)
	}
	if err := codec.Fixed(c.Serial[:], ser, "serial"); err != nil {
		return nil, fmt.Errorf("sqlite: card %v: %w", serial, err)
	}
	c.MSISDN = msisdn.String
	c.PublicKey = codec.OrNil(key)
	if err := codec.DecodeCard(&c.Card, status, plan, flags); err != nil {
		return nil, fmt.Errorf("sqlite: %w", err)
	}
	return &c, nil
}

// PutCard writes a card's box state, registration and flags, creating it
// if it is new. It leaves the card's MSISDN alone (SetMSISDN sets it).
func (t *txn) PutCard(ctx context.Context, c *store.Card) error {
	status, plan, flags, err := codec.EncodeCard(&c.Card)
	if err != nil {
		return fmt.Errorf("sqlite: %w", err)
	}
	_, err = t.tx.ExecContext(ctx, `INSERT INTO cards (serial, registered, public_key, certified, epoch, status, plan, flags)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?)
		ON CONFLICT (serial) DO UPDATE SET registered = excluded.registered, public_key = excluded.public_key,
			certified = excluded.certified, epoch = excluded.epoch, status = excluded.status,
			plan = excluded.plan, flags = excluded.flags`,
		c.Serial[:], c.Registered, codec.OrNil(c.PublicKey), c.Certified, int64(c.Epoch), string(status), string(plan), string(flags))
	if err != nil {
		return fmt.Errorf("sqlite: put card %v: %w", c.Serial, err)
	}
	return nil
}

// SetMSISDN registers msisdn for the card, replacing the card's previous
// one, creating the card if it is new; an empty msisdn removes the card's
// registration. ErrExists if another card has it.
func (t *txn) SetMSISDN(ctx context.Context, serial ticketfmt.Serial, msisdn string) error {
	if msisdn != "" {
		owner, err := t.SerialOf(ctx, msisdn)
		switch {
		case err == nil && owner == serial:
			return nil
		case err == nil:
			return fmt.Errorf("sqlite: MSISDN %s is card %v's: %w", msisdn, owner, store.ErrExists)
		case !errors.Is(err, store.ErrNotFound):
			return err
		}
	}
	_, err := t.tx.ExecContext(ctx, `INSERT INTO cards (serial, msisdn) VALUES (?, ?)
		ON CONFLICT (serial) DO UPDATE SET msisdn = excluded.msisdn`,
		serial[:], sql.NullString{String: msisdn, Valid: msisdn != ""})
	if isUnique(err) {
		return fmt.Errorf("sqlite: MSISDN %s: %w", msisdn, store.ErrExists)
	}
	if err != nil {
		return fmt.Errorf("sqlite: set MSISDN of card %v: %w", serial, err)
	}
	return nil
}

// SerialOf returns the card an MSISDN is registered for, or ErrNotFound.
func (t *txn) SerialOf(ctx context.Context, msisdn string) (ticketfmt.Serial, error) {
	var (
		s   ticketfmt.Serial
		ser []byte
	)
	err := t.tx.QueryRowContext(ctx, `SELECT serial FROM cards WHERE msisdn = ?`, msisdn).Scan(&ser)
	if errors.Is(err, sql.ErrNoRows) {
		return s, fmt.Errorf("sqlite: MSISDN %s: %w", msisdn, store.ErrNotFound)
	}
	if err == nil {
		err = codec.Fixed(s[:], ser, "serial")
	}
	if err != nil {
		return s, fmt.Errorf("sqlite: MSISDN %s: %w", msisdn, err)
	}
	return s, nil
}

const ticketCols = `seq, id, carrier, raw, use_date, use_time, state, epoch, counter, check_gate, check_time, check_source, off_card, due`

// ticketRow is a ticket's column values.
type ticketRow struct {
	date, tod           int64
	gate                []byte
	checkTime           sql.NullInt64
	source              sql.NullString
	epoch, counter      int64
	state               string
	id, carrier, rawVal []byte
}

// ticketArgs returns the values of a ticket's columns from state on.
func ticketArgs(tk *box.Ticket) (state string, epoch, counter int64, gate []byte, checkTime sql.NullInt64, source sql.NullString, offCard, due bool, err error) {
	if c := tk.Check; c != nil {
		v, err := codec.DateTimeInt(c.Time)
		if err != nil {
			return "", 0, 0, nil, checkTime, source, false, false, fmt.Errorf("ticket %v check: %w", tk.ID, err)
		}
		gate = append([]byte{}, c.Gate[:]...)
		checkTime = sql.NullInt64{Int64: v, Valid: true}
		source = sql.NullString{String: c.Source, Valid: true}
	}
	return string(tk.State), int64(tk.Epoch), int64(tk.Counter), gate, checkTime, source, tk.OffCard, tk.Due, nil
}

// InsertTickets adds tickets and sets their Seq; ErrExists (and nothing
// inserted) if an ID is taken or repeated.
func (t *txn) InsertTickets(ctx context.Context, ts []*box.Ticket) error {
	if len(ts) == 0 {
		return nil
	}
	seen := make(map[ticketfmt.ID]bool, len(ts))
	for _, tk := range ts {
		if seen[tk.ID] {
			return fmt.Errorf("sqlite: ticket %v twice in one insert: %w", tk.ID, store.ErrExists)
		}
		seen[tk.ID] = true
	}
	if _, err := t.tx.ExecContext(ctx, `SAVEPOINT insert_tickets`); err != nil {
		return fmt.Errorf("sqlite: insert tickets: %w", err)
	}
	seqs, err := t.insertTickets(ctx, ts)
	if err != nil {
		if _, rerr := t.tx.ExecContext(context.WithoutCancel(ctx), `ROLLBACK TO insert_tickets; RELEASE insert_tickets`); rerr != nil {
			return fmt.Errorf("sqlite: insert tickets: %w (and undoing it: %v)", err, rerr)
		}
		return err
	}
	if _, err := t.tx.ExecContext(ctx, `RELEASE insert_tickets`); err != nil {
		return fmt.Errorf("sqlite: insert tickets: %w", err)
	}
	for i, tk := range ts {
		tk.Seq = seqs[i]
	}
	return nil
}

func (t *txn) insertTickets(ctx context.Context, ts []*box.Ticket) ([]int64, error) {
	stmt, err := t.tx.PrepareContext(ctx, `INSERT INTO tickets
		(id, carrier, raw, use_date, use_time, state, epoch, counter, check_gate, check_time, check_source, off_card, due)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`)
	if err != nil {
		return nil, fmt.Errorf("sqlite: insert tickets: %w", err)
	}
	defer stmt.Close()
	seqs := make([]int64, len(ts))
	for i, tk := range ts {
		date, err := codec.DateInt(tk.Date)
		if err != nil {
			return nil, fmt.Errorf("sqlite: ticket %v: %w", tk.ID, err)
		}
		tod, err := codec.TimeInt(tk.Time)
		if err != nil {
			return nil, fmt.Errorf("sqlite: ticket %v: %w", tk.ID, err)
		}
		state, epoch, counter, gate, checkTime, source, offCard, due, err := ticketArgs(tk)
		if err != nil {
			return nil, fmt.Errorf("sqlite: %w", err)
		}
		res, err := stmt.ExecContext(ctx, tk.ID[:], tk.Carrier[:], codec.OrEmpty(tk.Raw), date, tod,
			state, epoch, counter, gate, checkTime, source, offCard, due)
		if isUnique(err) {
			return nil, fmt.Errorf("sqlite: ticket %v: %w", tk.ID, store.ErrExists)
		}
		if err != nil {
			return nil, fmt.Errorf("sqlite: insert ticket %v: %w", tk.ID, err)
		}
		if seqs[i], err = res.LastInsertId(); err != nil {
			return nil, fmt.Errorf("sqlite: insert ticket %v: %w", tk.ID, err)
		}
	}
	return seqs, nil
}

func scanTicket(sc interface{ Scan(...any) error }) (*box.Ticket, error) {
	var (
		tk box.Ticket
		r  ticketRow
	)
	err := sc.Scan(&tk.Seq, &r.id, &r.carrier, &r.rawVal, &r.date, &r.tod, &r.state, &r.epoch, &r.counter,
		&r.gate, &r.checkTime, &r.source, &tk.OffCard, &tk.Due)
	if err != nil {
		return nil, err
	}
	if err := codec.Fixed(tk.ID[:], r.id, "ticket ID"); err != nil {
		return nil, err
	}
	if err := codec.Fixed(tk.Carrier[:], r.carrier, "serial"); err != nil {
		return nil, err
	}
	tk.Raw = codec.OrEmpty(r.rawVal)
	tk.Date, tk.Time = codec.IntDate(r.date), codec.IntTime(r.tod)
	tk.State = box.State(r.state)
	tk.Epoch, tk.Counter = uint32(r.epoch), uint32(r.counter)
	if r.checkTime.Valid {
		tk.Check = &box.Check{Time: codec.IntDateTime(r.checkTime.Int64), Source: r.source.String}
		if err := codec.Fixed(tk.Check.Gate[:], r.gate, "gate ID"); err != nil {
			return nil, err
		}
	}
	return &tk, nil
}

// Ticket returns one ticket, or ErrNotFound.
func (t *txn) Ticket(ctx context.Context, id ticketfmt.ID) (*box.Ticket, error) {
	tk, err := scanTicket(t.tx.QueryRowContext(ctx, `SELECT `+ticketCols+` FROM tickets WHERE id = ?`, id[:]))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("sqlite: ticket %v: %w", id, store.ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("sqlite: ticket %v: %w", id, err)
	}
	return tk, nil
}

// TicketsOf returns a carrier's tickets in issue order (by the carrier
// index: how many tickets other cards hold does not matter).
func (t *txn) TicketsOf(ctx context.Context, serial ticketfmt.Serial) ([]*box.Ticket, error) {
	rows, err := t.tx.QueryContext(ctx, `SELECT `+ticketCols+` FROM tickets WHERE carrier = ? ORDER BY seq`, serial[:])
	if err != nil {
		return nil, fmt.Errorf("sqlite: tickets of %v: %w", serial, err)
	}
	defer rows.Close()
	ts, err := codec.Collect(rows, func(r codec.Rows) (*box.Ticket, error) { return scanTicket(r) })
	if err != nil {
		return nil, fmt.Errorf("sqlite: tickets of %v: %w", serial, err)
	}
	return ts, nil
}

// MoveTicket writes t's state, authorisation, check, OffCard and Due if the
// stored ticket is in state from: ErrConflict if it is in another,
// ErrNotFound if there is no such ticket.
func (t *txn) MoveTicket(ctx context.Context, tk *box.Ticket, from box.State) error {
	state, epoch, counter, gate, checkTime, source, offCard, due, err := ticketArgs(tk)
	if err != nil {
		return fmt.Errorf("sqlite: %w", err)
	}
	res, err := t.tx.ExecContext(ctx, `UPDATE tickets SET state = ?, epoch = ?, counter = ?,
		check_gate = ?, check_time = ?, check_source = ?, off_card = ?, due = ?
		WHERE id = ? AND state = ?`,
		state, epoch, counter, gate, checkTime, source, offCard, due, tk.ID[:], string(from))
	if err != nil {
		return fmt.Errorf("sqlite: move ticket %v: %w", tk.ID, err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return fmt.Errorf("sqlite: move ticket %v: %w", tk.ID, err)
	}
	if n == 1 {
		return nil
	}
	var cur string
	err = t.tx.QueryRowContext(ctx, `SELECT state FROM tickets WHERE id = ?`, tk.ID[:]).Scan(&cur)
	if errors.Is(err, sql.ErrNoRows) {
		return fmt.Errorf("sqlite: move ticket %v: %w", tk.ID, store.ErrNotFound)
	}
	if err != nil {
		return fmt.Errorf("sqlite: move ticket %v: %w", tk.ID, err)
	}
	return fmt.Errorf("sqlite: move ticket %v from %s: it is %s: %w", tk.ID, from, cur, store.ErrConflict)
}

// CountTickets returns how many tickets the store holds in each of the
// five states (zero included).
func (t *txn) CountTickets(ctx context.Context) (map[box.State]int, error) {
	counts := map[box.State]int{box.InBox: 0, box.Delivering: 0, box.OnCard: 0, box.Returning: 0, box.Checked: 0}
	rows, err := t.tx.QueryContext(ctx, `SELECT state, COUNT(*) FROM tickets GROUP BY state`)
	if err != nil {
		return nil, fmt.Errorf("sqlite: count tickets: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var (
			s string
			n int
		)
		if err := rows.Scan(&s, &n); err != nil {
			return nil, fmt.Errorf("sqlite: count tickets: %w", err)
		}
		counts[box.State(s)] = n
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("sqlite: count tickets: %w", err)
	}
	return counts, nil
}

// PutChallenge keeps a challenge for a card until expires (the same
// challenge again only moves its expiry).
func (t *txn) PutChallenge(ctx context.Context, serial ticketfmt.Serial, challenge []byte, expires time.Time) error {
	_, err := t.tx.ExecContext(ctx, `INSERT INTO challenges (serial, challenge, expires) VALUES (?, ?, ?)
		ON CONFLICT (serial, challenge) DO UPDATE SET expires = excluded.expires`,
		serial[:], codec.OrEmpty(challenge), expires.UnixMicro())
	if err != nil {
		return fmt.Errorf("sqlite: put challenge for %v: %w", serial, err)
	}
	return nil
}

// TakeChallenge uses a challenge once; ErrNotFound unless it was given for
// this serial, not used and not expired at now. It also deletes every
// challenge expired at now.
func (t *txn) TakeChallenge(ctx context.Context, serial ticketfmt.Serial, challenge []byte, now time.Time) error {
	var expires int64
	err := t.tx.QueryRowContext(ctx, `DELETE FROM challenges WHERE serial = ? AND challenge = ? RETURNING expires`,
		serial[:], codec.OrEmpty(challenge)).Scan(&expires)
	if errors.Is(err, sql.ErrNoRows) {
		return fmt.Errorf("sqlite: challenge for %v: %w", serial, store.ErrNotFound)
	}
	if err != nil {
		return fmt.Errorf("sqlite: take challenge for %v: %w", serial, err)
	}
	if _, err := t.tx.ExecContext(ctx, `DELETE FROM challenges WHERE expires <= ?`, now.UnixMicro()); err != nil {
		return fmt.Errorf("sqlite: expire challenges: %w", err)
	}
	if !now.Before(time.UnixMicro(expires)) {
		return fmt.Errorf("sqlite: challenge for %v expired: %w", serial, store.ErrNotFound)
	}
	return nil
}

// PutOrder records an order's answer under its idempotency key; ErrExists
// if the key is taken.
func (t *txn) PutOrder(ctx context.Context, key string, answer []byte) error {
	res, err := t.tx.ExecContext(ctx, `INSERT INTO orders (idem_key, answer, created) VALUES (?, ?, ?)
		ON CONFLICT (idem_key) DO NOTHING`, key, codec.OrEmpty(answer), time.Now().UnixMicro())
	if err != nil {
		return fmt.Errorf("sqlite: put order %q: %w", key, err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return fmt.Errorf("sqlite: put order %q: %w", key, err)
	}
	if n == 0 {
		return fmt.Errorf("sqlite: order %q: %w", key, store.ErrExists)
	}
	return nil
}

// Order returns the answer recorded under key, or ErrNotFound.
func (t *txn) Order(ctx context.Context, key string) ([]byte, error) {
	var answer []byte
	err := t.tx.QueryRowContext(ctx, `SELECT answer FROM orders WHERE idem_key = ?`, key).Scan(&answer)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("sqlite: order %q: %w", key, store.ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("sqlite: order %q: %w", key, err)
	}
	return codec.OrEmpty(answer), nil
}

// AddCheck records a gate's check (Received now if zero); added is false if
// the same check was recorded before.
func (t *txn) AddCheck(ctx context.Context, c store.Check) (bool, error) {
	at, err := codec.DateTimeInt(c.Time)
	if err != nil {
		return false, fmt.Errorf("sqlite: check of %v: %w", c.TicketID, err)
	}
	received := c.Received
	if received.IsZero() {
		received = time.Now()
	}
	res, err := t.tx.ExecContext(ctx, `INSERT INTO checks (ticket_id, serial, gate, check_time, nonce, receipt, received)
		VALUES (?, ?, ?, ?, ?, ?, ?)
		ON CONFLICT (ticket_id, serial, gate, check_time) DO NOTHING`,
		c.TicketID[:], c.Serial[:], c.Gate[:], at, codec.OrEmpty(c.Nonce), codec.OrEmpty(c.Receipt), received.UnixMicro())
	if err != nil {
		return false, fmt.Errorf("sqlite: add check of %v: %w", c.TicketID, err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return false, fmt.Errorf("sqlite: add check of %v: %w", c.TicketID, err)
	}
	return n == 1, nil
}

// ChecksOf returns a ticket's recorded checks by check time, then in the
// order they arrived.
func (t *txn) ChecksOf(ctx context.Context, id ticketfmt.ID) ([]store.Check, error) {
	rows, err := t.tx.QueryContext(ctx, `SELECT `+codec.CheckColumns+`
		FROM checks WHERE ticket_id = ? ORDER BY check_time, seq`, id[:])
	if err != nil {
		return nil, fmt.Errorf("sqlite: checks of %v: %w", id, err)
	}
	defer rows.Close()
	cs, err := codec.Collect(rows, func(r codec.Rows) (store.Check, error) {
		var (
			tid, ser, gate, nonce, receipt []byte
			at, received                   int64
		)
		if err := r.Scan(&tid, &ser, &gate, &at, &nonce, &receipt, &received); err != nil {
			return store.Check{}, err
		}
		c, err := codec.CheckRow(tid, ser, gate, at, nonce, receipt)
		c.Received = time.UnixMicro(received)
		return c, err
	})
	if err != nil {
		return nil, fmt.Errorf("sqlite: checks of %v: %w", id, err)
	}
	return cs, nil
}

// DenyList returns the IDs of every checked ticket, in ascending order.
func (t *txn) DenyList(ctx context.Context) ([]ticketfmt.ID, error) {
	rows, err := t.tx.QueryContext(ctx, `SELECT id FROM tickets WHERE state = 'checked' ORDER BY id`)
	if err != nil {
		return nil, fmt.Errorf("sqlite: deny list: %w", err)
	}
	defer rows.Close()
	ids, err := codec.Collect(rows, codec.ScanID)
	if err != nil {
		return nil, fmt.Errorf("sqlite: deny list: %w", err)
	}
	return ids, nil
}

// NotifyDue does nothing: a SQLite database serves one server process,
// which wakes its own watching handsets (the store is no store.Notifier).
func (t *txn) NotifyDue(context.Context, ticketfmt.Serial) error { return nil }
