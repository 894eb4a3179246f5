package chaos

import (
	"context"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/simtix/simtix/apdu"
	"github.com/simtix/simtix/api"
	"github.com/simtix/simtix/apiclient"
	"github.com/simtix/simtix/applet"
	"github.com/simtix/simtix/box"
	"github.com/simtix/simtix/emulator"
	"github.com/simtix/simtix/hostlib/gate"
	"github.com/simtix/simtix/hostlib/gate/journal"
	"github.com/simtix/simtix/internal/systemtest"
	"github.com/simtix/simtix/issuer"
	"github.com/simtix/simtix/nvm"
	"github.com/simtix/simtix/server"
	"github.com/simtix/simtix/store/sqlite"
	"github.com/simtix/simtix/ticketfmt"
)

// The world's size.
const (
	numCards     = 4
	cardCapacity = 2048
	numTerminals = 3
	// cardT0 runs in T=0 (every command with data and an answer answers
	// 61xx first: more APDUs for a fault to strike); cardFew holds at most
	// fewTickets tickets (the count, not the bytes, limits it).
	cardT0, cardFew, fewTickets = 2, 3, 4
	// maxOutstanding bounds a card's unchecked tickets: orders beyond it
	// wait, so that the drain at the end stays short.
	maxOutstanding = 16
)

// world is one server (SQLite in a temporary directory, restartable on the
// same file), its issuer, the emulated cards and the gates, driven by one
// seeded random source, and what the test knows independently of them:
// the tickets it was issued and the checks the gates admitted.
type world struct {
	t    *testing.T
	ctx  context.Context
	seed uint64
	rng  *rand.Rand
	step int
	log  *trace

	keys   *issuer.Keys
	dbPath string
	st     *sqlite.Store
	srv    atomic.Pointer[server.Server]
	hs     *httptest.Server
	net    *flakyNet
	// handsets, operator and gates reach the server through net.
	handsets, operator, gates *apiclient.Client

	templates []api.OrderTicket
	cards     []*card
	terminals []*terminal

	// issued maps every ticket the server issued to its card; perCard
	// counts them.
	issued  map[ticketfmt.ID]int
	perCard []int
	// admitted is every check a gate admitted, by ticket.
	admitted map[ticketfmt.ID]admission
	// offCard holds the admitted tickets seen gone from their card.
	offCard map[ticketfmt.ID]bool

	// The state the last verify saw.
	views [][]*box.Ticket
	snaps []applet.Snapshot
	// settled is a card a sync just synced without an error: it must be
	// settled, and, unless partial, hold every ticket of the box that
	// fits.
	settled *card
	partial bool

	stats stats
	// apdus counts the APDUs sent through faulty transports.
	apdus int

	// mu guards warnings: the server's warnings and errors (a disagreement
	// of the box with a card, a card flagged, a failed request).
	mu       sync.Mutex
	warnings []string
}

// card is one emulated card: its memory outlives the emulator body, which
// is made again after a tear (or to arm one).
type card struct {
	idx    int
	serial ticketfmt.Serial
	ram    *nvm.RAM
	emu    *emulator.Card
	// armed is set while emu carries an injected fault.
	armed bool
	// t0 runs the contact interface in T=0 mode.
	t0 bool
}

// terminal is one gate terminal: its ID, its journal and its clock, and a
// gate per venue it has served (each keeps its own unfinished check).
type terminal struct {
	idx     int
	id      [4]byte
	journal *journal.Journal
	now     time.Time
	gates   map[string]*gate.Gate
	deny    []ticketfmt.ID
}

// admission is a check a gate admitted.
type admission struct {
	terminal int
	rec      journal.Record
}

// stats are the run's figures.
type stats struct {
	steps              map[string]int
	injected, fired    [numFaults]int
	tears, writeFails  int
	restarts           int
	syncs, syncErrors  int
	exchanges, swapped int
	exchangeRefused    int
	orders, issued     int
	replayed           int
	checks, admitted   int
	notAdmitted        map[string]int
	retaps             int
	uploads            int
	drainRounds        int
	// refusals counts the plan steps the card refused, by status word.
	refusals map[apdu.StatusWord]int
	// The APDUs and page writes of the syncs that ended well, and the most
	// of one.
	syncAPDUs, syncWrites       int
	maxSyncAPDUs, maxSyncWrites int
	wellEnded                   int
}

// newWorld starts the server and makes the cards and terminals.
func newWorld(t *testing.T, seed uint64) *world {
	w := &world{t: t, ctx: context.Background(), seed: seed, rng: rand.New(rand.NewPCG(seed, seed^0x5349_4D54_4958)),
		log: &trace{}, issued: map[ticketfmt.ID]int{}, perCard: make([]int, numCards),
		admitted: map[ticketfmt.ID]admission{}, offCard: map[ticketfmt.ID]bool{}}
	w.stats.steps = map[string]int{}
	w.stats.refusals = map[apdu.StatusWord]int{}
	w.stats.notAdmitted = map[string]int{}
	dir := t.TempDir()
	var err error
	w.keys, err = issuer.Open(w.ctx, dir, "")
	require.NoError(t, err)
	t.Cleanup(func() { _ = w.keys.Close() })
	w.dbPath = filepath.Join(dir, "simtix.db")
	w.open()
	w.hs = httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		w.srv.Load().Handler().ServeHTTP(rw, r)
	}))
	base := &http.Transport{MaxIdleConnsPerHost: 4}
	w.net = &flakyNet{base: base}
	t.Cleanup(func() {
		base.CloseIdleConnections()
		w.hs.Close()
		w.close()
	})
	hc := &http.Client{Transport: w.net, Timeout: time.Minute}
	for _, c := range []struct {
		dst   **apiclient.Client
		token string
	}{{&w.handsets, ""}, {&w.operator, w.keys.OperatorToken()}, {&w.gates, w.keys.GateToken()}} {
		*c.dst, err = apiclient.New(w.hs.URL, c.token, hc)
		require.NoError(t, err)
	}
	w.templates = systemtest.Tickets(t)

	for i := range numCards {
		serial, err := ticketfmt.ParseSerial(fmt.Sprintf("89860007%012d", i+1))
		require.NoError(t, err)
		p := applet.Personalisation{Serial: serial, Master: w.keys.Master(), Capacity: cardCapacity}
		if i == cardFew {
			p.MaxTickets = fewTickets
		}
		ram, err := emulator.Personalise(p)
		require.NoError(t, err)
		c := &card{idx: i, serial: serial, ram: ram, t0: i == cardT0}
		w.insert(c, nvm.Fault{})
		w.cards = append(w.cards, c)
	}
	for i := range numTerminals {
		j, err := journal.Open(filepath.Join(dir, fmt.Sprintf("gate%d.journal", i)))
		require.NoError(t, err)
		t.Cleanup(func() { _ = j.Close() })
		w.terminals = append(w.terminals, &terminal{idx: i, id: [4]byte{'G', 'T', 0, byte(i + 1)}, journal: j,
			gates: map[string]*gate.Gate{}})
	}
	return w
}

// open opens the store and starts a server on it.
func (w *world) open() {
	st, err := sqlite.Open(w.ctx, w.dbPath)
	require.NoError(w.t, err)
	logger := slog.New(&logHandler{w: w})
	srv, err := server.New(server.Config{Store: st, Keys: w.keys, Logger: logger})
	require.NoError(w.t, err)
	w.st = st
	w.srv.Store(srv)
}

// close stops the server and closes its store.
func (w *world) close() {
	require.NoError(w.t, w.srv.Load().Close())
	require.NoError(w.t, w.st.Close())
}

// restart closes the server and its store and opens them again on the
// same database file. No request is under way when it is called: the
// test's clients are synchronous and call it between two requests.
func (w *world) restart() {
	w.close()
	w.open()
	w.stats.restarts++
	w.log.add("    server restarted")
}

// insert makes a new body for card c on its memory, with fault f armed,
// and powers both interfaces: the card (re)presented in the handset and in
// the field.
func (w *world) insert(c *card, f nvm.Fault) {
	emu, err := emulator.New(c.ram, emulator.Options{Fault: f, T0: c.t0})
	require.NoError(w.t, err)
	for _, i := range []applet.Interface{applet.Contact, applet.Contactless} {
		_, err := emu.PowerOn(w.ctx, i)
		require.NoError(w.t, err)
	}
	c.emu, c.armed = emu, f.Kind != nvm.NoFault
}

// arm makes the card's next command run with fault f in its memory.
func (w *world) arm(c *card, f nvm.Fault) { w.insert(c, f) }

// present puts the card back after a step: a fresh body (fault disarmed)
// if the step armed one, and both interfaces powered.
func (w *world) present(c *card) {
	if c.armed {
		w.insert(c, nvm.Fault{})
		return
	}
	for _, i := range []applet.Interface{applet.Contact, applet.Contactless} {
		if !c.emu.Powered(i) {
			_, err := c.emu.PowerOn(w.ctx, i)
			require.NoError(w.t, err)
		}
	}
}

// gate returns the terminal's gate for venue.
func (w *world) gate(term *terminal, venue string) *gate.Gate {
	if g := term.gates[venue]; g != nil {
		return g
	}
	g, err := gate.New(gate.Config{Keys: w.keys.KeySet(), Venue: venue, Location: time.UTC, ID: term.id,
		Now: func() time.Time { return term.now }, Journal: term.journal})
	require.NoError(w.t, err)
	g.SetDenyList(term.deny)
	term.gates[venue] = g
	return g
}

// trace keeps the last lines of what the run did, for a failure's report.
type trace struct {
	mu    sync.Mutex
	lines []string
}

const traceLines = 400

func (tr *trace) add(format string, args ...any) {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	tr.lines = append(tr.lines, fmt.Sprintf(format, args...))
	if len(tr.lines) > 2*traceLines {
		tr.lines = append([]string(nil), tr.lines[len(tr.lines)-traceLines:]...)
	}
}

func (tr *trace) dump() string {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	return strings.Join(tr.lines[max(0, len(tr.lines)-traceLines):], "\n")
}

// logHandler keeps the server's log in the trace, and its warnings and
// errors for verify.
type logHandler struct {
	w     *world
	attrs []slog.Attr
}

func (h *logHandler) Enabled(context.Context, slog.Level) bool { return true }

func (h *logHandler) Handle(_ context.Context, r slog.Record) error {
	var b strings.Builder
	for _, a := range h.attrs {
		fmt.Fprintf(&b, " %s=%v", a.Key, a.Value)
	}
	r.Attrs(func(a slog.Attr) bool {
		fmt.Fprintf(&b, " %s=%v", a.Key, a.Value)
		return true
	})
	line := fmt.Sprintf("server %s: %s%s", r.Level, r.Message, b.String())
	h.w.log.add("    %s", line)
	if r.Level >= slog.LevelWarn {
		h.w.mu.Lock()
		h.w.warnings = append(h.w.warnings, line)
		h.w.mu.Unlock()
	}
	return nil
}

func (h *logHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	return &logHandler{w: h.w, attrs: append(append([]slog.Attr(nil), h.attrs...), attrs...)}
}

func (h *logHandler) WithGroup(string) slog.Handler { return h }
