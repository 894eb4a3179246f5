package attacks_test

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/simtix/simtix/apdu"
	"github.com/simtix/simtix/applet"
	"github.com/simtix/simtix/box"
	"github.com/simtix/simtix/cardproto"
	"github.com/simtix/simtix/internal/systemtest"
	"github.com/simtix/simtix/ticketfmt"
)

// TestReplayInTheSameSync: a rogue handset sends every authorised command
// (PUT CERTIFICATE, STORE, DELETE) a second time, byte for byte, right
// after the card accepted it, in the same sync. The card answers 6984 (the
// counter has moved on) and writes nothing; the plan goes on and settles
// as if the replays never happened.
func TestReplayInTheSameSync(t *testing.T) {
	env := systemtest.New(t, systemtest.Options{})
	h := newHolder(t, env, serialA)
	var replayed []byte
	h.tap.accepted = func(cmd []byte) {
		replayed = append(replayed, cmd[1])
		h.refused(t, cmd, apdu.SWStaleAuthorization, "replay of "+opName(cmd[1])+" in its own sync")
	}

	h.sync(t) // PUT CERTIFICATE
	ids := h.order(t, 2)
	res := h.sync(t) // STORE, STORE
	assert.Equal(t, 2, res.Steps)
	g, _ := newGate(t, env, 1)
	admit(t, g, h.card.Port(applet.Contactless))
	res = h.sync(t) // DELETE (checked)
	assert.Equal(t, 1, res.Steps)
	h.tap.accepted = nil

	assert.Equal(t, []byte{cardproto.InsPutCertificate, cardproto.InsStore, cardproto.InsStore, cardproto.InsDelete}, replayed,
		"every authorised command was replayed once")
	assert.Equal(t, uint32(4), h.snapshot(t).Counter, "each authorisation was used exactly once")
	assert.Equal(t, map[ticketfmt.ID]box.State{ids[0]: box.Checked, ids[1]: box.OnCard}, h.states(t))
	h.placed(t)
}

// TestReplayInALaterSync: authorisations kept from earlier syncs are sent
// again after the sync and inside a later one: the STORE of a ticket since
// checked and deleted (which would give it back unchecked), the DELETE,
// the PUT CERTIFICATE, and an authorisation the handset withheld, whose
// counter still equals the card's. Each is answered 6984 (the epoch voids
// it) and writes nothing; the withheld ticket goes back to the box and is
// delivered once.
func TestReplayInALaterSync(t *testing.T) {
	env := systemtest.New(t, systemtest.Options{})
	h := certified(t, env, serialA)
	ids := h.order(t, 2)
	h.sync(t)
	g, _ := newGate(t, env, 1)
	admit(t, g, h.card.Port(applet.Contactless))
	h.sync(t) // deletes ids[0], checked
	old := h.tap.taken()
	require.Len(t, old, 4, "PUT CERTIFICATE, 2 STORE, DELETE")
	require.NotContains(t, h.onCard(t), ids[0])

	for _, cmd := range old {
		h.refused(t, cmd, apdu.SWStaleAuthorization, "replay of "+opName(cmd[1])+" after its sync")
	}

	// A withheld authorisation: the handset takes a plan and never runs it.
	later := h.order(t, 1)[0]
	withheld := h.round(t, false)
	require.Equal(t, []string{"STORE " + later.String()}, ops(withheld.Steps))
	assert.Equal(t, box.Delivering, h.states(t)[later])
	// The next sync begins: BEGIN SYNC voids the withheld STORE, though its
	// counter is still the card's.
	next := h.begin(t)
	snap := h.snapshot(t)
	a := stepAuth(t, withheld.Steps[0])
	require.Equal(t, snap.Counter, a.Counter, "only the epoch tells the withheld STORE from a current one")
	require.Equal(t, snap.Epoch, a.Epoch+1)
	h.refusedCommand(t, stepCommand(t, withheld.Steps[0]), apdu.SWStaleAuthorization, "withheld STORE in the next sync")
	plan, err := post(t, env, h.serial, next, false, nil)
	require.NoError(t, err)
	require.Equal(t, []string{"STORE " + later.String()}, ops(plan.Steps), "the box settled the withheld STORE as unused and plans it again")
	// Inside the later sync, before and between its own steps, the old
	// authorisations are still refused.
	for _, cmd := range append(old, mustBytes(t, stepCommand(t, withheld.Steps[0]))) {
		h.refused(t, cmd, apdu.SWStaleAuthorization, "replay of "+opName(cmd[1])+" inside a later sync")
	}
	h.run(t, plan.Steps)
	h.refusedCommand(t, stepCommand(t, withheld.Steps[0]), apdu.SWStaleAuthorization, "withheld STORE after the new one")
	h.round(t, true)

	assert.Equal(t, map[ticketfmt.ID]box.State{ids[0]: box.Checked, ids[1]: box.OnCard, later: box.OnCard}, h.states(t))
	assert.Equal(t, map[ticketfmt.ID]byte{ids[1]: cardproto.StateUnchecked, later: cardproto.StateUnchecked}, h.onCard(t),
		"the checked ticket stays deleted; the withheld one is on the card once")
	h.placed(t)
}

// opName names an authorised command by its instruction byte.
func opName(ins byte) string {
	switch ins {
	case cardproto.InsStore:
		return "STORE"
	case cardproto.InsDelete:
		return "DELETE"
	case cardproto.InsPutCertificate:
		return "PUT CERTIFICATE"
	}
	return "?"
}

// mustBytes encodes a command APDU.
func mustBytes(t *testing.T, cmd apdu.Command) []byte {
	b, err := cmd.Bytes()
	require.NoError(t, err)
	return b
}
