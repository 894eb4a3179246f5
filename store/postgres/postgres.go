// Package postgres is the ticket center's database on a PostgreSQL server
// (pgx): store.Store for several server processes or machines sharing one
// database. One process on one machine is better served by store/sqlite.
//
// Read-write transactions (Update) run at READ COMMITTED: LockCard takes
// the card's row lock (SELECT … FOR UPDATE), so syncs of one card run one
// after the other while other cards' go on, and ticket moves are
// conditional updates that see the latest committed state. Update runs fn
// again after a deadlock or serialisation failure. Read-only transactions
// (View) run at REPEATABLE READ READ ONLY: one snapshot, no writes.
//
// It is a store.Notifier: Tx.NotifyDue is a NOTIFY on a channel of the
// store's schema, delivered at commit to every process's Listen (LISTEN on
// a connection of its own, outside the pool).
package postgres

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/simtix/simtix/store"
	"github.com/simtix/simtix/store/migrations"
)

//go:embed migrations/*.sql
var migrationFS embed.FS

const (
	// attempts bounds how often Update runs fn after serialisation
	// failures and deadlocks.
	attempts = 10
	// migrationLock is the advisory lock key that serialises migrations
	// of one database by several processes ("simtix" in ASCII).
	migrationLock = 0x73696d746978
)

// Store is a PostgreSQL database. It is safe for concurrent use.
type Store struct {
	pool *pgxpool.Pool
	// channel is the NOTIFY channel of NotifyDue and Listen: one per
	// schema, so that deployments sharing a database apart do not hear
	// each other.
	channel string
	// ping is how long Listen waits for a notification before it pings.
	ping time.Duration

	mu        sync.Mutex
	closed    bool
	closing   context.Context    // done when Close starts: Listen returns
	cancel    context.CancelFunc // ends closing
	listeners sync.WaitGroup     // Listen calls under way
}

var (
	_ store.Store    = (*Store)(nil)
	_ store.Notifier = (*Store)(nil)
)

// Open connects to the database at url (postgres://user@host/db?…, any
// pgx or pgxpool parameter, e.g. pool_max_conns, search_path) and brings
// its schema up to date. It refuses a database whose schema is newer than
// this program (migrations.ErrTooNew).
func Open(ctx context.Context, url string) (*Store, error) {
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		return nil, fmt.Errorf("postgres: %w", err)
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("postgres: %w", err)
	}
	s := &Store{pool: pool, ping: listenPing}
	s.closing, s.cancel = context.WithCancel(context.Background())
	if err := pool.Ping(ctx); err != nil {
		s.Close()
		return nil, fmt.Errorf("postgres: connect to %s: %w", cfg.ConnConfig.Host, err)
	}
	if err := s.migrate(ctx); err != nil {
		s.Close()
		return nil, err
	}
	if s.channel, err = s.dueChannel(ctx); err != nil {
		s.Close()
		return nil, err
	}
	return s, nil
}

// Version returns the database's schema version: the last migration
// applied.
func (s *Store) Version(ctx context.Context) (int, error) {
	var v int
	if err := s.pool.QueryRow(ctx, `SELECT COALESCE(MAX(version), 0) FROM schema_migrations`).Scan(&v); err != nil {
		return 0, fmt.Errorf("postgres: schema version: %w", err)
	}
	return v, nil
}

// migrate applies the pending migrations in one transaction, holding an
// advisory lock so that processes opening the database at once take turns.
func (s *Store) migrate(ctx context.Context) error {
	ms, err := migrations.Load(migrationFS, "migrations")
	if err != nil {
		return fmt.Errorf("postgres: %w", err)
	}
	return s.once(ctx, pgx.TxOptions{}, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1)`, int64(migrationLock)); err != nil {
			return fmt.Errorf("postgres: migration lock: %w", err)
		}
		if _, err := tx.Exec(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
			version INTEGER PRIMARY KEY,
			name    TEXT NOT NULL,
			applied TIMESTAMPTZ NOT NULL DEFAULT now()
		)`); err != nil {
			return fmt.Errorf("postgres: schema_migrations: %w", err)
		}
		var cur int
		if err := tx.QueryRow(ctx, `SELECT COALESCE(MAX(version), 0) FROM schema_migrations`).Scan(&cur); err != nil {
			return fmt.Errorf("postgres: schema version: %w", err)
		}
		pending, err := migrations.Pending(ms, cur)
		if err != nil {
			return fmt.Errorf("postgres: %w", err)
		}
		for _, m := range pending {
			if _, err := tx.Exec(ctx, m.SQL); err != nil {
				return fmt.Errorf("postgres: migration %04d_%s: %w", m.Version, m.Name, err)
			}
			if _, err := tx.Exec(ctx, `INSERT INTO schema_migrations (version, name) VALUES ($1, $2)`, m.Version, m.Name); err != nil {
				return fmt.Errorf("postgres: migration %04d_%s: %w", m.Version, m.Name, err)
			}
		}
		return nil
	})
}

// Update runs fn in one READ COMMITTED read-write transaction, again (up
// to a few times) after a serialisation failure or deadlock. fn must not
// call Update itself: an inner transaction locking what the outer one
// holds would wait for ever (PostgreSQL cannot see that deadlock).
func (s *Store) Update(ctx context.Context, fn func(tx store.Tx) error) error {
	opts := pgx.TxOptions{IsoLevel: pgx.ReadCommitted, AccessMode: pgx.ReadWrite}
	for i := 1; ; i++ {
		err := s.once(ctx, opts, func(tx pgx.Tx) error { return fn(&txn{tx: tx, channel: s.channel}) })
		if err == nil || !retryable(err) || i == attempts || ctx.Err() != nil {
			return err
		}
		// Back off at random, longer each time, so that the transactions
		// that collided do not collide again.
		d := time.Duration(rand.Int64N(int64(time.Duration(i) * 5 * time.Millisecond)))
		select {
		case <-ctx.Done():
			return errors.Join(err, ctx.Err())
		case <-time.After(d):
		}
	}
}

// View runs fn in one REPEATABLE READ READ ONLY transaction: a snapshot;
// writes in it fail.
func (s *Store) View(ctx context.Context, fn func(tx store.Tx) error) error {
	opts := pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly}
	return s.once(ctx, opts, func(tx pgx.Tx) error { return fn(&txn{tx: tx, channel: s.channel}) })
}

// once runs fn in one transaction, committed if fn returns nil.
func (s *Store) once(ctx context.Context, opts pgx.TxOptions, fn func(tx pgx.Tx) error) error {
	tx, err := s.pool.BeginTx(ctx, opts)
	if err != nil {
		return fmt.Errorf("postgres: begin: %w", err)
	}
	defer func() {
		// A no-op after Commit. Rolling back must not be cut short by the
		// caller's context, which may be what ended the transaction.
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		defer cancel()
		_ = tx.Rollback(rctx)
	}()
	if err := fn(tx); err != nil {
		return err
	}
	if err := tx.Commit(ctx); err != nil {
		return fmt.Errorf("postgres: commit: %w", err)
	}
	return nil
}

// Close ends the Listen calls under way, waits for them to return, and
// closes the connections. Closing again does nothing.
func (s *Store) Close() error {
	s.mu.Lock()
	s.closed = true
	s.cancel()
	s.mu.Unlock()
	s.listeners.Wait()
	s.pool.Close()
	return nil
}

// SQLSTATE codes.
const (
	codeUniqueViolation      = "23505"
	codeSerializationFailure = "40001"
	codeDeadlockDetected     = "40P01"
)

func pgCode(err error) string {
	var e *pgconn.PgError
	if errors.As(err, &e) {
		return e.Code
	}
	return ""
}

func retryable(err error) bool {
	c := pgCode(err)
	return c == codeSerializationFailure || c == codeDeadlockDetected
}
