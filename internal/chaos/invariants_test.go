package chaos

import (
	"errors"

	"github.com/stretchr/testify/require"

	"github.com/simtix/simtix/api"
	"github.com/simtix/simtix/applet"
	"github.com/simtix/simtix/box"
	"github.com/simtix/simtix/cardproto"
	"github.com/simtix/simtix/hostlib/gate/journal"
	"github.com/simtix/simtix/internal/placement"
	"github.com/simtix/simtix/store"
	"github.com/simtix/simtix/ticketfmt"
)

// verify checks simtix's promises after a step, on every card, from the
// cards' memories and the server's database:
//
//   - the box holds exactly the tickets issued to each card, no fewer and
//     no others;
//   - each unchecked ticket is on its card or in the box, never both and
//     never neither (placement.Check; tickets in flight are allowed, except
//     on a card a sync just synced without an error, which must be settled
//     and, unless an exchange or an order under way may have left room,
//     hold every ticket of the box that fits on it);
//   - no ticket is stored twice, on one card or two, nor on another card
//     than its carrier;
//   - a checked ticket never comes back to a card: once admitted, it is on
//     its card only in the checked state and until it leaves it;
//   - every check the card or the box knows of is a gate's admission, with
//     its gate and time;
//   - the server logged no warning and no error: the box never disagreed
//     with a card's inventory (what each plan did, as the card's counter
//     tells it, is what the card holds), flagged no card, failed no
//     request.
func (w *world) verify() {
	w.t.Helper()
	w.mu.Lock()
	warnings := w.warnings
	w.mu.Unlock()
	require.Empty(w.t, warnings, "the server's warnings")
	w.snaps = make([]applet.Snapshot, numCards)
	for i, c := range w.cards {
		snap, err := c.emu.Snapshot()
		require.NoError(w.t, err, "card %d", i)
		w.snaps[i] = snap
	}
	w.views = make([][]*box.Ticket, numCards)
	due := make([]int, numCards)
	err := w.st.View(w.ctx, func(tx store.Tx) error {
		for i, c := range w.cards {
			ts, err := tx.TicketsOf(w.ctx, c.serial)
			if err != nil {
				return err
			}
			w.views[i] = ts
			sc, err := tx.Card(w.ctx, c.serial)
			if errors.Is(err, store.ErrNotFound) {
				continue
			}
			if err != nil {
				return err
			}
			due[i] = box.Due(sc.Card, ts)
		}
		return nil
	})
	require.NoError(w.t, err)

	onCards := map[ticketfmt.ID]int{}
	for i, c := range w.cards {
		tickets, snap := w.views[i], w.snaps[i]
		require.Len(w.t, tickets, w.perCard[i], "card %d: the box lost tickets or holds unknown ones", i)
		views := make([]api.TicketView, len(tickets))
		// Plain conditions first: this loop sees every ticket at every step.
		for j, tk := range tickets {
			views[j] = api.TicketView{ID: tk.ID, State: tk.State}
			if idx, ok := w.issued[tk.ID]; !ok || idx != i {
				require.Failf(w.t, "a ticket unknown", "card %d: the box holds ticket %v, not issued to it", i, tk.ID)
			}
			if tk.State != box.Checked {
				continue
			}
			a, ok := w.admitted[tk.ID]
			switch {
			case !ok:
				require.Failf(w.t, "a check never admitted", "ticket %v is checked in the box, but no gate admitted it", tk.ID)
			case tk.Check == nil || tk.Check.Gate != a.rec.Gate || tk.Check.Time != a.rec.Time:
				require.Failf(w.t, "a check not as admitted", "ticket %v: the box has the check %+v, terminal %d admitted %X at %v",
					tk.ID, tk.Check, a.terminal, a.rec.Gate, a.rec.Time)
			}
		}
		err := placement.Check(snap, views)
		require.NotErrorIs(w.t, err, placement.ErrMisplaced, "card %d", i)
		if w.settled == c {
			require.NoError(w.t, err, "card %d after a sync that ended well", i)
			if !w.partial {
				require.Zero(w.t, due[i], "card %d after a sync that ended well: tickets of the box that fit are still due", i)
			}
		}
		for _, st := range snap.Tickets {
			id := st.Ticket.ID
			if other, twice := onCards[id]; twice {
				require.Failf(w.t, "a ticket stored twice", "ticket %v on card %d and card %d", id, other, i)
			}
			onCards[id] = i
			require.Equal(w.t, c.serial, st.Ticket.Carrier, "ticket %v on card %d", id, i)
			a, admitted := w.admitted[id]
			if st.State == cardproto.StateChecked {
				require.True(w.t, admitted, "ticket %v is checked on card %d, but no gate admitted it", id, i)
				require.Equal(w.t, a.rec.Gate, st.Check.Gate, "ticket %v: gate of the check on the card", id)
				require.Equal(w.t, a.rec.Time, st.Check.Time, "ticket %v: time of the check on the card", id)
			} else {
				require.False(w.t, admitted, "ticket %v admitted, but unchecked on card %d", id, i)
			}
			require.False(w.t, w.offCard[id], "ticket %v checked, left card %d, and came back", id, i)
		}
	}
	for id := range w.admitted {
		if _, on := onCards[id]; !on {
			w.offCard[id] = true
		}
	}
	w.settled, w.partial = nil, false
}

// serverChecks checks that the server holds each of the records exactly
// once, as the gate journaled it.
func (w *world) serverChecks(recs []journal.Record) {
	w.t.Helper()
	err := w.st.View(w.ctx, func(tx store.Tx) error {
		for _, r := range recs {
			checks, err := tx.ChecksOf(w.ctx, r.TicketID)
			if err != nil {
				return err
			}
			require.Len(w.t, checks, 1, "ticket %v: checks on the server", r.TicketID)
			c := checks[0]
			require.Equal(w.t, r.Serial, c.Serial, "ticket %v", r.TicketID)
			require.Equal(w.t, r.Gate, c.Gate, "ticket %v", r.TicketID)
			require.Equal(w.t, r.Time, c.Time, "ticket %v", r.TicketID)
			require.Equal(w.t, r.Nonce[:], c.Nonce, "ticket %v", r.TicketID)
			require.Equal(w.t, r.Receipt, c.Receipt, "ticket %v", r.TicketID)
		}
		return nil
	})
	require.NoError(w.t, err)
}

// verifyFinal checks the end of a run, after the drain: every ticket
// issued was admitted exactly once, by one gate, is checked in the box
// with that check (and in the server's checks exactly once), is on the
// deny list and is on no card.
func (w *world) verifyFinal() {
	w.t.Helper()
	for i, snap := range w.snaps {
		require.Empty(w.t, snap.Tickets, "card %d after the drain", i)
	}
	require.Len(w.t, w.admitted, len(w.issued), "every ticket issued is admitted once")
	journaled := map[ticketfmt.ID]journal.Record{}
	for _, term := range w.terminals {
		require.Empty(w.t, term.journal.Pending(), "terminal %d: records not uploaded", term.idx)
		for _, r := range term.journal.Records() {
			if prev, twice := journaled[r.TicketID]; twice {
				require.Failf(w.t, "a ticket journaled twice", "ticket %v at %v and at %v", r.TicketID, prev.Time, r.Time)
			}
			journaled[r.TicketID] = r
			a, ok := w.admitted[r.TicketID]
			require.True(w.t, ok, "ticket %v journaled, never admitted", r.TicketID)
			require.Equal(w.t, term.idx, a.terminal, "ticket %v journaled by another terminal than the one that admitted it", r.TicketID)
			require.True(w.t, r.SameCheck(a.rec), "ticket %v: journal record and admission differ", r.TicketID)
		}
	}
	require.Len(w.t, journaled, len(w.issued), "every ticket issued is journaled once")
	var recs []journal.Record
	for _, r := range journaled {
		recs = append(recs, r)
	}
	w.serverChecks(recs)
	err := w.st.View(w.ctx, func(tx store.Tx) error {
		counts, err := tx.CountTickets(w.ctx)
		if err != nil {
			return err
		}
		require.Equal(w.t, map[box.State]int{box.Checked: len(w.issued)}, nonZero(counts), "tickets by state")
		deny, err := tx.DenyList(w.ctx)
		if err != nil {
			return err
		}
		require.Len(w.t, deny, len(w.issued), "the deny list")
		for _, id := range deny {
			_, ok := w.issued[id]
			require.True(w.t, ok, "ticket %v on the deny list, never issued", id)
		}
		return nil
	})
	require.NoError(w.t, err)
}

func nonZero(m map[box.State]int) map[box.State]int {
	out := map[box.State]int{}
	for k, v := range m {
		if v != 0 {
			out[k] = v
		}
	}
	return out
}
