package e2e_test

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/simtix/simtix/api"
	"github.com/simtix/simtix/apiclient"
	"github.com/simtix/simtix/applet"
	"github.com/simtix/simtix/box"
	"github.com/simtix/simtix/hostlib"
	"github.com/simtix/simtix/hostlib/gate"
	"github.com/simtix/simtix/hostlib/gate/journal"
	"github.com/simtix/simtix/hostlib/handset"
	"github.com/simtix/simtix/internal/placement"
	"github.com/simtix/simtix/internal/systemtest"
	"github.com/simtix/simtix/ticketfmt"
)

// rig is one way of reaching the card: the handset's contact transport,
// the gate's contactless reader, and a view of the card's file.
type rig struct {
	env    *systemtest.Env
	serial ticketfmt.Serial
	// contact is the handset's transport, held for the whole scenario.
	contact hostlib.Transport
	// present puts the card on a gate's contactless reader, freshly
	// powered as a card arriving in the field, and returns the transport
	// for one check and what takes the card away again.
	present func(ctx context.Context) (hostlib.Transport, func() error, error)
	// snapshot reads the card's non-volatile state.
	snapshot func() (applet.Snapshot, error)
	// interval is the handset's STATUS polling interval.
	interval time.Duration
}

// check presents the card to g, checks a ticket and takes the card away.
func (r rig) check(ctx context.Context, g *gate.Gate) (gate.Verdict, error) {
	t, leave, err := r.present(ctx)
	if err != nil {
		return gate.Verdict{}, fmt.Errorf("presenting the card: %w", err)
	}
	v, err := g.Check(ctx, t)
	if lerr := leave(); lerr != nil && err == nil {
		err = fmt.Errorf("taking the card away: %w", lerr)
	}
	return v, err
}

// scenario orders more tickets than fit on the card, then checks them one
// by one at a gate while the handset watches, and proves that every ticket
// is checked exactly once and that none is ever lost or on the card and in
// the box at once.
func scenario(t *testing.T, r rig) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()

	stop := watch(ctx, t, r, r.interval)
	defer stop()

	tickets := systemtest.Tickets(t)
	ans, err := r.env.Operator().Order(ctx, api.OrderRequest{Carrier: r.serial.String(), IdempotencyKey: "e2e", Tickets: tickets})
	require.NoError(t, err)
	routes := map[string]int{}
	for _, tk := range ans.Tickets {
		routes[tk.Route]++
	}
	require.Positive(t, routes["card"], "some tickets go straight to the card")
	require.Positive(t, routes["box"], "the rest wait in the box")
	t.Logf("order: %v", routes)
	settle(ctx, t, r)

	keys := r.env.Keys.KeySet()
	j, err := journal.Open(filepath.Join(t.TempDir(), "gate.journal"))
	require.NoError(t, err)
	defer j.Close()
	admitted := map[ticketfmt.ID]bool{}
	loc := time.UTC
	for i, tk := range tickets {
		g, err := gate.New(gate.Config{Keys: keys, Venue: tk.Seller, Location: loc, ID: [4]byte{0x47, 0, 0, byte(i)},
			Now: func() time.Time { return systemtest.UseTime(tk, loc).Add(-10 * time.Minute) }, Journal: j})
		require.NoError(t, err)
		v, err := r.check(ctx, g)
		require.NoError(t, err, "check %d", i)
		require.True(t, v.Accepted, "check %d (%s %v %v): %v", i, tk.Seller, tk.Date, tk.Time, v.Reason)
		want := []int{3} // SELECT, FIND, CHECK
		if now := systemtest.UseTime(tk, loc).Add(-10 * time.Minute); now.Add(-time.Hour).Day() != now.Day() || now.Add(2*time.Hour).Day() != now.Day() {
			want = []int{3, 4} // the window spans midnight: a FIND on the other date too, maybe
		}
		if !assert.Contains(t, want, v.APDUs) {
			for _, x := range v.Exchanges {
				t.Logf("%s %X -> %X", x.Op, x.Command, x.Response)
			}
		}
		assert.Equal(t, tk.Seller, v.Ticket.Seller)
		require.False(t, admitted[v.Ticket.ID], "ticket %v admitted twice", v.Ticket.ID)
		admitted[v.Ticket.ID] = true
		settle(ctx, t, r)
	}
	require.Len(t, admitted, len(tickets))

	// A second presentation finds nothing left.
	g, err := gate.New(gate.Config{Keys: keys, Venue: tickets[0].Seller, Location: loc, Journal: j,
		Now: func() time.Time { return systemtest.UseTime(tickets[0], loc) }})
	require.NoError(t, err)
	v, err := r.check(ctx, g)
	require.NoError(t, err)
	assert.False(t, v.Accepted)
	assert.ErrorIs(t, v.Reason, gate.ErrNoTicket)

	up, err := journal.Upload(ctx, j, r.env.Gate())
	require.NoError(t, err)
	assert.Equal(t, len(tickets), up.Accepted+up.Duplicates)
	assert.Empty(t, up.CheckedTwice)
	assert.Empty(t, up.Rejected)
	deny, err := r.env.Gate().Deny(ctx)
	require.NoError(t, err)
	assert.Len(t, deny, len(tickets))
	view, err := r.env.Operator().Tickets(ctx, r.serial.String())
	require.NoError(t, err)
	for _, tv := range view.Tickets {
		assert.Equal(t, box.Checked, tv.State, "ticket %v", tv.ID)
		assert.True(t, admitted[tv.ID], "ticket %v checked but never admitted", tv.ID)
	}
}

// settle waits until the handset has moved everything it can (nothing due,
// no checked ticket left on the card, nothing in flight) and then checks
// that each unchecked ticket is on the card or in the box, never both,
// never neither.
func settle(ctx context.Context, t testing.TB, r rig) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	var why error
	for time.Now().Before(deadline) {
		if why = settled(ctx, t, r); why == nil {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("the card and the box never settled: %v", why)
}

// settled returns why the card and the box are not settled yet, or nil.
// The card is read before and after the box: a card that changed meanwhile
// (a sync ran) is compared another time, since a card read before a STORE
// and a box read after it would show the ticket in no place.
func settled(ctx context.Context, t testing.TB, r rig) error {
	op := r.env.Operator()
	if _, err := op.Events(ctx, r.serial, 0); !errors.Is(err, apiclient.ErrNoContent) {
		return fmt.Errorf("tickets still due (%v)", err)
	}
	err := placement.Observe(r.snapshot, func() ([]api.TicketView, error) {
		view, err := op.Tickets(ctx, r.serial.String())
		return view.Tickets, err
	})
	require.NotErrorIs(t, err, placement.ErrMisplaced)
	return err
}

// watch starts the handset in watch mode on the rig's contact interface,
// waits for its first sync, and returns what stops it: stop checks that
// Watch ended by its cancellation and met no error of the box before.
func watch(ctx context.Context, tb testing.TB, r rig, interval time.Duration) (stop func()) {
	tb.Helper()
	h := &handset.Handset{Card: hostlib.NewApplet(r.contact, hostlib.ClientOptions{}), Box: r.env.Client("")}
	var mu sync.Mutex
	var boxErrors []error
	watchCtx, stopWatch := context.WithCancel(ctx)
	watched := make(chan error, 1)
	synced := make(chan struct{}, 1)
	go func() {
		watched <- h.Watch(watchCtx, handset.WatchOptions{Interval: interval, EventWait: 5 * time.Second, OnEvent: func(e handset.Event) {
			switch e.Kind {
			case handset.EventError:
				mu.Lock()
				boxErrors = append(boxErrors, e.Err)
				mu.Unlock()
			case handset.EventSync:
				select {
				case synced <- struct{}{}:
				default:
				}
			}
		}})
	}()
	stop = func() {
		stopWatch()
		assert.ErrorIs(tb, <-watched, context.Canceled)
		mu.Lock()
		defer mu.Unlock()
		assert.Empty(tb, boxErrors, "the handset met errors of the box")
	}
	select {
	case <-synced:
	case err := <-watched:
		tb.Fatalf("watch ended: %v", err)
	case <-ctx.Done():
		stop()
		tb.Fatal("the handset never synced")
	}
	return stop
}
