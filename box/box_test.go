package box_test

import (
	"context"
	"math/rand/v2"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/simtix/simtix/applet"
	"github.com/simtix/simtix/box"
	"github.com/simtix/simtix/cardproto"
	"github.com/simtix/simtix/emulator"
	"github.com/simtix/simtix/hostlib"
	"github.com/simtix/simtix/internal/cardtest"
	"github.com/simtix/simtix/ticketfmt"
)

func tk(id byte, date ticketfmt.Date, hour int, size int, state box.State) *box.Ticket {
	return &box.Ticket{ID: ticketfmt.ID{id}, Raw: make([]byte, size), Date: date, Time: ticketfmt.TimeOfDay{Hour: hour}, Seq: int64(id), State: state}
}

var day = ticketfmt.Date{Year: 2026, Month: 12, Day: 5}

func status(free, stored, checked int, epoch, counter uint32) cardproto.StatusTemplate {
	return cardproto.StatusTemplate{Capacity: 2048, Free: free, MaxTickets: 32, Stored: stored, Checked: checked, Overhead: 8, Epoch: epoch, Counter: counter}
}

func TestSettleByCounter(t *testing.T) {
	plan := box.Plan{Epoch: 1, C0: 10, Items: []box.Item{
		{Op: box.OpCertificate},
		{Op: box.OpDelete, Ticket: ticketfmt.ID{1}, Expected: cardproto.StateUnchecked},
		{Op: box.OpStore, Ticket: ticketfmt.ID{2}},
		{Op: box.OpStore, Ticket: ticketfmt.ID{3}},
	}}
	for used := 0; used <= 4; used++ {
		tickets := []*box.Ticket{tk(1, day, 10, 100, box.Returning), tk(2, day, 11, 100, box.Delivering), tk(3, day, 12, 100, box.Delivering)}
		var inv []cardproto.Entry
		if used < 2 {
			inv = append(inv, cardproto.Entry{ID: ticketfmt.ID{1}, Length: 100})
		}
		if used >= 3 {
			inv = append(inv, cardproto.Entry{ID: ticketfmt.ID{2}, Length: 100})
		}
		if used >= 4 {
			inv = append(inv, cardproto.Entry{ID: ticketfmt.ID{3}, Length: 100})
		}
		res, err := box.Sync(box.Card{Plan: plan}, tickets, box.Observation{Status: status(1000, len(inv), 0, 2, 10+uint32(used)), Inventory: inv}, true, nil)
		require.NoError(t, err)
		assert.Empty(t, res.Log, "used %d: the card agrees with the plan", used)
		assert.Equal(t, used >= 1, res.Card.Certified, "used %d", used)
		want := map[ticketfmt.ID]box.State{{1}: box.OnCard, {2}: box.InBox, {3}: box.InBox}
		if used >= 2 {
			want[ticketfmt.ID{1}] = box.InBox
		}
		if used >= 3 {
			want[ticketfmt.ID{2}] = box.OnCard
		}
		if used >= 4 {
			want[ticketfmt.ID{3}] = box.OnCard
		}
		got := map[ticketfmt.ID]box.State{}
		for _, t := range tickets {
			got[t.ID] = t.State
		}
		for _, c := range res.Changes {
			got[c.Ticket.ID] = c.Ticket.State
		}
		assert.Equal(t, want, got, "used %d", used)
		assert.Equal(t, box.Plan{Epoch: 2, C0: 10 + uint32(used)}, res.Plan, "a final sync plans nothing")
		assert.Equal(t, tickets[0].State, box.Returning, "Sync does not modify its input")
	}
	res, err := box.Sync(box.Card{Plan: plan}, nil, box.Observation{Status: status(2048, 0, 0, 2, 99)}, true, nil)
	require.NoError(t, err)
	assert.NotEmpty(t, res.Card.Flags, "a counter outside the plan flags the card")
}

func TestInventoryIsAuthoritative(t *testing.T) {
	gate := [4]byte{'G'}
	when := ticketfmt.DateTime{Date: day, Hour: 19}
	tickets := []*box.Ticket{
		tk(1, day, 10, 100, box.OnCard),  // card shows it checked
		tk(2, day, 11, 100, box.OnCard),  // missing from the card
		tk(3, day, 12, 100, box.Checked), // checked by a gate journal, still unchecked on the card
		tk(4, day, 13, 100, box.InBox),   // on the card after all
	}
	tickets[2].Check = &box.Check{Source: "gate"}
	inv := []cardproto.Entry{
		{ID: ticketfmt.ID{1}, Length: 100, State: cardproto.StateChecked, Check: &cardproto.CheckRecord{Gate: gate, Time: when}},
		{ID: ticketfmt.ID{3}, Length: 100, State: cardproto.StateUnchecked},
		{ID: ticketfmt.ID{4}, Length: 100, State: cardproto.StateUnchecked},
	}
	res, err := box.Sync(box.Card{Certified: true}, tickets, box.Observation{Status: status(2048-324, 3, 1, 1, 0), Inventory: inv}, false, nil)
	require.NoError(t, err)
	states := map[ticketfmt.ID]box.State{}
	for _, c := range res.Changes {
		states[c.Ticket.ID] = c.Ticket.State
	}
	assert.Equal(t, box.Checked, states[ticketfmt.ID{1}])
	assert.Equal(t, box.Delivering, states[ticketfmt.ID{2}], "back in the box, then planned again")
	assert.Equal(t, box.OnCard, states[ticketfmt.ID{4}])
	assert.NotContains(t, states, ticketfmt.ID{3}, "a checked ticket stays checked")
	require.GreaterOrEqual(t, len(res.Plan.Items), 3)
	assert.Equal(t, box.Item{Op: box.OpDelete, Ticket: ticketfmt.ID{1}, Expected: cardproto.StateChecked}, res.Plan.Items[0])
	assert.Equal(t, box.Item{Op: box.OpDelete, Ticket: ticketfmt.ID{3}, Expected: cardproto.StateUnchecked}, res.Plan.Items[1])
	assert.Equal(t, box.Item{Op: box.OpStore, Ticket: ticketfmt.ID{2}}, res.Plan.Items[2], "the missing ticket goes back on")
	assert.NotEmpty(t, res.Log)
}

func TestPlanSoonestFirstWithinRoom(t *testing.T) {
	later := ticketfmt.Date{Year: 2026, Month: 12, Day: 6}
	tickets := []*box.Ticket{
		tk(1, later, 9, 100, box.InBox),
		tk(2, day, 20, 300, box.InBox),
		tk(3, day, 8, 100, box.InBox),
		tk(4, day, 8, 100, box.InBox), // same time as 3, issued after
	}
	// Room for 108 + 108 + 308 = 524 bytes, not the fourth.
	res, err := box.Sync(box.Card{}, tickets, box.Observation{Status: status(530, 0, 0, 1, 5)}, false, nil)
	require.NoError(t, err)
	assert.Equal(t, []box.Item{
		{Op: box.OpCertificate},
		{Op: box.OpStore, Ticket: ticketfmt.ID{3}},
		{Op: box.OpStore, Ticket: ticketfmt.ID{4}},
		{Op: box.OpStore, Ticket: ticketfmt.ID{2}},
	}, res.Plan.Items)
	assert.Equal(t, uint32(5), res.Plan.C0)
	counters := map[ticketfmt.ID]uint32{}
	for _, c := range res.Changes {
		assert.Equal(t, box.Delivering, c.Ticket.State)
		assert.Equal(t, uint32(1), c.Ticket.Epoch)
		counters[c.Ticket.ID] = c.Ticket.Counter
	}
	assert.Equal(t, map[ticketfmt.ID]uint32{{3}: 6, {4}: 7, {2}: 8}, counters, "consecutive counters after the certificate's 5")

	// The count limit.
	st := status(2048, 31, 0, 1, 0)
	res, err = box.Sync(box.Card{Certified: true}, tickets, box.Observation{Status: st}, false, nil)
	require.NoError(t, err)
	assert.Len(t, res.Plan.Items, 1)
}

func TestExchange(t *testing.T) {
	onCard := tk(1, day, 10, 200, box.OnCard)
	wanted := tk(2, day, 9, 250, box.InBox)
	huge := tk(3, day, 9, 600, box.InBox)
	inv := []cardproto.Entry{{ID: onCard.ID, Length: 200, State: cardproto.StateUnchecked}}
	obs := box.Observation{Status: status(100, 1, 0, 3, 0), Inventory: inv}
	res, err := box.Sync(box.Card{Certified: true}, []*box.Ticket{onCard, wanted}, obs, false, &box.Exchange{Give: onCard.ID, Take: wanted.ID})
	require.NoError(t, err)
	assert.Equal(t, []box.Item{
		{Op: box.OpDelete, Ticket: onCard.ID, Expected: cardproto.StateUnchecked},
		{Op: box.OpStore, Ticket: wanted.ID},
	}, res.Plan.Items)
	_, err = box.Sync(box.Card{Certified: true}, []*box.Ticket{onCard, huge}, obs, false, &box.Exchange{Give: onCard.ID, Take: huge.ID})
	assert.ErrorIs(t, err, box.ErrExchange, "does not fit")
	_, err = box.Sync(box.Card{Certified: true}, []*box.Ticket{onCard, wanted}, obs, false, &box.Exchange{Give: wanted.ID, Take: onCard.ID})
	assert.ErrorIs(t, err, box.ErrExchange, "give must be on the card")
}

// world is a card and the box's view of it, driven the way the server and
// the handset will: BEGIN SYNC and LIST, Sync, Authorise, run the steps.
type world struct {
	t       *testing.T
	h       *cardtest.Harness
	handset *hostlib.Applet
	gate    *hostlib.Applet
	card    box.Card
	tickets map[ticketfmt.ID]*box.Ticket
	cert    []byte
	checks  int
	rng     *rand.Rand
}

func newWorld(t *testing.T, seed uint64) *world {
	f := cardtest.VectorFixture(t)
	ram, err := emulator.Personalise(f.Personalisation())
	require.NoError(t, err)
	c, err := emulator.New(ram, emulator.Options{})
	require.NoError(t, err)
	ctx := context.Background()
	for _, i := range []applet.Interface{applet.Contact, applet.Contactless} {
		_, err := c.PowerOn(ctx, i)
		require.NoError(t, err)
	}
	w := &world{t: t, card: box.Card{Serial: f.Serial}, tickets: map[ticketfmt.ID]*box.Ticket{}, rng: rand.New(rand.NewPCG(seed, 2))}
	w.h = cardtest.NewHarness(t, func(testing.TB, cardtest.Fixture) cardtest.Target { return nil }, f)
	w.handset = hostlib.NewApplet(c.Port(applet.Contact), hostlib.ClientOptions{})
	w.gate = hostlib.NewApplet(c.Port(applet.Contactless), hostlib.ClientOptions{})
	_, err = w.handset.Select(ctx)
	require.NoError(t, err)
	_, err = w.gate.Select(ctx)
	require.NoError(t, err)
	cert := ticketfmt.Certificate{Serial: f.Serial, PublicKey: &f.CardKey.PublicKey}
	require.NoError(t, cert.Sign(f.Issuer))
	w.cert, err = cert.Marshal()
	require.NoError(t, err)
	return w
}

func (w *world) order(n int) {
	for i := range n {
		raw := w.h.Issue(i)
		tk, err := ticketfmt.Unmarshal(raw)
		require.NoError(w.t, err)
		w.tickets[tk.ID] = &box.Ticket{ID: tk.ID, Carrier: tk.Carrier, Raw: raw, Date: tk.Date, Time: tk.Time, Seq: int64(len(w.tickets)), State: box.InBox}
	}
}

// sync runs one sync; the handset stops after stopAfter steps (-1: all).
func (w *world) sync(final bool, stopAfter int) {
	ctx := context.Background()
	ans, _, err := w.handset.BeginSync(ctx, [16]byte{byte(w.rng.Uint32())})
	require.NoError(w.t, err)
	entries, raw, err := w.handset.List(ctx)
	require.NoError(w.t, err)
	require.NoError(w.t, ans.CheckInventory(raw))
	var all []*box.Ticket
	for _, t := range w.tickets {
		all = append(all, t)
	}
	res, err := box.Sync(w.card, all, box.Observation{Status: ans.Status, Inventory: entries}, final, nil)
	require.NoError(w.t, err)
	for _, c := range res.Changes {
		require.Equal(w.t, c.From, w.tickets[c.Ticket.ID].State, "a change is conditional on the state it leaves")
		w.tickets[c.Ticket.ID] = c.Ticket
	}
	w.card = res.Card
	steps, err := box.Authorise(res.Plan, w.h.F.Keys, w.h.F.Serial, func(id ticketfmt.ID) []byte { return w.tickets[id].Raw }, w.cert)
	require.NoError(w.t, err)
	for i, s := range steps {
		if i == stopAfter {
			return
		}
		b, err := s.Command().Bytes()
		require.NoError(w.t, err)
		_, err = w.handset.Do(ctx, string(s.Op), s.Command())
		require.NoError(w.t, err, "step %d %s %v (%X)", i, s.Op, s.Ticket, b)
	}
}

// checkOne checks a random unchecked ticket on the card at the gate.
func (w *world) checkOne() bool {
	ctx := context.Background()
	entries, _, err := w.handset.List(ctx)
	require.NoError(w.t, err)
	var unchecked []cardproto.Entry
	for _, e := range entries {
		if e.State == cardproto.StateUnchecked {
			unchecked = append(unchecked, e)
		}
	}
	if len(unchecked) == 0 {
		return false
	}
	e := unchecked[w.rng.IntN(len(unchecked))]
	w.checks++
	_, err = w.gate.Check(ctx, e.ID, cardproto.CheckRecord{Gate: [4]byte{'G', 'A', 'T', 'E'}, Time: ticketfmt.DateTime{Date: e.Date, Hour: 12, Second: w.checks % 60}}, [16]byte{})
	require.NoError(w.t, err)
	return true
}

// verify checks the promise after a completed sync: every unchecked ticket
// is on the card or in the box (never both, never neither), and no checked
// ticket is on the card.
func (w *world) verify() {
	entries, _, err := w.handset.List(context.Background())
	require.NoError(w.t, err)
	onCard := map[ticketfmt.ID]bool{}
	for _, e := range entries {
		require.False(w.t, onCard[e.ID], "ticket %v stored twice", e.ID)
		onCard[e.ID] = true
	}
	for _, t := range w.tickets {
		switch t.State {
		case box.OnCard:
			require.True(w.t, onCard[t.ID], "ticket %v: the box says card", t.ID)
		case box.InBox:
			require.False(w.t, onCard[t.ID], "ticket %v: in the box and on the card", t.ID)
		case box.Checked:
			require.False(w.t, onCard[t.ID], "ticket %v: checked, still on the card", t.ID)
		default:
			w.t.Fatalf("ticket %v left %s after a completed sync", t.ID, t.State)
		}
	}
}

// TestMigrationWithRealCard orders more tickets than fit, then checks them
// one by one; after every check a sync (sometimes interrupted, then
// completed) moves the next tickets onto the card. Every ticket is checked
// exactly once and none is lost.
func TestMigrationWithRealCard(t *testing.T) {
	for seed := range uint64(4) {
		w := newWorld(t, seed)
		w.order(24)
		w.sync(false, -1)
		w.sync(true, -1)
		w.verify()
		for w.checkOne() {
			if w.rng.IntN(3) == 0 {
				w.sync(false, w.rng.IntN(4)) // cut off
			}
			w.sync(false, -1)
			w.sync(true, -1)
			w.verify()
		}
		checked := 0
		for _, tk := range w.tickets {
			if tk.State == box.Checked {
				checked++
			}
		}
		assert.Equal(t, 24, checked, "seed %d: every ticket checked", seed)
		assert.Equal(t, 24, w.checks, "seed %d: each exactly once", seed)
		assert.True(t, w.card.Certified)
	}
}

func TestAuthoriseRefusesMissingData(t *testing.T) {
	p := box.Plan{Items: []box.Item{{Op: box.OpCertificate}}}
	_, err := box.Authorise(p, cardtest.VectorFixture(t).Keys, ticketfmt.Serial{}, nil, nil)
	assert.Error(t, err)
	p = box.Plan{Items: []box.Item{{Op: box.OpStore, Ticket: ticketfmt.ID{1}}}}
	_, err = box.Authorise(p, cardtest.VectorFixture(t).Keys, ticketfmt.Serial{}, func(ticketfmt.ID) []byte { return nil }, nil)
	assert.ErrorContains(t, err, "no ticket")
}

func TestDueTickets(t *testing.T) {
	card := box.Card{Status: status(500, 2, 1, 1, 0)}
	card.Status.Reclaimable = 200
	// 700 bytes, 31 tickets available; a delivering 100 (108) and the box's
	// soonest 300 (308) are due; the next 400 does not fit and claims
	// nothing.
	tickets := []*box.Ticket{tk(1, day, 9, 100, box.Delivering), tk(2, day, 10, 300, box.InBox), tk(3, day, 11, 400, box.InBox), tk(4, day, 8, 1, box.Checked)}
	assert.Equal(t, []*box.Ticket{tickets[1]}, box.DueTickets(card, tickets))
	assert.Equal(t, 1, box.Due(card, tickets))
	// 300 bytes less: the soonest no longer fits (400 - 108 < 308), and
	// a smaller later one that fits is stored instead ("that then fit").
	card.Status.Free, card.Status.Reclaimable = 300, 100
	tickets = append(tickets, tk(5, day, 12, 10, box.InBox), tk(6, day, 13, 280, box.InBox))
	assert.Equal(t, []*box.Ticket{tickets[4]}, box.DueTickets(card, tickets))
	// One ticket left to the count: only the soonest.
	card.Status.Free = 2000
	card.Status.MaxTickets = card.Status.Stored - card.Status.Checked + 2
	assert.Equal(t, []*box.Ticket{tickets[1]}, box.DueTickets(card, tickets))
}

// TestRoute: an order's tickets are judged one by one in the order's
// order, each by the room left after the tickets already due; a ticket
// that does not fit leaves the room to a later, smaller one.
func TestRoute(t *testing.T) {
	card := box.Card{Status: status(600, 0, 0, 1, 0)}
	held := []*box.Ticket{
		tk(1, day, 9, 92, box.Delivering), // 100 of the 600
		tk(2, day, 8, 92, box.InBox),      // due: 100 more
		tk(3, day, 7, 392, box.InBox),     // overflow: claims nothing
	}
	held[1].Due = true
	issued := []*box.Ticket{
		tk(10, day, 20, 192, box.InBox), // 200: fits (400 left)
		tk(11, day, 6, 292, box.InBox),  // 300: does not (200 left)
		tk(12, day, 21, 92, box.InBox),  // 100: fits
		tk(13, day, 22, 92, box.InBox),  // 100: fits, the room is used up
		tk(14, day, 23, 0, box.InBox),   // 8: no room left
	}
	box.Route(card, held, issued)
	var due []bool
	for _, t := range issued {
		due = append(due, t.Due)
	}
	assert.Equal(t, []bool{true, false, true, true, false}, due)
	assert.False(t, held[2].Due, "Route marks only the new tickets")

	// The ticket count: one record left after the due and delivering ones.
	card.Status.MaxTickets = 3
	issued = []*box.Ticket{tk(20, day, 20, 10, box.InBox), tk(21, day, 21, 10, box.InBox)}
	box.Route(card, held, issued)
	assert.True(t, issued[0].Due)
	assert.False(t, issued[1].Due, "the card's ticket count is full")
}

// TestDueFirst: the plan stores the tickets an order promised to the card
// before sooner tickets ordered after them, and every STORE of a plan is
// soonest first.
func TestDueFirst(t *testing.T) {
	card := box.Card{Serial: ticketfmt.Serial{9}, Certified: true, Status: status(400, 0, 0, 1, 0)}
	promised := tk(1, day, 20, 192, box.InBox) // 200 of the 400
	promised.Due = true
	sooner := tk(2, day, 8, 292, box.InBox) // 300: ordered later, does not fit with the promised one
	small := tk(3, day, 9, 92, box.InBox)   // 100: fits after the promised one
	obs := box.Observation{Status: status(400, 0, 0, 2, 0)}
	res, err := box.Sync(card, []*box.Ticket{promised, sooner, small}, obs, false, nil)
	require.NoError(t, err)
	var stored []ticketfmt.ID
	for _, it := range res.Plan.Items {
		require.Equal(t, box.OpStore, it.Op)
		stored = append(stored, it.Ticket)
	}
	assert.Equal(t, []ticketfmt.ID{small.ID, promised.ID}, stored, "the promised ticket, and what fits after it, soonest first")

	// Settled as used, the promised ticket is on the card and no longer due.
	obs = box.Observation{Status: status(100, 2, 0, 2, 2), Inventory: []cardproto.Entry{
		{ID: small.ID, Length: 92}, {ID: promised.ID, Length: 192}}}
	var after []*box.Ticket
	for _, tkt := range []*box.Ticket{promised, sooner, small} {
		c := *tkt
		for _, ch := range res.Changes {
			if ch.Ticket.ID == c.ID {
				c = *ch.Ticket
			}
		}
		after = append(after, &c)
	}
	res, err = box.Sync(res.Card, after, obs, true, nil)
	require.NoError(t, err)
	found := false
	for _, ch := range res.Changes {
		if ch.Ticket.ID == promised.ID {
			found = true
			assert.Equal(t, box.OnCard, ch.Ticket.State)
			assert.False(t, ch.Ticket.Due, "a ticket on the card is no longer due")
		}
	}
	assert.True(t, found, "the promised ticket changed state")
}

// TestTrimKeepsChecked: a plan cut short at the last counter value puts
// the tickets of the dropped items back where they were; a checked
// ticket whose DELETE was dropped stays checked.
func TestTrimKeepsChecked(t *testing.T) {
	card := box.Card{Serial: ticketfmt.Serial{9}, Certified: true, Epoch: 1, Plan: box.Plan{Epoch: 1, C0: 0xFFFFFFFE}}
	a, b := tk(1, day, 9, 92, box.Checked), tk(2, day, 10, 92, box.Checked)
	a.Check = &box.Check{Gate: [4]byte{1}, Time: ticketfmt.DateTime{Date: day, Hour: 9}, Source: "gate"}
	b.Check = &box.Check{Gate: [4]byte{1}, Time: ticketfmt.DateTime{Date: day, Hour: 10}, Source: "gate"}
	st := status(1000, 2, 2, 2, 0xFFFFFFFE)
	check := func(tt *box.Ticket) cardproto.Entry {
		return cardproto.Entry{ID: tt.ID, Length: 92, State: cardproto.StateChecked,
			Check: &cardproto.CheckRecord{Gate: tt.Check.Gate, Time: tt.Check.Time}}
	}
	res, err := box.Sync(card, []*box.Ticket{a, b}, box.Observation{Status: st, Inventory: []cardproto.Entry{check(a), check(b)}}, false, nil)
	require.NoError(t, err)
	require.Len(t, res.Plan.Items, 1, "one counter value is left")
	assert.Equal(t, box.Item{Op: box.OpDelete, Ticket: a.ID, Expected: cardproto.StateChecked}, res.Plan.Items[0])
	for _, ch := range res.Changes {
		assert.Equal(t, box.Checked, ch.Ticket.State, "ticket %v", ch.Ticket.ID)
	}
}

// TestInventoryShowsAnotherCheck: a card listing a ticket checked at
// another gate or time than the check the box recorded is flagged (two
// checks of one ticket: a copy of the card), once.
func TestInventoryShowsAnotherCheck(t *testing.T) {
	a := tk(1, day, 9, 92, box.Checked)
	a.Check = &box.Check{Gate: [4]byte{'A'}, Time: ticketfmt.DateTime{Date: day, Hour: 9}, Source: "gate"}
	entry := func(gate byte) cardproto.Entry {
		return cardproto.Entry{ID: a.ID, Length: 92, State: cardproto.StateChecked,
			Check: &cardproto.CheckRecord{Gate: [4]byte{gate}, Time: a.Check.Time}}
	}
	card := box.Card{Serial: ticketfmt.Serial{9}, Certified: true}
	res, err := box.Sync(card, []*box.Ticket{a}, box.Observation{Status: status(1000, 1, 1, 1, 0), Inventory: []cardproto.Entry{entry('A')}}, true, nil)
	require.NoError(t, err)
	assert.Empty(t, res.Card.Flags, "the same check")

	res, err = box.Sync(card, []*box.Ticket{a}, box.Observation{Status: status(1000, 1, 1, 1, 0), Inventory: []cardproto.Entry{entry('B')}}, true, nil)
	require.NoError(t, err)
	require.Len(t, res.Card.Flags, 1)
	assert.Contains(t, res.Card.Flags[0], "checked twice")
	res, err = box.Sync(res.Card, []*box.Ticket{a}, box.Observation{Status: status(1000, 1, 1, 2, 0), Inventory: []cardproto.Entry{entry('B')}}, true, nil)
	require.NoError(t, err)
	assert.Len(t, res.Card.Flags, 1, "flagged once")
}
