// Package placement checks simtix's central promise on one card: each
// unchecked ticket is on its card or in the virtual ticket box, never both
// and never neither, and no checked ticket stays on the card once the box
// has recorded it. The demo, the end-to-end tests and the fault tests use
// it.
package placement

import (
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"

	"github.com/simtix/simtix/api"
	"github.com/simtix/simtix/applet"
	"github.com/simtix/simtix/box"
	"github.com/simtix/simtix/cardproto"
	"github.com/simtix/simtix/ticketfmt"
)

// ErrInFlight means some tickets are still moving (delivering or
// returning, or checked on the card and not yet deleted): not a broken
// promise, just not settled yet.
var ErrInFlight = errors.New("placement: tickets in flight")

// ErrMisplaced means a ticket is in two places or none: the promise is
// broken.
var ErrMisplaced = errors.New("placement: tickets out of place")

// Check compares the card's file with the box's view of the card's
// tickets. It returns nil when everything is settled and in place, an
// error wrapping ErrInFlight when tickets are still moving, and one
// wrapping ErrMisplaced when a ticket is in two places or none.
func Check(card applet.Snapshot, tickets []api.TicketView) error {
	onCard := map[ticketfmt.ID]byte{}
	for _, st := range card.Tickets {
		onCard[st.Ticket.ID] = st.State
	}
	var wrong, moving []string
	for _, tv := range tickets {
		state, there := onCard[tv.ID]
		delete(onCard, tv.ID)
		switch tv.State {
		case box.OnCard:
			if !there {
				wrong = append(wrong, fmt.Sprintf("%v is on the card for the box, but not on the card", tv.ID))
			} else if state == cardproto.StateChecked {
				moving = append(moving, fmt.Sprintf("%v checked on the card, not yet synced", tv.ID))
			}
		case box.InBox:
			if there {
				wrong = append(wrong, fmt.Sprintf("%v is in the box and on the card", tv.ID))
			}
		case box.Checked:
			// Unchecked on the card happens too: a copy of the card was
			// checked; the box deletes the ticket at the next sync.
			if there {
				moving = append(moving, fmt.Sprintf("%v checked, not yet deleted from the card", tv.ID))
			}
		case box.Delivering, box.Returning:
			moving = append(moving, fmt.Sprintf("%v is %s", tv.ID, tv.State))
		default:
			wrong = append(wrong, fmt.Sprintf("%v in unknown state %q", tv.ID, tv.State))
		}
	}
	for id := range onCard {
		wrong = append(wrong, fmt.Sprintf("%v is on the card, unknown to the box", id))
	}
	if len(wrong) > 0 {
		sort.Strings(wrong)
		return fmt.Errorf("%w: %s", ErrMisplaced, strings.Join(wrong, "; "))
	}
	if len(moving) > 0 {
		sort.Strings(moving)
		return fmt.Errorf("%w: %s", ErrInFlight, strings.Join(moving, "; "))
	}
	return nil
}

// Observe reads the card, then the box's view, then the card again, and
// checks them (Check). A card that changed while the box was read (a sync
// ran) counts as in flight: a card read before a STORE and a box read
// after it would show the ticket in no place.
func Observe(card func() (applet.Snapshot, error), box func() ([]api.TicketView, error)) error {
	before, err := card()
	if err != nil {
		return err
	}
	view, err := box()
	if err != nil {
		return err
	}
	after, err := card()
	if err != nil {
		return err
	}
	if !sameCard(before, after) {
		return fmt.Errorf("%w: the card changed while the box was read", ErrInFlight)
	}
	return Check(after, view)
}

// sameCard reports whether two snapshots of a card show the same sync
// epoch and counter and the same tickets in the same states.
func sameCard(a, b applet.Snapshot) bool {
	return a.Epoch == b.Epoch && a.Counter == b.Counter &&
		slices.EqualFunc(a.Tickets, b.Tickets, func(x, y applet.StoredTicket) bool {
			return x.Ticket.ID == y.Ticket.ID && x.State == y.State
		})
}
