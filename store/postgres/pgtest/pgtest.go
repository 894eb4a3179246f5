// Package pgtest gives tests and benchmarks a PostgreSQL database: the
// project's private test cluster (scripts/postgres.sh), started on demand,
// and a fresh schema per test. It is for tests only, never for a server.
//
// A test package uses it from TestMain:
//
//	var cluster *pgtest.Cluster
//
//	func TestMain(m *testing.M) { os.Exit(pgtest.Main(m, &cluster)) }
//
// and then cluster.Open(t) (a store) or cluster.Schema(t) (a URL) in each
// test. SIMTIX_PG_URL names another server to use instead of the cluster;
// nothing is then started or stopped.
package pgtest

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/simtix/simtix/store/postgres"
)

// Cluster is a running PostgreSQL server for tests.
type Cluster struct {
	// URL is the server's database for tests.
	URL string

	script  string // scripts/postgres.sh, or "" for SIMTIX_PG_URL
	started bool   // this process started the cluster
	users   *usersLock
	admin   *pgxpool.Pool
}

// Main starts the cluster (Start) and sets *c to it, runs the tests,
// stops the cluster if this process started it and no other test process
// uses it, and returns the exit code. If the cluster cannot be started, it
// prints why and returns exit code 1 without running any test: the tests
// fail, they are never skipped.
func Main(m *testing.M, c **Cluster) int {
	var err error
	if *c, err = Start(context.Background()); err != nil {
		fmt.Fprintf(os.Stderr, "pgtest: PostgreSQL for the tests: %v\n", err)
		return 1
	}
	return (*c).run(m)
}

func (c *Cluster) run(m *testing.M) (code int) {
	defer func() {
		if err := c.Stop(); err != nil {
			fmt.Fprintf(os.Stderr, "pgtest: %v\n", err)
			if code == 0 {
				code = 1
			}
		}
	}()
	return m.Run()
}

// Start starts the test cluster with scripts/postgres.sh (installing
// PostgreSQL if needed) unless it runs, or uses SIMTIX_PG_URL.
func Start(ctx context.Context) (*Cluster, error) {
	c := &Cluster{URL: os.Getenv("SIMTIX_PG_URL")}
	if c.URL == "" {
		script, err := findScript()
		if err != nil {
			return nil, err
		}
		c.script = script
		// Hold the users lock (shared) before looking: a process that
		// started the cluster stops it only when no other holds it.
		dir := os.Getenv("SIMTIX_PG")
		if dir == "" {
			dir = "/tmp/simtix-pg"
		}
		if c.users, err = lockUsers(dir + ".users"); err != nil {
			return nil, err
		}
		if _, err := c.sh(ctx, "status"); err != nil {
			var exit *exec.ExitError
			if !errors.As(err, &exit) || exit.ExitCode() != 3 {
				c.users.release()
				return nil, err
			}
			c.started = true
		}
		out, err := c.sh(ctx, "start")
		if err != nil {
			c.users.release()
			return nil, err
		}
		c.URL = string(bytes.TrimSpace(out))
	}
	admin, err := pgxpool.New(ctx, c.URL)
	if err == nil {
		err = admin.Ping(ctx)
	}
	if err != nil {
		c.Stop() // the first error says more
		return nil, fmt.Errorf("connect to %s: %w", c.URL, err)
	}
	c.admin = admin
	return c, nil
}

// sh runs scripts/postgres.sh with an argument and returns its standard
// output; an error carries its standard error.
func (c *Cluster) sh(ctx context.Context, arg string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Minute) // an install may take a while
	defer cancel()
	var stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, c.script, arg)
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return out, fmt.Errorf("%s %s: %w\n%s%s", c.script, arg, err, out, stderr.Bytes())
	}
	return out, nil
}

// Stop stops the cluster if this process started it and no other test
// process is using it.
func (c *Cluster) Stop() error {
	if c.admin != nil {
		c.admin.Close()
		c.admin = nil
	}
	if c.users == nil {
		return nil
	}
	defer func() { c.users.release(); c.users = nil }()
	if !c.started || !c.users.alone() {
		return nil
	}
	_, err := c.sh(context.Background(), "stop")
	return err
}

// Schema makes a new, empty schema for one test, dropped when the test
// ends, and returns the URL of the test database with that schema as its
// search path.
func (c *Cluster) Schema(t testing.TB) string {
	t.Helper()
	ctx := context.Background()
	b := make([]byte, 8)
	_, _ = rand.Read(b)
	name := "t_" + hex.EncodeToString(b)
	if _, err := c.admin.Exec(ctx, `CREATE SCHEMA `+pgx.Identifier{name}.Sanitize()); err != nil {
		t.Fatalf("pgtest: create schema: %v", err)
	}
	t.Cleanup(func() {
		if _, err := c.admin.Exec(context.Background(), `DROP SCHEMA `+pgx.Identifier{name}.Sanitize()+` CASCADE`); err != nil {
			t.Errorf("pgtest: drop schema %s: %v", name, err)
		}
	})
	u, err := url.Parse(c.URL)
	if err != nil {
		t.Fatalf("pgtest: %v", err)
	}
	q := u.Query()
	q.Set("search_path", name)
	u.RawQuery = q.Encode()
	return u.String()
}

// Open opens a store on a fresh schema (Schema), closed when the test
// ends.
func (c *Cluster) Open(t testing.TB) *postgres.Store {
	t.Helper()
	u := c.Schema(t) // registered first, so its cleanup (drop) runs last
	s, err := postgres.Open(context.Background(), u)
	if err != nil {
		t.Fatalf("pgtest: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// findScript looks for scripts/postgres.sh in the working directory and
// its parents (tests run in their package's directory).
func findScript() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		p := filepath.Join(dir, "scripts", "postgres.sh")
		if _, err := os.Stat(p); err == nil {
			return p, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("no scripts/postgres.sh above the working directory (or set SIMTIX_PG_URL)")
		}
		dir = parent
	}
}
