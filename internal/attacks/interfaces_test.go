package attacks_test

import (
	"bytes"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/simtix/simtix/apdu"
	"github.com/simtix/simtix/applet"
	"github.com/simtix/simtix/box"
	"github.com/simtix/simtix/cardkeys"
	"github.com/simtix/simtix/cardproto"
	"github.com/simtix/simtix/internal/systemtest"
	"github.com/simtix/simtix/ticketfmt"
)

// TestRogueReader: a contactless reader in range of the card sends the
// handset's commands: LIST and READ (to learn the holder's tickets), BEGIN
// SYNC (to move the epoch and void the handset's plan), STATUS, TERMINAL
// PROFILE and FETCH, and the STORE, DELETE and PUT CERTIFICATE of a
// genuine plan it relays. Each is 6982 and writes nothing; the plan then
// runs on the contact interface. The other way round, a rogue handset
// sends FIND and CHECK on the contact interface: 6982 too.
func TestRogueReader(t *testing.T) {
	env := systemtest.New(t, systemtest.Options{})
	h := certified(t, env, serialA)
	ids := h.order(t, 1)
	h.sync(t)
	later := h.order(t, 1)[0]
	plan := h.round(t, false)
	require.Equal(t, []string{"STORE " + later.String()}, ops(plan.Steps))
	fci, err := h.applet.Select(t.Context())
	require.NoError(t, err)

	reader := h.card.Port(applet.Contactless)
	require.Equal(t, apdu.SWSuccess, transmit(t, reader, mustBytes(t, cardproto.Select())))
	auth := h.auth(t)
	var challenge [cardkeys.ChallengeSize]byte
	for _, tc := range []struct {
		name string
		cmd  apdu.Command
	}{
		{"LIST", cardproto.List()},
		{"READ", cardproto.Read(ids[0])},
		{"BEGIN SYNC", cardproto.BeginSync(challenge)},
		{"STATUS", cardproto.Status()},
		{"TERMINAL PROFILE", cardproto.TerminalProfile(cardproto.DefaultProfile)},
		{"FETCH", cardproto.Fetch()},
		{"the plan's STORE", stepCommand(t, plan.Steps[0])},
		{"DELETE", cardproto.Delete(ids[0], cardproto.StateUnchecked, auth, cardkeys.DeleteMAC(h.keys(t), h.serial, auth, ids[0], cardproto.StateUnchecked))},
		{"PUT CERTIFICATE", cardproto.PutCertificate(fci.Certificate, auth, cardkeys.CertMAC(h.keys(t), h.serial, auth, fci.Certificate))},
	} {
		before := h.memory()
		got := transmit(t, reader, mustBytes(t, tc.cmd))
		assert.Equal(t, apdu.SWSecurityStatus, got, "%s on the contactless interface: %v", tc.name, got)
		assert.True(t, bytes.Equal(before, h.memory()), "%s on the contactless interface changed the card", tc.name)
	}

	var nonce [cardkeys.NonceSize]byte
	h.refusedCommand(t, cardproto.Find(cardproto.Query{Seller: venue, Date: ticketfmt.DateOf(useTime)}), apdu.SWSecurityStatus, "FIND on the contact interface")
	h.refusedCommand(t, cardproto.Check(ids[0], [4]byte{1, 2, 3, 4}, ticketfmt.DateTimeOf(gateNow), nonce), apdu.SWSecurityStatus, "CHECK on the contact interface")

	h.run(t, plan.Steps)
	h.round(t, true)
	assert.Equal(t, map[ticketfmt.ID]box.State{ids[0]: box.OnCard, later: box.OnCard}, h.states(t))
	h.placed(t)
}
