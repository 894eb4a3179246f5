package e2e_test

import (
	"os"
	"testing"

	"github.com/simtix/simtix/internal/systemtest"
	"github.com/simtix/simtix/store/postgres/pgtest"
)

// cluster is the PostgreSQL test cluster, started for the whole package.
var cluster *pgtest.Cluster

// TestMain starts PostgreSQL (never skipping: the tests fail if it cannot
// start) and runs the tests.
func TestMain(m *testing.M) { os.Exit(pgtest.Main(m, &cluster)) }

// database is one store the server can run on.
type database struct {
	name string
	// options returns the server's options for a test: a fresh SQLite
	// file or a fresh PostgreSQL schema.
	options func(testing.TB) systemtest.Options
}

// databases are the stores every end-to-end test runs on.
var databases = []database{
	{"SQLite", func(testing.TB) systemtest.Options { return systemtest.Options{} }},
	{"PostgreSQL", func(tb testing.TB) systemtest.Options { return systemtest.Options{Store: cluster.Open(tb)} }},
}
