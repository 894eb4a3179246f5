package e2e_test

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/simtix/simtix/api"
	"github.com/simtix/simtix/applet"
	"github.com/simtix/simtix/box"
	"github.com/simtix/simtix/cardproto"
	"github.com/simtix/simtix/contactless"
	"github.com/simtix/simtix/emulator"
	"github.com/simtix/simtix/hostlib"
	"github.com/simtix/simtix/hostlib/gate"
	"github.com/simtix/simtix/hostlib/gate/journal"
	"github.com/simtix/simtix/hostlib/handset"
	"github.com/simtix/simtix/internal/pcscd"
	"github.com/simtix/simtix/internal/systemtest"
	"github.com/simtix/simtix/ticketfmt"
)

// BenchmarkCheck checks one ticket at a gate per iteration: the card's
// APDUs and the modelled contactless time of each accepted check
// (contactless.DefaultModel at each rate, from the check's real bytes by
// gate.Verdict.Timing, and with the card's activation for the time from
// its arrival in the field), and the real wall time of the check on three
// paths:
//
//   - in-process: the gate on the card's contactless emulator port;
//   - pcscd: through pcscd, one connection to the contactless reader held
//     for the whole benchmark;
//   - pcscd-presented: through pcscd, as a card presented to the gate:
//     connect, reset (the card's power-on), check, disconnect.
//
// The cards hold the corpus's tickets: each iteration checks the first
// unchecked ticket on the card, with a gate of its venue whose clock is 10
// minutes before its use, then (untimed) a handset sync deletes it and
// stores the box's next; once all 24 are checked, the corpus is ordered
// again. A multiple of 24 iterations covers the corpus evenly. The gate
// keeps its journal in a file, as a real gate: the wall time includes its
// fsync (journal-p50-µs).
func BenchmarkCheck(b *testing.B) {
	d := pcscd.Start(b, pcscd.Slots(2))
	env := systemtest.New(b, systemtest.Options{})
	inproc, _ := inProcessRig(b, env, "89860012345678900010")
	presented, _ := pcscRig(b, env, d, 0, "89860012345678900011", nil)
	held := presented
	conn := connect(b, d.ContactlessReader(0))
	held.present = func(context.Context) (hostlib.Transport, func() error, error) {
		return conn, func() error { return nil }, nil
	}
	for _, p := range []struct {
		name string
		r    rig
	}{{"in-process", inproc}, {"pcscd", held}, {"pcscd-presented", presented}} {
		s := newSupply(b, p.r)
		b.Run(p.name, func(b *testing.B) { benchCheck(b, s) })
	}
}

// benchCheck is one path of BenchmarkCheck.
func benchCheck(b *testing.B, s *supply) {
	ctx := context.Background()
	rates := contactless.Rates()
	var (
		apdus              int
		check, arrival     = make([]time.Duration, len(rates)), make([]time.Duration, len(rates))
		walls, cards, jrnl samples
	)
	for b.Loop() {
		b.StopTimer()
		g := s.gate(b, ctx)
		b.StartTimer()
		start := time.Now()
		t, leave, err := s.r.present(ctx)
		require.NoError(b, err)
		tt := &timedTransport{t: t}
		v, err := g.Check(ctx, tt)
		require.NoError(b, leave())
		wall := time.Since(start)
		b.StopTimer()
		require.NoError(b, err)
		require.True(b, v.Accepted, "%v", v.Reason)
		apdus += v.APDUs
		for i, r := range rates {
			m := contactless.DefaultModel(r)
			est := v.Timing(m)
			check[i] += est.Total
			arrival[i] += m.Activation().Add(est).Total
		}
		walls, cards, jrnl = append(walls, wall), append(cards, tt.spent), append(jrnl, s.j.spent)
		s.sync(b, ctx)
		b.StartTimer()
	}
	n := float64(len(walls))
	b.ReportMetric(float64(apdus)/n, "apdus/check")
	for i, r := range rates {
		b.ReportMetric(ms(check[i])/n, fmt.Sprintf("ms/check@%d", int(r)))
		b.ReportMetric(ms(arrival[i])/n, fmt.Sprintf("ms/arrival@%d", int(r)))
	}
	b.ReportMetric(us(walls.quantile(0.5)), "wall-p50-µs")
	b.ReportMetric(us(walls.quantile(0.99)), "wall-p99-µs")
	b.ReportMetric(us(cards.quantile(0.5)), "apdus-p50-µs")
	b.ReportMetric(us(jrnl.quantile(0.5)), "journal-p50-µs")
}

// supply keeps a card stocked with the corpus's tickets for a gate to
// check, syncing it with a handset (not watching) between checks.
type supply struct {
	r rig
	h *handset.Handset
	j *timedJournal
}

// orders numbers the benchmarks' orders, for their idempotency keys: two
// supplies may stock the same card.
var orders atomic.Int64

// newSupply returns a supply for the card of r, with a gate journal in a
// temporary directory.
func newSupply(tb testing.TB, r rig) *supply {
	tb.Helper()
	j, err := journal.Open(filepath.Join(tb.TempDir(), "gate.journal"))
	require.NoError(tb, err)
	tb.Cleanup(func() { assert.NoError(tb, j.Close()) })
	return &supply{r: r, h: &handset.Handset{Card: hostlib.NewApplet(r.contact, hostlib.ClientOptions{}), Box: r.env.Client("")}, j: &timedJournal{j: j}}
}

// gate returns a gate for the first unchecked ticket on the card: of its
// venue, its clock 10 minutes before the ticket's use. When the card holds
// no unchecked ticket, it orders the corpus again and syncs first.
func (s *supply) gate(tb testing.TB, ctx context.Context) *gate.Gate {
	tb.Helper()
	for restocked := false; ; restocked = true {
		snap, err := s.r.snapshot()
		require.NoError(tb, err)
		for _, st := range snap.Tickets {
			if st.State != cardproto.StateUnchecked {
				continue
			}
			tk := st.Ticket
			use := tk.Date.In(tk.Time, time.UTC)
			g, err := gate.New(gate.Config{Keys: s.r.env.Keys.KeySet(), Venue: tk.Seller, Location: time.UTC,
				ID: [4]byte{0x42, 0, 0, 1}, Now: func() time.Time { return use.Add(-10 * time.Minute) }, Journal: s.j})
			require.NoError(tb, err)
			return g
		}
		require.False(tb, restocked, "no unchecked ticket on the card after an order of the corpus")
		_, err = s.r.env.Operator().Order(ctx, api.OrderRequest{Carrier: s.r.serial.String(),
			IdempotencyKey: fmt.Sprintf("bench-%d", orders.Add(1)), Tickets: systemtest.Tickets(tb)})
		require.NoError(tb, err)
		s.sync(tb, ctx)
	}
}

// sync runs one handset sync and requires the card to take every step.
func (s *supply) sync(tb testing.TB, ctx context.Context) {
	tb.Helper()
	res, err := s.h.Sync(ctx, nil)
	require.NoError(tb, err)
	require.Zero(tb, res.Refused)
}

// BenchmarkMigration measures, through pcscd, the time from a ticket's
// CHECK at a gate to the next ticket stored on the card by a handset in
// watch mode (network.md, "Migration after a check"), with the handset
// polling STATUS every 50 ms and every 200 ms, the server on SQLite and on
// PostgreSQL.
//
// The card and the box hold tickets of one size for one venue and time, so
// that each check frees room for exactly one ticket from the box (the box
// is restocked, untimed, when it runs out). Each iteration waits, untimed,
// a random time in [0, interval) so that the check falls at a random phase
// of the polling, checks a ticket (the gate connects to the contactless
// reader and resets the card, as a card presented to it), and waits until
// the card has committed the STORE of a new ticket, which the snapshot
// then shows. The times are taken at the card (a wrapper of the device
// that vpcd serves): the CHECK's commit, the first STATUS answered 91xx
// after it, the STORE's commit; and the gate's verdict.
//
// Metrics (p50 and p99 over the iterations): lat, CHECK to STORE; lat/I,
// the same over the polling interval; wait, CHECK to the STATUS that sees
// the notification (the polling: at most I); beyond, that STATUS to the
// STORE (FETCH, the sync's first round with the box, DELETE, STORE: what
// the method adds beyond the polling); verdict, the gate's verdict to the
// STORE. ns/op is the timed part (the check and the wait for the STORE).
func BenchmarkMigration(b *testing.B) {
	d := pcscd.Start(b, pcscd.Slots(2*len(databases)))
	for k, db := range databases {
		b.Run(db.name, func(b *testing.B) {
			env := systemtest.New(b, db.options(b))
			tp := &tap{events: make(chan cardEvent, 4096)}
			r, _ := pcscRig(b, env, d, k, fmt.Sprintf("8986001234567891%04d", k), tp.wrap)
			m := &migration{r: r, tap: tp, template: systemtest.Tickets(b)[0]}
			j, err := journal.Open(filepath.Join(b.TempDir(), "gate.journal"))
			require.NoError(b, err)
			b.Cleanup(func() { assert.NoError(b, j.Close()) })
			use := systemtest.UseTime(m.template, time.UTC)
			m.gate, err = gate.New(gate.Config{Keys: env.Keys.KeySet(), Venue: benchVenue, Location: time.UTC,
				ID: [4]byte{0x42, 0, 0, 2}, Now: func() time.Time { return use.Add(-10 * time.Minute) }, Journal: j})
			require.NoError(b, err)
			for _, interval := range []time.Duration{50 * time.Millisecond, 200 * time.Millisecond} {
				b.Run("interval="+interval.String(), func(b *testing.B) { m.run(b, interval) })
			}
		})
	}
}

// benchVenue is the venue of BenchmarkMigration's tickets.
const benchVenue = "Bench Arena"

// migration is BenchmarkMigration's state for one database.
type migration struct {
	r   rig
	tap *tap
	// template is the corpus's soonest ticket, the model of every
	// ticket ordered.
	template api.OrderTicket
	gate     *gate.Gate
	seats    int
}

// ticket returns the next ticket to order: the template for benchVenue,
// with a new seat (every seat the same length).
func (m *migration) ticket() api.OrderTicket {
	tk := m.template
	tk.Seller, tk.Seat = benchVenue, fmt.Sprintf("Row %02d Seat %03d", m.seats/1000%100, m.seats%1000)
	m.seats++
	return tk
}

// run is one interval of BenchmarkMigration.
func (m *migration) run(b *testing.B, interval time.Duration) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Minute)
	defer cancel()
	stop := watch(ctx, b, m.r, interval)
	defer stop()

	var lat, wait, beyond, verdict samples
	var slowest time.Duration
	var slowestSeen []cardEvent
	for b.Loop() {
		b.StopTimer()
		m.stock(b, ctx)
		before := m.onCard(b)
		time.Sleep(rand.N(interval))
		m.tap.drain()
		b.StartTimer()
		t, leave, err := m.r.present(ctx)
		require.NoError(b, err)
		v, err := m.gate.Check(ctx, t)
		judged := time.Now()
		require.NoError(b, leave())
		require.NoError(b, err)
		require.True(b, v.Accepted, "%v", v.Reason)
		checked, polled, stored, seen := m.tap.migration(b)
		b.StopTimer()

		var fresh []ticketfmt.ID
		for id, state := range m.onCard(b) {
			if _, ok := before[id]; !ok && state == cardproto.StateUnchecked {
				fresh = append(fresh, id)
			}
		}
		require.Len(b, fresh, 1, "the card's snapshot shows one new ticket after the STORE")
		m.settle(ctx, b)
		if d := stored.Sub(checked); d > slowest {
			slowest, slowestSeen = d, seen
		}
		lat, wait, beyond, verdict = append(lat, stored.Sub(checked)), append(wait, polled.Sub(checked)),
			append(beyond, stored.Sub(polled)), append(verdict, stored.Sub(judged))
		b.StartTimer()
	}
	require.Zero(b, m.tap.dropped.Load(), "events of the card were dropped")
	if slowest > interval+100*time.Millisecond {
		b.Logf("the slowest migration took %v; the card answered %s", slowest.Round(time.Millisecond), summary(slowestSeen))
	}
	for _, q := range []struct {
		name string
		q    float64
	}{{"p50", 0.5}, {"p99", 0.99}} {
		b.ReportMetric(ms(lat.quantile(q.q)), "lat-"+q.name+"-ms")
		b.ReportMetric(float64(lat.quantile(q.q))/float64(interval), "lat-"+q.name+"/I")
		b.ReportMetric(ms(wait.quantile(q.q)), "wait-"+q.name+"-ms")
		b.ReportMetric(ms(beyond.quantile(q.q)), "beyond-"+q.name+"-ms")
		b.ReportMetric(ms(verdict.quantile(q.q)), "verdict-"+q.name+"-ms")
	}
}

// stock makes sure the box holds a ticket for the card to take after the
// next check, ordering ten more while it holds none (the first go to the
// card while it has room), and waits until the card and the box have
// settled.
func (m *migration) stock(tb testing.TB, ctx context.Context) {
	tb.Helper()
	for range 10 {
		m.settle(ctx, tb)
		view, err := m.r.env.Operator().Tickets(ctx, m.r.serial.String())
		require.NoError(tb, err)
		if slices.ContainsFunc(view.Tickets, func(tv api.TicketView) bool { return tv.State == box.InBox }) {
			return
		}
		order := make([]api.OrderTicket, 10)
		for i := range order {
			order[i] = m.ticket()
		}
		_, err = m.r.env.Operator().Order(ctx, api.OrderRequest{Carrier: m.r.serial.String(),
			IdempotencyKey: fmt.Sprintf("bench-%d", orders.Add(1)), Tickets: order})
		require.NoError(tb, err)
	}
	tb.Fatal("the box holds no ticket for the card after ten orders")
}

// settle waits until the card and the box have settled (settle) and the
// card has no notification pending: the handset is done, so that the next
// check finds it idle, polling.
func (m *migration) settle(ctx context.Context, tb testing.TB) {
	tb.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		settle(ctx, tb, m.r)
		snap, err := m.r.snapshot()
		require.NoError(tb, err)
		if snap.Notification.Pending == 0 {
			return
		}
		time.Sleep(5 * time.Millisecond)
	}
	tb.Fatal("the card kept a notification pending for 30 s")
}

// onCard returns the tickets on the card with their states.
func (m *migration) onCard(tb testing.TB) map[ticketfmt.ID]byte {
	tb.Helper()
	snap, err := m.r.snapshot()
	require.NoError(tb, err)
	out := map[ticketfmt.ID]byte{}
	for _, st := range snap.Tickets {
		out[st.Ticket.ID] = st.State
	}
	return out
}

// cardEvent is a command the card answered, as the tap saw it.
type cardEvent struct {
	i   applet.Interface
	ins byte
	sw  uint16
	at  time.Time
}

// ok reports whether the command was done: 9000, or 91xx (done, and a
// notification pending).
func (e cardEvent) ok() bool { return e.sw == 0x9000 || e.sw>>8 == 0x91 }

// summary describes the first 40 events but plain STATUS polls briefly:
// interface, instruction and status word, and when, after the first.
func summary(es []cardEvent) string {
	var b strings.Builder
	n := 0
	for _, e := range es {
		if e.ins == cardproto.InsStatus && e.sw == 0x9000 {
			continue
		}
		if n++; n > 40 {
			b.WriteString("...")
			break
		}
		fmt.Fprintf(&b, "%v %02X→%04X +%v; ", e.i, e.ins, e.sw, e.at.Sub(es[0].at).Round(100*time.Microsecond))
	}
	return fmt.Sprintf("%s(%d commands in all)", b.String(), len(es))
}

// tap wraps the device that vpcd serves and reports each command the card
// answered, with the time it answered.
type tap struct {
	emulator.Device
	mu      sync.Mutex
	events  chan cardEvent
	dropped atomic.Int64
}

// wrap makes t wrap dev; it is pcscRig's wrap.
func (t *tap) wrap(dev emulator.Device) emulator.Device {
	t.Device = dev
	return t
}

// Powered reports whether an interface has power (vpcd's tear detection).
func (t *tap) Powered(i applet.Interface) bool {
	return t.Device.(interface{ Powered(applet.Interface) bool }).Powered(i)
}

// Transmit implements emulator.Device. The card runs one command at a
// time; so does the tap, so that the times follow the commands' order.
func (t *tap) Transmit(ctx context.Context, i applet.Interface, cmd []byte) ([]byte, error) {
	t.mu.Lock()
	resp, err := t.Device.Transmit(ctx, i, cmd)
	at := time.Now()
	t.mu.Unlock()
	if err != nil || len(cmd) < 4 || len(resp) < 2 {
		return resp, err
	}
	e := cardEvent{i: i, ins: cmd[1], sw: uint16(resp[len(resp)-2])<<8 | uint16(resp[len(resp)-1]), at: at}
	select {
	case t.events <- e:
	default:
		t.dropped.Add(1)
	}
	return resp, err
}

// drain forgets the events so far.
func (t *tap) drain() {
	for {
		select {
		case <-t.events:
		default:
			return
		}
	}
}

// migration waits for the events of one migration and returns when the
// card committed the gate's CHECK, answered the first command after it
// with a notification (91xx: a STATUS), and committed the STORE of the
// next ticket, and the commands it saw.
func (t *tap) migration(tb testing.TB) (checked, polled, stored time.Time, seen []cardEvent) {
	tb.Helper()
	timeout := time.After(20 * time.Second)
	for stored.IsZero() {
		select {
		case e := <-t.events:
			seen = append(seen, e)
			switch {
			case e.ins == cardproto.InsCheck && e.i == applet.Contactless && e.ok():
				checked = e.at
			case e.ins == cardproto.InsStore && e.i == applet.Contact && e.ok() && !checked.IsZero():
				stored = e.at
			}
		case <-timeout:
			tb.Fatalf("no STORE within 20 s of the check; the card answered %v", summary(seen))
		}
	}
	for _, e := range seen {
		if e.i == applet.Contact && e.sw>>8 == 0x91 && e.at.After(checked) {
			polled = e.at
			break
		}
	}
	if polled.IsZero() {
		tb.Fatalf("no command answered 91xx on the contact interface between the CHECK and the STORE; the card answered %v", summary(seen))
	}
	return checked, polled, stored, seen
}

// timedTransport adds up the time its commands take.
type timedTransport struct {
	t     hostlib.Transport
	spent time.Duration
}

// Transmit implements hostlib.Transport.
func (t *timedTransport) Transmit(ctx context.Context, cmd []byte) ([]byte, error) {
	start := time.Now()
	resp, err := t.t.Transmit(ctx, cmd)
	t.spent += time.Since(start)
	return resp, err
}

// timedJournal is a gate journal that keeps the time of its last Append.
type timedJournal struct {
	j     *journal.Journal
	spent time.Duration
}

// Has implements gate.Journal.
func (j *timedJournal) Has(id ticketfmt.ID) bool { return j.j.Has(id) }

// Append implements gate.Journal.
func (j *timedJournal) Append(r journal.Record) error {
	start := time.Now()
	err := j.j.Append(r)
	j.spent = time.Since(start)
	return err
}

// samples are measured durations.
type samples []time.Duration

// quantile returns the q-quantile (nearest rank) of s, 0 when s is empty.
func (s samples) quantile(q float64) time.Duration {
	if len(s) == 0 {
		return 0
	}
	sorted := slices.Clone(s)
	slices.Sort(sorted)
	k := int(math.Ceil(q*float64(len(sorted)))) - 1
	return sorted[min(max(k, 0), len(sorted)-1)]
}

// ms is d in milliseconds.
func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// us is d in microseconds.
func us(d time.Duration) float64 { return float64(d) / float64(time.Microsecond) }
