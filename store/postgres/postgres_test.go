package postgres_test

import (
	"context"
	"net/url"
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
	require.Equal(t, 2, v, "every migration applied")
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
	// One of them was run again (at least once: seen once on a loaded
	// machine, a rerun met the other transaction's locks again).
	require.GreaterOrEqual(t, runs.Load(), int32(3), "a transaction was run again")
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

// openSchema opens a store on a fresh schema and returns it with the
// schema's name.
func openSchema(t *testing.T) (*postgres.Store, string) {
	t.Helper()
	u := cluster.Schema(t)
	s, err := postgres.Open(context.Background(), u)
	require.NoError(t, err)
	t.Cleanup(func() { s.Close() })
	parsed, err := url.Parse(u)
	require.NoError(t, err)
	return s, parsed.Query().Get("search_path")
}

// listener is a Listen call running in a goroutine.
type listener struct {
	due  chan ticketfmt.Serial
	done chan struct{} // closed when Listen has returned err
	err  error
}

// listen starts s.Listen and waits until it listens.
func listen(t *testing.T, ctx context.Context, s *postgres.Store) *listener {
	t.Helper()
	ctx, cancel := context.WithCancel(ctx)
	l := &listener{due: make(chan ticketfmt.Serial, 16), done: make(chan struct{})}
	listening := make(chan struct{})
	go func() {
		defer close(l.done)
		l.err = s.Listen(ctx, func() { close(listening) }, func(serial ticketfmt.Serial) { l.due <- serial })
	}()
	select {
	case <-listening:
	case <-l.done:
		t.Fatalf("Listen returned before listening: %v", l.err)
	case <-ctx.Done():
		t.Fatal("Listen is not listening")
	}
	t.Cleanup(func() {
		cancel()
		<-l.done
	})
	return l
}

func notifyDue(t *testing.T, ctx context.Context, s *postgres.Store, serial ticketfmt.Serial) {
	t.Helper()
	require.NoError(t, s.Update(ctx, func(tx store.Tx) error { return tx.NotifyDue(ctx, serial) }))
}

// expect waits for serial's notification.
func (l *listener) expect(t *testing.T, ctx context.Context, serial ticketfmt.Serial) {
	t.Helper()
	select {
	case got := <-l.due:
		require.Equal(t, serial, got)
	case <-l.done:
		t.Fatalf("Listen returned: %v", l.err)
	case <-ctx.Done():
		t.Fatalf("%v was not delivered", serial)
	}
}

// listenerPIDs returns the backends listening on schema's channel.
func listenerPIDs(t *testing.T, ctx context.Context, schema string) []int32 {
	t.Helper()
	conn, err := pgx.Connect(ctx, cluster.URL)
	require.NoError(t, err)
	defer conn.Close(ctx)
	rows, err := conn.Query(ctx, `SELECT pid FROM pg_stat_activity
		WHERE state = 'idle' AND query LIKE 'LISTEN %' AND strpos(query, $1) > 0 ORDER BY pid`, schema)
	require.NoError(t, err)
	pids, err := pgx.CollectRows(rows, pgx.RowTo[int32])
	require.NoError(t, err)
	return pids
}

// TestListenSchemasApart: stores on two schemas of one database hear only
// their own schema's notifications.
func TestListenSchemasApart(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	s1, _ := openSchema(t)
	s2, _ := openSchema(t)
	l1, l2 := listen(t, ctx, s1), listen(t, ctx, s2)
	notifyDue(t, ctx, s1, storetest.Serial(1))
	notifyDue(t, ctx, s2, storetest.Serial(2))
	l1.expect(t, ctx, storetest.Serial(1))
	l2.expect(t, ctx, storetest.Serial(2))
	select {
	case serial := <-l1.due:
		t.Errorf("the first schema's listener heard %v", serial)
	case serial := <-l2.due:
		t.Errorf("the second schema's listener heard %v", serial)
	case <-time.After(100 * time.Millisecond):
	}
}

// TestListenConnectionLost: Listen returns an error (not ctx's) when its
// connection is cut, and a new Listen hears again.
func TestListenConnectionLost(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	s, schema := openSchema(t)
	l := listen(t, ctx, s)
	pids := listenerPIDs(t, ctx, schema)
	require.Len(t, pids, 1)
	conn, err := pgx.Connect(ctx, cluster.URL)
	require.NoError(t, err)
	defer conn.Close(ctx)
	_, err = conn.Exec(ctx, `SELECT pg_terminate_backend($1)`, pids[0])
	require.NoError(t, err)
	select {
	case <-l.done:
		require.Error(t, l.err)
		require.NotErrorIs(t, l.err, context.Canceled)
		require.NotErrorIs(t, l.err, store.ErrClosed)
	case <-ctx.Done():
		t.Fatal("Listen did not notice that its connection was cut")
	}
	l = listen(t, ctx, s)
	notifyDue(t, ctx, s, storetest.Serial(1))
	l.expect(t, ctx, storetest.Serial(1))
}

// TestListenPings: a listener that pings between notifications (here
// often) still hears them.
func TestListenPings(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	s, _ := openSchema(t)
	postgres.SetListenPing(s, 10*time.Millisecond)
	l := listen(t, ctx, s)
	time.Sleep(200 * time.Millisecond)
	notifyDue(t, ctx, s, storetest.Serial(1))
	l.expect(t, ctx, storetest.Serial(1))
	time.Sleep(100 * time.Millisecond)
	notifyDue(t, ctx, s, storetest.Serial(2))
	l.expect(t, ctx, storetest.Serial(2))
}

// TestListenClose: Close ends the Listen calls under way (ErrClosed) and
// their connections; a Listen after Close returns ErrClosed at once.
func TestListenClose(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	s, schema := openSchema(t)
	l := listen(t, ctx, s)
	require.NoError(t, s.Close())
	select {
	case <-l.done:
		require.ErrorIs(t, l.err, store.ErrClosed)
	case <-ctx.Done():
		t.Fatal("Listen did not return when the store closed")
	}
	require.ErrorIs(t, s.Listen(ctx, func() { t.Error("listening after Close") }, func(ticketfmt.Serial) {}), store.ErrClosed)
	require.Eventually(t, func() bool { return len(listenerPIDs(t, ctx, schema)) == 0 }, 5*time.Second, 10*time.Millisecond,
		"the listener's connection is closed")
}
