package handset_test

import (
	"context"
	"fmt"
	"log"

	"github.com/simtix/simtix/api"
	"github.com/simtix/simtix/apiclient"
	"github.com/simtix/simtix/applet"
	"github.com/simtix/simtix/hostlib"
	"github.com/simtix/simtix/hostlib/handset"
	"github.com/simtix/simtix/internal/systemtest"
)

// A handset syncs its card with the virtual ticket box: the first sync
// registers and certifies the card, the next stores the tickets ordered
// for it that fit. Over a PC/SC reader the card is a *pcsc.Card from
// hostlib/pcsc; here it is in-process.
func ExampleHandset_Sync() {
	ctx := context.Background()
	t, cleanup := systemtest.ForExample()
	defer cleanup()
	env := systemtest.New(t, systemtest.Options{}) // a server, for the example
	card := env.NewCard("89860012345678901234", 0)

	box, err := apiclient.New(env.URL, "", nil)
	if err != nil {
		log.Fatal(err)
	}
	h := &handset.Handset{Card: hostlib.NewApplet(card.Port(applet.Contact), hostlib.ClientOptions{}), Box: box}
	res, err := h.Sync(ctx, nil)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("card %v registered: %d step (its certificate)\n", res.Serial, res.Steps)

	_, err = env.Operator().Order(ctx, api.OrderRequest{Carrier: res.Serial.String(), IdempotencyKey: "example",
		Tickets: systemtest.Tickets(t)})
	if err != nil {
		log.Fatal(err)
	}
	res, err = h.Sync(ctx, nil)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("%d tickets stored, %d bytes free, %d waiting in the box\n", res.Steps, res.Status.Free, res.Waiting)
	// Output:
	// card 89860012345678901234 registered: 1 step (its certificate)
	// 12 tickets stored, 9 bytes free, 12 waiting in the box
}
