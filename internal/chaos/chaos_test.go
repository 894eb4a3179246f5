package chaos

import (
	"errors"
	"flag"
	"fmt"
	"math/rand/v2"
	"net/http"
	"os"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/simtix/simtix/apdu"
	"github.com/simtix/simtix/api"
	"github.com/simtix/simtix/apiclient"
	"github.com/simtix/simtix/applet"
	"github.com/simtix/simtix/box"
	"github.com/simtix/simtix/cardproto"
	"github.com/simtix/simtix/hostlib"
	"github.com/simtix/simtix/hostlib/gate"
	"github.com/simtix/simtix/hostlib/gate/journal"
	"github.com/simtix/simtix/hostlib/handset"
	"github.com/simtix/simtix/nvm"
	"github.com/simtix/simtix/ticketfmt"
)

var (
	seedFlag = flag.String("chaos.seed", "",
		"seed of the migration-under-faults test: a number, or \"random\" (default: the fixed seed 1, then a random one; env SIMTIX_CHAOS_SEED)")
	stepsFlag = flag.Int("chaos.steps", 0,
		"steps of each run (default 300, 100 with -short; env SIMTIX_CHAOS_STEPS)")
)

// The defaults of a run in `go test ./...`, and how often a long run
// reports its progress.
const (
	defaultSeed   = 1
	defaultSteps  = 300
	shortSteps    = 100
	progressEvery = 1000
)

// runs returns the seeds to run and the steps of each, from the flags, the
// environment or the defaults.
func runs(t *testing.T) (seeds []uint64, steps int) {
	spec := *seedFlag
	if spec == "" {
		spec = os.Getenv("SIMTIX_CHAOS_SEED")
	}
	steps = *stepsFlag
	if v := os.Getenv("SIMTIX_CHAOS_STEPS"); steps == 0 && v != "" {
		n, err := strconv.Atoi(v)
		require.NoError(t, err, "SIMTIX_CHAOS_STEPS")
		steps = n
	}
	if steps <= 0 {
		steps = defaultSteps
		if testing.Short() {
			steps = shortSteps
		}
	}
	switch spec {
	case "":
		return []uint64{defaultSeed, randomSeed()}, steps
	case "random":
		return []uint64{randomSeed()}, steps
	}
	seed, err := strconv.ParseUint(spec, 10, 64)
	require.NoError(t, err, "-chaos.seed / SIMTIX_CHAOS_SEED: want a number or \"random\"")
	return []uint64{seed}, steps
}

// randomSeed is a fresh seed that fits in an int64 (it prints the same in
// every tool).
func randomSeed() uint64 { return rand.Uint64() >> 1 }

// TestMigrationUnderFaults runs random steps (orders, syncs, exchanges,
// gate checks, journal uploads, server restarts) against one server and
// several cards, injecting a fault into most of them, and checks after
// every step that each unchecked ticket is on its card or in the box,
// never both and never neither, that no ticket is stored twice or comes
// back to a card once checked, and that every check is admitted and
// recorded once. It ends by draining: clean syncs and checks until every
// ticket is checked exactly once.
func TestMigrationUnderFaults(t *testing.T) {
	seeds, steps := runs(t)
	for _, seed := range seeds {
		t.Run(fmt.Sprintf("seed=%d", seed), func(t *testing.T) {
			w := newWorld(t, seed)
			t.Cleanup(func() {
				if t.Failed() {
					t.Logf("last events:\n%s", w.log.dump())
					t.Logf("FAILED at step %d of seed %d; replay with\n\tgo test ./internal/chaos -run TestMigrationUnderFaults -v -chaos.seed=%d -chaos.steps=%d",
						w.step, seed, seed, min(w.step, steps))
				}
			})
			t.Logf("seed %d, %d steps", seed, steps)
			start := time.Now()
			w.verify()
			for w.step = 1; w.step <= steps; w.step++ {
				w.randomStep()
				w.verify()
				if w.step%progressEvery == 0 && w.step < steps {
					t.Logf("step %d: %.0f steps/s, %d tickets issued, %d admitted", w.step,
						float64(w.step)/time.Since(start).Seconds(), w.stats.issued, w.stats.admitted)
				}
			}
			w.step = steps + 1 // the drain
			w.drain()
			w.verifyFinal()
			w.report(steps, time.Since(start))
		})
	}
}

// choice is one outcome of a weighted pick: a value and its weight.
type choice[T any] struct {
	v      T
	weight int
}

// pick draws one of cs's values, each with the odds of its weight.
func pick[T any](rng *rand.Rand, cs []choice[T]) T {
	total := 0
	for _, c := range cs {
		total += c.weight
	}
	n := rng.IntN(total)
	for _, c := range cs {
		if n < c.weight {
			return c.v
		}
		n -= c.weight
	}
	panic("unreachable")
}

// The fault mixes: how often each kind strikes a step of each sort, and
// the range of the APDU, page write or HTTP request it strikes at.
var (
	syncFaults = []choice[faultKind]{{noFault, 30}, {cardDrop, 10}, {cardRemoveBefore, 8}, {cardRemoveAfter, 10},
		{cardTear, 16}, {cardWriteFail, 5}, {serverRestart, 8}, {netDropRequest, 4}, {netDropResponse, 7}, {netDuplicate, 7},
		{gateMidSync, 8}, {orderMidSync, 5}, {handsetMidSync, 5}}
	checkFaults = []choice[faultKind]{{noFault, 40}, {cardDrop, 15}, {cardRemoveBefore, 10}, {cardRemoveAfter, 15},
		{cardTear, 20}, {cardWriteFail, 5}}
	// An exchange meets a check of the ticket it gives more often.
	exchangeFaults = append([]choice[faultKind]{{gateMidSync, 20}}, syncFaults...)
	orderFaults    = []choice[faultKind]{{noFault, 70}, {netDropRequest, 5}, {netDropResponse, 15}, {netDuplicate, 10}}
	uploadFaults   = []choice[faultKind]{{noFault, 55}, {netDropRequest, 10}, {netDropResponse, 20}, {netDuplicate, 15}}
)

// Where a fault strikes: APDUs of a sync (SELECT, two rounds of BEGIN
// SYNC and LIST, the plan's commands, chained and with GET RESPONSE),
// page writes of a sync (each committed command writes a few pages), HTTP
// requests of a sync (two challenges, two syncs); and the same of a check
// (SELECT, FIND, CHECK).
const (
	syncAPDUs, syncWrites, syncRequests = 12, 32, 4
	checkAPDUs, checkWrites             = 4, 6
	uploadRequests                      = 2
)

// fault picks a fault from mix, striking within the ranges given.
func (w *world) fault(mix []choice[faultKind], apdus, writes, requests int) fault {
	f := fault{kind: pick(w.rng, mix)}
	switch f.kind {
	case cardTear:
		f.at = 1 + w.rng.IntN(writes)
		f.mode = nvm.TearMode(w.rng.IntN(3))
	case cardWriteFail:
		f.at = 1 + w.rng.IntN(writes)
	case netDropRequest, netDropResponse, netDuplicate:
		f.at = 1 + w.rng.IntN(requests)
	case noFault:
	default:
		f.at = 1 + w.rng.IntN(apdus)
	}
	w.stats.injected[f.kind]++
	return f
}

// randomStep runs one step of a random sort.
func (w *world) randomStep() {
	sorts := []choice[func()]{
		{w.orderStep, 22},
		{func() { w.syncStep(w.cards[w.rng.IntN(numCards)], nil) }, 33},
		{w.exchangeStep, 8},
		{w.checkStep, 27},
		{w.uploadStep, 6},
		{w.restartStep, 4},
	}
	pick(w.rng, sorts)()
}

// orderStep orders one to three tickets for a random card, through a
// network that may lose the request or the answer, or send it twice; the
// operator sends a lost order again with its idempotency key.
func (w *world) orderStep() {
	c := w.cards[w.rng.IntN(numCards)]
	if w.outstanding(c) >= maxOutstanding {
		w.syncStep(c, nil)
		return
	}
	w.stats.steps["order"]++
	w.order(c, w.fault(orderFaults, 0, 0, 1))
}

// order orders one to three tickets for card c, with fault f (on the
// network only).
func (w *world) order(c *card, f fault) {
	lines := make([]api.OrderTicket, 1+w.rng.IntN(3))
	for i := range lines {
		lines[i] = w.templates[w.rng.IntN(len(w.templates))]
	}
	w.stats.orders++
	req := api.OrderRequest{Carrier: c.serial.String(), IdempotencyKey: fmt.Sprintf("chaos-%d-%d", w.seed, w.stats.orders), Tickets: lines}
	w.net.arm(f)
	ans, err := w.operator.Order(w.ctx, req)
	struck := w.net.disarm()
	w.log.add("step %d: order of %d for card %d, %v: %v", w.step, len(lines), c.idx, f, errText(err))
	if struck {
		w.stats.fired[f.kind]++
		if f.kind != netDuplicate {
			require.Error(w.t, err, "a lost order answered")
			ans, err = w.operator.Order(w.ctx, req)
			require.NoError(w.t, err, "the order sent again")
		}
		require.Equal(w.t, f.kind != netDropRequest, ans.Replayed, "the order replayed after %v", f)
	}
	require.NoError(w.t, err, "order")
	require.Len(w.t, ans.Tickets, len(lines))
	if ans.Replayed {
		w.stats.replayed++
	}
	for _, tk := range ans.Tickets {
		_, dup := w.issued[tk.ID]
		require.False(w.t, dup, "ticket %v issued twice", tk.ID)
		w.issued[tk.ID] = c.idx
		w.perCard[c.idx]++
		w.stats.issued++
	}
}

// outstanding counts a card's tickets not checked yet, as the box saw them
// at the last verify.
func (w *world) outstanding(c *card) int {
	n := 0
	for _, t := range w.views[c.idx] {
		if t.State != box.Checked {
			n++
		}
	}
	return n
}

// syncStep runs the handset's sync of card c (with an exchange, when ex
// is set) with a random fault. A sync that ends without an error must
// leave the card settled; one the fault did not strike must end without
// one.
func (w *world) syncStep(c *card, ex *handset.Exchange) {
	kind := "sync"
	if ex != nil {
		kind = "exchange"
	}
	w.stats.steps[kind]++
	mix := syncFaults
	if ex != nil {
		mix = exchangeFaults
	}
	f := w.fault(mix, syncAPDUs, syncWrites, syncRequests)
	t, fired := w.faulty(c, applet.Contact, f, func(k faultKind) bool {
		switch k {
		case gateMidSync:
			return w.midSyncCheck(c, ex)
		case orderMidSync:
			w.order(c, fault{})
			return true
		}
		w.log.add("    another handset syncs card %d", c.idx)
		w.cleanSync(c)
		return true
	})
	w.net.arm(f)
	h := &handset.Handset{Card: hostlib.NewApplet(t, hostlib.ClientOptions{}), Box: w.handsets}
	apdus, writes := w.apdus, c.ram.Stats().PageWrites
	res, err := h.Sync(w.ctx, ex)
	apdus, writes = w.apdus-apdus, c.ram.Stats().PageWrites-writes
	struck := fired()
	if w.net.disarm() {
		struck = true
	}
	w.present(c)
	w.stats.syncs++
	if struck {
		w.stats.fired[f.kind]++
	}
	refused := ex != nil && httpStatus(err) == http.StatusUnprocessableEntity
	w.log.add("step %d: %s of card %d, %v (struck %v): %d/%d steps, refused %v: %v", w.step, kind, c.idx, f, struck,
		res.Steps, res.Planned, res.Refused, errText(err))
	if res.Refused != 0 {
		w.stats.refusals[res.Refused]++
	}
	switch {
	case ex != nil && err == nil:
		w.stats.swapped++
	case refused:
		w.stats.exchangeRefused++
	case err != nil:
		w.stats.syncErrors++
	}
	if err == nil && f.kind == gateMidSync && struck {
		// A ticket checked after the plan was made: the card refuses to
		// delete it unchecked, and the sync ends with it checked on the
		// card, for the next sync to delete.
		require.Contains(w.t, []apdu.StatusWord{0, apdu.SWConditionsNotSatisfied}, res.Refused, "a sync with a check under way")
		return
	}
	if err == nil && f.kind == cardWriteFail && struck {
		// A command the card could not write is refused (6400) and changes
		// nothing; the closing round voids the rest of the plan (a checked
		// ticket may stay on the card until the next sync).
		require.Contains(w.t, []apdu.StatusWord{0, apdu.SWWriteFailed}, res.Refused, "a sync with a write failed")
		return
	}
	if err == nil && f.kind == handsetMidSync && struck {
		// The other sync's BEGIN SYNC voided this one's authorisations:
		// the card refuses them as stale (or refuses the end of a chain the
		// other sync broke as malformed), and the closing round settles
		// everything.
		require.Contains(w.t, []apdu.StatusWord{0, apdu.SWStaleAuthorization, apdu.SWWrongData, apdu.SWWrongLength},
			res.Refused, "a sync with another one under way")
		w.settled, w.partial = c, true
		return
	}
	if err == nil {
		require.Zero(w.t, res.Refused, "a sync that ended well had a step refused")
		// An order under way, or an exchange, may leave room for tickets
		// of the box.
		w.settled, w.partial = c, ex != nil || (f.kind == orderMidSync && struck)
		w.stats.wellEnded++
		w.stats.syncAPDUs += apdus
		w.stats.syncWrites += int(writes)
		w.stats.maxSyncAPDUs = max(w.stats.maxSyncAPDUs, apdus)
		w.stats.maxSyncWrites = max(w.stats.maxSyncWrites, int(writes))
		return
	}
	if !struck && !refused {
		require.NoError(w.t, err, "a sync that no fault struck")
	}
}

// exchangeStep asks for a random ticket of the box in place of a random
// unchecked ticket of the card (falling back to a sync when there is
// none).
func (w *world) exchangeStep() {
	c := w.cards[w.rng.IntN(numCards)]
	where := map[ticketfmt.ID]box.State{}
	var take []*box.Ticket
	for _, t := range w.views[c.idx] {
		where[t.ID] = t.State
		if t.State == box.InBox {
			take = append(take, t)
		}
	}
	var give []applet.StoredTicket
	for _, st := range w.snaps[c.idx].Tickets {
		if st.State == cardproto.StateUnchecked && where[st.Ticket.ID] == box.OnCard {
			give = append(give, st)
		}
	}
	if len(give) == 0 || len(take) == 0 {
		w.syncStep(c, nil)
		return
	}
	w.stats.exchanges++
	w.syncStep(c, &handset.Exchange{Give: give[w.rng.IntN(len(give))].Ticket.ID, Take: take[w.rng.IntN(len(take))].ID})
}

// checkStep presents a random card at a random gate terminal for the venue
// of one of its unchecked tickets, with a random fault; while the gate
// fails, the holder presents the card again (and the gate finishes the
// check the card may have committed).
func (w *world) checkStep() {
	var cards []*card
	for _, c := range w.cards {
		if len(w.unchecked(c)) > 0 {
			cards = append(cards, c)
		}
	}
	if len(cards) == 0 {
		w.syncStep(w.cards[w.rng.IntN(numCards)], nil)
		return
	}
	w.stats.steps["check"]++
	c := cards[w.rng.IntN(len(cards))]
	tickets := w.unchecked(c)
	target := tickets[w.rng.IntN(len(tickets))].Ticket
	term := w.terminals[w.rng.IntN(numTerminals)]
	term.now = target.Date.In(target.Time, time.UTC).Add(time.Duration(w.rng.IntN(91)-60) * time.Minute)
	g := w.gate(term, target.Seller)
	f := w.fault(checkFaults, checkAPDUs, checkWrites, 0)
	t, fired := w.faulty(c, applet.Contactless, f, nil)
	v, err := g.Check(w.ctx, t)
	struck := fired()
	w.present(c)
	if struck {
		w.stats.fired[f.kind]++
	}
	w.log.add("step %d: check of card %d at terminal %d (%s %s), %v (struck %v): %s", w.step, c.idx, term.idx,
		target.Seller, term.now.Format("2006-01-02 15:04"), f, struck, verdictText(v, err))
	if !struck {
		require.NoError(w.t, err, "a check that no fault struck")
	}
	for taps := 0; err != nil; taps++ {
		require.Less(w.t, taps, 3, "the gate never finished the check: %v", err)
		w.stats.retaps++
		v, err = g.Check(w.ctx, w.slot(c, applet.Contactless))
		w.present(c)
		w.log.add("    presented again: %s", verdictText(v, err))
	}
	w.admit(c, term, v, f.kind == cardWriteFail && struck)
}

// midSyncCheck presents card c at a gate in the middle of its sync: the
// gate checks the ticket an exchange gives, or another. It reports whether
// the gate admitted a ticket.
func (w *world) midSyncCheck(c *card, ex *handset.Exchange) bool {
	snap, err := c.emu.Snapshot()
	require.NoError(w.t, err)
	var tickets []*ticketfmt.Ticket
	for _, st := range snap.Tickets {
		if st.State != cardproto.StateUnchecked {
			continue
		}
		if ex != nil && st.Ticket.ID == ex.Give {
			tickets = []*ticketfmt.Ticket{st.Ticket}
			break
		}
		tickets = append(tickets, st.Ticket)
	}
	if len(tickets) == 0 {
		return false
	}
	target := tickets[w.rng.IntN(len(tickets))]
	term := w.terminals[w.rng.IntN(numTerminals)]
	term.now = target.Date.In(target.Time, time.UTC)
	v, err := w.gate(term, target.Seller).Check(w.ctx, w.slot(c, applet.Contactless))
	w.log.add("    mid-sync check of card %d at terminal %d: %s", c.idx, term.idx, verdictText(v, err))
	require.NoError(w.t, err, "a check in the middle of a sync")
	w.admit(c, term, v, false)
	return v.Accepted
}

// unchecked returns the unchecked tickets on the card, as the last verify
// saw them.
func (w *world) unchecked(c *card) []applet.StoredTicket {
	var out []applet.StoredTicket
	for _, st := range w.snaps[c.idx].Tickets {
		if st.State == cardproto.StateUnchecked {
			out = append(out, st)
		}
	}
	return out
}

// admit keeps a gate's verdict: an admission must be the ticket's first
// anywhere, of a ticket issued to this card; a refusal must be for a
// ticket's time, or (when writeFailed) the card's refusal to check.
func (w *world) admit(c *card, term *terminal, v gate.Verdict, writeFailed bool) {
	w.stats.checks++
	if !v.Accepted {
		for _, r := range []error{gate.ErrTooEarly, gate.ErrTooLate, gate.ErrCardRefused} {
			if errors.Is(v.Reason, r) {
				w.stats.notAdmitted[r.Error()]++
			}
		}
		// The card holds an unchecked ticket of the venue within the
		// window: the gate finds it (or a sooner one, maybe outside the
		// window), and only a failed write makes the card refuse.
		require.True(w.t, errors.Is(v.Reason, gate.ErrTooEarly) || errors.Is(v.Reason, gate.ErrTooLate) ||
			(writeFailed && errors.Is(v.Reason, gate.ErrCardRefused)),
			"the gate refused for %v", v.Reason)
		return
	}
	rec := *v.Record
	if prev, dup := w.admitted[rec.TicketID]; dup {
		require.Failf(w.t, "a ticket admitted twice", "ticket %v: terminal %d at %v, then terminal %d at %v",
			rec.TicketID, prev.terminal, prev.rec.Time, term.idx, rec.Time)
	}
	idx, ok := w.issued[rec.TicketID]
	require.True(w.t, ok && idx == c.idx, "ticket %v admitted from card %d: not issued to it", rec.TicketID, c.idx)
	require.Equal(w.t, c.serial, rec.Serial)
	w.admitted[rec.TicketID] = admission{terminal: term.idx, rec: rec}
	w.stats.admitted++
}

// uploadStep uploads a random terminal's journal and downloads the deny
// list, through a network that may lose a request or an answer or send
// one twice. An upload that went through must have recorded each check
// once.
func (w *world) uploadStep() {
	w.stats.steps["upload"]++
	term := w.terminals[w.rng.IntN(numTerminals)]
	f := w.fault(uploadFaults, 0, 0, uploadRequests)
	pending := term.journal.Pending()
	w.net.arm(f)
	ans, err := journal.Upload(w.ctx, term.journal, w.gates)
	if err == nil {
		err = w.denyList(term)
	}
	struck := w.net.disarm()
	if struck {
		w.stats.fired[f.kind]++
	}
	w.log.add("step %d: upload of terminal %d (%d pending), %v (struck %v): %+v %v", w.step, term.idx, len(pending), f, struck, ans, errText(err))
	if !struck {
		require.NoError(w.t, err, "an upload that no fault struck")
	}
	if err == nil {
		w.stats.uploads++
		w.uploaded(pending, ans)
	}
}

// denyList downloads the deny list into the terminal's gates; every
// ticket on it must have been admitted.
func (w *world) denyList(term *terminal) error {
	ids, err := w.gates.Deny(w.ctx)
	if err != nil {
		return err
	}
	for _, id := range ids {
		_, ok := w.admitted[id]
		require.True(w.t, ok, "ticket %v on the deny list, never admitted", id)
	}
	term.deny = ids
	for _, g := range term.gates {
		g.SetDenyList(ids)
	}
	return nil
}

// uploaded checks an upload's answer and that the server now holds each
// uploaded check exactly once.
func (w *world) uploaded(pending []journal.Record, ans api.JournalAnswer) {
	require.Empty(w.t, ans.CheckedTwice, "tickets checked twice")
	require.Empty(w.t, ans.Rejected, "checks rejected")
	require.Equal(w.t, len(pending), ans.Accepted+ans.Duplicates, "records accepted or known")
	w.serverChecks(pending)
}

// restartStep restarts the server between two steps.
func (w *world) restartStep() {
	w.stats.steps["restart"]++
	w.log.add("step %d: restart", w.step)
	w.restart()
}

// drain syncs every card without faults and checks every ticket on it,
// round after round, until every ticket is checked; then syncs once more
// (the checked tickets leave the cards) and uploads every journal.
func (w *world) drain() {
	w.log.add("drain")
	for round := 1; ; round++ {
		require.LessOrEqual(w.t, round, 100, "the drain does not end")
		w.stats.drainRounds = round
		left := 0
		for _, c := range w.cards {
			w.cleanSync(c)
			for k := 0; ; k++ {
				tickets := w.unchecked(c)
				if len(tickets) == 0 {
					break
				}
				require.Less(w.t, k, 64, "card %d: the gates admit nothing", c.idx)
				tk := tickets[0].Ticket
				term := w.terminals[(c.idx+k)%numTerminals]
				term.now = tk.Date.In(tk.Time, time.UTC)
				v, err := w.gate(term, tk.Seller).Check(w.ctx, w.slot(c, applet.Contactless))
				w.log.add("drain: check of card %d at terminal %d: %s", c.idx, term.idx, verdictText(v, err))
				require.NoError(w.t, err)
				require.True(w.t, v.Accepted, "drain: the gate refused %v: %v", tk.ID, v.Reason)
				w.admit(c, term, v, false)
				w.verify()
			}
			left += w.outstanding(c)
		}
		if left == 0 {
			break
		}
	}
	for _, c := range w.cards {
		w.cleanSync(c)
	}
	for _, term := range w.terminals {
		pending := term.journal.Pending()
		ans, err := journal.Upload(w.ctx, term.journal, w.gates)
		require.NoError(w.t, err)
		w.uploaded(pending, ans)
		require.NoError(w.t, w.denyList(term))
	}
	w.verify()
}

// cleanSync syncs card c with no fault: it must succeed and settle the
// card.
func (w *world) cleanSync(c *card) {
	h := &handset.Handset{Card: hostlib.NewApplet(w.slot(c, applet.Contact), hostlib.ClientOptions{}), Box: w.handsets}
	res, err := h.Sync(w.ctx, nil)
	w.log.add("    clean sync of card %d: %d/%d steps, refused %v: %v", c.idx, res.Steps, res.Planned, res.Refused, errText(err))
	require.NoError(w.t, err, "a clean sync of card %d", c.idx)
	require.Zero(w.t, res.Refused, "a clean sync of card %d", c.idx)
	w.settled, w.partial = c, false
	w.verify()
}

// report logs the run's figures.
func (w *world) report(steps int, took time.Duration) {
	var b strings.Builder
	fmt.Fprintf(&b, "%d steps in %v (%.0f steps/s), drained in %d rounds\n", steps, took.Round(time.Millisecond),
		float64(steps)/took.Seconds(), w.stats.drainRounds)
	fmt.Fprintf(&b, "steps: %s\n", counts(w.stats.steps))
	fmt.Fprintf(&b, "tickets: %d issued in %d orders (%d answers replayed), %d checks admitted of %d presentations (%d presented again)\n",
		w.stats.issued, w.stats.orders, w.stats.replayed, w.stats.admitted, w.stats.checks, w.stats.retaps)
	if len(w.stats.notAdmitted) > 0 {
		fmt.Fprintf(&b, "not admitted: %s\n", counts(w.stats.notAdmitted))
	}
	fmt.Fprintf(&b, "syncs: %d (%d ended in an error), exchanges %d (%d done, %d refused), uploads %d, restarts %d, tears %d, writes failed %d\n",
		w.stats.syncs, w.stats.syncErrors, w.stats.exchanges, w.stats.swapped, w.stats.exchangeRefused, w.stats.uploads,
		w.stats.restarts, w.stats.tears, w.stats.writeFails)
	if n := w.stats.wellEnded; n > 0 {
		fmt.Fprintf(&b, "a sync that ended well: %.1f APDUs (at most %d), %.1f page writes (at most %d)\n",
			float64(w.stats.syncAPDUs)/float64(n), w.stats.maxSyncAPDUs, float64(w.stats.syncWrites)/float64(n), w.stats.maxSyncWrites)
	}
	if len(w.stats.refusals) > 0 {
		sws := map[string]int{}
		for sw, n := range w.stats.refusals {
			sws[fmt.Sprintf("%04X", uint16(sw))] = n
		}
		fmt.Fprintf(&b, "plan steps refused: %s\n", counts(sws))
	}
	b.WriteString("faults (injected/struck):")
	for k := cardDrop; k < numFaults; k++ {
		fmt.Fprintf(&b, " %v %d/%d", k, w.stats.injected[k], w.stats.fired[k])
	}
	w.t.Log(b.String())
}

// counts formats a count per name, in the names' order.
func counts(m map[string]int) string {
	var out []string
	for k, n := range m {
		out = append(out, fmt.Sprintf("%s %d", k, n))
	}
	sort.Strings(out)
	return strings.Join(out, ", ")
}

// httpStatus is the HTTP status of the server's error answer in err, or 0.
func httpStatus(err error) int {
	var ae *apiclient.Error
	if errors.As(err, &ae) {
		return ae.Status
	}
	return 0
}

func errText(err error) string {
	if err == nil {
		return "ok"
	}
	return err.Error()
}

func verdictText(v gate.Verdict, err error) string {
	switch {
	case err != nil:
		return err.Error()
	case v.Accepted:
		return fmt.Sprintf("admitted %v", v.Record.TicketID)
	}
	return fmt.Sprintf("refused: %v", v.Reason)
}
