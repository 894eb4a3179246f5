// Package systemtest sets up the whole of simtix for tests: a server on a
// real store (SQLite in a temporary directory, or a PostgreSQL schema),
// its issuer, emulated cards personalised with its master secret, and the
// clients of each role. It is for tests only.
package systemtest

import (
	"context"
	"log"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/simtix/simtix/api"
	"github.com/simtix/simtix/apiclient"
	"github.com/simtix/simtix/applet"
	"github.com/simtix/simtix/box"
	"github.com/simtix/simtix/emulator"
	"github.com/simtix/simtix/internal/corpus"
	"github.com/simtix/simtix/internal/placement"
	"github.com/simtix/simtix/issuer"
	"github.com/simtix/simtix/server"
	"github.com/simtix/simtix/store"
	"github.com/simtix/simtix/store/sqlite"
	"github.com/simtix/simtix/ticketfmt"
)

// Env is a running server with its keys and store.
type Env struct {
	t testing.TB
	// Dir is the server's data directory.
	Dir string
	// Keys are the issuer's keys (and the server's tokens).
	Keys *issuer.Keys
	// Store is the server's store.
	Store store.Store
	// Server is the HTTP API, served at URL.
	Server *server.Server
	URL    string
}

// Options tune New.
type Options struct {
	// Store is the store to serve (a SQLite database in Dir when nil).
	Store store.Store
	// MaxWait bounds a long poll (default 5 s).
	MaxWait time.Duration
}

// New starts a server for the test; everything stops when the test ends.
func New(t testing.TB, opts Options) *Env {
	t.Helper()
	ctx := context.Background()
	e := &Env{t: t, Dir: t.TempDir()}
	var err error
	e.Keys, err = issuer.Open(ctx, e.Dir, "")
	require.NoError(t, err)
	t.Cleanup(func() { _ = e.Keys.Close() })
	e.Store = opts.Store
	if e.Store == nil {
		st, err := sqlite.Open(ctx, filepath.Join(e.Dir, "simtix.db"))
		require.NoError(t, err)
		t.Cleanup(func() { _ = st.Close() })
		e.Store = st
	}
	if opts.MaxWait == 0 {
		opts.MaxWait = 5 * time.Second
	}
	e.Server, err = server.New(server.Config{Store: e.Store, Keys: e.Keys, MaxWait: opts.MaxWait})
	require.NoError(t, err)
	hs := httptest.NewServer(e.Server.Handler())
	t.Cleanup(hs.Close)
	e.URL = hs.URL
	return e
}

// Client returns a client of the server with token.
func (e *Env) Client(token string) *apiclient.Client {
	c, err := apiclient.New(e.URL, token, nil)
	require.NoError(e.t, err)
	return c
}

// Operator returns a client with the operator token.
func (e *Env) Operator() *apiclient.Client { return e.Client(e.Keys.OperatorToken()) }

// Gate returns a client with the gate token.
func (e *Env) Gate() *apiclient.Client { return e.Client(e.Keys.GateToken()) }

// Personalisation returns a card personalisation with the server's master
// secret (capacity 0: the applet's default, 2 KB).
func (e *Env) Personalisation(serialHex string, capacity int) applet.Personalisation {
	serial, err := ticketfmt.ParseSerial(serialHex)
	require.NoError(e.t, err)
	return applet.Personalisation{Serial: serial, Master: e.Keys.Master(), Capacity: capacity}
}

// NewCard makes an in-process card with the server's master secret,
// powered on both interfaces.
func (e *Env) NewCard(serialHex string, capacity int) *emulator.Card {
	ram, err := emulator.Personalise(e.Personalisation(serialHex, capacity))
	require.NoError(e.t, err)
	c, err := emulator.New(ram, emulator.Options{})
	require.NoError(e.t, err)
	for _, i := range []applet.Interface{applet.Contact, applet.Contactless} {
		_, err := c.PowerOn(context.Background(), i)
		require.NoError(e.t, err)
	}
	return c
}

// CreateImage writes a card image at path with the server's master secret.
func (e *Env) CreateImage(path, serialHex string, capacity int) {
	require.NoError(e.t, emulator.Create(path, e.Personalisation(serialHex, capacity)))
}

// Tickets returns the corpus's tickets as order lines, soonest first.
func Tickets(t testing.TB) []api.OrderTicket {
	ts, err := corpus.Tickets()
	require.NoError(t, err)
	out := make([]api.OrderTicket, len(ts))
	for i, tk := range ts {
		out[i] = api.OrderTicket{Type: tk.Type, Seller: tk.Seller, Date: tk.Date, Time: tk.Time,
			Price: tk.Price, Seat: tk.Seat, Instructions: tk.Instructions}
	}
	slices.SortStableFunc(out, func(a, b api.OrderTicket) int { return ticketfmt.CompareUse(a.Date, a.Time, b.Date, b.Time) })
	return out
}

// UseTime is when a ticket is for, in loc.
func UseTime(t api.OrderTicket, loc *time.Location) time.Time { return t.Date.In(t.Time, loc) }

// States returns where the box has each of a card's tickets.
func (e *Env) States(t testing.TB, serial ticketfmt.Serial) map[ticketfmt.ID]box.State {
	t.Helper()
	view, err := e.Operator().Tickets(context.Background(), serial.String())
	require.NoError(t, err)
	out := make(map[ticketfmt.ID]box.State, len(view.Tickets))
	for _, tv := range view.Tickets {
		out[tv.ID] = tv.State
	}
	return out
}

// Placed requires every ticket of the card in its one place, settled
// (placement.Check on the card's snapshot and the box's view).
func (e *Env) Placed(t testing.TB, card *emulator.Card, serial ticketfmt.Serial) {
	t.Helper()
	snap, err := card.Snapshot()
	require.NoError(t, err)
	view, err := e.Operator().Tickets(context.Background(), serial.String())
	require.NoError(t, err)
	require.NoError(t, placement.Check(snap, view.Tickets))
}

// ForExample returns a testing.TB for the set-up of a runnable example
// (which has no *testing.T): a failure logs and exits, TempDir makes a
// directory; cleanup runs the registered clean-ups and removes the
// directories.
func ForExample() (tb testing.TB, cleanup func()) {
	e := &exampleTB{}
	return e, e.cleanup
}

// exampleTB implements the part of testing.TB that the set-up uses.
type exampleTB struct {
	testing.TB
	cleanups []func()
	dirs     []string
}

func (e *exampleTB) Helper()                   {}
func (e *exampleTB) Cleanup(f func())          { e.cleanups = append(e.cleanups, f) }
func (e *exampleTB) Errorf(f string, a ...any) { log.Printf(f, a...) }
func (e *exampleTB) FailNow()                  { log.Fatal("example set-up failed") }
func (e *exampleTB) Fatalf(f string, a ...any) { log.Fatalf(f, a...) }

func (e *exampleTB) TempDir() string {
	d, err := os.MkdirTemp("", "simtix-example-")
	if err != nil {
		log.Fatal(err)
	}
	e.dirs = append(e.dirs, d)
	return d
}

func (e *exampleTB) cleanup() {
	for i := len(e.cleanups) - 1; i >= 0; i-- {
		e.cleanups[i]()
	}
	for _, d := range e.dirs {
		os.RemoveAll(d)
	}
}
