package server_test

import (
	"context"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/routers/gorillamux"
	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/simtix/simtix/api"
	"github.com/simtix/simtix/applet"
	"github.com/simtix/simtix/hostlib"
	"github.com/simtix/simtix/hostlib/handset"
	"github.com/simtix/simtix/issuer"
	"github.com/simtix/simtix/server"
	"github.com/simtix/simtix/store"
	"github.com/simtix/simtix/store/postgres"
	"github.com/simtix/simtix/store/postgres/pgtest"
	"github.com/simtix/simtix/ticketfmt"
)

// pgCluster is the PostgreSQL server of the tests that share a database
// between server instances.
var pgCluster *pgtest.Cluster

func TestMain(m *testing.M) { os.Exit(pgtest.Main(m, &pgCluster)) }

// newEnvOn is newEnv with given keys and store: one server instance of
// several on one database. The server is closed when the test ends.
func newEnvOn(t *testing.T, keys *issuer.Keys, st store.Store) *env {
	log := slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelDebug}))
	srv, err := server.New(server.Config{Store: st, Keys: keys, Logger: log, MaxWait: 30 * time.Second})
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, srv.Close()) })
	doc, err := openapi3.NewLoader().LoadFromData(api.OpenAPI)
	require.NoError(t, err)
	doc.Servers = nil
	router, err := gorillamux.NewRouter(doc)
	require.NoError(t, err)
	e := &env{t: t, keys: keys, store: st, srv: srv, router: router}
	e.http = httptest.NewServer(http.HandlerFunc(e.checked))
	t.Cleanup(e.http.Close)
	return e
}

// sharedDatabase opens n stores on one fresh PostgreSQL schema, as n
// server processes would, and returns them with the schema's name.
func sharedDatabase(t *testing.T, n int) ([]store.Store, string) {
	u := pgCluster.Schema(t)
	var sts []store.Store
	for range n {
		st, err := postgres.Open(context.Background(), u)
		require.NoError(t, err)
		t.Cleanup(func() { _ = st.Close() })
		sts = append(sts, st)
	}
	parsed, err := url.Parse(u)
	require.NoError(t, err)
	return sts, parsed.Query().Get("search_path")
}

// listeners returns the PostgreSQL backends listening for the orders
// taken on schema.
func listeners(t *testing.T, ctx context.Context, schema string) []int32 {
	conn, err := pgx.Connect(ctx, pgCluster.URL)
	require.NoError(t, err)
	defer conn.Close(ctx)
	rows, err := conn.Query(ctx, `SELECT pid FROM pg_stat_activity
		WHERE state = 'idle' AND query LIKE 'LISTEN %' AND strpos(query, $1) > 0 ORDER BY pid`, schema)
	require.NoError(t, err)
	pids, err := pgx.CollectRows(rows, pgx.RowTo[int32])
	require.NoError(t, err)
	return pids
}

// awaitListeners waits until n backends listen on schema, none of them
// one of old, and returns them.
func awaitListeners(t *testing.T, ctx context.Context, schema string, n int, old []int32) []int32 {
	var pids []int32
	require.Eventually(t, func() bool {
		pids = listeners(t, ctx, schema)
		return len(pids) == n && !slices.ContainsFunc(pids, func(p int32) bool { return slices.Contains(old, p) })
	}, 10*time.Second, 10*time.Millisecond, "%d new listeners on %s (old %v)", n, schema, old)
	return pids
}

// watching returns the server's simtix_watching_handsets gauge.
func (e *env) watching() int {
	code, body := e.raw("GET", "/metrics", "", "")
	require.Equal(e.t, http.StatusOK, code)
	for line := range strings.Lines(body) {
		if v, ok := strings.CutPrefix(line, "simtix_watching_handsets "); ok {
			n, err := strconv.Atoi(strings.TrimSpace(v))
			require.NoError(e.t, err)
			return n
		}
	}
	e.t.Fatal("no simtix_watching_handsets in /metrics")
	return 0
}

// watch starts a handset's long poll on e and waits until it waits: it
// has found nothing due, so only a wake-up can answer it before its wait.
// The channel gets the number of tickets due (-1 for an error or 204).
func (e *env) watch(ctx context.Context, session string, serial ticketfmt.Serial, wait time.Duration) <-chan int {
	got := make(chan int, 1)
	go func() {
		n, err := e.client(session).Events(ctx, serial, wait)
		if err != nil {
			n = -1
		}
		got <- n
	}()
	require.Eventually(e.t, func() bool { return e.watching() == 1 }, 10*time.Second, 5*time.Millisecond,
		"the long poll waits")
	return got
}

// TestWatchAcrossServers: two server instances on one PostgreSQL
// database; a handset watching instance B is told at once of an order
// taken by instance A, also after the listeners' connections were cut.
func TestWatchAcrossServers(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	keys, err := issuer.Open(ctx, t.TempDir(), "")
	require.NoError(t, err)
	t.Cleanup(func() { _ = keys.Close() })
	sts, schema := sharedDatabase(t, 2)
	a, b := newEnvOn(t, keys, sts[0]), newEnvOn(t, keys, sts[1])
	pids := awaitListeners(t, ctx, schema, 2, nil)

	card, serial := b.newCard("89860012345678901234")
	h := &handset.Handset{Card: hostlib.NewApplet(card.Port(applet.Contact), hostlib.ClientOptions{}), Box: b.client("")}
	res, err := h.Sync(ctx, nil)
	require.NoError(t, err)
	op := a.client(keys.OperatorToken())
	const wait = 20 * time.Second // the answer must come well before

	order := func(key string) {
		t.Helper()
		ans, err := op.Order(ctx, corpusOrder(t, serial.String(), key, 0, 1))
		require.NoError(t, err)
		require.Equal(t, "card", ans.Tickets[0].Route, "the card has room: direct")
	}
	told := func(got <-chan int, ordered time.Time) {
		t.Helper()
		select {
		case n := <-got:
			assert.Equal(t, 1, n, "one ticket due")
			assert.Less(t, time.Since(ordered), 3*time.Second)
		case <-time.After(wait / 2):
			t.Fatal("the handset watching the other instance was not told")
		}
	}

	got := b.watch(ctx, res.Session, serial, wait)
	start := time.Now()
	order("o1")
	told(got, start)

	// The handset takes the ticket; nothing is due any more.
	res, err = h.Sync(ctx, nil)
	require.NoError(t, err)
	require.Equal(t, 1, res.Status.Stored)

	// The listeners' connections are cut while the handset watches: they
	// connect again, and the wake-up that says "look again" (orders may
	// have been missed) does not end the long poll.
	got = b.watch(ctx, res.Session, serial, wait)
	admin, err := pgx.Connect(ctx, pgCluster.URL)
	require.NoError(t, err)
	defer admin.Close(ctx)
	for _, pid := range pids {
		_, err := admin.Exec(ctx, `SELECT pg_terminate_backend($1)`, pid)
		require.NoError(t, err)
	}
	awaitListeners(t, ctx, schema, 2, pids)
	require.Eventually(t, func() bool { return b.watching() == 1 }, 10*time.Second, 5*time.Millisecond)
	select {
	case n := <-got:
		t.Fatalf("the long poll ended (%d) without an order", n)
	default:
	}
	start = time.Now()
	order("o2")
	told(got, start)
}

// TestCloseStopsListening: Close ends the listener of a server on
// PostgreSQL (its connection goes) and waits for it; closing again is
// harmless.
func TestCloseStopsListening(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	keys, err := issuer.Open(ctx, t.TempDir(), "")
	require.NoError(t, err)
	t.Cleanup(func() { _ = keys.Close() })
	sts, schema := sharedDatabase(t, 1)
	srv, err := server.New(server.Config{Store: sts[0], Keys: keys})
	require.NoError(t, err)
	awaitListeners(t, ctx, schema, 1, nil)
	require.NoError(t, srv.Close())
	require.Eventually(t, func() bool { return len(listeners(t, ctx, schema)) == 0 }, 10*time.Second, 10*time.Millisecond)
	require.NoError(t, srv.Close())
}
