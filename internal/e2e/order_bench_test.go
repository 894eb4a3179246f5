package e2e_test

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/simtix/simtix/api"
	"github.com/simtix/simtix/applet"
	"github.com/simtix/simtix/internal/systemtest"
	"github.com/simtix/simtix/ticketfmt"
)

// BenchmarkOrderToCard measures the time from an order of one ticket for a
// card that has room, while a handset watches it, to the ticket stored on
// the card (network.md: a direct ticket, "a handset that is watching is
// told at once"): the order's transaction and answer, the box waking the
// handset's long poll, its sync and the STORE. The handset polls STATUS
// only once a minute, so only the long poll can bring the ticket within
// the benchmark's times. In-process, on each database; a card takes 30
// tickets (its count is 32), then the next iterations go to a fresh card
// and handset (untimed).
func BenchmarkOrderToCard(b *testing.B) {
	for _, db := range databases {
		b.Run(db.name, func(b *testing.B) {
			env := systemtest.New(b, db.options(b))
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Minute)
			defer cancel()
			tmpl := systemtest.Tickets(b)[0]
			var (
				r       rig
				stop    func()
				held    int
				cards   int
				lat     samples
				ordered int
			)
			fresh := func() {
				if stop != nil {
					stop()
				}
				cards++
				card := env.NewCard(fmt.Sprintf("8986001234567892%04d", cards), 8192)
				snap, err := card.Snapshot()
				require.NoError(b, err)
				r = rig{env: env, serial: snap.Serial, contact: card.Port(applet.Contact), snapshot: card.Snapshot}
				stop = watch(ctx, b, r, time.Minute)
				held = 0
			}
			defer func() { stop() }()
			b.StopTimer()
			fresh()
			b.StartTimer()
			for b.Loop() {
				if held == 30 {
					b.StopTimer()
					fresh()
					b.StartTimer()
				}
				tk := tmpl
				tk.Seat = fmt.Sprintf("Row %02d Seat %03d", ordered/1000%100, ordered%1000)
				ordered++
				start := time.Now()
				ans, err := env.Operator().Order(ctx, api.OrderRequest{Carrier: r.serial.String(),
					IdempotencyKey: fmt.Sprintf("order-to-card-%d", orders.Add(1)), Tickets: []api.OrderTicket{tk}})
				require.NoError(b, err)
				require.Equal(b, "card", ans.Tickets[0].Route, "the card has room")
				onCard(ctx, b, r, ans.Tickets[0].ID)
				lat = append(lat, time.Since(start))
				held++
			}
			b.StopTimer()
			b.ReportMetric(ms(lat.quantile(0.5)), "p50-ms")
			b.ReportMetric(ms(lat.quantile(0.99)), "p99-ms")
			b.ReportMetric(ms(slices.Max(lat)), "max-ms")
		})
	}
}

// onCard waits until the card of r holds ticket id, looking every 200 µs.
func onCard(ctx context.Context, tb testing.TB, r rig, id ticketfmt.ID) {
	tb.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) && ctx.Err() == nil {
		snap, err := r.snapshot()
		require.NoError(tb, err)
		if slices.ContainsFunc(snap.Tickets, func(st applet.StoredTicket) bool { return st.Ticket.ID == id }) {
			return
		}
		time.Sleep(200 * time.Microsecond)
	}
	tb.Fatalf("ticket %v not on the card after 30 s", id)
}
