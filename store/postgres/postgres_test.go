package postgres_test

import (
	"context"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/simtix/simtix/box"
	"github.com/simtix/simtix/store"
	"github.com/simtix/simtix/store/migrations"
	"github.com/simtix/simtix/store/postgres"
	"github.com/simtix/simtix/store/postgres/pgtest"
	"github.com/simtix/simtix/store/storetest"
	"github.com/simtix/simtix/ticketfmt"
)

var cluster *pgtest.Cluster

func TestMain(m *testing.M) { os.Exit(pgtest.Main(m, &cluster)) }

func TestConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Store { return cluster.Open(t) })
}

func TestMigrations(t *testing.T) {
	ctx := context.Background()
	url := cluster.Schema(t)
	s, err := postgres.Open(ctx, url)
	require.NoError(t, err)
	v, err := s.Version(ctx)
	require.NoError(t, err)
	require.Equal(t, 1, v)
	require.NoError(t, s.Close())

	// Several processes opening one database at once take turns.
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			s, err := postgres.Open(ctx, url)
			if !(assertNoError(t, err)) {
				return
			}
			s.Close()
		})
	}
	wg.Wait()

	conn, err := pgx.Connect(ctx, url)
	require.NoError(t, err)
	defer conn.Close(ctx)
	_, err = conn.Exec(ctx, `INSERT INTO schema_migrations (version, name) VALUES (99, 'future')`)
	require.NoError(t, err)
	_, err = postgres.Open(ctx, url)
	require.ErrorIs(t, err, migrations.ErrTooNew)
}

func assertNoError(t *testing.T, err error) bool {
	t.Helper()
	if err != nil {
		t.Error(err)
		return false
	}
	return true
}

// TestCardsLockedApart: while a transaction holds one card, a transaction
// on another card runs to its end, and one on the same card waits.
func TestCardsLockedApart(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	s := cluster.Open(t)
	a, b := storetest.Serial(1), storetest.Serial(2)
	bump := func(serial [10]byte) error {
		return s.Update(ctx, func(tx store.Tx) error {
			c, err := tx.LockCard(ctx, serial)
			if err != nil {
				return err
			}
			c.Epoch++
			return tx.PutCard(ctx, c)
		})
	}
	require.NoError(t, bump(a))
	sameDone := make(chan error, 1)
	err := s.Update(ctx, func(tx store.Tx) error {
		c, err := tx.LockCard(ctx, a)
		if err != nil {
			return err
		}
		// Another card: not held up.
		require.NoError(t, bump(b))
		// The same card: waits for this transaction.
		go func() { sameDone <- bump(a) }()
		select {
		case err := <-sameDone:
			t.Fatalf("a second transaction locked the held card (%v)", err)
		case <-time.After(200 * time.Millisecond):
		}
		c.Epoch += 10
		return tx.PutCard(ctx, c)
	})
	require.NoError(t, err)
	require.NoError(t, <-sameDone)
	require.NoError(t, s.View(ctx, func(tx store.Tx) error {
		c, err := tx.Card(ctx, a)
		require.NoError(t, err)
		require.Equal(t, uint32(12), c.Epoch)
		c, err = tx.Card(ctx, b)
		require.NoError(t, err)
		require.Equal(t, uint32(1), c.Epoch)
		return nil
	}))
}

// TestRetriesDeadlock: two transactions that move two tickets in opposite
// orders deadlock; PostgreSQL aborts one and Update runs it again.
func TestRetriesDeadlock(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	s := cluster.Open(t)
	t1, t2 := storetest.Ticket(1, storetest.Serial(1), 1), storetest.Ticket(2, storetest.Serial(1), 1)
	require.NoError(t, s.Update(ctx, func(tx store.Tx) error { return tx.InsertTickets(ctx, []*box.Ticket{t1, t2}) }))
	var (
		runs  atomic.Int32
		ready sync.WaitGroup // both transactions hold their first ticket
		once  [2]sync.Once
	)
	ready.Add(2)
	move := func(i int, a, b *box.Ticket) error {
		return s.Update(ctx, func(tx store.Tx) error {
			runs.Add(1)
			x := *a
			x.Epoch++
			if err := tx.MoveTicket(ctx, &x, box.InBox); err != nil {
				return err
			}
			once[i].Do(ready.Done)
			ready.Wait() // returns at once when run again
			y := *b
			y.Counter++
			return tx.MoveTicket(ctx, &y, box.InBox)
		})
	}
	var wg sync.WaitGroup
	errs := make(chan error, 2)
	wg.Go(func() { errs <- move(0, t1, t2) })
	wg.Go(func() { errs <- move(1, t2, t1) })
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}
	require.Equal(t, int32(3), runs.Load(), "one transaction was run again")
	require.NoError(t, s.View(ctx, func(tx store.Tx) error {
		for _, id := range []ticketfmt.ID{t1.ID, t2.ID} {
			tk, err := tx.Ticket(ctx, id)
			require.NoError(t, err)
			// A move writes the whole ticket: the last one stands.
			require.Equal(t, uint32(1), tk.Epoch+tk.Counter)
		}
		return nil
	}))
}
