// Package sqlite is the ticket center's embedded database: store.Store in
// one SQLite file in the data directory (pure Go, modernc.org/sqlite, WAL).
// It serves one server process on one machine; store/postgres is for more.
//
// All writes go through one connection in BEGIN IMMEDIATE transactions, so
// read-write transactions (Update) run one at a time, in the order they
// were called, which is what makes LockCard serialise concurrent syncs of
// a card. Read-only transactions (View) run in parallel on their own
// connections, each on a snapshot.
package sqlite

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"time"

	msqlite "modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"

	"github.com/simtix/simtix/store"
	"github.com/simtix/simtix/store/migrations"
)

//go:embed migrations/*.sql
var migrationFS embed.FS

const (
	// busyTimeout is how long SQLite waits for a lock another process
	// holds before it reports SQLITE_BUSY.
	busyTimeout = 5 * time.Second
	// attempts bounds how often Update and View run fn when the database
	// stays busy.
	attempts = 5
)

// Store is a SQLite database. It is safe for concurrent use.
type Store struct {
	w *sql.DB // the one writing connection
	r *sql.DB // read-only connections
	// turn is held by the write transaction under way; the others queue
	// for it in the order they came. database/sql would hand the freed
	// writing connection to one of its waiters at random, which under
	// load keeps some waiting many times longer than the rest.
	turn chan struct{}
}

var _ store.Store = (*Store)(nil)

// Open opens the database file at path, creating it (mode 0600) if it does
// not exist, and brings its schema up to date. It refuses a database whose
// schema is newer than this program (migrations.ErrTooNew).
func Open(ctx context.Context, path string) (*Store, error) {
	if path == "" {
		return nil, errors.New("sqlite: no database path")
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, fmt.Errorf("sqlite: %w", err)
	}
	// SQLite creates its files with mode 0644 (less the umask), and its
	// -wal and -shm files with the database file's mode: make it 0600 first.
	f, err := os.OpenFile(abs, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("sqlite: %w", err)
	}
	if err := f.Close(); err != nil {
		return nil, fmt.Errorf("sqlite: %w", err)
	}
	name := (&url.URL{Scheme: "file", Path: abs}).String()
	common := fmt.Sprintf("_pragma=busy_timeout(%d)&_pragma=foreign_keys(1)", busyTimeout.Milliseconds())
	w, err := sql.Open("sqlite", name+"?"+common+"&_pragma=journal_mode(WAL)&_pragma=synchronous(FULL)&_txlock=immediate")
	if err != nil {
		return nil, fmt.Errorf("sqlite: %w", err)
	}
	w.SetMaxOpenConns(1)
	w.SetMaxIdleConns(1)
	w.SetConnMaxLifetime(0)
	w.SetConnMaxIdleTime(0)
	r, err := sql.Open("sqlite", name+"?"+common+"&_pragma=query_only(1)")
	if err != nil {
		w.Close()
		return nil, fmt.Errorf("sqlite: %w", err)
	}
	n := max(4, runtime.NumCPU())
	r.SetMaxOpenConns(n)
	r.SetMaxIdleConns(n)
	s := &Store{w: w, r: r, turn: make(chan struct{}, 1)}
	// The writer connects first: it turns WAL on before any reader opens.
	if err := w.PingContext(ctx); err != nil {
		s.Close()
		return nil, fmt.Errorf("sqlite: open %s: %w", abs, err)
	}
	if err := s.migrate(ctx); err != nil {
		s.Close()
		return nil, err
	}
	return s, nil
}

// Version returns the database's schema version: the last migration
// applied.
func (s *Store) Version(ctx context.Context) (int, error) {
	var v int
	err := s.r.QueryRowContext(ctx, `SELECT COALESCE(MAX(version), 0) FROM schema_migrations`).Scan(&v)
	if err != nil {
		return 0, fmt.Errorf("sqlite: schema version: %w", err)
	}
	return v, nil
}

// migrate applies the pending migrations in one transaction.
func (s *Store) migrate(ctx context.Context) error {
	ms, err := migrations.Load(migrationFS, "migrations")
	if err != nil {
		return fmt.Errorf("sqlite: %w", err)
	}
	return s.write(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
			version INTEGER PRIMARY KEY,
			name    TEXT NOT NULL,
			applied INTEGER NOT NULL
		) STRICT`); err != nil {
			return fmt.Errorf("sqlite: schema_migrations: %w", err)
		}
		var cur int
		if err := tx.QueryRowContext(ctx, `SELECT COALESCE(MAX(version), 0) FROM schema_migrations`).Scan(&cur); err != nil {
			return fmt.Errorf("sqlite: schema version: %w", err)
		}
		pending, err := migrations.Pending(ms, cur)
		if err != nil {
			return fmt.Errorf("sqlite: %w", err)
		}
		for _, m := range pending {
			if _, err := tx.ExecContext(ctx, m.SQL); err != nil {
				return fmt.Errorf("sqlite: migration %04d_%s: %w", m.Version, m.Name, err)
			}
			if _, err := tx.ExecContext(ctx, `INSERT INTO schema_migrations (version, name, applied) VALUES (?, ?, ?)`,
				m.Version, m.Name, time.Now().UnixMicro()); err != nil {
				return fmt.Errorf("sqlite: migration %04d_%s: %w", m.Version, m.Name, err)
			}
		}
		return nil
	})
}

// Update runs fn in one read-write transaction (BEGIN IMMEDIATE: one at a
// time). It runs fn again, up to a few times, if the database was busy
// (another process held its lock for longer than the busy timeout). fn
// must not call Update itself: it would wait for its own transaction.
func (s *Store) Update(ctx context.Context, fn func(tx store.Tx) error) error {
	return s.write(ctx, func(tx *sql.Tx) error { return fn(&txn{tx: tx}) })
}

// View runs fn in one read-only transaction on a snapshot of the database;
// writes in it fail.
func (s *Store) View(ctx context.Context, fn func(tx store.Tx) error) error {
	return retry(ctx, func() error {
		tx, err := s.r.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
		if err != nil {
			return fmt.Errorf("sqlite: begin: %w", err)
		}
		defer tx.Rollback() // read-only: nothing to keep
		return fn(&txn{tx: tx})
	})
}

func (s *Store) write(ctx context.Context, fn func(tx *sql.Tx) error) error {
	return retry(ctx, func() error {
		select {
		case s.turn <- struct{}{}:
		case <-ctx.Done():
			return fmt.Errorf("sqlite: begin: %w", ctx.Err())
		}
		defer func() { <-s.turn }()
		tx, err := s.w.BeginTx(ctx, nil)
		if err != nil {
			return fmt.Errorf("sqlite: begin: %w", err)
		}
		defer tx.Rollback() // a no-op after Commit
		if err := fn(tx); err != nil {
			return err
		}
		if err := tx.Commit(); err != nil {
			return fmt.Errorf("sqlite: commit: %w", err)
		}
		return nil
	})
}

// retry runs run until it succeeds, fails otherwise than with SQLITE_BUSY,
// or has been tried attempts times.
func retry(ctx context.Context, run func() error) error {
	for i := 1; ; i++ {
		err := run()
		if err == nil || !isBusy(err) || i == attempts || ctx.Err() != nil {
			return err
		}
		// SQLite already waited busyTimeout for the lock; wait a little
		// more, at random, so that waiting processes do not collide again.
		d := time.Duration(rand.Int64N(int64(50 * time.Millisecond * time.Duration(i))))
		select {
		case <-ctx.Done():
			return errors.Join(err, ctx.Err())
		case <-time.After(d):
		}
	}
}

// Close closes the database.
func (s *Store) Close() error {
	return errors.Join(s.r.Close(), s.w.Close())
}

func sqliteCode(err error) int {
	var e *msqlite.Error
	if errors.As(err, &e) {
		return e.Code()
	}
	return 0
}

func isBusy(err error) bool { return sqliteCode(err)&0xff == sqlite3.SQLITE_BUSY }

func isUnique(err error) bool {
	c := sqliteCode(err)
	return c == sqlite3.SQLITE_CONSTRAINT_UNIQUE || c == sqlite3.SQLITE_CONSTRAINT_PRIMARYKEY
}
