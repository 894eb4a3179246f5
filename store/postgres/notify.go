package postgres

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/simtix/simtix/store"
	"github.com/simtix/simtix/ticketfmt"
)

const (
	// duePrefix starts the name of the NOTIFY channel of NotifyDue; the
	// store's schema follows it.
	duePrefix = "simtix_due."
	// maxChannel is PostgreSQL's longest identifier, hence channel name
	// (NAMEDATALEN - 1 bytes).
	maxChannel = 63
	// listenPing is how long Listen waits for a notification before it
	// pings the server (Store.ping), so that a connection that died
	// without a word (a network cut) is noticed.
	listenPing = 30 * time.Second
)

// dueChannel names the store's NOTIFY channel after its schema (the first
// of the search path that exists, where the tables are), hashed if the
// name would be too long.
func (s *Store) dueChannel(ctx context.Context) (string, error) {
	var schema string
	if err := s.pool.QueryRow(ctx, `SELECT current_schema()`).Scan(&schema); err != nil {
		return "", fmt.Errorf("postgres: current schema: %w", err)
	}
	if len(duePrefix)+len(schema) > maxChannel {
		sum := sha256.Sum256([]byte(schema))
		schema = hex.EncodeToString(sum[:16])
	}
	return duePrefix + schema, nil
}

// NotifyDue sends a notification with the serial (pg_notify), which
// PostgreSQL delivers to the listeners when the transaction commits.
func (t *txn) NotifyDue(ctx context.Context, serial ticketfmt.Serial) error {
	if _, err := t.tx.Exec(ctx, `SELECT pg_notify($1, $2)`, t.channel, serial.String()); err != nil {
		return fmt.Errorf("postgres: notify due %v: %w", serial, err)
	}
	return nil
}

// Listen opens a connection of its own (not one of the pool's, which it
// would hold for ever), LISTENs on the store's channel and relays each
// notification's serial to due, until ctx is done, the connection fails
// or the store is closed (store.ErrClosed). A notification whose payload is
// not a serial (not NotifyDue's) is ignored.
func (s *Store) Listen(ctx context.Context, listening func(), due func(serial ticketfmt.Serial)) error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return fmt.Errorf("postgres: listen: %w", store.ErrClosed)
	}
	s.listeners.Add(1)
	s.mu.Unlock()
	defer s.listeners.Done()

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	defer context.AfterFunc(s.closing, cancel)()
	err := s.listen(ctx, listening, due)
	if s.closing.Err() != nil {
		return fmt.Errorf("postgres: listen: %w", store.ErrClosed)
	}
	return err
}

func (s *Store) listen(ctx context.Context, listening func(), due func(serial ticketfmt.Serial)) error {
	conn, err := pgx.ConnectConfig(ctx, s.pool.Config().ConnConfig)
	if err != nil {
		return fmt.Errorf("postgres: listen: connect: %w", err)
	}
	defer func() {
		// Closing says goodbye to the server: not cut short by ctx, which
		// is likely done, but not waiting long for a server gone either.
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Second)
		defer cancel()
		_ = conn.Close(cctx)
	}()
	if _, err := conn.Exec(ctx, `LISTEN `+pgx.Identifier{s.channel}.Sanitize()); err != nil {
		return fmt.Errorf("postgres: listen: %w", err)
	}
	listening()
	for {
		wctx, cancel := context.WithTimeout(ctx, s.ping)
		n, err := conn.WaitForNotification(wctx)
		timedOut := wctx.Err() != nil
		cancel()
		switch {
		case err == nil:
			if serial, err := ticketfmt.ParseSerial(n.Payload); err == nil {
				due(serial)
			}
		case ctx.Err() != nil:
			return fmt.Errorf("postgres: listen: %w", ctx.Err())
		case timedOut:
			// A timed-out wait leaves the connection usable.
			if err := conn.Ping(ctx); err != nil {
				return fmt.Errorf("postgres: listen: ping: %w", err)
			}
		default:
			return fmt.Errorf("postgres: listen: %w", err)
		}
	}
}
