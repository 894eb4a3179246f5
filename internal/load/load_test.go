package load_test

import (
	"context"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/simtix/simtix/store"
	"github.com/simtix/simtix/store/postgres"
	"github.com/simtix/simtix/store/postgres/pgtest"
	"github.com/simtix/simtix/store/sqlite"
)

// The full run's size and pace, and the flags that change either run's.
var (
	full = flag.Bool("load.full", false,
		"run the full load: 1,000 handsets for 30 s on each database (docs/benchmarks.md)")
	flagHandsets = flag.Int("load.handsets", 0, "handsets (default 50, 1000 with -load.full)")
	flagDuration = flag.Duration("load.duration", 0, "how long the handsets sync (default 3s, 30s with -load.full)")
	flagPause    = flag.Duration("load.pause", -1,
		"mean pause between one handset's syncs, jittered ±50% (0: none, each handset syncs flat out)")
	flagOrders   = flag.Float64("load.orders", 0, "orders per second (default 30, 50 with -load.full)")
	flagChecks   = flag.Float64("load.checks", 0, "gate checks per second, all gates together (default 20)")
	flagBackends = flag.String("load.backend", "sqlite,postgres", "databases to run on, comma-separated")
	flagPGPool   = flag.Int("load.pgpool", 0, "PostgreSQL pool size (pool_max_conns; 0: pgx's default, max(4, CPUs))")
	flagUpload   = flag.Duration("load.upload", -1, "how often each gate uploads its journal (default 1s; 0: after every check)")
)

// cluster is the PostgreSQL test cluster, started for the whole package.
var cluster *pgtest.Cluster

// TestMain starts PostgreSQL through pgtest (never skipping: the tests
// fail if it cannot start) and runs the tests.
func TestMain(m *testing.M) { os.Exit(pgtest.Main(m, &cluster)) }

// small is the load every `go test` runs: a few seconds, also under -race.
var small = config{Handsets: 50, Duration: 3 * time.Second, Pause: 50 * time.Millisecond,
	Orders: 30, Gates: 2, Checks: 20, Upload: time.Second, Prefill: 8, MaxOrder: 4}

// large is the load of issue #7 (-load.full).
var large = config{Handsets: 1000, Duration: 30 * time.Second, Pause: 5 * time.Second,
	Orders: 50, Gates: 4, Checks: 20, Upload: time.Second, Prefill: 8, MaxOrder: 4}

// configured returns the run's configuration: small or large, changed by
// the flags given.
func configured() config {
	c := small
	if *full {
		c = large
	}
	if *flagHandsets > 0 {
		c.Handsets = *flagHandsets
	}
	if *flagDuration > 0 {
		c.Duration = *flagDuration
	}
	if *flagPause >= 0 {
		c.Pause = *flagPause
	}
	if *flagOrders > 0 {
		c.Orders = *flagOrders
	}
	if *flagChecks > 0 {
		c.Checks = *flagChecks
	}
	if *flagUpload >= 0 {
		c.Upload = *flagUpload
	}
	return c
}

// backend is a database the server runs on.
type backend struct {
	name string
	// open returns a new, empty store for the test, closed when it ends.
	open func(t *testing.T) store.Store
}

var backends = []backend{
	{"sqlite", func(t *testing.T) store.Store {
		// A file as the server opens it: WAL, synchronous=FULL.
		st, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "simtix.db"))
		require.NoError(t, err)
		t.Cleanup(func() { _ = st.Close() })
		return st
	}},
	{"postgres", func(t *testing.T) store.Store {
		url := cluster.Schema(t)
		if *flagPGPool > 0 {
			url += fmt.Sprintf("&pool_max_conns=%d", *flagPGPool)
		}
		st, err := postgres.Open(context.Background(), url)
		require.NoError(t, err)
		t.Cleanup(func() { _ = st.Close() })
		return st
	}},
}

// TestLoad runs the load on each database: handsets syncing, orders
// arriving and gates checking at once. It fails on any error of any role
// and on any ticket lost, out of place or stored twice; the latencies are
// only reported (t.Log, and a row for docs/benchmarks.md).
func TestLoad(t *testing.T) {
	cfg := configured()
	want := strings.Split(*flagBackends, ",")
	ran := 0
	for _, b := range backends {
		if !slices.Contains(want, b.name) {
			continue
		}
		ran++
		t.Run(b.name, func(t *testing.T) {
			st := b.open(t)
			rep := run(t, b.name, st, cfg)
			t.Logf("%s\n%s", rep.details(), rep.row())

			assert.Zero(t, rep.Errors, "errors, by kind: %v; first ones: %q", rep.ErrorKinds, rep.ErrorSamples)
			assert.Zero(t, rep.ServerErrors, "the server logged errors: %q", rep.LogSamples)
			assert.Zero(t, rep.Lost, "tickets lost")
			assert.Empty(t, rep.Problems, "the final check found")
			assert.Positive(t, rep.Syncs, "syncs under load")
			assert.Positive(t, rep.Orders, "orders under load")
			assert.Positive(t, rep.Routes["card"], "direct tickets")
			assert.Positive(t, rep.Routes["box"], "overflow tickets")
			assert.Positive(t, rep.Admitted, "tickets admitted at the gates")
			assert.Positive(t, rep.Migrated, "overflow tickets that moved to their card")
			assert.Equal(t, cfg.Handsets, rep.Settled, "cards settled and in place after one final sync")
		})
	}
	require.Positive(t, ran, "-load.backend=%q names no database (sqlite, postgres)", *flagBackends)
}
