package attacks_test

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/simtix/simtix/apdu"
	"github.com/simtix/simtix/applet"
	"github.com/simtix/simtix/box"
	"github.com/simtix/simtix/cardkeys"
	"github.com/simtix/simtix/cardproto"
	"github.com/simtix/simtix/hostlib"
	"github.com/simtix/simtix/hostlib/gate"
	"github.com/simtix/simtix/hostlib/gate/journal"
	"github.com/simtix/simtix/internal/systemtest"
	"github.com/simtix/simtix/ticketfmt"
)

// refusedAt requires that gate g refuses what port presents for reason,
// admits nobody and journals nothing.
func refusedAt(t *testing.T, g *gate.Gate, j *journal.Journal, port hostlib.Transport, reason error, what string) gate.Verdict {
	t.Helper()
	v, err := g.Check(t.Context(), port)
	require.NoError(t, err, what)
	assert.False(t, v.Accepted, what)
	assert.ErrorIs(t, v.Reason, reason, what)
	assert.Nil(t, v.Record, what)
	assert.Zero(t, j.Len(), "%s: journaled", what)
	return v
}

// TestCheckWithoutCommit: a device relays SELECT and FIND to the genuine
// card but answers CHECK itself, so that the card never commits the check
// and the ticket could be used again: with a made-up receipt, with a
// genuine receipt the card signed for another check, and with no receipt
// at all. The gate admits nobody (ErrReceipt, or an error), journals
// nothing, and the ticket stays unchecked and admits its holder afterwards.
func TestCheckWithoutCommit(t *testing.T) {
	env := systemtest.New(t, systemtest.Options{})
	h := certified(t, env, serialA)
	ids := h.order(t, 2)
	h.sync(t)
	g1, _ := newGate(t, env, 1)
	earlier := admit(t, g1, h.card.Port(applet.Contactless)).Record.Receipt // ids[0], a genuine receipt

	g2, j2 := newGate(t, env, 2)
	before := h.memory()
	for _, tc := range []struct {
		name   string
		answer func(cmd []byte) []byte
	}{
		{"made-up receipt", nil},
		{"the card's receipt of another check", func([]byte) []byte {
			return append(append([]byte{0x9D, 0x40}, earlier...), 0x90, 0x00)
		}},
	} {
		d := &device{card: h.card.Port(applet.Contactless), check: tc.answer}
		v := refusedAt(t, g2, j2, d, gate.ErrReceipt, tc.name)
		assert.Equal(t, 1, d.checks, "%s: the gate sent CHECK", tc.name)
		assert.Equal(t, ids[1], v.Ticket.ID)
	}
	d := &device{card: h.card.Port(applet.Contactless), check: func([]byte) []byte { return []byte{0x90, 0x00} }}
	v, err := g2.Check(t.Context(), d)
	require.Error(t, err, "no receipt at all")
	assert.False(t, v.Accepted)
	assert.Zero(t, j2.Len())
	assert.True(t, bytes.Equal(before, h.memory()), "the card committed nothing")
	assert.Equal(t, cardproto.StateUnchecked, h.onCard(t)[ids[1]])
	assert.Equal(t, box.OnCard, h.states(t)[ids[1]])

	// The genuine card presented: the ticket was never used up.
	assert.Equal(t, ids[1], admit(t, g2, h.card.Port(applet.Contactless)).Ticket.ID)
	h.placed(t)
}

// TestForgedTicket: tickets not signed by the issuer. On a device that
// presents the genuine card's certificate, a ticket with a changed field,
// one signed by an unknown key, and one signed by another key under the
// issuer's key ID are refused before CHECK (ErrSignature). On the card, a
// forged ticket in place of a genuine STORE's ticket fails the MAC (6982)
// and changes nothing. The card checks a STORE's MAC, canonical form and
// binding, not the issuer's signature (it holds no issuer key): a
// non-canonical ticket is 6A80 even with a valid MAC, and a forged one
// with a valid MAC (which only the box can make) is stored, and refused by
// the gate.
func TestForgedTicket(t *testing.T) {
	env := systemtest.New(t, systemtest.Options{})
	h := certified(t, env, serialA)
	genuine := h.order(t, 1)[0]
	h.sync(t)
	stranger, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	issuerKeyID, err := ticketfmt.KeyIDOf(env.Keys.Signer().Public())
	require.NoError(t, err)

	fci, _ := skim(t, h.card)
	g, j := newGate(t, env, 1)
	before := h.memory()
	for _, tc := range []struct {
		name  string
		forge func() []byte
		cause error
	}{
		{"a genuine ticket with another price", func() []byte {
			tk, err := ticketfmt.Unmarshal(h.raw[genuine])
			require.NoError(t, err)
			tk.Price = 1
			return marshal(t, tk)
		}, ticketfmt.ErrBadSignature},
		{"signed by an unknown key", func() []byte {
			return forge(t, h.serial, stranger, nil)
		}, ticketfmt.ErrUnknownKey},
		{"signed by another key under the issuer's key ID", func() []byte {
			return forge(t, h.serial, stranger, func(tk *ticketfmt.Ticket) { tk.KeyID = issuerKeyID })
		}, ticketfmt.ErrBadSignature},
	} {
		d := &device{fci: fci, found: findAnswer(t, tc.forge())}
		v := refusedAt(t, g, j, d, gate.ErrSignature, tc.name)
		assert.ErrorIs(t, v.Reason, tc.cause, tc.name)
		assert.Zero(t, d.checks, "%s: the gate sent CHECK", tc.name)
		assert.False(t, sentCheck(v), tc.name)
	}
	assert.True(t, bytes.Equal(before, h.memory()))

	// A forged ticket slipped into a genuine STORE: the MAC covers the
	// ticket's bytes.
	forged := forge(t, h.serial, stranger, func(tk *ticketfmt.Ticket) {
		tk.Time = ticketfmt.TimeOfDayOf(useTime.Add(-10 * time.Minute)) // FIND's first pick
	})
	second := h.order(t, 1)[0]
	plan := h.round(t, false)
	require.Equal(t, []string{"STORE " + second.String()}, ops(plan.Steps))
	a := stepAuth(t, plan.Steps[0])
	mac := unhex(t, plan.Steps[0].MAC)
	h.refusedCommand(t, cardproto.Store(forged, a, mac), apdu.SWSecurityStatus, "a forged ticket under a genuine STORE's MAC")
	// The box's own MAC over a non-canonical encoding of a genuine ticket.
	long := nonCanonical(t, h.raw[second])
	h.refusedCommand(t, cardproto.Store(long, a, cardkeys.StoreMAC(h.keys(t), h.serial, a, long)), apdu.SWWrongData,
		"a non-canonical ticket with a valid MAC")
	h.run(t, plan.Steps) // the genuine STORE still applies: nothing moved
	h.round(t, true)
	h.inPlace(t, nil)

	// With a valid MAC (K_store: the box itself, or whoever holds the
	// master secret), the card stores a forged ticket: it does not verify
	// issuer signatures. The gate does.
	a = h.auth(t)
	require.Equal(t, apdu.SWSuccess, h.sendCommand(t, cardproto.Store(forged, a, cardkeys.StoreMAC(h.keys(t), h.serial, a, forged))),
		"the card stores a canonical ticket bound to it under a valid MAC")
	forgedID := ticketID(t, forged)
	d := &device{card: h.card.Port(applet.Contactless)}
	v := refusedAt(t, g, j, d, gate.ErrSignature, "a forged ticket on the genuine card")
	assert.Equal(t, forgedID, v.Ticket.ID)
	assert.False(t, sentCheck(v))
	assert.Equal(t, cardproto.StateUnchecked, h.onCard(t)[forgedID])
	// The box's tickets are untouched; the forged one is unknown to it.
	h.sync(t)
	h.inPlace(t, map[ticketfmt.ID]bool{forgedID: true})
	assert.NotContains(t, h.states(t), forgedID)
	assert.Equal(t, map[ticketfmt.ID]box.State{genuine: box.OnCard, second: box.OnCard}, h.states(t))
}

// TestSkimmedTicketReplayed: a device in range of the card reads its FCI
// (certificate) and the ticket FIND answers, then presents them to a gate
// from elsewhere. It cannot sign the receipt: ErrReceipt, nothing
// journaled, and the genuine card keeps its ticket unchecked and is
// admitted afterwards.
func TestSkimmedTicketReplayed(t *testing.T) {
	env := systemtest.New(t, systemtest.Options{})
	h := certified(t, env, serialA)
	id := h.order(t, 1)[0]
	h.sync(t)
	before := h.memory()
	fci, found := skim(t, h.card)
	assert.True(t, bytes.Equal(before, h.memory()), "reading is not writing")

	g, j := newGate(t, env, 1)
	d := &device{fci: fci, found: found}
	v := refusedAt(t, g, j, d, gate.ErrReceipt, "skimmed certificate and ticket")
	assert.Equal(t, id, v.Ticket.ID)
	assert.Equal(t, h.serial, v.Serial)
	assert.True(t, bytes.Equal(before, h.memory()))
	assert.Equal(t, box.OnCard, h.states(t)[id])

	assert.Equal(t, id, admit(t, g, h.card.Port(applet.Contactless)).Ticket.ID)
	h.placed(t)
}

// TestTicketCopiedToAnotherCard: A's ticket put on card B. A's recorded
// STORE sent to B, and A's ticket under B's genuine STORE authorisation,
// fail the MAC (6982: it names the serial and the ticket); under a valid
// MAC for B (only the box can make one) the card refuses a ticket bound to
// another serial (6A80), as it refuses A's certificate, one naming B with
// another key and one naming B's key with A's serial (6A80). B's memory never changes and B's own STORE
// then applies. At the gate, a device presenting B's certificate with A's
// ticket, or A's certificate with B's, is refused (ErrBinding).
func TestTicketCopiedToAnotherCard(t *testing.T) {
	env := systemtest.New(t, systemtest.Options{})
	a := certified(t, env, serialA)
	ta := a.order(t, 1)[0]
	a.sync(t)
	var storeA []byte
	for _, cmd := range a.tap.taken() {
		if cmd[1] == cardproto.InsStore {
			storeA = cmd
		}
	}
	require.NotNil(t, storeA)

	b := certified(t, env, serialB)
	tb := b.order(t, 1)[0]
	plan := b.round(t, false)
	require.Equal(t, []string{"STORE " + tb.String()}, ops(plan.Steps))
	auth, mac := stepAuth(t, plan.Steps[0]), unhex(t, plan.Steps[0].MAC)

	b.refused(t, storeA, apdu.SWSecurityStatus, "A's recorded STORE on B")
	b.refusedCommand(t, cardproto.Store(a.raw[ta], auth, mac), apdu.SWSecurityStatus, "A's ticket under B's STORE authorisation")
	b.refusedCommand(t, cardproto.Store(a.raw[ta], auth, cardkeys.StoreMAC(b.keys(t), b.serial, auth, a.raw[ta])), apdu.SWWrongData,
		"A's ticket with a valid MAC for B")
	// Certificates are bound too: A's, and one naming B with another key,
	// each under a valid MAC for B.
	fciA, foundA := skim(t, a.card)
	fa, err := cardproto.ParseFCI(fciA)
	require.NoError(t, err)
	b.refusedCommand(t, cardproto.PutCertificate(fa.Certificate, auth, cardkeys.CertMAC(b.keys(t), b.serial, auth, fa.Certificate)),
		apdu.SWWrongData, "A's certificate with a valid MAC for B")
	other, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	wrongKey := &ticketfmt.Certificate{Serial: b.serial, PublicKey: &other.PublicKey}
	require.NoError(t, wrongKey.Sign(env.Keys.Signer()))
	certB, err := wrongKey.Marshal()
	require.NoError(t, err)
	b.refusedCommand(t, cardproto.PutCertificate(certB, auth, cardkeys.CertMAC(b.keys(t), b.serial, auth, certB)),
		apdu.SWWrongData, "a certificate for B's serial and another key, with a valid MAC")
	wrongSerial := &ticketfmt.Certificate{Serial: a.serial, PublicKey: b.card.PublicKey()}
	require.NoError(t, wrongSerial.Sign(env.Keys.Signer()))
	certA, err := wrongSerial.Marshal()
	require.NoError(t, err)
	b.refusedCommand(t, cardproto.PutCertificate(certA, auth, cardkeys.CertMAC(b.keys(t), b.serial, auth, certA)),
		apdu.SWWrongData, "a certificate for B's key and A's serial, with a valid MAC")
	b.run(t, plan.Steps)
	b.round(t, true)
	assert.NotContains(t, b.onCard(t), ta)

	fciB, foundB := skim(t, b.card)
	g, j := newGate(t, env, 1)
	refusedAt(t, g, j, &device{fci: fciB, found: foundA}, gate.ErrBinding, "B's certificate with A's ticket")
	refusedAt(t, g, j, &device{fci: fciA, found: foundB}, gate.ErrBinding, "A's certificate with B's ticket")
	// A device relaying to the genuine B but showing A's ticket.
	d := &device{card: b.card.Port(applet.Contactless), found: foundA}
	v := refusedAt(t, g, j, d, gate.ErrBinding, "genuine B relaying A's ticket")
	assert.False(t, sentCheck(v))

	assert.Equal(t, box.OnCard, a.states(t)[ta])
	assert.Equal(t, box.OnCard, b.states(t)[tb])
	a.placed(t)
	b.placed(t)
}

// TestRestoredCardImage: the card's memory is copied before a check and
// restored, after the check at gate 1, into another card. A gate with the
// deny list (downloaded after gate 1's upload) refuses its ticket
// (ErrDenied) without sending CHECK. A gate without it admits the copy (it
// is a perfect clone, key included: an offline gate cannot tell), and the
// upload of its journal flags the ticket checked twice and the card for an
// operator. The restored image cannot sync with its old epochs, the box's
// last one included (409).
func TestRestoredCardImage(t *testing.T) {
	env := systemtest.New(t, systemtest.Options{})
	h := certified(t, env, serialA)
	id := h.order(t, 1)[0]
	h.sync(t)
	image := h.memory()

	g1, j1 := newGate(t, env, 1)
	admit(t, g1, h.card.Port(applet.Contactless))
	up, err := journal.Upload(t.Context(), j1, env.Gate())
	require.NoError(t, err)
	require.Equal(t, 1, up.Accepted)
	require.Empty(t, up.CheckedTwice)
	assert.Equal(t, box.Checked, h.states(t)[id])
	h.sync(t) // the genuine card syncs: the checked ticket leaves it

	clone := h.restore(t, image)
	snap, err := clone.Snapshot()
	require.NoError(t, err)
	require.Len(t, snap.Tickets, 1)
	require.Equal(t, cardproto.StateUnchecked, snap.Tickets[0].State, "the copy predates the check")

	deny, err := env.Gate().Deny(t.Context())
	require.NoError(t, err)
	require.Contains(t, deny, id)
	g2, j2 := newGate(t, env, 2)
	g2.SetDenyList(deny)
	v := refusedAt(t, g2, j2, clone.Port(applet.Contactless), gate.ErrDenied, "a restored image at a gate with the deny list")
	assert.False(t, sentCheck(v))
	snap, err = clone.Snapshot()
	require.NoError(t, err)
	assert.Equal(t, cardproto.StateUnchecked, snap.Tickets[0].State)

	// Without the deny list, an offline gate admits the clone: the server
	// catches it when the journals meet.
	g3, j3 := newGate(t, env, 3)
	admit(t, g3, clone.Port(applet.Contactless))
	up, err = journal.Upload(t.Context(), j3, env.Gate())
	require.NoError(t, err)
	assert.Equal(t, 1, up.Accepted)
	assert.Equal(t, []ticketfmt.ID{id}, up.CheckedTwice)
	card := boxState(t, env, h.serial).Card
	require.NotNil(t, card)
	require.Len(t, card.Flags, 1)
	assert.Contains(t, card.Flags[0], "checked twice")
	assert.Equal(t, box.Checked, h.states(t)[id])

	// The restored image syncs: its epoch is not after the box's, up to
	// and including the box's last one.
	before := boxState(t, env, h.serial)
	cl := &holder{env: env, serial: h.serial, card: clone, applet: hostlib.NewApplet(clone.Port(applet.Contact), hostlib.ClientOptions{})}
	for {
		ans := cl.begin(t)
		s, err := cardproto.ParseSync(ans.e4)
		require.NoError(t, err)
		_, err = post(t, env, h.serial, ans, false, nil)
		assertStatus(t, err, http.StatusConflict, fmt.Sprintf("a restored image's sync at epoch %d (the box's: %d)", s.Status.Epoch, before.Card.Epoch))
		if s.Status.Epoch >= before.Card.Epoch {
			break
		}
	}
	assert.Equal(t, before, boxState(t, env, h.serial))

	h.placed(t)
	assert.Empty(t, h.onCard(t))
}

// forge makes a ticket for the venue, bound to serial, signed by key, with
// tweak applied after signing.
func forge(t *testing.T, serial ticketfmt.Serial, key *ecdsa.PrivateKey, tweak func(*ticketfmt.Ticket)) []byte {
	t.Helper()
	tk := &ticketfmt.Ticket{ID: randomID(t), Type: 1, Seller: venue, Date: ticketfmt.DateOf(useTime),
		Time: ticketfmt.TimeOfDayOf(useTime), Price: 4500, Seat: "K 99", Carrier: serial}
	require.NoError(t, tk.Sign(key))
	if tweak != nil {
		tweak(tk)
	}
	return marshal(t, tk)
}

// marshal encodes a ticket, signed or not.
func marshal(t *testing.T, tk *ticketfmt.Ticket) []byte {
	b, err := tk.Marshal()
	require.NoError(t, err)
	return b
}

// ticketID reads a ticket's ID.
func ticketID(t *testing.T, raw []byte) ticketfmt.ID {
	tk, err := ticketfmt.Unmarshal(raw)
	require.NoError(t, err)
	return tk.ID
}

// nonCanonical re-encodes a ticket E1 with its length in a longer form than
// needed (82 00 LL): the same fields, not DER-minimal.
func nonCanonical(t *testing.T, raw []byte) []byte {
	t.Helper()
	require.Equal(t, byte(0xE1), raw[0])
	require.Equal(t, byte(0x81), raw[1], "a ticket of 128-255 bytes")
	out := append([]byte{0xE1, 0x82, 0x00}, raw[2:]...)
	_, err := ticketfmt.Unmarshal(out)
	require.Error(t, err, "the encoding is not canonical")
	return out
}

// TestCloneAgainstTheCardsInventory: as TestRestoredCardImage, but the
// first check reaches the box only through the genuine card's inventory
// (gate 1 never uploads). The clone's check uploaded by another gate is
// still two checks of one ticket: flagged.
func TestCloneAgainstTheCardsInventory(t *testing.T) {
	env := systemtest.New(t, systemtest.Options{})
	h := certified(t, env, serialA)
	id := h.order(t, 1)[0]
	h.sync(t)
	image := h.memory()

	g1, _ := newGate(t, env, 1)
	admit(t, g1, h.card.Port(applet.Contactless))
	h.sync(t) // the box learns the check from the card, and deletes it
	require.Equal(t, box.Checked, h.states(t)[id])

	clone := h.restore(t, image)
	g3, j3 := newGate(t, env, 3)
	admit(t, g3, clone.Port(applet.Contactless))
	up, err := journal.Upload(t.Context(), j3, env.Gate())
	require.NoError(t, err)
	assert.Equal(t, 1, up.Accepted)
	assert.Equal(t, []ticketfmt.ID{id}, up.CheckedTwice)
	card := boxState(t, env, h.serial).Card
	require.NotNil(t, card)
	require.Len(t, card.Flags, 1)
	assert.Contains(t, card.Flags[0], "checked twice")

	// The operator sees the flag with the card's tickets.
	list, err := env.Operator().Tickets(t.Context(), h.serial.String())
	require.NoError(t, err)
	assert.Equal(t, card.Flags, list.Flags)
}
