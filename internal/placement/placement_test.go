package placement_test

import (
	"errors"
	"testing"

	"github.com/stretchr/testify/assert"

	"github.com/simtix/simtix/api"
	"github.com/simtix/simtix/applet"
	"github.com/simtix/simtix/box"
	"github.com/simtix/simtix/cardproto"
	"github.com/simtix/simtix/internal/placement"
	"github.com/simtix/simtix/ticketfmt"
)

func id(b byte) ticketfmt.ID { return ticketfmt.ID{b} }

func card(tickets ...applet.StoredTicket) applet.Snapshot { return applet.Snapshot{Tickets: tickets} }

func on(b byte, state byte) applet.StoredTicket {
	return applet.StoredTicket{Ticket: &ticketfmt.Ticket{ID: id(b)}, State: state}
}

func view(b byte, s box.State) api.TicketView { return api.TicketView{ID: id(b), State: s} }

func TestCheck(t *testing.T) {
	for _, tc := range []struct {
		name string
		card applet.Snapshot
		view []api.TicketView
		want error
	}{
		{"settled", card(on(1, cardproto.StateUnchecked)), []api.TicketView{view(1, box.OnCard), view(2, box.InBox), view(3, box.Checked)}, nil},
		{"on the card and in the box", card(on(1, cardproto.StateUnchecked)), []api.TicketView{view(1, box.InBox)}, placement.ErrMisplaced},
		{"in no place", card(), []api.TicketView{view(1, box.OnCard)}, placement.ErrMisplaced},
		{"unknown to the box", card(on(9, cardproto.StateUnchecked)), nil, placement.ErrMisplaced},
		{"delivering", card(), []api.TicketView{view(1, box.Delivering)}, placement.ErrInFlight},
		{"returning", card(on(1, cardproto.StateUnchecked)), []api.TicketView{view(1, box.Returning)}, placement.ErrInFlight},
		{"checked, not yet synced", card(on(1, cardproto.StateChecked)), []api.TicketView{view(1, box.OnCard)}, placement.ErrInFlight},
		{"checked, not yet deleted", card(on(1, cardproto.StateChecked)), []api.TicketView{view(1, box.Checked)}, placement.ErrInFlight},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := placement.Check(tc.card, tc.view)
			if tc.want == nil {
				assert.NoError(t, err)
			} else {
				assert.ErrorIs(t, err, tc.want)
			}
		})
	}
}

func TestObserveACardThatMoved(t *testing.T) {
	reads := 0
	cards := []applet.Snapshot{card(), {Counter: 1, Tickets: []applet.StoredTicket{on(1, cardproto.StateUnchecked)}}}
	readCard := func() (applet.Snapshot, error) {
		reads++
		return cards[min(reads-1, 1)], nil
	}
	// The box read between the card's two reads says the ticket is on the
	// card; the first card read did not have it yet.
	err := placement.Observe(readCard, func() ([]api.TicketView, error) { return []api.TicketView{view(1, box.OnCard)}, nil })
	assert.ErrorIs(t, err, placement.ErrInFlight)
	assert.NotErrorIs(t, err, placement.ErrMisplaced)

	fail := errors.New("box down")
	assert.ErrorIs(t, placement.Observe(readCard, func() ([]api.TicketView, error) { return nil, fail }), fail)
}
