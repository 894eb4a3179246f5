package gate_test

import (
	"context"
	"fmt"
	"log"
	"os"
	"path/filepath"
	"time"

	"github.com/simtix/simtix/api"
	"github.com/simtix/simtix/applet"
	"github.com/simtix/simtix/hostlib"
	"github.com/simtix/simtix/hostlib/gate"
	"github.com/simtix/simtix/hostlib/gate/journal"
	"github.com/simtix/simtix/hostlib/handset"
	"github.com/simtix/simtix/internal/systemtest"
	"github.com/simtix/simtix/ticketfmt"
)

// A gate loop checks one card per presentation. Here the card is
// in-process; a gate reader is a *pcsc.Card from hostlib/pcsc.
func ExampleGate_Check() {
	ctx := context.Background()
	card, keys, done := exampleCard() // a certified card holding a ticket for 19:30
	defer done()

	dir, _ := os.MkdirTemp("", "gate")
	defer os.RemoveAll(dir)
	j, err := journal.Open(filepath.Join(dir, "gate.journal"))
	if err != nil {
		log.Fatal(err)
	}
	defer j.Close()
	g, err := gate.New(gate.Config{
		Keys:     keys, // the issuer's public keys (issuer-keys.pem)
		Venue:    "Royal Albert Hall",
		Location: time.UTC, // the venue's time zone
		ID:       [4]byte{0x00, 0x00, 0x00, 0x07},
		Journal:  j,
		Now:      func() time.Time { return time.Date(2026, 12, 12, 19, 10, 0, 0, time.UTC) },
	})
	if err != nil {
		log.Fatal(err)
	}
	v, err := g.Check(ctx, card) // the card's contactless interface
	if err != nil {
		log.Fatal(err) // the card left, the journal failed: no verdict
	}
	if !v.Accepted {
		fmt.Println("refused:", v.Reason)
		return
	}
	fmt.Println("accepted:", v.Ticket.Seller, v.Ticket.Date, v.Ticket.Time, "in", v.APDUs, "APDUs")
	v, _ = g.Check(ctx, card)
	fmt.Println("again:", v.Reason)
	// Output:
	// accepted: Royal Albert Hall 2026-12-12 19:30 in 3 APDUs
	// again: no ticket for this venue in the time window
}

// exampleCard makes a server, a card it has certified and a ticket on it.
func exampleCard() (hostlib.Transport, *ticketfmt.KeySet, func()) {
	t, cleanup := systemtest.ForExample()
	env := systemtest.New(t, systemtest.Options{})
	c := env.NewCard("89860012345678901234", 0)
	h := &handset.Handset{Card: hostlib.NewApplet(c.Port(applet.Contact), hostlib.ClientOptions{}), Box: env.Client("")}
	ctx := context.Background()
	res, err := h.Sync(ctx, nil)
	if err != nil {
		log.Fatal(err)
	}
	_, err = env.Operator().Order(ctx, api.OrderRequest{Carrier: res.Serial.String(), IdempotencyKey: "example",
		Tickets: []api.OrderTicket{{Type: 1, Seller: "Royal Albert Hall", Date: ticketfmt.Date{Year: 2026, Month: 12, Day: 12},
			Time: ticketfmt.TimeOfDay{Hour: 19, Minute: 30}, Price: 4500}}})
	if err != nil {
		log.Fatal(err)
	}
	if _, err := h.Sync(ctx, nil); err != nil {
		log.Fatal(err)
	}
	return c.Port(applet.Contactless), env.Keys.KeySet(), cleanup
}
