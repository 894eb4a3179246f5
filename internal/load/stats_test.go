package load_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"

	"github.com/simtix/simtix/apdu"
	"github.com/simtix/simtix/api"
	"github.com/simtix/simtix/apiclient"
	"github.com/simtix/simtix/box"
	"github.com/simtix/simtix/hostlib/handset"
	"github.com/simtix/simtix/ticketfmt"
)

// maxSamples bounds the error messages a report keeps of each source.
const maxSamples = 10

// stats is what the roles record during a run. It is safe for concurrent
// use. Only the load's own syncs and orders count in the latencies, not
// those of the setup before it or of the final check.
type stats struct {
	behind       atomic.Int64 // operator ticks skipped, all orders busy
	failedOrders atomic.Int64 // orders that never got an answer

	mu            sync.Mutex
	syncs, orders []time.Duration
	checks        []time.Duration
	steps         int // plan steps the cards applied
	refusedSteps  int // syncs whose plan a card refused
	nOrders       int
	tickets       int
	routes        map[string]int
	issued        map[ticketfmt.ID]ticketfmt.Serial
	route         map[ticketfmt.ID]string
	reissued      int
	admit         map[ticketfmt.ID]bool
	admittedTwice int
	refusals      map[string]int
	errs          map[string]int
	samples       []string
}

func newStats() *stats {
	return &stats{routes: map[string]int{}, issued: map[ticketfmt.ID]ticketfmt.Serial{}, route: map[ticketfmt.ID]string{},
		admit: map[ticketfmt.ID]bool{}, refusals: map[string]int{}, errs: map[string]int{}}
}

// fail records an error of a role's operation ("sync", "order", …), by
// kind.
func (s *stats) fail(op string, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.errs[op+": "+classify(err)]++
	if len(s.samples) < maxSamples {
		s.samples = append(s.samples, op+": "+err.Error())
	}
}

// synced records a handset's sync.
func (s *stats) synced(d time.Duration, res handset.Result) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.syncs = append(s.syncs, d)
	s.steps += res.Steps
	if res.Refused != 0 {
		s.refusedSteps++
	}
}

// ordered records an order's answer: its tickets, and for a timed order
// its latency and routes.
func (s *stats) ordered(ans api.OrderAnswer, d time.Duration, timed bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, tk := range ans.Tickets {
		if to, twice := s.issued[tk.ID]; twice && (to != ans.Carrier || !ans.Replayed) {
			s.reissued++
		}
		s.issued[tk.ID] = ans.Carrier
		if timed {
			s.route[tk.ID] = tk.Route
		}
	}
	if timed && !ans.Replayed {
		s.orders = append(s.orders, d)
		s.nOrders++
		s.tickets += len(ans.Tickets)
		for _, tk := range ans.Tickets {
			s.routes[tk.Route]++
		}
	}
}

// admitted records a ticket a gate admitted.
func (s *stats) admitted(id ticketfmt.ID, d time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.admit[id] {
		s.admittedTwice++
	}
	s.admit[id] = true
	s.checks = append(s.checks, d)
}

// refused records a gate's refusal, by reason.
func (s *stats) refused(reason string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.refusals[reason]++
}

// issuedTickets returns every ticket ordered, with its card.
func (s *stats) issuedTickets() map[ticketfmt.ID]ticketfmt.Serial {
	s.mu.Lock()
	defer s.mu.Unlock()
	return maps.Clone(s.issued)
}

// routeOf returns the route of every ticket ordered under load, as its
// order answered it.
func (s *stats) routeOf() map[ticketfmt.ID]string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return maps.Clone(s.route)
}

// admittedTickets returns the tickets the gates admitted.
func (s *stats) admittedTickets() map[ticketfmt.ID]bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return maps.Clone(s.admit)
}

// fill copies the figures into rep.
func (s *stats) fill(rep *report) {
	s.mu.Lock()
	defer s.mu.Unlock()
	rep.Syncs, rep.Steps, rep.RefusedPlans = len(s.syncs), s.steps, s.refusedSteps
	rep.SyncP50, rep.SyncP99, rep.SyncMax = percentile(s.syncs, 50), percentile(s.syncs, 99), percentile(s.syncs, 100)
	rep.Orders, rep.Tickets, rep.Routes = s.nOrders, s.tickets, maps.Clone(s.routes)
	rep.OrderP50, rep.OrderP99, rep.OrderMax = percentile(s.orders, 50), percentile(s.orders, 99), percentile(s.orders, 100)
	rep.Behind = int(s.behind.Load())
	rep.Admitted, rep.CheckP50 = len(s.checks), percentile(s.checks, 50)
	rep.Refusals = maps.Clone(s.refusals)
	rep.ErrorKinds, rep.ErrorSamples = maps.Clone(s.errs), slices.Clone(s.samples)
	for _, n := range s.errs {
		rep.Errors += n
	}
	if s.reissued > 0 {
		rep.Problems = append(rep.Problems, fmt.Sprintf("%d ticket IDs issued twice", s.reissued))
	}
	if s.admittedTwice > 0 {
		rep.Problems = append(rep.Problems, fmt.Sprintf("%d tickets admitted twice", s.admittedTwice))
	}
	if n := s.failedOrders.Load(); n > 0 {
		rep.Problems = append(rep.Problems, fmt.Sprintf("%d orders never answered", n))
	}
}

// percentile returns the p-th percentile of ds by nearest rank (p = 100:
// the maximum), or 0 for none.
func percentile(ds []time.Duration, p float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	rank := int(float64(len(s))*p/100+0.999999) - 1
	return s[max(0, min(rank, len(s)-1))]
}

// classify names the kind of a role's error: the HTTP status the server
// answered, or what failed on the way.
func classify(err error) string {
	var ae *apiclient.Error
	var se *apdu.Error
	var ne net.Error
	switch {
	case errors.As(err, &ae):
		return fmt.Sprintf("HTTP %d", ae.Status)
	case errors.Is(err, syscall.EMFILE), errors.Is(err, syscall.ENFILE):
		return "too many open files"
	case errors.Is(err, syscall.EADDRNOTAVAIL):
		return "no local port left"
	case errors.Is(err, syscall.ECONNREFUSED):
		return "connection refused"
	case errors.Is(err, syscall.ECONNRESET), errors.Is(err, syscall.EPIPE):
		return "connection reset"
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return "connection closed"
	case errors.Is(err, context.DeadlineExceeded), errors.As(err, &ne) && ne.Timeout():
		return "timeout"
	case errors.Is(err, context.Canceled):
		return "cancelled"
	case errors.As(err, &se):
		return fmt.Sprintf("card %04X", uint16(se.SW))
	}
	return "other"
}

// logCounter is the server's log handler: it counts the records by level
// and kind and keeps the first few warnings and errors.
type logCounter struct {
	mu      sync.Mutex
	levels  map[slog.Level]int
	kinds   map[string]int
	samples []string
}

func newLogCounter() *logCounter {
	return &logCounter{levels: map[slog.Level]int{}, kinds: map[string]int{}}
}

// Enabled implements slog.Handler: every level counts.
func (h *logCounter) Enabled(context.Context, slog.Level) bool { return true }

// Handle implements slog.Handler.
func (h *logCounter) Handle(_ context.Context, r slog.Record) error {
	var b strings.Builder
	b.WriteString(r.Message)
	r.Attrs(func(a slog.Attr) bool {
		fmt.Fprintf(&b, " %s=%v", a.Key, a.Value)
		return true
	})
	line := b.String()
	h.mu.Lock()
	defer h.mu.Unlock()
	h.levels[r.Level]++
	if r.Level >= slog.LevelWarn {
		h.kinds[r.Level.String()+": "+logKind(r.Message, line)]++
		if len(h.samples) < maxSamples {
			h.samples = append(h.samples, r.Level.String()+" "+line)
		}
	}
	return nil
}

// WithAttrs implements slog.Handler (the server adds none).
func (h *logCounter) WithAttrs([]slog.Attr) slog.Handler { return h }

// WithGroup implements slog.Handler (the server adds none).
func (h *logCounter) WithGroup(string) slog.Handler { return h }

// logKind names what a server log record is about: the database or
// network failure a load may cause, found in its line, or its message.
func logKind(msg, line string) string {
	for _, k := range []string{"database is locked", "SQLITE_BUSY", "too many clients", "too many open files",
		"connection refused", "deadline exceeded", "context canceled"} {
		if strings.Contains(line, k) {
			return k
		}
	}
	return msg
}

// fill copies the counts into rep.
func (h *logCounter) fill(rep *report) {
	h.mu.Lock()
	defer h.mu.Unlock()
	rep.ServerErrors, rep.ServerWarnings = h.levels[slog.LevelError], h.levels[slog.LevelWarn]
	rep.LogKinds, rep.LogSamples = maps.Clone(h.kinds), slices.Clone(h.samples)
}

// report is one run's figures and findings.
type report struct {
	Backend string
	Config  config
	// Cards, Prefill and Register are how long the setup took: making the
	// cards, ordering their first tickets, and every handset's first sync
	// at once.
	Cards, Prefill, Register time.Duration
	// Elapsed is the load's time, from the start of the handsets to the
	// end of their last sync; OpElapsed to the end of the operator's last
	// order.
	Elapsed, OpElapsed time.Duration

	Syncs                     int
	SyncP50, SyncP99, SyncMax time.Duration
	Steps                     int // plan steps applied by the cards
	RefusedPlans              int // syncs whose plan the card refused part of

	Orders, Tickets              int
	Routes                       map[string]int
	OrderP50, OrderP99, OrderMax time.Duration
	Behind                       int // operator ticks skipped

	Admitted int
	CheckP50 time.Duration
	Refusals map[string]int

	Errors       int
	ErrorKinds   map[string]int
	ErrorSamples []string

	ServerErrors, ServerWarnings int
	LogKinds                     map[string]int
	LogSamples                   []string

	// Settled counts the cards in place after their final sync; Misplaced
	// those with a ticket in two places or none.
	Settled, Misplaced int
	// Lost counts the tickets ordered that the box does not know.
	Lost int
	// Migrated counts the overflow tickets that reached their card
	// (on it, or checked at a gate) by the end.
	Migrated int
	States   map[box.State]int
	// Problems are the final check's findings (the first 20 of
	// ProblemCount).
	Problems     []string
	ProblemCount int
}

// rate is n per second of d.
func rate(n int, d time.Duration) float64 {
	if d <= 0 {
		return 0
	}
	return float64(n) / d.Seconds()
}

// ms formats a duration in milliseconds.
func ms(d time.Duration) string {
	v := float64(d) / float64(time.Millisecond)
	switch {
	case v >= 100:
		return fmt.Sprintf("%.0f ms", v)
	case v >= 10:
		return fmt.Sprintf("%.1f ms", v)
	}
	return fmt.Sprintf("%.2f ms", v)
}

// row is the report as a row of docs/benchmarks.md's table.
func (r *report) row() string {
	pause := "none"
	if r.Config.Pause > 0 {
		pause = r.Config.Pause.String()
	}
	return fmt.Sprintf("| %s | %d | %s | %.1f s | %.0f | %.1f | %s | %s | %s | %s | %s | %d | %d |",
		r.Backend, r.Config.Handsets, pause, r.Elapsed.Seconds(), rate(r.Syncs, r.Elapsed), rate(r.Orders, r.OpElapsed),
		ms(r.SyncP50), ms(r.SyncP99), ms(r.SyncMax), ms(r.OrderP50), ms(r.OrderP99), r.Errors, r.Lost)
}

// details is the report in full, for the test's log.
func (r *report) details() string {
	var b strings.Builder
	c := r.Config
	fmt.Fprintf(&b, "%s: %d handsets (pause %v), %.1f orders/s of 1-%d tickets, %d gates at %.1f checks/s (uploads every %v), for %v\n",
		r.Backend, c.Handsets, c.Pause, c.Orders, c.MaxOrder, c.Gates, c.Checks, c.Upload, c.Duration)
	fmt.Fprintf(&b, "setup: cards %v, %d prefill orders of %d tickets %v, first syncs (all at once) %v\n",
		r.Cards.Round(time.Millisecond), c.Handsets, c.Prefill, r.Prefill.Round(time.Millisecond), r.Register.Round(time.Millisecond))
	fmt.Fprintf(&b, "syncs: %d in %v = %.1f/s; p50 %s p99 %s max %s; %d plan steps applied, %d plans refused in part\n",
		r.Syncs, r.Elapsed.Round(time.Millisecond), rate(r.Syncs, r.Elapsed), ms(r.SyncP50), ms(r.SyncP99), ms(r.SyncMax), r.Steps, r.RefusedPlans)
	fmt.Fprintf(&b, "orders: %d = %.1f/s (%d ticks skipped); %d tickets, routes %v; p50 %s p99 %s max %s\n",
		r.Orders, rate(r.Orders, r.OpElapsed), r.Behind, r.Tickets, r.Routes, ms(r.OrderP50), ms(r.OrderP99), ms(r.OrderMax))
	fmt.Fprintf(&b, "gates: %d admitted (check p50 %s), refusals %v\n", r.Admitted, ms(r.CheckP50), r.Refusals)
	fmt.Fprintf(&b, "errors: %d %v %q\n", r.Errors, r.ErrorKinds, r.ErrorSamples)
	fmt.Fprintf(&b, "server log: %d errors, %d warnings %v %q\n", r.ServerErrors, r.ServerWarnings, r.LogKinds, r.LogSamples)
	states := slices.Collect(maps.Keys(r.States))
	sort.Slice(states, func(i, j int) bool { return states[i] < states[j] })
	var st []string
	for _, s := range states {
		st = append(st, fmt.Sprintf("%s %d", s, r.States[s]))
	}
	fmt.Fprintf(&b, "final: %d/%d cards settled, %d misplaced, %d lost, %d overflow tickets migrated; tickets: %s; %d problems %q",
		r.Settled, c.Handsets, r.Misplaced, r.Lost, r.Migrated, strings.Join(st, ", "), r.ProblemCount, r.Problems)
	return b.String()
}

// TestPercentile checks the nearest-rank percentiles the report gives.
func TestPercentile(t *testing.T) {
	var ds []time.Duration
	for i := 100; i >= 1; i-- {
		ds = append(ds, time.Duration(i)*time.Millisecond)
	}
	assert.Equal(t, 50*time.Millisecond, percentile(ds, 50))
	assert.Equal(t, 99*time.Millisecond, percentile(ds, 99))
	assert.Equal(t, 100*time.Millisecond, percentile(ds, 100))
	assert.Equal(t, time.Millisecond, percentile(ds, 0))
	assert.Equal(t, 100*time.Millisecond, ds[0], "the samples are left in their order")
	assert.Zero(t, percentile(nil, 50))
	assert.Equal(t, 7*time.Millisecond, percentile([]time.Duration{7 * time.Millisecond}, 99))
}

// TestClassify checks the kinds the report sorts errors into.
func TestClassify(t *testing.T) {
	for want, err := range map[string]error{
		"HTTP 500":            fmt.Errorf("handset: sync: %w", &apiclient.Error{Status: 500, Message: "internal error"}),
		"too many open files": fmt.Errorf("dial: %w", &net.OpError{Op: "dial", Err: syscall.EMFILE}),
		"connection refused":  fmt.Errorf("dial: %w", &net.OpError{Op: "dial", Err: syscall.ECONNREFUSED}),
		"connection closed":   fmt.Errorf("post: %w", io.ErrUnexpectedEOF),
		"timeout":             fmt.Errorf("post: %w", context.DeadlineExceeded),
		"card 6A84":           fmt.Errorf("step: %w", &apdu.Error{SW: 0x6A84}),
		"other":               errors.New("something else"),
	} {
		assert.Equal(t, want, classify(err), "%v", err)
	}
}

// TestLogCounter checks that the server's log is counted by level and
// kind.
func TestLogCounter(t *testing.T) {
	h := newLogCounter()
	log := slog.New(h)
	log.Info("listening")
	log.Warn("sync disagreement", "card", "8986", "detail", "ticket x: the box had it card, the card does not hold it")
	log.Error("request failed", "err", errors.New("sqlite: commit: database is locked (5) (SQLITE_BUSY)"))
	var rep report
	h.fill(&rep)
	assert.Equal(t, 1, rep.ServerErrors)
	assert.Equal(t, 1, rep.ServerWarnings)
	assert.Equal(t, map[string]int{"WARN: sync disagreement": 1, "ERROR: database is locked": 1}, rep.LogKinds)
	assert.Len(t, rep.LogSamples, 2)
}
