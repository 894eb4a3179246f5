package vpcd_test

import (
	"testing"
	"time"

	"github.com/simtix/simtix/emulator"
	"github.com/simtix/simtix/internal/cardtest"
	"github.com/simtix/simtix/internal/pcscd"
)

// TestBehaviourThroughPCSC runs the card's whole behaviour suite against
// cards served through vpcd and reached through pcscd, as a handset or a
// gate reaches them.
//
// Each test of the suite gets a new card. A card may take a slot only once
// pcscd has seen the previous one leave it (else pcscd takes the new card
// for the old one, still powered), so the cards take turns on eight slot
// pairs: a pair comes back into use long after its last card left.
func TestBehaviourThroughPCSC(t *testing.T) {
	d := pcscd.Start(t, pcscd.Slots(pcscd.MaxSlots))
	pairs := make(chan int, d.Slots()/2)
	for k := range d.Slots() / 2 {
		pairs <- k
	}
	cardtest.Run(t, func(t testing.TB, f cardtest.Fixture) cardtest.Target {
		t.Helper()
		var k int
		select {
		case k = <-pairs:
		case <-time.After(testWait):
			t.Fatal("no free slot pair")
		}
		// Runs last: after the card has stopped being served.
		t.Cleanup(func() { pairs <- k })
		waitCard(t, d.ContactReader(k), false)
		waitCard(t, d.ContactlessReader(k), false)
		card, _ := newCard(t, f.Personalisation(), emulator.Options{T0: f.T0})
		serve(t, d, k, card)
		return target(t, d, k, f.T0)
	})
}
