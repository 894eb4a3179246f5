package sqlite_test

import (
	"context"
	"database/sql"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/simtix/simtix/store"
	"github.com/simtix/simtix/store/migrations"
	"github.com/simtix/simtix/store/sqlite"
	"github.com/simtix/simtix/store/storetest"

	_ "modernc.org/sqlite"
)

func open(t *testing.T) store.Store {
	s, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "simtix.db"))
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, s.Close()) })
	return s
}

func TestConformance(t *testing.T) {
	storetest.Run(t, open)
}

func TestFile(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "data", "simtix.db")
	require.NoError(t, os.MkdirAll(filepath.Dir(path), 0o700))
	s, err := sqlite.Open(ctx, path)
	require.NoError(t, err)
	v, err := s.Version(ctx)
	require.NoError(t, err)
	require.Equal(t, 2, v, "every migration applied")
	require.NoError(t, s.Update(ctx, func(tx store.Tx) error {
		_, err := tx.LockCard(ctx, storetest.Serial(1))
		return err
	}))
	for _, name := range []string{"simtix.db", "simtix.db-wal", "simtix.db-shm"} {
		fi, err := os.Stat(filepath.Join(filepath.Dir(path), name))
		require.NoError(t, err)
		require.Equal(t, os.FileMode(0o600), fi.Mode().Perm(), name)
	}
	require.NoError(t, s.Close())

	// Opened again: the schema is there, the data too.
	s, err = sqlite.Open(ctx, path)
	require.NoError(t, err)
	require.NoError(t, s.View(ctx, func(tx store.Tx) error {
		_, err := tx.Card(ctx, storetest.Serial(1))
		return err
	}))
	require.NoError(t, s.Close())

	db, err := sql.Open("sqlite", path)
	require.NoError(t, err)
	defer db.Close()
	var mode string
	require.NoError(t, db.QueryRow(`PRAGMA journal_mode`).Scan(&mode))
	require.Equal(t, "wal", mode)
}

func TestRefusesNewerSchema(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "simtix.db")
	s, err := sqlite.Open(ctx, path)
	require.NoError(t, err)
	require.NoError(t, s.Close())

	db, err := sql.Open("sqlite", path)
	require.NoError(t, err)
	_, err = db.Exec(`INSERT INTO schema_migrations (version, name, applied) VALUES (99, 'future', 0)`)
	require.NoError(t, err)
	require.NoError(t, db.Close())

	_, err = sqlite.Open(ctx, path)
	require.ErrorIs(t, err, migrations.ErrTooNew)
}

// TestTicketsOfUsesCarrierIndex: a card's tickets are found through the
// carrier index, so a sync's cost does not grow with other cards' tickets.
func TestTicketsOfUsesCarrierIndex(t *testing.T) {
	path := filepath.Join(t.TempDir(), "simtix.db")
	s, err := sqlite.Open(context.Background(), path)
	require.NoError(t, err)
	require.NoError(t, s.Close())
	db, err := sql.Open("sqlite", path)
	require.NoError(t, err)
	defer db.Close()
	plan := func(q string) string {
		rows, err := db.Query(`EXPLAIN QUERY PLAN ` + q)
		require.NoError(t, err)
		defer rows.Close()
		var out []string
		for rows.Next() {
			var id, parent, notused int
			var detail string
			require.NoError(t, rows.Scan(&id, &parent, &notused, &detail))
			out = append(out, detail)
		}
		return strings.Join(out, "; ")
	}
	p := plan(`SELECT * FROM tickets WHERE carrier = x'00000000000000000001' ORDER BY seq`)
	require.Contains(t, p, "USING INDEX tickets_carrier")
	require.NotContains(t, p, "TEMP B-TREE")
	p = plan(`SELECT id FROM tickets WHERE state = 'checked' ORDER BY id`)
	require.Contains(t, p, "USING COVERING INDEX tickets_state")
	require.NotContains(t, p, "TEMP B-TREE")
}

func TestOpenErrors(t *testing.T) {
	_, err := sqlite.Open(context.Background(), "")
	require.Error(t, err)
	_, err = sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "missing", "simtix.db"))
	require.Error(t, err)
}

// TestWaitsForAnotherWriter: another process (here another connection)
// holding the write lock makes Update wait, not fail.
func TestWaitsForAnotherWriter(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "simtix.db")
	s, err := sqlite.Open(ctx, path)
	require.NoError(t, err)
	defer s.Close()

	db, err := sql.Open("sqlite", path)
	require.NoError(t, err)
	defer db.Close()
	conn, err := db.Conn(ctx)
	require.NoError(t, err)
	defer conn.Close()
	_, err = conn.ExecContext(ctx, `BEGIN IMMEDIATE`)
	require.NoError(t, err)
	_, err = conn.ExecContext(ctx, `INSERT INTO orders (idem_key, answer, created) VALUES ('other', x'00', 0)`)
	require.NoError(t, err)
	released := make(chan struct{})
	go func() {
		time.Sleep(300 * time.Millisecond)
		_, err := conn.ExecContext(ctx, `COMMIT`)
		assert.NoError(t, err)
		close(released)
	}()
	start := time.Now()
	require.NoError(t, s.Update(ctx, func(tx store.Tx) error { return tx.PutOrder(ctx, "mine", []byte{1}) }))
	require.GreaterOrEqual(t, time.Since(start), 250*time.Millisecond)
	<-released
	require.NoError(t, s.View(ctx, func(tx store.Tx) error {
		for _, k := range []string{"other", "mine"} {
			if _, err := tx.Order(ctx, k); err != nil {
				return err
			}
		}
		return nil
	}))
}

// TestUpdatesInOrder checks that Updates waiting for the writing
// connection get it in the order they were called: database/sql alone
// would hand it to a waiter at random, and under load (internal/load) keep
// some waiting several times longer than the rest.
func TestUpdatesInOrder(t *testing.T) {
	ctx := context.Background()
	s := open(t)
	const waiters = 6
	hold := make(chan struct{})
	held := make(chan struct{})
	go func() {
		assert.NoError(t, s.Update(ctx, func(store.Tx) error {
			close(held)
			<-hold
			return nil
		}))
	}()
	<-held
	var mu sync.Mutex
	var order []int
	var wg sync.WaitGroup
	for i := range waiters {
		wg.Go(func() {
			assert.NoError(t, s.Update(ctx, func(store.Tx) error {
				mu.Lock()
				order = append(order, i)
				mu.Unlock()
				return nil
			}))
		})
		// Long enough for the waiter to queue, even on a busy machine.
		time.Sleep(100 * time.Millisecond)
	}
	close(hold)
	wg.Wait()
	assert.Equal(t, []int{0, 1, 2, 3, 4, 5}, order)
}
