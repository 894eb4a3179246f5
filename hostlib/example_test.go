package hostlib_test

import (
	"context"
	"fmt"
	"log"

	"github.com/simtix/simtix/applet"
	"github.com/simtix/simtix/emulator"
	"github.com/simtix/simtix/hostlib"
	"github.com/simtix/simtix/ticketfmt"
)

// An emulated card in memory, reached in-process: the same Applet client
// works over a PC/SC reader (hostlib/pcsc).
func ExampleApplet() {
	ctx := context.Background()
	serial, _ := ticketfmt.ParseSerial("89860012345678901234")
	ram, err := emulator.Personalise(applet.Personalisation{Serial: serial, Master: make([]byte, 32)})
	if err != nil {
		log.Fatal(err)
	}
	card, err := emulator.New(ram, emulator.Options{})
	if err != nil {
		log.Fatal(err)
	}
	port := card.Port(applet.Contact)
	if _, err := port.PowerOn(ctx); err != nil {
		log.Fatal(err)
	}

	a := hostlib.NewApplet(port, hostlib.ClientOptions{})
	if _, err := a.Select(ctx); err != nil {
		log.Fatal(err)
	}
	st, err := a.Status(ctx)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("card %v: %d of %d bytes free, %d tickets at most\n", st.Serial, st.Free, st.Capacity, st.MaxTickets)
	// Output: card 89860012345678901234: 2048 of 2048 bytes free, 32 tickets at most
}

// Errors carry the card's status word and match the apdu package's
// sentinels.
func ExampleApplet_Read() {
	ctx := context.Background()
	ram, _ := emulator.Personalise(applet.Personalisation{Master: make([]byte, 32)})
	card, _ := emulator.New(ram, emulator.Options{})
	port := card.Port(applet.Contact)
	_, _ = port.PowerOn(ctx)
	a := hostlib.NewApplet(port, hostlib.ClientOptions{})
	_, err := a.Read(ctx, ticketfmt.ID{1})
	fmt.Println(err)
	_, _ = a.Select(ctx)
	_, err = a.Read(ctx, ticketfmt.ID{1})
	fmt.Println(err)
	// Output:
	// apdu: READ: 6986 command not allowed (no current EF)
	// apdu: READ: 6A88 referenced data not found
}
