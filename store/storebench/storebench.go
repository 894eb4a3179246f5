// Package storebench fills a simtix database with other cards' tickets,
// fast, so that benchmarks can show that one card's sync does not slow down
// as the database grows (docs/benchmarks.md).
//
// Its loaders write rows straight into the tables the stores' migrations
// made (SQLite: one transaction, one prepared statement; PostgreSQL: COPY),
// bypassing the store. It is for benchmarks and tests, never for a server.
package storebench

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"database/sql"
	"encoding/binary"
	"errors"
	"fmt"
	"net/url"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"

	// The SQLite driver the store uses, registered as "sqlite".
	_ "modernc.org/sqlite"

	"github.com/simtix/simtix/box"
	"github.com/simtix/simtix/cardproto"
	"github.com/simtix/simtix/internal/corpus"
	"github.com/simtix/simtix/store/internal/codec"
	"github.com/simtix/simtix/ticketfmt"
)

// TicketsPerCard is how many of the loaded tickets each other card holds.
const TicketsPerCard = 20

// Serial returns the serial of the k-th other card. Its first two bytes,
// B5 EC, keep the other cards apart from a benchmark's own cards.
func Serial(k int) ticketfmt.Serial {
	var s ticketfmt.Serial
	s[0], s[1] = 0xB5, 0xEC
	binary.BigEndian.PutUint64(s[2:], uint64(k))
	return s
}

// ID returns the ID of loaded ticket i: scattered like the issuer's random
// IDs (a bijective mix of i, so never twice the same).
func ID(i int) ticketfmt.ID {
	var id ticketfmt.ID
	binary.BigEndian.PutUint64(id[:8], mix(uint64(i)))
	binary.BigEndian.PutUint16(id[8:], uint16(mix(uint64(i)^0x5bd1e995)))
	return id
}

// mix is SplitMix64's finaliser: a bijection of uint64 that scatters
// consecutive values.
func mix(z uint64) uint64 {
	z += 0x9e3779b97f4a7c15
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9
	z = (z ^ (z >> 27)) * 0x94d049bb133111eb
	return z ^ (z >> 31)
}

// templates are the corpus tickets, signed once with a throwaway key.
var templates = sync.OnceValues(func() ([]ticketfmt.Ticket, error) {
	ts, err := corpus.Tickets()
	if err != nil {
		return nil, fmt.Errorf("storebench: %w", err)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("storebench: %w", err)
	}
	for i := range ts {
		if err := ts[i].Sign(key); err != nil {
			return nil, fmt.Errorf("storebench: sign template %d: %w", i, err)
		}
	}
	return ts, nil
})

// Ticket returns loaded ticket i: corpus ticket i mod 24, bound to other
// card i / TicketsPerCard with ID(i). Its raw form is a well-formed signed
// ticket of the real size, but the signature is the template's (nothing
// verifies it). One ticket in ten is checked at a gate (and off its card),
// four are on the card and five in the box, as on a busy day.
func Ticket(i int) (*box.Ticket, error) {
	ts, err := templates()
	if err != nil {
		return nil, err
	}
	t := ts[i%len(ts)]
	t.ID, t.Carrier = ID(i), Serial(i/TicketsPerCard)
	raw, err := t.Marshal()
	if err != nil {
		return nil, fmt.Errorf("storebench: ticket %d: %w", i, err)
	}
	bt := &box.Ticket{ID: t.ID, Carrier: t.Carrier, Raw: raw, Date: t.Date, Time: t.Time, State: box.InBox}
	switch r := i % 10; {
	case r == 0:
		bt.State, bt.OffCard = box.Checked, true
		bt.Check = &box.Check{Gate: [4]byte{'G', 'A', 'T', '1'}, Time: ticketfmt.DateTime{Date: t.Date, Hour: t.Time.Hour}, Source: "gate"}
	case r <= 4:
		bt.State = box.OnCard
	}
	return bt, nil
}

// row is a ticket's column values, in the order of columns.
type row struct {
	id, carrier, raw []byte
	date, tod        int64
	state            string
	gate             []byte
	checkTime        *int64
	source           *string
	offCard          bool
}

// ticketColumns are the tickets columns the loaders fill; seq is the
// table's, epoch and counter take their default (0: no authorisation).
var ticketColumns = []string{"id", "carrier", "raw", "use_date", "use_time", "state", "check_gate", "check_time", "check_source", "off_card"}

func rowOf(i int) (row, error) {
	t, err := Ticket(i)
	if err != nil {
		return row{}, err
	}
	r := row{id: t.ID[:], carrier: t.Carrier[:], raw: t.Raw, state: string(t.State), offCard: t.OffCard}
	if r.date, err = codec.DateInt(t.Date); err != nil {
		return row{}, fmt.Errorf("storebench: ticket %d: %w", i, err)
	}
	if r.tod, err = codec.TimeInt(t.Time); err != nil {
		return row{}, fmt.Errorf("storebench: ticket %d: %w", i, err)
	}
	if c := t.Check; c != nil {
		at, err := codec.DateTimeInt(c.Time)
		if err != nil {
			return row{}, fmt.Errorf("storebench: ticket %d: %w", i, err)
		}
		r.gate, r.checkTime, r.source = c.Gate[:], &at, &c.Source
	}
	return r, nil
}

// card is another card's row: registered and certified, with a status as
// a card holding TicketsPerCard tickets reports it.
type card struct {
	serial, key         []byte
	status, plan, flags []byte
}

func cardOf(k int) (card, error) {
	c := box.Card{Serial: Serial(k), Certified: true, Epoch: 7,
		Status: cardproto.StatusTemplate{Capacity: 2048, Free: 310, MaxTickets: 32, Stored: 9, Overhead: 8,
			Counter: 21, Serial: Serial(k), Version: 1, Epoch: 7}}
	status, plan, flags, err := codec.EncodeCard(&c)
	if err != nil {
		return card{}, fmt.Errorf("storebench: card %d: %w", k, err)
	}
	key := make([]byte, 65)
	key[0] = 4
	binary.BigEndian.PutUint64(key[1:], mix(uint64(k)))
	return card{serial: c.Serial[:], key: key, status: status, plan: plan, flags: flags}, nil
}

// cards is how many other cards hold n tickets.
func cards(n int) int { return (n + TicketsPerCard - 1) / TicketsPerCard }

// LoadSQLite adds tickets 0 … n-1 (Ticket) and their cards to the SQLite
// database file at path, which has the store's schema (sqlite.Open made
// it). A store may have it open, but must not write meanwhile. The rows go
// in one transaction through prepared statements; the write-ahead log is
// then checkpointed and truncated, and everything is on disk (fsync) when
// LoadSQLite returns, so that no benchmark waits for the load's writes
// later. The database is not ANALYZEd: the server never does it either.
func LoadSQLite(ctx context.Context, path string, n int) (err error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return fmt.Errorf("storebench: %w", err)
	}
	name := (&url.URL{Scheme: "file", Path: abs}).String() +
		"?_pragma=busy_timeout(10000)&_pragma=synchronous(FULL)&_pragma=cache_size(-262144)"
	db, err := sql.Open("sqlite", name)
	if err != nil {
		return fmt.Errorf("storebench: %w", err)
	}
	defer func() { err = errors.Join(err, db.Close()) }()
	db.SetMaxOpenConns(1)
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("storebench: begin: %w", err)
	}
	defer tx.Rollback() // a no-op after Commit
	cs, err := tx.PrepareContext(ctx, `INSERT INTO cards (serial, registered, public_key, certified, epoch, status, plan, flags)
		VALUES (?, 1, ?, 1, 7, ?, ?, ?)`)
	if err != nil {
		return fmt.Errorf("storebench: %w", err)
	}
	defer cs.Close()
	for k := range cards(n) {
		c, err := cardOf(k)
		if err != nil {
			return err
		}
		if _, err := cs.ExecContext(ctx, c.serial, c.key, string(c.status), string(c.plan), string(c.flags)); err != nil {
			return fmt.Errorf("storebench: card %d: %w", k, err)
		}
	}
	ts, err := tx.PrepareContext(ctx, `INSERT INTO tickets (`+strings.Join(ticketColumns, ", ")+`)
		VALUES (?`+strings.Repeat(", ?", len(ticketColumns)-1)+`)`)
	if err != nil {
		return fmt.Errorf("storebench: %w", err)
	}
	defer ts.Close()
	for i := range n {
		r, err := rowOf(i)
		if err != nil {
			return err
		}
		if _, err := ts.ExecContext(ctx, r.id, r.carrier, r.raw, r.date, r.tod, r.state, r.gate, r.checkTime, r.source, r.offCard); err != nil {
			return fmt.Errorf("storebench: ticket %d: %w", i, err)
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("storebench: commit: %w", err)
	}
	if _, err := db.ExecContext(ctx, `PRAGMA wal_checkpoint(TRUNCATE)`); err != nil {
		return fmt.Errorf("storebench: checkpoint: %w", err)
	}
	return nil
}

// LoadPostgres adds tickets 0 … n-1 (Ticket) and their cards to the
// PostgreSQL database at url (a search_path parameter names the schema),
// which has the store's schema (postgres.Open made it), with COPY. It then
// VACUUMs and ANALYZEs both tables, as autovacuum would soon after such a
// load on a live server (and would otherwise do in the middle of a
// benchmark).
func LoadPostgres(ctx context.Context, url string, n int) (err error) {
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		return fmt.Errorf("storebench: %w", err)
	}
	defer func() {
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		defer cancel()
		err = errors.Join(err, conn.Close(cctx))
	}()
	k := 0
	_, err = conn.CopyFrom(ctx, pgx.Identifier{"cards"},
		[]string{"serial", "registered", "public_key", "certified", "epoch", "status", "plan", "flags"},
		pgx.CopyFromFunc(func() ([]any, error) {
			if k == cards(n) {
				return nil, nil
			}
			c, err := cardOf(k)
			k++
			if err != nil {
				return nil, err
			}
			return []any{c.serial, true, c.key, true, int64(7), c.status, c.plan, c.flags}, nil
		}))
	if err != nil {
		return fmt.Errorf("storebench: copy cards: %w", err)
	}
	i := 0
	_, err = conn.CopyFrom(ctx, pgx.Identifier{"tickets"}, ticketColumns, pgx.CopyFromFunc(func() ([]any, error) {
		if i == n {
			return nil, nil
		}
		r, err := rowOf(i)
		i++
		if err != nil {
			return nil, err
		}
		return []any{r.id, r.carrier, r.raw, int32(r.date), int32(r.tod), r.state, r.gate, r.checkTime, r.source, r.offCard}, nil
	}))
	if err != nil {
		return fmt.Errorf("storebench: copy tickets: %w", err)
	}
	if _, err := conn.Exec(ctx, `VACUUM (ANALYZE) cards, tickets`); err != nil {
		return fmt.Errorf("storebench: vacuum: %w", err)
	}
	return nil
}
