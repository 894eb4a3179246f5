// Package storetest is the conformance suite of store.Store: every
// implementation's tests call Run with a function that opens a fresh, empty
// store. It is for tests only; it has no place in a running server.
package storetest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/simtix/simtix/box"
	"github.com/simtix/simtix/cardproto"
	"github.com/simtix/simtix/store"
	"github.com/simtix/simtix/ticketfmt"
)

// Run runs the conformance suite, one subtest per behaviour. open returns a
// fresh, empty store for one (sub)test; it closes the store and removes
// what it made when that test ends (t.Cleanup).
func Run(t *testing.T, open func(t *testing.T) store.Store) {
	tests := []struct {
		name string
		fn   func(t *testing.T, s store.Store)
	}{
		{"LockCardCreatesUnregistered", testLockCard},
		{"PutCardRoundTrip", testPutCard},
		{"PutCardEveryStatusField", testPutCardStatusFields},
		{"MSISDN", testMSISDN},
		{"InsertTickets", testInsertTickets},
		{"InsertTicketsDuplicate", testInsertDuplicate},
		{"TicketsOf", testTicketsOf},
		{"TicketsOfAmongMany", testTicketsOfAmongMany},
		{"MoveTicket", testMoveTicket},
		{"MoveTicketConflict", testMoveTicketConflict},
		{"CountTickets", testCountTickets},
		{"Challenges", testChallenges},
		{"Orders", testOrders},
		{"Checks", testChecks},
		{"DenyList", testDenyList},
		{"UpdateRollsBack", testRollback},
		{"UpdatePanicRollsBack", testPanic},
		{"ViewDoesNotWrite", testViewReadOnly},
		{"CancelledContext", testCancelled},
		{"NoLostUpdate", testNoLostUpdate},
		{"DeliveriesGetDistinctCounters", testDistinctCounters},
		{"TwoCardsInParallel", testTwoCards},
		{"ConcurrentInserts", testConcurrentInserts},
		{"NotifyDue", testNotifyDue},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) { tc.fn(t, open(t)) })
	}
}

// Serial returns a card serial made from n.
func Serial(n int) ticketfmt.Serial {
	return ticketfmt.Serial{0x51, 0x7c, 0, 0, 0, 0, byte(n >> 24), byte(n >> 16), byte(n >> 8), byte(n)}
}

// ID returns a ticket ID made from n.
func ID(n int) ticketfmt.ID {
	return ticketfmt.ID{0x71, 0, 0, 0, 0, 0, byte(n >> 24), byte(n >> 16), byte(n >> 8), byte(n)}
}

// Ticket returns a ticket n in the box for carrier, used on day (of June
// 2026) at 20:00, with a raw form of a few bytes.
func Ticket(n int, carrier ticketfmt.Serial, day int) *box.Ticket {
	return &box.Ticket{
		ID:      ID(n),
		Carrier: carrier,
		Raw:     append([]byte{0xE1, 0x05}, []byte(fmt.Sprintf("t%04d", n%10000))...),
		Date:    ticketfmt.Date{Year: 2026, Month: time.June, Day: day},
		Time:    ticketfmt.TimeOfDay{Hour: 20, Minute: 0},
		State:   box.InBox,
	}
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func update(t *testing.T, s store.Store, fn func(tx store.Tx) error) {
	t.Helper()
	require.NoError(t, s.Update(ctxT(t), fn))
}

func view(t *testing.T, s store.Store, fn func(tx store.Tx) error) {
	t.Helper()
	require.NoError(t, s.View(ctxT(t), fn))
}

func insert(t *testing.T, s store.Store, ts ...*box.Ticket) {
	t.Helper()
	update(t, s, func(tx store.Tx) error { return tx.InsertTickets(ctxT(t), ts) })
}

func getTicket(t *testing.T, s store.Store, id ticketfmt.ID) *box.Ticket {
	t.Helper()
	var tk *box.Ticket
	view(t, s, func(tx store.Tx) (err error) {
		tk, err = tx.Ticket(ctxT(t), id)
		return err
	})
	return tk
}

func getCard(t *testing.T, s store.Store, serial ticketfmt.Serial) *store.Card {
	t.Helper()
	var c *store.Card
	view(t, s, func(tx store.Tx) (err error) {
		c, err = tx.Card(ctxT(t), serial)
		return err
	})
	return c
}

func testLockCard(t *testing.T, s store.Store) {
	ctx := ctxT(t)
	serial := Serial(1)
	view(t, s, func(tx store.Tx) error {
		_, err := tx.Card(ctx, serial)
		require.ErrorIs(t, err, store.ErrNotFound)
		return nil
	})
	update(t, s, func(tx store.Tx) error {
		c, err := tx.LockCard(ctx, serial)
		require.NoError(t, err)
		require.Equal(t, &store.Card{Card: box.Card{Serial: serial}}, c)
		// Locking again in the same transaction returns the same card.
		c2, err := tx.LockCard(ctx, serial)
		require.NoError(t, err)
		require.Equal(t, c, c2)
		return nil
	})
	c := getCard(t, s, serial)
	require.False(t, c.Registered)
	require.Equal(t, serial, c.Serial)
	// A locked card is left as it is.
	c.Registered, c.Epoch = true, 7
	update(t, s, func(tx store.Tx) error { return tx.PutCard(ctx, c) })
	update(t, s, func(tx store.Tx) error {
		got, err := tx.LockCard(ctx, serial)
		require.NoError(t, err)
		require.True(t, got.Registered)
		require.Equal(t, uint32(7), got.Epoch)
		return nil
	})
}

// fullCard returns a card with every field set.
func fullCard(serial ticketfmt.Serial) *store.Card {
	return &store.Card{
		Card: box.Card{
			Serial:    serial,
			PublicKey: append([]byte{0x04}, bytes.Repeat([]byte{0xAB}, 64)...),
			Certified: true,
			Epoch:     41,
			Status: cardproto.StatusTemplate{
				Capacity: 8192, Free: 4000, Reclaimable: 300, MaxTickets: 32, Stored: 5, Checked: 1,
				Overhead: 12, Counter: 0xFFFFFFF0, Serial: serial, Version: 0x0102, Epoch: 0xFFFFFFFE,
			},
			Plan: box.Plan{Epoch: 0xFFFFFFFE, C0: 0xFFFFFFF0, Items: []box.Item{
				{Op: box.OpCertificate},
				{Op: box.OpDelete, Ticket: ID(3), Expected: cardproto.StateChecked},
				{Op: box.OpDelete, Ticket: ID(4), Expected: cardproto.StateUnchecked},
				{Op: box.OpStore, Ticket: ID(5)},
			}},
			Flags: []string{"counter 9 outside the last plan's 1..3", "ünïcode ✓"},
		},
		Registered: true,
	}
}

func testPutCard(t *testing.T, s store.Store) {
	ctx := ctxT(t)
	want := fullCard(Serial(2))
	// PutCard creates a card it has not seen.
	update(t, s, func(tx store.Tx) error { return tx.PutCard(ctx, want) })
	require.Equal(t, want, getCard(t, s, want.Serial))

	// And overwrites one it has, down to empty plans and flags.
	empty := &store.Card{Card: box.Card{Serial: want.Serial, Epoch: 42}}
	update(t, s, func(tx store.Tx) error {
		c, err := tx.LockCard(ctx, want.Serial)
		require.NoError(t, err)
		require.Equal(t, want, c)
		return tx.PutCard(ctx, empty)
	})
	require.Equal(t, empty, getCard(t, s, want.Serial))

	// PutCard leaves the MSISDN alone.
	update(t, s, func(tx store.Tx) error { return tx.SetMSISDN(ctx, want.Serial, "+41790000002") })
	update(t, s, func(tx store.Tx) error { return tx.PutCard(ctx, want) })
	got := getCard(t, s, want.Serial)
	require.Equal(t, "+41790000002", got.MSISDN)
	got.MSISDN = ""
	require.Equal(t, want, got)
}

// testPutCardStatusFields sets every field of the status template, so that
// a field added to cardproto.StatusTemplate and not stored is noticed.
func testPutCardStatusFields(t *testing.T, s store.Store) {
	ctx := ctxT(t)
	c := &store.Card{Card: box.Card{Serial: Serial(3)}}
	v := reflect.ValueOf(&c.Status).Elem()
	for i := range v.NumField() {
		f := v.Field(i)
		switch f.Kind() {
		case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
			f.SetInt(int64(100 + i))
		case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
			f.SetUint(uint64(200 + i))
		case reflect.Array:
			for j := range f.Len() {
				f.Index(j).SetUint(uint64(i + j + 1))
			}
		default:
			t.Fatalf("StatusTemplate.%s: kind %s not handled by this test", v.Type().Field(i).Name, f.Kind())
		}
	}
	update(t, s, func(tx store.Tx) error { return tx.PutCard(ctx, c) })
	require.Equal(t, c, getCard(t, s, c.Serial))
}

func testMSISDN(t *testing.T, s store.Store) {
	ctx := ctxT(t)
	a, b := Serial(10), Serial(11)
	update(t, s, func(tx store.Tx) error {
		_, err := tx.LockCard(ctx, b)
		return err
	})
	update(t, s, func(tx store.Tx) error {
		_, err := tx.SerialOf(ctx, "+41790000001")
		require.ErrorIs(t, err, store.ErrNotFound)
		// A card not seen yet is created.
		require.NoError(t, tx.SetMSISDN(ctx, a, "+41790000001"))
		got, err := tx.SerialOf(ctx, "+41790000001")
		require.NoError(t, err)
		require.Equal(t, a, got)
		// Again for the same card: nothing changes.
		require.NoError(t, tx.SetMSISDN(ctx, a, "+41790000001"))
		// Another card cannot have it, and the transaction goes on.
		require.ErrorIs(t, tx.SetMSISDN(ctx, b, "+41790000001"), store.ErrExists)
		return tx.SetMSISDN(ctx, b, "+41790000002")
	})
	ca, cb := getCard(t, s, a), getCard(t, s, b)
	require.Equal(t, "+41790000001", ca.MSISDN)
	require.False(t, ca.Registered)
	require.Equal(t, "+41790000002", cb.MSISDN)

	// A new number frees the old one; an empty one removes it.
	update(t, s, func(tx store.Tx) error {
		require.NoError(t, tx.SetMSISDN(ctx, a, "+41790000003"))
		require.NoError(t, tx.SetMSISDN(ctx, b, "+41790000001"))
		return tx.SetMSISDN(ctx, b, "")
	})
	view(t, s, func(tx store.Tx) error {
		got, err := tx.SerialOf(ctx, "+41790000003")
		require.NoError(t, err)
		require.Equal(t, a, got)
		for _, m := range []string{"+41790000001", "+41790000002", ""} {
			_, err = tx.SerialOf(ctx, m)
			require.ErrorIs(t, err, store.ErrNotFound, m)
		}
		return nil
	})
	require.Empty(t, getCard(t, s, b).MSISDN)
}

func testInsertTickets(t *testing.T, s store.Store) {
	ctx := ctxT(t)
	carrier := Serial(20)
	first := []*box.Ticket{Ticket(1, carrier, 9), Ticket(2, carrier, 3), Ticket(3, carrier, 30)}
	insert(t, s, first...)
	second := []*box.Ticket{Ticket(4, carrier, 1)}
	insert(t, s, second...)
	all := append(first, second...)
	for i := 1; i < len(all); i++ {
		require.Greater(t, all[i].Seq, all[i-1].Seq, "Seq follows the insert order")
	}
	for _, want := range all {
		require.Equal(t, want, getTicket(t, s, want.ID))
	}
	// Every field of a ticket, whatever state it is inserted in.
	full := &box.Ticket{
		ID: ID(5), Carrier: Serial(21), Raw: bytes.Repeat([]byte{0xE1}, 600),
		Date:  ticketfmt.Date{Year: 9999, Month: time.December, Day: 31},
		Time:  ticketfmt.TimeOfDay{Hour: 23, Minute: 59},
		State: box.Checked, Epoch: 0xFFFFFFFF, Counter: 0xFFFFFFFE,
		Check: &box.Check{Gate: [4]byte{1, 2, 3, 4}, Time: ticketfmt.DateTime{
			Date: ticketfmt.Date{Year: 2026, Month: time.June, Day: 1}, Hour: 19, Minute: 58, Second: 7}, Source: "gate"},
		OffCard: true, Due: true,
	}
	insert(t, s, full)
	require.Greater(t, full.Seq, all[len(all)-1].Seq)
	require.Equal(t, full, getTicket(t, s, full.ID))

	view(t, s, func(tx store.Tx) error {
		_, err := tx.Ticket(ctx, ID(99))
		require.ErrorIs(t, err, store.ErrNotFound)
		return tx.InsertTickets(ctx, nil)
	})
}

func testInsertDuplicate(t *testing.T, s store.Store) {
	ctx := ctxT(t)
	carrier := Serial(30)
	insert(t, s, Ticket(1, carrier, 1))
	update(t, s, func(tx store.Tx) error {
		// A batch with one taken ID: nothing of it is inserted.
		batch := []*box.Ticket{Ticket(2, carrier, 1), Ticket(3, carrier, 1), Ticket(1, Serial(31), 1)}
		require.ErrorIs(t, tx.InsertTickets(ctx, batch), store.ErrExists)
		for _, n := range []int{2, 3} {
			_, err := tx.Ticket(ctx, ID(n))
			require.ErrorIs(t, err, store.ErrNotFound, "ticket %d", n)
		}
		// An ID twice in one batch.
		require.ErrorIs(t, tx.InsertTickets(ctx, []*box.Ticket{Ticket(4, carrier, 1), Ticket(4, carrier, 2)}), store.ErrExists)
		// The transaction goes on after ErrExists.
		return tx.InsertTickets(ctx, []*box.Ticket{Ticket(5, carrier, 1)})
	})
	view(t, s, func(tx store.Tx) error {
		ts, err := tx.TicketsOf(ctx, carrier)
		require.NoError(t, err)
		require.Equal(t, []ticketfmt.ID{ID(1), ID(5)}, ids(ts))
		ts, err = tx.TicketsOf(ctx, Serial(31))
		require.NoError(t, err)
		require.Empty(t, ts)
		first, err := tx.Ticket(ctx, ID(1))
		require.NoError(t, err)
		require.Equal(t, carrier, first.Carrier, "the taken ticket is unchanged")
		return nil
	})
}

func ids(ts []*box.Ticket) []ticketfmt.ID {
	out := make([]ticketfmt.ID, len(ts))
	for i, tk := range ts {
		out[i] = tk.ID
	}
	return out
}

func testTicketsOf(t *testing.T, s store.Store) {
	ctx := ctxT(t)
	a, b := Serial(40), Serial(41)
	// Issue order, not use date nor ID order.
	insert(t, s, Ticket(9, a, 20), Ticket(3, b, 1), Ticket(1, a, 5))
	insert(t, s, Ticket(5, a, 1), Ticket(2, b, 2))
	view(t, s, func(tx store.Tx) error {
		ts, err := tx.TicketsOf(ctx, a)
		require.NoError(t, err)
		require.Equal(t, []ticketfmt.ID{ID(9), ID(1), ID(5)}, ids(ts))
		for _, tk := range ts {
			require.Equal(t, a, tk.Carrier)
			require.Equal(t, getTicket(t, s, tk.ID), tk)
		}
		ts, err = tx.TicketsOf(ctx, b)
		require.NoError(t, err)
		require.Equal(t, []ticketfmt.ID{ID(3), ID(2)}, ids(ts))
		ts, err = tx.TicketsOf(ctx, Serial(42))
		require.NoError(t, err)
		require.Empty(t, ts)
		return nil
	})
}

// testTicketsOfAmongMany stores many tickets for other cards around one
// card's few.
func testTicketsOfAmongMany(t *testing.T, s store.Store) {
	ctx := ctxT(t)
	const others, per = 100, 50
	mine := Serial(1000)
	var want []ticketfmt.ID
	n := 0
	for round := range per {
		batch := make([]*box.Ticket, 0, others+1)
		for c := range others {
			n++
			batch = append(batch, Ticket(n, Serial(c), 1+n%28))
		}
		if round%10 == 0 {
			n++
			batch = append(batch, Ticket(n, mine, 1+n%28))
			want = append(want, ID(n))
		}
		insert(t, s, batch...)
	}
	view(t, s, func(tx store.Tx) error {
		ts, err := tx.TicketsOf(ctx, mine)
		require.NoError(t, err)
		require.Equal(t, want, ids(ts))
		ts, err = tx.TicketsOf(ctx, Serial(7))
		require.NoError(t, err)
		require.Len(t, ts, per)
		counts, err := tx.CountTickets(ctx)
		require.NoError(t, err)
		require.Equal(t, n, counts[box.InBox])
		return nil
	})
}

func testMoveTicket(t *testing.T, s store.Store) {
	ctx := ctxT(t)
	carrier := Serial(50)
	tk := Ticket(1, carrier, 1)
	insert(t, s, tk)

	step := func(from box.State, change func(tk *box.Ticket)) {
		t.Helper()
		next := *tk
		change(&next)
		update(t, s, func(tx store.Tx) error { return tx.MoveTicket(ctx, &next, from) })
		require.Equal(t, &next, getTicket(t, s, tk.ID))
		tk = &next
	}
	step(box.InBox, func(tk *box.Ticket) { tk.State, tk.Epoch, tk.Counter, tk.Due = box.Delivering, 3, 0xFFFFFFFF, true })
	step(box.Delivering, func(tk *box.Ticket) { tk.State, tk.Epoch, tk.Counter, tk.Due = box.OnCard, 0, 0, false })
	step(box.OnCard, func(tk *box.Ticket) { tk.State, tk.Epoch, tk.Counter = box.Returning, 4, 17 })
	step(box.Returning, func(tk *box.Ticket) { tk.State, tk.Epoch, tk.Counter = box.OnCard, 0, 0 })
	step(box.OnCard, func(tk *box.Ticket) {
		tk.State = box.Checked
		tk.Check = &box.Check{Gate: [4]byte{9, 8, 7, 6}, Time: ticketfmt.DateTime{
			Date: ticketfmt.Date{Year: 2026, Month: time.June, Day: 1}, Hour: 20, Minute: 1, Second: 2}, Source: "card"}
	})
	step(box.Checked, func(tk *box.Ticket) { tk.OffCard = true })
	step(box.Checked, func(tk *box.Ticket) { tk.OffCard = false })
	// A move leaves the ticket's ID, carrier, raw form, use time and Seq.
	step(box.Checked, func(tk *box.Ticket) { tk.Check = nil; tk.State = box.InBox })
	other := *tk
	other.Carrier, other.Raw, other.Date, other.Seq = Serial(51), []byte{1}, ticketfmt.Date{Year: 2030, Month: 1, Day: 1}, 999
	update(t, s, func(tx store.Tx) error { return tx.MoveTicket(ctx, &other, box.InBox) })
	require.Equal(t, tk, getTicket(t, s, tk.ID))

	update(t, s, func(tx store.Tx) error {
		missing := Ticket(2, carrier, 1)
		require.ErrorIs(t, tx.MoveTicket(ctx, missing, box.InBox), store.ErrNotFound)
		return nil
	})
}

func testMoveTicketConflict(t *testing.T, s store.Store) {
	ctx := ctxT(t)
	tk := Ticket(1, Serial(60), 1)
	insert(t, s, tk)
	moved := *tk
	moved.State, moved.Epoch, moved.Counter = box.Delivering, 1, 2
	update(t, s, func(tx store.Tx) error {
		err := tx.MoveTicket(ctx, &moved, box.OnCard)
		require.ErrorIs(t, err, store.ErrConflict)
		require.NotErrorIs(t, err, store.ErrNotFound)
		got, err := tx.Ticket(ctx, tk.ID)
		require.NoError(t, err)
		require.Equal(t, tk, got, "nothing changed")
		// The transaction goes on after ErrConflict.
		return tx.MoveTicket(ctx, &moved, box.InBox)
	})
	require.Equal(t, &moved, getTicket(t, s, tk.ID))
	// The second of two moves from the same state loses.
	update(t, s, func(tx store.Tx) error {
		back := *tk
		return tx.MoveTicket(ctx, &back, box.Delivering)
	})
	err := s.Update(ctx, func(tx store.Tx) error { return tx.MoveTicket(ctx, &moved, box.Delivering) })
	require.ErrorIs(t, err, store.ErrConflict)
	require.Equal(t, tk, getTicket(t, s, tk.ID))
}

func testCountTickets(t *testing.T, s store.Store) {
	ctx := ctxT(t)
	view(t, s, func(tx store.Tx) error {
		counts, err := tx.CountTickets(ctx)
		require.NoError(t, err)
		for _, st := range []box.State{box.InBox, box.Delivering, box.OnCard, box.Returning, box.Checked} {
			require.Zero(t, counts[st], st)
		}
		return nil
	})
	want := map[box.State]int{box.InBox: 3, box.Delivering: 1, box.OnCard: 4, box.Returning: 0, box.Checked: 2}
	n := 0
	for st, k := range want {
		for range k {
			n++
			tk := Ticket(n, Serial(n%3), 1)
			tk.State = st
			insert(t, s, tk)
		}
	}
	view(t, s, func(tx store.Tx) error {
		counts, err := tx.CountTickets(ctx)
		require.NoError(t, err)
		for st, k := range want {
			require.Equal(t, k, counts[st], st)
		}
		return nil
	})
}

func testChallenges(t *testing.T, s store.Store) {
	ctx := ctxT(t)
	a, b := Serial(70), Serial(71)
	now := time.Now()
	c1, c2, c3 := bytes.Repeat([]byte{1}, 16), bytes.Repeat([]byte{2}, 16), bytes.Repeat([]byte{3}, 16)
	update(t, s, func(tx store.Tx) error {
		require.NoError(t, tx.PutChallenge(ctx, a, c1, now.Add(time.Minute)))
		require.NoError(t, tx.PutChallenge(ctx, a, c2, now.Add(time.Minute)))
		return tx.PutChallenge(ctx, a, c3, now.Add(time.Second))
	})
	take := func(serial ticketfmt.Serial, c []byte, at time.Time) error {
		return s.Update(ctx, func(tx store.Tx) error { return tx.TakeChallenge(ctx, serial, c, at) })
	}
	// Not for another serial, nor a challenge never given.
	require.ErrorIs(t, take(b, c1, now), store.ErrNotFound)
	require.ErrorIs(t, take(a, bytes.Repeat([]byte{4}, 16), now), store.ErrNotFound)
	// Once.
	require.NoError(t, take(a, c1, now))
	require.ErrorIs(t, take(a, c1, now), store.ErrNotFound)
	// Not at or after its expiry.
	require.ErrorIs(t, take(a, c3, now.Add(time.Second)), store.ErrNotFound)
	require.ErrorIs(t, take(a, c2, now.Add(2*time.Minute)), store.ErrNotFound)
	// Just before it.
	require.NoError(t, take(a, c2, now.Add(time.Minute-time.Millisecond)))
	require.ErrorIs(t, take(a, c2, now), store.ErrNotFound)

	// Used twice in one transaction: the second fails, the transaction
	// goes on.
	update(t, s, func(tx store.Tx) error {
		require.NoError(t, tx.PutChallenge(ctx, b, c1, now.Add(time.Minute)))
		require.NoError(t, tx.TakeChallenge(ctx, b, c1, now))
		require.ErrorIs(t, tx.TakeChallenge(ctx, b, c1, now), store.ErrNotFound)
		return tx.PutChallenge(ctx, b, c2, now.Add(time.Minute))
	})
	require.NoError(t, take(b, c2, now))
	// A taken challenge is back if the transaction that took it failed.
	update(t, s, func(tx store.Tx) error { return tx.PutChallenge(ctx, b, c3, now.Add(time.Minute)) })
	boom := errors.New("boom")
	require.ErrorIs(t, s.Update(ctx, func(tx store.Tx) error {
		require.NoError(t, tx.TakeChallenge(ctx, b, c3, now))
		return boom
	}), boom)
	require.NoError(t, take(b, c3, now))
}

func testOrders(t *testing.T, s store.Store) {
	ctx := ctxT(t)
	answer := []byte(`{"tickets":[{"id":"71000000000000000001","way":"direct"}]}`)
	update(t, s, func(tx store.Tx) error {
		_, err := tx.Order(ctx, "k1")
		require.ErrorIs(t, err, store.ErrNotFound)
		require.NoError(t, tx.PutOrder(ctx, "k1", answer))
		got, err := tx.Order(ctx, "k1")
		require.NoError(t, err)
		require.Equal(t, answer, got)
		// The key is taken: the first answer stays, the transaction goes on.
		require.ErrorIs(t, tx.PutOrder(ctx, "k1", []byte("other")), store.ErrExists)
		return tx.PutOrder(ctx, "k2", []byte("second"))
	})
	err := s.Update(ctx, func(tx store.Tx) error { return tx.PutOrder(ctx, "k1", []byte("again")) })
	require.ErrorIs(t, err, store.ErrExists)
	view(t, s, func(tx store.Tx) error {
		got, err := tx.Order(ctx, "k1")
		require.NoError(t, err)
		require.Equal(t, answer, got)
		got, err = tx.Order(ctx, "k2")
		require.NoError(t, err)
		require.Equal(t, []byte("second"), got)
		return nil
	})

	// An order's tickets and its key commit together, or neither does.
	boom := errors.New("boom")
	err = s.Update(ctx, func(tx store.Tx) error {
		require.NoError(t, tx.InsertTickets(ctx, []*box.Ticket{Ticket(1, Serial(80), 1)}))
		require.NoError(t, tx.PutOrder(ctx, "k3", []byte("x")))
		return boom
	})
	require.ErrorIs(t, err, boom)
	view(t, s, func(tx store.Tx) error {
		_, err := tx.Order(ctx, "k3")
		require.ErrorIs(t, err, store.ErrNotFound)
		_, err = tx.Ticket(ctx, ID(1))
		require.ErrorIs(t, err, store.ErrNotFound)
		return nil
	})
}

func testChecks(t *testing.T, s store.Store) {
	ctx := ctxT(t)
	at := func(h, m, sec int) ticketfmt.DateTime {
		return ticketfmt.DateTime{Date: ticketfmt.Date{Year: 2026, Month: time.June, Day: 1}, Hour: h, Minute: m, Second: sec}
	}
	received := time.Date(2026, time.June, 1, 18, 30, 0, 123456000, time.UTC)
	later := newCheck(ID(1), Serial(90), [4]byte{0, 0, 0, 2}, at(20, 5, 0))
	later.Received = received
	earlier := newCheck(ID(1), Serial(90), [4]byte{0, 0, 0, 1}, at(19, 59, 59))
	earlier.Received = received.Add(time.Second)
	other := newCheck(ID(2), Serial(91), [4]byte{0, 0, 0, 1}, at(19, 0, 0))
	other.Received = received.Add(time.Hour)
	update(t, s, func(tx store.Tx) error {
		for _, c := range []store.Check{later, earlier, other} {
			added, err := tx.AddCheck(ctx, c)
			require.NoError(t, err)
			require.True(t, added)
		}
		// The same check again (even with another nonce or receipt) is not
		// added.
		again := later
		again.Nonce = []byte("another nonce...")
		added, err := tx.AddCheck(ctx, again)
		require.NoError(t, err)
		require.False(t, added)
		return nil
	})
	update(t, s, func(tx store.Tx) error {
		added, err := tx.AddCheck(ctx, earlier)
		require.NoError(t, err)
		require.False(t, added)
		return nil
	})
	view(t, s, func(tx store.Tx) error {
		cs, err := tx.ChecksOf(ctx, ID(1))
		require.NoError(t, err)
		requireChecks(t, []store.Check{earlier, later}, cs)
		cs, err = tx.ChecksOf(ctx, ID(2))
		require.NoError(t, err)
		requireChecks(t, []store.Check{other}, cs)
		cs, err = tx.ChecksOf(ctx, ID(3))
		require.NoError(t, err)
		require.Empty(t, cs)
		return nil
	})
	// A check without Received gets the time it was stored.
	before := time.Now().Add(-time.Second)
	unstamped := newCheck(ID(3), Serial(92), [4]byte{0, 0, 0, 3}, at(21, 0, 0))
	update(t, s, func(tx store.Tx) error {
		_, err := tx.AddCheck(ctx, unstamped)
		return err
	})
	view(t, s, func(tx store.Tx) error {
		cs, err := tx.ChecksOf(ctx, ID(3))
		require.NoError(t, err)
		require.Len(t, cs, 1)
		require.WithinRange(t, cs[0].Received, before, time.Now().Add(time.Second))
		return nil
	})
}

// newCheck returns a check of ticket id with a nonce and a receipt.
func newCheck(id ticketfmt.ID, serial ticketfmt.Serial, gate [4]byte, at ticketfmt.DateTime) store.Check {
	return store.Check{
		TicketID: id, Serial: serial, Gate: gate, Time: at,
		Nonce:   bytes.Repeat([]byte{gate[3], 0x4E}, 8),
		Receipt: bytes.Repeat([]byte{gate[3], 0x52}, 36),
	}
}

func requireChecks(t *testing.T, want, got []store.Check) {
	t.Helper()
	require.Len(t, got, len(want))
	for i := range want {
		w, g := want[i], got[i]
		require.True(t, w.Received.Equal(g.Received), "Received %v, want %v", g.Received, w.Received)
		w.Received, g.Received = time.Time{}, time.Time{}
		require.Equal(t, w, g)
	}
}

func testDenyList(t *testing.T, s store.Store) {
	ctx := ctxT(t)
	view(t, s, func(tx store.Tx) error {
		ids, err := tx.DenyList(ctx)
		require.NoError(t, err)
		require.Empty(t, ids)
		return nil
	})
	var want []ticketfmt.ID
	for _, n := range []int{0x0300, 7, 0x01000000, 0x20, 1} {
		tk := Ticket(n, Serial(n%2), 1)
		if n != 7 {
			tk.State = box.Checked
			tk.Check = &box.Check{Gate: [4]byte{1}, Source: "gate"}
			want = append(want, tk.ID)
		}
		insert(t, s, tk)
	}
	moved := Ticket(7, Serial(1), 1)
	moved.State = box.Checked
	update(t, s, func(tx store.Tx) error { return tx.MoveTicket(ctx, moved, box.InBox) })
	want = append(want, moved.ID)
	// Ascending byte order, which is also the order of the hex forms.
	want = append([]ticketfmt.ID{{0xFF}, {0x00, 0xFF}}, want...)
	for _, id := range want[:2] {
		tk := Ticket(0, Serial(3), 1)
		tk.ID, tk.State = id, box.Checked
		insert(t, s, tk)
	}
	slices.SortFunc(want, func(a, b ticketfmt.ID) int { return bytes.Compare(a[:], b[:]) })
	view(t, s, func(tx store.Tx) error {
		ids, err := tx.DenyList(ctx)
		require.NoError(t, err)
		require.Equal(t, want, ids)
		return nil
	})
}

func testRollback(t *testing.T, s store.Store) {
	ctx := ctxT(t)
	insert(t, s, Ticket(1, Serial(100), 1))
	boom := fmt.Errorf("wrapped: %w", errors.New("boom"))
	err := s.Update(ctx, func(tx store.Tx) error {
		_, err := tx.LockCard(ctx, Serial(100))
		require.NoError(t, err)
		require.NoError(t, tx.PutCard(ctx, fullCard(Serial(100))))
		require.NoError(t, tx.SetMSISDN(ctx, Serial(101), "+41790000100"))
		require.NoError(t, tx.InsertTickets(ctx, []*box.Ticket{Ticket(2, Serial(100), 1)}))
		moved := Ticket(1, Serial(100), 1)
		moved.State = box.Checked
		require.NoError(t, tx.MoveTicket(ctx, moved, box.InBox))
		require.NoError(t, tx.PutOrder(ctx, "k", []byte("a")))
		require.NoError(t, tx.PutChallenge(ctx, Serial(100), []byte("c"), time.Now().Add(time.Hour)))
		_, err = tx.AddCheck(ctx, newCheck(ID(1), Serial(100), [4]byte{1}, ticketfmt.DateTime{}))
		require.NoError(t, err)
		return boom
	})
	require.ErrorIs(t, err, boom, "Update returns fn's error")
	view(t, s, func(tx store.Tx) error {
		for _, serial := range []ticketfmt.Serial{Serial(100), Serial(101)} {
			_, err := tx.Card(ctx, serial)
			require.ErrorIs(t, err, store.ErrNotFound)
		}
		_, err := tx.SerialOf(ctx, "+41790000100")
		require.ErrorIs(t, err, store.ErrNotFound)
		_, err = tx.Ticket(ctx, ID(2))
		require.ErrorIs(t, err, store.ErrNotFound)
		tk, err := tx.Ticket(ctx, ID(1))
		require.NoError(t, err)
		require.Equal(t, box.InBox, tk.State)
		_, err = tx.Order(ctx, "k")
		require.ErrorIs(t, err, store.ErrNotFound)
		cs, err := tx.ChecksOf(ctx, ID(1))
		require.NoError(t, err)
		require.Empty(t, cs)
		deny, err := tx.DenyList(ctx)
		require.NoError(t, err)
		require.Empty(t, deny)
		return nil
	})
	require.ErrorIs(t, s.Update(ctx, func(tx store.Tx) error {
		return tx.TakeChallenge(ctx, Serial(100), []byte("c"), time.Now())
	}), store.ErrNotFound)
}

func testPanic(t *testing.T, s store.Store) {
	ctx := ctxT(t)
	require.Panics(t, func() {
		_ = s.Update(ctx, func(tx store.Tx) error {
			if err := tx.InsertTickets(ctx, []*box.Ticket{Ticket(1, Serial(110), 1)}); err != nil {
				return err
			}
			panic("boom")
		})
	})
	view(t, s, func(tx store.Tx) error {
		_, err := tx.Ticket(ctx, ID(1))
		require.ErrorIs(t, err, store.ErrNotFound)
		return nil
	})
	// The store still works.
	insert(t, s, Ticket(1, Serial(110), 1))
}

func testViewReadOnly(t *testing.T, s store.Store) {
	ctx := ctxT(t)
	insert(t, s, Ticket(1, Serial(120), 1))
	attempts := map[string]func(tx store.Tx) error{
		"PutCard":       func(tx store.Tx) error { return tx.PutCard(ctx, fullCard(Serial(121))) },
		"LockCard":      func(tx store.Tx) error { _, err := tx.LockCard(ctx, Serial(121)); return err },
		"InsertTickets": func(tx store.Tx) error { return tx.InsertTickets(ctx, []*box.Ticket{Ticket(2, Serial(120), 1)}) },
		"MoveTicket": func(tx store.Tx) error {
			tk := Ticket(1, Serial(120), 1)
			tk.State = box.OnCard
			return tx.MoveTicket(ctx, tk, box.InBox)
		},
		"PutOrder": func(tx store.Tx) error { return tx.PutOrder(ctx, "k", []byte("a")) },
	}
	for name, fn := range attempts {
		// A write in View fails, and is not committed.
		require.Error(t, s.View(ctx, fn), name)
	}
	view(t, s, func(tx store.Tx) error {
		_, err := tx.Card(ctx, Serial(121))
		require.ErrorIs(t, err, store.ErrNotFound)
		_, err = tx.Ticket(ctx, ID(2))
		require.ErrorIs(t, err, store.ErrNotFound)
		tk, err := tx.Ticket(ctx, ID(1))
		require.NoError(t, err)
		require.Equal(t, box.InBox, tk.State)
		_, err = tx.Order(ctx, "k")
		require.ErrorIs(t, err, store.ErrNotFound)
		return nil
	})
	// The store still works.
	insert(t, s, Ticket(2, Serial(120), 1))
}

func testCancelled(t *testing.T, s store.Store) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	ran := false
	err := s.Update(ctx, func(tx store.Tx) error {
		ran = true
		return tx.InsertTickets(ctx, []*box.Ticket{Ticket(1, Serial(130), 1)})
	})
	require.Error(t, err)
	require.True(t, errors.Is(err, context.Canceled) || !ran, "%v", err)
	require.Error(t, s.View(ctx, func(tx store.Tx) error {
		_, err := tx.CountTickets(ctx)
		return err
	}))
	view(t, s, func(tx store.Tx) error {
		_, err := tx.Ticket(ctxT(t), ID(1))
		require.ErrorIs(t, err, store.ErrNotFound)
		return nil
	})
	// The store still works.
	insert(t, s, Ticket(1, Serial(130), 1))
}

// testNoLostUpdate: N concurrent read-modify-write transactions on one
// card's plan counter; LockCard must serialise them.
func testNoLostUpdate(t *testing.T, s store.Store) {
	ctx := ctxT(t)
	const n = 16
	serial := Serial(140)
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for range n {
		wg.Go(func() {
			errs <- s.Update(ctx, func(tx store.Tx) error {
				c, err := tx.LockCard(ctx, serial)
				if err != nil {
					return err
				}
				c0 := c.Plan.C0
				time.Sleep(2 * time.Millisecond)
				c.Plan.C0 = c0 + 1
				return tx.PutCard(ctx, c)
			})
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}
	require.Equal(t, uint32(n), getCard(t, s, serial).Plan.C0)
}

// testDistinctCounters: concurrent "syncs" of one card each deliver one
// ticket from the box at the card's next counter value; no two get the
// same value.
func testDistinctCounters(t *testing.T, s store.Store) {
	ctx := ctxT(t)
	const n = 12
	serial := Serial(150)
	var ts []*box.Ticket
	for i := range n {
		ts = append(ts, Ticket(i+1, serial, 1+i))
	}
	insert(t, s, ts...)
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for range n {
		wg.Go(func() {
			errs <- s.Update(ctx, func(tx store.Tx) error {
				c, err := tx.LockCard(ctx, serial)
				if err != nil {
					return err
				}
				mine, err := tx.TicketsOf(ctx, serial)
				if err != nil {
					return err
				}
				i := slices.IndexFunc(mine, func(tk *box.Ticket) bool { return tk.State == box.InBox })
				if i < 0 {
					return errors.New("no ticket left in the box")
				}
				tk := *mine[i]
				counter := c.Plan.C0 + uint32(len(c.Plan.Items))
				tk.State, tk.Epoch, tk.Counter = box.Delivering, c.Epoch, counter
				time.Sleep(time.Millisecond)
				if err := tx.MoveTicket(ctx, &tk, box.InBox); err != nil {
					return err
				}
				c.Plan.Items = append(c.Plan.Items, box.Item{Op: box.OpStore, Ticket: tk.ID})
				return tx.PutCard(ctx, c)
			})
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}
	var mine []*box.Ticket
	view(t, s, func(tx store.Tx) (err error) {
		mine, err = tx.TicketsOf(ctx, serial)
		return err
	})
	seen := map[uint32]ticketfmt.ID{}
	for _, tk := range mine {
		require.Equal(t, box.Delivering, tk.State)
		if prev, dup := seen[tk.Counter]; dup {
			t.Fatalf("tickets %v and %v both delivered at counter %d", prev, tk.ID, tk.Counter)
		}
		seen[tk.Counter] = tk.ID
	}
	require.Len(t, seen, n)
	c := getCard(t, s, serial)
	require.Len(t, c.Plan.Items, n)
	for i, it := range c.Plan.Items {
		require.Equal(t, uint32(i), findTicket(t, mine, it.Ticket).Counter)
	}
}

func findTicket(t *testing.T, ts []*box.Ticket, id ticketfmt.ID) *box.Ticket {
	t.Helper()
	i := slices.IndexFunc(ts, func(tk *box.Ticket) bool { return tk.ID == id })
	require.GreaterOrEqual(t, i, 0, "ticket %v", id)
	return ts[i]
}

// testTwoCards: while one transaction holds one card, a transaction on
// another card completes (at once with per-card locks, after the first
// with a single writer): neither waits for ever.
func testTwoCards(t *testing.T, s store.Store) {
	ctx := ctxT(t)
	a, b := Serial(160), Serial(161)
	locked := make(chan struct{})
	bDone := make(chan error, 1)
	var wg sync.WaitGroup
	wg.Go(func() {
		<-locked
		bDone <- s.Update(ctx, func(tx store.Tx) error {
			c, err := tx.LockCard(ctx, b)
			if err != nil {
				return err
			}
			c.Epoch++
			return tx.PutCard(ctx, c)
		})
	})
	errA := s.Update(ctx, func(tx store.Tx) error {
		c, err := tx.LockCard(ctx, a)
		if err != nil {
			return err
		}
		close(locked)
		select {
		case err := <-bDone:
			// Per-card locks: b went through while a was held.
			bDone <- err
		case <-time.After(300 * time.Millisecond):
			// One writer at a time: b waits for a.
		}
		c.Epoch++
		return tx.PutCard(ctx, c)
	})
	require.NoError(t, errA)
	wg.Wait()
	require.NoError(t, <-bDone)
	require.Equal(t, uint32(1), getCard(t, s, a).Epoch)
	require.Equal(t, uint32(1), getCard(t, s, b).Epoch)
}

// testConcurrentInserts: concurrent orders get distinct, increasing Seq
// values and lose nothing.
func testConcurrentInserts(t *testing.T, s store.Store) {
	ctx := ctxT(t)
	const workers, each = 8, 10
	var wg sync.WaitGroup
	errs := make(chan error, workers*each)
	for w := range workers {
		wg.Go(func() {
			for i := range each {
				n := w*each + i + 1
				tk := Ticket(n, Serial(170), 1)
				errs <- s.Update(ctx, func(tx store.Tx) error {
					if err := tx.InsertTickets(ctx, []*box.Ticket{tk}); err != nil {
						return err
					}
					return tx.PutOrder(ctx, fmt.Sprint("order-", n), []byte{byte(n)})
				})
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}
	view(t, s, func(tx store.Tx) error {
		ts, err := tx.TicketsOf(ctx, Serial(170))
		require.NoError(t, err)
		require.Len(t, ts, workers*each)
		for i := 1; i < len(ts); i++ {
			assert.Greater(t, ts[i].Seq, ts[i-1].Seq)
		}
		return nil
	})
}

// testNotifyDue: NotifyDue leaves the transaction usable. A store.Notifier
// delivers what committed transactions announced, at commit and in commit
// order, and nothing of a rolled-back one; Listen returns ctx's error when
// ctx is done.
func testNotifyDue(t *testing.T, s store.Store) {
	ctx := ctxT(t)
	a, b, c := Serial(150), Serial(151), Serial(152)
	n, notifier := s.(store.Notifier)
	got := make(chan ticketfmt.Serial, 16)
	if notifier {
		listening := make(chan struct{})
		lctx, cancel := context.WithCancel(ctx)
		done := make(chan error, 1)
		go func() {
			done <- n.Listen(lctx, func() { close(listening) }, func(serial ticketfmt.Serial) {
				select {
				case got <- serial:
				default: // more than the test sends: seen below
				}
			})
		}()
		select {
		case <-listening:
		case err := <-done:
			t.Fatalf("Listen returned before listening: %v", err)
		case <-ctx.Done():
			t.Fatal("Listen is not listening")
		}
		// Registered after the store's Close: runs before it.
		t.Cleanup(func() {
			cancel()
			assert.ErrorIs(t, <-done, context.Canceled)
		})
	}

	update(t, s, func(tx store.Tx) error {
		require.NoError(t, tx.NotifyDue(ctx, a))
		if notifier {
			select {
			case serial := <-got:
				t.Errorf("%v delivered before the transaction committed", serial)
			case <-time.After(50 * time.Millisecond):
			}
		}
		// The transaction goes on.
		_, err := tx.LockCard(ctx, a)
		return err
	})
	getCard(t, s, a)
	boom := errors.New("boom")
	require.ErrorIs(t, s.Update(ctx, func(tx store.Tx) error {
		require.NoError(t, tx.NotifyDue(ctx, b))
		return boom
	}), boom)
	update(t, s, func(tx store.Tx) error { return tx.NotifyDue(ctx, c) })
	if !notifier {
		return
	}
	// Commit order, and b (rolled back) would have come between.
	for _, want := range []ticketfmt.Serial{a, c} {
		select {
		case serial := <-got:
			require.Equal(t, want, serial)
		case <-ctx.Done():
			t.Fatalf("%v was not delivered", want)
		}
	}
	select {
	case serial := <-got:
		t.Errorf("%v delivered once too often", serial)
	case <-time.After(50 * time.Millisecond):
	}
}
