package load_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/simtix/simtix/api"
	"github.com/simtix/simtix/apiclient"
	"github.com/simtix/simtix/applet"
	"github.com/simtix/simtix/box"
	"github.com/simtix/simtix/cardproto"
	"github.com/simtix/simtix/emulator"
	"github.com/simtix/simtix/hostlib"
	"github.com/simtix/simtix/hostlib/gate"
	"github.com/simtix/simtix/hostlib/gate/journal"
	"github.com/simtix/simtix/hostlib/handset"
	"github.com/simtix/simtix/internal/corpus"
	"github.com/simtix/simtix/internal/placement"
	"github.com/simtix/simtix/issuer"
	"github.com/simtix/simtix/server"
	"github.com/simtix/simtix/store"
	"github.com/simtix/simtix/ticketfmt"
)

// config is the size and pace of one run.
type config struct {
	// Handsets is the number of handsets, each with its own card and its
	// own HTTP connection to the server.
	Handsets int
	// Duration is how long the handsets sync under load.
	Duration time.Duration
	// Pause is the mean pause between one handset's syncs (uniform in
	// [Pause/2, 3·Pause/2]); 0 syncs again at once.
	Pause time.Duration
	// Orders is the operator's rate, in orders per second, whatever the
	// server's answer time (the orders under way overlap).
	Orders float64
	// Gates is the number of gates, and Checks their checks per second all
	// together.
	Gates  int
	Checks float64
	// Upload is how often a gate uploads its journal and downloads the
	// deny list (0: after every check).
	Upload time.Duration
	// Prefill is how many tickets each card is given before the handsets
	// start, so that later orders overflow into the box.
	Prefill int
	// MaxOrder bounds an order's tickets: 1 to MaxOrder, at random.
	MaxOrder int
}

// Limits of the load's roles.
const (
	// maxOrdersInFlight bounds the operator's orders under way; a tick
	// that finds them all busy is skipped and counted (Behind).
	maxOrdersInFlight = 64
	// orderAttempts is how often an order is sent (with its idempotency
	// key) before it counts as failed.
	orderAttempts = 5
	// setupWorkers is the concurrency of the untimed phases (prefill
	// orders, final syncs and checks).
	setupWorkers = 32
)

// phone is one handset with its card.
type phone struct {
	serial ticketfmt.Serial
	card   *emulator.Card
	hs     *handset.Handset
	tr     *http.Transport
}

// rig is one run: the server, the handsets, the operator and the gates.
type rig struct {
	t      *testing.T
	cfg    config
	st     store.Store
	keys   *issuer.Keys
	url    string
	logs   *logCounter
	phones []*phone
	lines  []api.OrderTicket
	s      *stats
}

// run starts a server on st, runs the load of cfg against it, checks every
// card and ticket at the end, and reports.
func run(t *testing.T, name string, st store.Store, cfg config) *report {
	ctx, cancel := context.WithTimeout(context.Background(), cfg.Duration+20*time.Minute)
	defer cancel()
	r := &rig{t: t, cfg: cfg, st: st, logs: newLogCounter(), s: newStats()}
	r.serve(ctx)
	ts, err := corpus.Tickets()
	require.NoError(t, err)
	for _, tk := range ts {
		r.lines = append(r.lines, api.OrderTicket{Type: tk.Type, Seller: tk.Seller, Date: tk.Date, Time: tk.Time,
			Price: tk.Price, Seat: tk.Seat, Instructions: tk.Instructions})
	}
	rep := &report{Backend: name, Config: cfg}

	t0 := time.Now()
	r.newPhones()
	rep.Cards = time.Since(t0)

	// Before the handsets start: every card gets Prefill tickets (to the
	// box, since the server has not seen the cards yet), then every
	// handset syncs once, all at once: the card registers, gets its
	// certificate and the tickets.
	op := r.client(r.keys.OperatorToken(), maxOrdersInFlight)
	t0 = time.Now()
	r.parallel(len(r.phones), func(i int) {
		r.order(ctx, op, r.phones[i].serial, fmt.Sprintf("prefill-%d", i), r.cfg.Prefill, false)
	})
	rep.Prefill = time.Since(t0)
	t0 = time.Now()
	var wg sync.WaitGroup
	for _, p := range r.phones {
		wg.Go(func() {
			if _, err := p.hs.Sync(ctx, nil); err != nil {
				r.s.fail("first sync", err)
			}
		})
	}
	wg.Wait()
	rep.Register = time.Since(t0)

	// The load: handsets, operator and gates until Duration has passed;
	// then each finishes what it is doing.
	stop := make(chan struct{})
	var handsets, others sync.WaitGroup
	start := time.Now()
	for _, p := range r.phones {
		handsets.Go(func() { r.handset(ctx, p, stop) })
	}
	others.Go(func() {
		r.operator(ctx, op, stop)
		rep.OpElapsed = time.Since(start)
	})
	journals := make([]*journal.Journal, cfg.Gates)
	for i := range cfg.Gates {
		j, err := journal.Open(filepath.Join(t.TempDir(), fmt.Sprintf("gate-%d.journal", i)))
		require.NoError(t, err)
		t.Cleanup(func() { _ = j.Close() })
		journals[i] = j
		others.Go(func() { r.gate(ctx, i, j, stop) })
	}
	time.Sleep(cfg.Duration)
	close(stop)
	handsets.Wait()
	rep.Elapsed = time.Since(start)
	others.Wait()

	// The final check: every gate's journal uploaded, one clean sync of
	// every card, then the card and the box compared ticket by ticket.
	gc := r.client(r.keys.GateToken(), 1)
	for _, j := range journals {
		if _, err := journal.Upload(ctx, j, gc); err != nil {
			r.s.fail("journal upload", err)
		}
		require.Empty(t, j.Pending(), "journal records not uploaded")
	}
	r.verify(ctx, op, gc, rep)
	r.s.fill(rep)
	r.logs.fill(rep)
	for _, p := range r.phones {
		p.tr.CloseIdleConnections()
	}
	return rep
}

// serve starts a server on r.st with new issuer keys, on a TCP listener
// on the loopback interface, as `simtix server` serves (ListenAndServe),
// and stops it when the test ends.
func (r *rig) serve(ctx context.Context) {
	t := r.t
	var err error
	r.keys, err = issuer.Open(ctx, t.TempDir(), "")
	require.NoError(t, err)
	t.Cleanup(func() { _ = r.keys.Close() })
	srv, err := server.New(server.Config{Store: r.st, Keys: r.keys, Logger: slog.New(r.logs)})
	require.NoError(t, err)
	sctx, stop := context.WithCancel(context.Background())
	addr := make(chan net.Addr, 1)
	done := make(chan error, 1)
	go func() { done <- srv.ListenAndServe(sctx, "127.0.0.1:0", func(a net.Addr) { addr <- a }) }()
	select {
	case a := <-addr:
		r.url = "http://" + a.String()
	case err := <-done:
		stop()
		t.Fatalf("server: %v", err)
	}
	t.Cleanup(func() {
		stop()
		if err := <-done; err != nil {
			t.Errorf("server: %v", err)
		}
		_ = srv.Close()
	})
}

// client returns a client of the server with token, on a transport of its
// own that keeps up to conns connections open.
func (r *rig) client(token string, conns int) *apiclient.Client {
	c, _ := r.clientTransport(token, conns)
	return c
}

func (r *rig) clientTransport(token string, conns int) (*apiclient.Client, *http.Transport) {
	tr := &http.Transport{
		DialContext:         (&net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		MaxIdleConns:        conns,
		MaxIdleConnsPerHost: conns,
		IdleConnTimeout:     2 * time.Minute,
	}
	r.t.Cleanup(tr.CloseIdleConnections)
	c, err := apiclient.New(r.url, token, &http.Client{Transport: tr, Timeout: 2 * time.Minute})
	require.NoError(r.t, err)
	return c, tr
}

// newPhones makes the cards (in memory, 2 KB, personalised with the
// server's master secret, both interfaces powered) and their handsets,
// each with an HTTP connection of its own, as separate phones would have.
func (r *rig) newPhones() {
	r.phones = make([]*phone, r.cfg.Handsets)
	for i := range r.cfg.Handsets {
		serial := ticketfmt.Serial{0x89, 0x86, 0x07, 0, 0, 0, byte(i >> 24), byte(i >> 16), byte(i >> 8), byte(i)}
		ram, err := emulator.Personalise(applet.Personalisation{Serial: serial, Master: r.keys.Master(), Capacity: applet.DefaultCapacity})
		require.NoError(r.t, err)
		card, err := emulator.New(ram, emulator.Options{})
		require.NoError(r.t, err)
		for _, in := range []applet.Interface{applet.Contact, applet.Contactless} {
			_, err := card.PowerOn(context.Background(), in)
			require.NoError(r.t, err)
		}
		bc, tr := r.clientTransport("", 1)
		r.phones[i] = &phone{serial: serial, card: card, tr: tr,
			hs: &handset.Handset{Card: hostlib.NewApplet(card.Port(applet.Contact), hostlib.ClientOptions{}), Box: bc}}
	}
}

// parallel runs fn(0) … fn(n-1) on setupWorkers goroutines (fn must not
// call t.FailNow: it records failures instead).
func (r *rig) parallel(n int, fn func(i int)) {
	next := make(chan int)
	var wg sync.WaitGroup
	for range min(n, setupWorkers) {
		wg.Go(func() {
			for i := range next {
				fn(i)
			}
		})
	}
	for i := range n {
		next <- i
	}
	close(next)
	wg.Wait()
}

// handset syncs p's card again and again, with a pause between syncs,
// until stop; the sync under way when stop comes finishes.
func (r *rig) handset(ctx context.Context, p *phone, stop <-chan struct{}) {
	if !sleep(stop, jitter(r.cfg.Pause)) {
		return
	}
	for {
		select {
		case <-stop:
			return
		default:
		}
		t0 := time.Now()
		res, err := p.hs.Sync(ctx, nil)
		d := time.Since(t0)
		if err != nil {
			r.s.fail("sync", err)
			if !sleep(stop, 100*time.Millisecond) {
				return
			}
			continue
		}
		r.s.synced(d, res)
		if !sleep(stop, jitter(r.cfg.Pause)) {
			return
		}
	}
}

// jitter returns a duration uniform in [d/2, 3d/2].
func jitter(d time.Duration) time.Duration {
	if d <= 0 {
		return 0
	}
	return d/2 + rand.N(d+1)
}

// sleep waits d, or until stop; it reports whether stop has not come.
func sleep(stop <-chan struct{}, d time.Duration) bool {
	if d <= 0 {
		select {
		case <-stop:
			return false
		default:
			return true
		}
	}
	tm := time.NewTimer(d)
	defer tm.Stop()
	select {
	case <-stop:
		return false
	case <-tm.C:
		return true
	}
}

// operator orders tickets for random cards at cfg.Orders a second until
// stop, whatever the server's answer time (up to maxOrdersInFlight orders
// under way), and waits for the orders under way.
func (r *rig) operator(ctx context.Context, op *apiclient.Client, stop <-chan struct{}) {
	tick := time.NewTicker(time.Duration(float64(time.Second) / r.cfg.Orders))
	defer tick.Stop()
	slots := make(chan struct{}, maxOrdersInFlight)
	var wg sync.WaitGroup
	defer wg.Wait()
	for n := 0; ; n++ {
		select {
		case <-stop:
			return
		case <-tick.C:
		}
		select {
		case slots <- struct{}{}:
		default:
			r.s.behind.Add(1)
			continue
		}
		p := r.phones[rand.N(len(r.phones))]
		wg.Go(func() {
			defer func() { <-slots }()
			r.order(ctx, op, p.serial, fmt.Sprintf("load-%d", n), 1+rand.N(r.cfg.MaxOrder), true)
		})
	}
}

// order orders k random corpus tickets for serial under key, sending the
// order again (same key) after an error, and records the answer; timed
// orders' latencies count.
func (r *rig) order(ctx context.Context, op *apiclient.Client, serial ticketfmt.Serial, key string, k int, timed bool) {
	req := api.OrderRequest{Carrier: serial.String(), IdempotencyKey: key}
	for range k {
		req.Tickets = append(req.Tickets, r.lines[rand.N(len(r.lines))])
	}
	for attempt := 1; ; attempt++ {
		t0 := time.Now()
		ans, err := op.Order(ctx, req)
		d := time.Since(t0)
		if err == nil && (len(ans.Tickets) != k || ans.Carrier != serial) {
			err = fmt.Errorf("order %s for %v: %d tickets for %v in the answer, want %d", key, serial, len(ans.Tickets), ans.Carrier, k)
		}
		if err != nil {
			r.s.fail("order", err)
			if attempt == orderAttempts || ctx.Err() != nil {
				r.s.failedOrders.Add(1)
				return
			}
			time.Sleep(time.Duration(attempt) * 100 * time.Millisecond)
			continue
		}
		r.s.ordered(ans, d, timed)
		return
	}
}

// gate checks a random unchecked ticket of a random card, cfg.Checks /
// cfg.Gates times a second, with journal j, until stop; it uploads j and
// downloads the deny list every cfg.Upload, and once more at the end.
func (r *rig) gate(ctx context.Context, i int, j *journal.Journal, stop <-chan struct{}) {
	gc := r.client(r.keys.GateToken(), 1)
	keys, err := gc.IssuerKeys(ctx)
	if err != nil {
		r.s.fail("issuer keys", err)
		return
	}
	var deny []ticketfmt.ID
	upload := func() {
		if _, err := journal.Upload(ctx, j, gc); err != nil {
			r.s.fail("journal upload", err)
		}
		d, err := gc.Deny(ctx)
		if err != nil {
			r.s.fail("deny list", err)
			return
		}
		deny = d
	}
	defer upload()
	tick := time.NewTicker(time.Duration(float64(time.Second) * float64(r.cfg.Gates) / r.cfg.Checks))
	defer tick.Stop()
	last := time.Now()
	for {
		select {
		case <-stop:
			return
		case <-tick.C:
		}
		if time.Since(last) >= r.cfg.Upload {
			upload()
			last = time.Now()
		}
		p := r.phones[rand.N(len(r.phones))]
		snap, err := p.card.Snapshot()
		if err != nil {
			r.s.fail("snapshot", err)
			continue
		}
		var unchecked []*ticketfmt.Ticket
		for _, st := range snap.Tickets {
			if st.State == cardproto.StateUnchecked {
				unchecked = append(unchecked, st.Ticket)
			}
		}
		if len(unchecked) == 0 {
			r.s.refused("no unchecked ticket on the card")
			continue
		}
		tk := unchecked[rand.N(len(unchecked))]
		// The gate's clock: ten minutes before the ticket's use.
		now := tk.Date.In(tk.Time, time.UTC).Add(-10 * time.Minute)
		g, err := gate.New(gate.Config{Keys: keys, Venue: tk.Seller, Location: time.UTC, Journal: j,
			ID: [4]byte{'L', 'G', 0, byte(i)}, Now: func() time.Time { return now }})
		if err != nil {
			r.s.fail("gate", err)
			return
		}
		g.SetDenyList(deny)
		t0 := time.Now()
		v, err := g.Check(ctx, p.card.Port(applet.Contactless))
		d := time.Since(t0)
		switch {
		case err != nil:
			r.s.fail("check", err)
		case v.Accepted:
			r.s.admitted(v.Ticket.ID, d)
		default:
			r.s.refused(refusal(v.Reason))
		}
	}
}

// refusal names a gate's reason for refusing a ticket.
func refusal(err error) string {
	for _, e := range []error{gate.ErrNoTicket, gate.ErrCardRefused, gate.ErrDenied, gate.ErrJournaled, gate.ErrTooEarly,
		gate.ErrTooLate, gate.ErrNoCertificate, gate.ErrCertificate, gate.ErrSignature, gate.ErrBinding, gate.ErrVenue, gate.ErrReceipt} {
		if errors.Is(err, e) {
			return e.Error()
		}
	}
	return fmt.Sprintf("other: %v", err)
}

// verify runs one final sync of every card, then checks that each card's
// file and the box's view of its tickets agree (placement.Check), that
// every ticket ordered is on its card, in the box or checked, once, that
// the box holds no other, that every admitted ticket is checked and that
// the deny list is exactly the checked tickets.
func (r *rig) verify(ctx context.Context, op, gc *apiclient.Client, rep *report) {
	views := make([][]api.TicketView, len(r.phones))
	snaps := make([]applet.Snapshot, len(r.phones))
	ok := make([]bool, len(r.phones))
	var mu sync.Mutex
	problem := func(format string, args ...any) {
		mu.Lock()
		defer mu.Unlock()
		if len(rep.Problems) < 20 {
			rep.Problems = append(rep.Problems, fmt.Sprintf(format, args...))
		}
		rep.ProblemCount++
	}
	r.parallel(len(r.phones), func(i int) {
		p := r.phones[i]
		if _, err := p.hs.Sync(ctx, nil); err != nil {
			r.s.fail("final sync", err)
			return
		}
		snap, err := p.card.Snapshot()
		if err != nil {
			r.s.fail("snapshot", err)
			return
		}
		view, err := op.Tickets(ctx, p.serial.String())
		if err != nil {
			r.s.fail("tickets view", err)
			return
		}
		snaps[i], views[i], ok[i] = snap, view.Tickets, true
		if err := placement.Check(snap, view.Tickets); err != nil {
			problem("card %v after its final sync: %v", p.serial, err)
			if errors.Is(err, placement.ErrMisplaced) {
				rep.Misplaced++
			}
			return
		}
		mu.Lock()
		rep.Settled++
		mu.Unlock()
	})

	issued := r.s.issuedTickets()
	seen := map[ticketfmt.ID]box.State{}
	onCards := map[ticketfmt.ID]ticketfmt.Serial{}
	rep.States = map[box.State]int{}
	verified := map[ticketfmt.Serial]bool{}
	for i, p := range r.phones {
		if !ok[i] {
			continue
		}
		verified[p.serial] = true
		for _, tv := range views[i] {
			if _, twice := seen[tv.ID]; twice {
				problem("ticket %v in the box's view of two cards", tv.ID)
			}
			seen[tv.ID] = tv.State
			rep.States[tv.State]++
			to, ordered := issued[tv.ID]
			switch {
			case !ordered:
				problem("ticket %v of card %v was never ordered", tv.ID, p.serial)
			case to != p.serial:
				problem("ticket %v ordered for %v is card %v's", tv.ID, to, p.serial)
			}
		}
		for _, st := range snaps[i].Tickets {
			if other, twice := onCards[st.Ticket.ID]; twice {
				problem("ticket %v stored twice: on %v and on %v", st.Ticket.ID, other, p.serial)
			}
			onCards[st.Ticket.ID] = p.serial
		}
	}
	for id, to := range issued {
		if _, there := seen[id]; !there {
			// A card that could not be verified counts all its tickets.
			rep.Lost++
			if verified[to] {
				problem("ticket %v ordered for %v is nowhere", id, to)
			}
		}
	}
	for id := range r.s.admittedTickets() {
		if seen[id] != box.Checked {
			problem("ticket %v admitted at a gate is %q in the box", id, seen[id])
		}
	}
	for id, route := range r.s.routeOf() {
		if route == "box" && (seen[id] == box.OnCard || seen[id] == box.Checked) {
			rep.Migrated++
		}
	}

	var counts map[box.State]int
	err := r.st.View(ctx, func(tx store.Tx) error {
		var err error
		counts, err = tx.CountTickets(ctx)
		return err
	})
	if err != nil {
		problem("counting the store's tickets: %v", err)
	}
	total := 0
	for _, n := range counts {
		total += n
	}
	if total != len(issued) {
		problem("the store holds %d tickets, %d were ordered", total, len(issued))
	}
	deny, err := gc.Deny(ctx)
	if err != nil {
		r.s.fail("deny list", err)
	}
	if len(deny) != rep.States[box.Checked] {
		problem("deny list of %d tickets, %d checked", len(deny), rep.States[box.Checked])
	}
	for _, id := range deny {
		if seen[id] != box.Checked {
			problem("ticket %v on the deny list is %q", id, seen[id])
		}
	}
}
