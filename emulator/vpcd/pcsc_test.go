package vpcd_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/ebfe/scard"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/simtix/simtix/apdu"
	"github.com/simtix/simtix/applet"
	"github.com/simtix/simtix/cardproto"
	"github.com/simtix/simtix/emulator"
	"github.com/simtix/simtix/internal/cardtest"
	"github.com/simtix/simtix/internal/pcscd"
	"github.com/simtix/simtix/nvm"
)

// TestCardThroughPCSC: a card served on both slots answers through PC/SC
// with its ATRs, on each interface as the applet defines.
func TestCardThroughPCSC(t *testing.T) {
	d := pcscd.Start(t)
	card, _ := newCard(t, cardtest.VectorFixture(t).Personalisation(), emulator.Options{})
	serve(t, d, 0, card)

	c := pcscContext(t)
	readers, err := c.ListReaders()
	require.NoError(t, err)
	assert.Equal(t, []string{"Virtual PCD 00 00", "Virtual PCD 00 01"}, readers)
	assert.Equal(t, readers, d.Readers())

	contact := connect(t, c, d.ContactReader(0), scard.ProtocolT1)
	contactless := connect(t, c, d.ContactlessReader(0), scard.ProtocolT1)
	for _, tc := range []struct {
		card *scard.Card
		i    applet.Interface
	}{{contact, applet.Contact}, {contactless, applet.Contactless}} {
		st, err := tc.card.Status()
		require.NoError(t, err)
		assert.Equal(t, card.ATR(tc.i), st.Atr, "%v ATR", tc.i)
		assert.Equal(t, scard.ProtocolT1, st.ActiveProtocol, "%v protocol", tc.i)
	}

	r := send(t, contact, selectSimtix)
	assert.True(t, strings.HasPrefix(r, "6F") && strings.HasSuffix(r, "9000"), "contact SELECT: %s", r)
	fci, err := cardproto.ParseFCI(mustHex(t, r[:len(r)-4]))
	require.NoError(t, err)
	require.NotNil(t, fci.Status, "the contact FCI has the status template")
	assert.Equal(t, cardtest.VectorFixture(t).Serial, fci.Status.Serial)
	r = send(t, contact, statusCmd)
	assert.True(t, strings.HasSuffix(r, "9000"), "contact STATUS: %s", r)
	assert.Equal(t, "6A82", send(t, contact, selectUnknown))

	r = send(t, contactless, selectSimtix)
	assert.True(t, strings.HasPrefix(r, "6F") && strings.HasSuffix(r, "9000"), "contactless SELECT: %s", r)
	assert.Equal(t, "6982", send(t, contactless, statusCmd), "STATUS is not allowed contactless")
	assert.Equal(t, "6A82", send(t, contactless, selectUnknown))
}

// TestT0Card: in T=0 mode the contact slot shows the T=0 ATR and PC/SC
// connects with T=0.
func TestT0Card(t *testing.T) {
	d := pcscd.Start(t)
	f := cardtest.VectorFixture(t)
	f.T0 = true
	card, _ := newCard(t, f.Personalisation(), emulator.Options{T0: true})
	serve(t, d, 0, card)

	c := pcscContext(t)
	contact := connect(t, c, d.ContactReader(0), scard.ProtocolT0)
	st, err := contact.Status()
	require.NoError(t, err)
	assert.Equal(t, card.ATR(applet.Contact), st.Atr)
	assert.NotEqual(t, (&emulator.Echo{}).ATR(applet.Contact), st.Atr, "not the T=1 ATR")
	assert.Equal(t, scard.ProtocolT0, st.ActiveProtocol)
	_, err = c.Connect(d.ContactReader(0), scard.ShareShared, scard.ProtocolT1)
	assert.Error(t, err, "the T=0 card offers no T=1")

	// The applet over T=0: a case 4 command answers 61xx, and GET
	// RESPONSE fetches the data.
	r := send(t, contact, selectSimtix)
	require.Len(t, r, 4, "SELECT over T=0 answers 61xx: %s", r)
	require.Equal(t, "61", r[:2], "SELECT over T=0: %s", r)
	r = send(t, contact, "00C00000"+r[2:])
	require.True(t, strings.HasPrefix(r, "6F") && strings.HasSuffix(r, "9000"), "GET RESPONSE: %s", r)
	fci, err := cardproto.ParseFCI(mustHex(t, strings.TrimSuffix(r, "9000")))
	require.NoError(t, err)
	require.NotNil(t, fci.Status)
	assert.Equal(t, f.Serial, fci.Status.Serial)
}

// TestPowerCycleThroughPCSC: a reset or power cycle through pcscd clears
// the selection; the stored tickets stay.
func TestPowerCycleThroughPCSC(t *testing.T) {
	d := pcscd.Start(t)
	f := cardtest.VectorFixture(t)
	card, _ := newCard(t, f.Personalisation(), emulator.Options{})
	serve(t, d, 0, card)

	h, tgt := harness(t, d, 0, f)
	h.Select(applet.Contact)
	h.Sync()
	require.Equal(t, apdu.SWSuccess, h.Store(h.Issue(0)).SW)
	h.OK(applet.Contact, cardproto.List())

	for _, disp := range []scard.Disposition{scard.ResetCard, scard.UnpowerCard} {
		require.NoError(t, tgt.cards[applet.Contact].Reconnect(scard.ShareShared, scard.ProtocolT1, disp))
		h.SW(applet.Contact, cardproto.List(), apdu.SWNotSelected)
		st := h.Select(applet.Contact).Status
		require.NotNil(t, st)
		assert.Equal(t, 1, st.Stored, "the ticket is kept")
		assert.Equal(t, uint32(1), st.Epoch)
	}
	snap, err := card.Snapshot()
	require.NoError(t, err)
	assert.Len(t, snap.Tickets, 1)
}

// TestPCSCDRestart: when pcscd restarts, the served card comes back by
// itself.
func TestPCSCDRestart(t *testing.T) {
	d := pcscd.Start(t)
	card, _ := newCard(t, cardtest.VectorFixture(t).Personalisation(), emulator.Options{})
	serve(t, d, 0, card)
	c := pcscContext(t)
	contact := connect(t, c, d.ContactReader(0), scard.ProtocolT1)
	require.True(t, strings.HasSuffix(send(t, contact, statusCmd), "9000"))
	_ = contact.Disconnect(scard.LeaveCard)
	_ = c.Release()

	start := time.Now()
	d.Restart(t)
	waitCard(t, d.ContactReader(0), true)
	waitCard(t, d.ContactlessReader(0), true)
	t.Logf("back in %v", time.Since(start))

	c = pcscContext(t)
	contact = connect(t, c, d.ContactReader(0), scard.ProtocolT1)
	r := send(t, contact, selectSimtix)
	assert.True(t, strings.HasSuffix(r, "9000"), "SELECT after the restart: %s", r)
	contactless := connect(t, c, d.ContactlessReader(0), scard.ProtocolT1)
	assert.Equal(t, "6A82", send(t, contactless, selectUnknown))
}

// removedErr reports whether err is what PC/SC says of a card that went
// away under a command.
func removedErr(err error) bool {
	for _, e := range []scard.Error{scard.ErrRemovedCard, scard.ErrResetCard, scard.ErrNoSmartcard,
		scard.ErrUnpoweredCard, scard.ErrNotTransacted, scard.ErrCommError} {
		if errors.Is(err, e) {
			return true
		}
	}
	return false
}

// TestTearThroughPCSC: a tear shows up to the client as the card removed,
// from both readers; the card comes back by itself, without the torn
// command.
func TestTearThroughPCSC(t *testing.T) {
	d := pcscd.Start(t)
	f := cardtest.VectorFixture(t)
	// BEGIN SYNC's first write (the epoch) is torn.
	card, path := newCard(t, f.Personalisation(), emulator.Options{Fault: nvm.Fault{Kind: nvm.Tear, At: 1}})
	serve(t, d, 0, card)
	before, err := emulator.ReadSnapshot(path)
	require.NoError(t, err)

	c := pcscContext(t)
	contact := connect(t, c, d.ContactReader(0), scard.ProtocolT1)
	contactless := connect(t, c, d.ContactlessReader(0), scard.ProtocolT1)
	assert.True(t, strings.HasSuffix(send(t, contactless, selectSimtix), "9000"))
	assert.True(t, strings.HasSuffix(send(t, contact, selectSimtix), "9000"))

	var challenge [16]byte
	sync, err := cardproto.BeginSync(challenge).Bytes()
	require.NoError(t, err)
	// The torn command has no answer. vpcd cannot say so: it reads the
	// closed connection as an empty answer, which pcscd hands on as an
	// empty response (no status word), not as an error.
	resp, err := contact.Transmit(sync)
	if err == nil {
		assert.Empty(t, resp, "the torn command has no answer")
	} else {
		assert.True(t, removedErr(err), "torn: %v", err)
	}
	t.Logf("torn command: response %X, error %v", resp, err)
	// Both readers see the card removed (within a presence poll), and
	// the connections say so.
	waitCard(t, d.ContactReader(0), false)
	waitCard(t, d.ContactlessReader(0), false)
	_, err = contact.Transmit(mustHex(t, statusCmd))
	assert.ErrorIs(t, err, scard.ErrRemovedCard, "after the tear, contact")
	_, err = contactless.Transmit(mustHex(t, selectSimtix))
	assert.ErrorIs(t, err, scard.ErrRemovedCard, "after the tear, contactless")

	// It comes back by itself, without the torn command.
	waitCard(t, d.ContactReader(0), true)
	waitCard(t, d.ContactlessReader(0), true)
	contact = connect(t, c, d.ContactReader(0), scard.ProtocolT1)
	fci, err := cardproto.ParseFCI(mustHex(t, strings.TrimSuffix(send(t, contact, selectSimtix), "9000")))
	require.NoError(t, err)
	require.NotNil(t, fci.Status)
	assert.Equal(t, before.Epoch, fci.Status.Epoch, "BEGIN SYNC was not applied")
	after, err := emulator.ReadSnapshot(path)
	require.NoError(t, err)
	assert.Equal(t, before, after)
}

// TestTwoCards: two cards at once on four slots, each on its own readers.
func TestTwoCards(t *testing.T) {
	d := pcscd.Start(t, pcscd.Slots(4))
	f := cardtest.VectorFixture(t)
	p1 := f.Personalisation()
	p2 := f.Personalisation()
	p2.Serial[9] ^= 0xFF
	card1, _ := newCard(t, p1, emulator.Options{})
	card2, _ := newCard(t, p2, emulator.Options{})
	serve(t, d, 0, card1)
	serve(t, d, 1, card2)

	c := pcscContext(t)
	readers, err := c.ListReaders()
	require.NoError(t, err)
	assert.Equal(t, []string{"Virtual PCD 00 00", "Virtual PCD 00 01", "Virtual PCD 1 00 00", "Virtual PCD 1 00 01"}, readers)
	assert.Equal(t, readers, d.Readers())

	for k, want := range []applet.Personalisation{p1, p2} {
		contact := connect(t, c, d.ContactReader(k), scard.ProtocolT1)
		fci, err := cardproto.ParseFCI(mustHex(t, strings.TrimSuffix(send(t, contact, selectSimtix), "9000")))
		require.NoError(t, err)
		require.NotNil(t, fci.Status)
		assert.Equal(t, want.Serial, fci.Status.Serial, "card %d on %q", k, d.ContactReader(k))
		contactless := connect(t, c, d.ContactlessReader(k), scard.ProtocolT1)
		assert.True(t, strings.HasSuffix(send(t, contactless, selectSimtix), "9000"))
		assert.Equal(t, "6982", send(t, contactless, statusCmd))
	}
}

// TestNoDelayedACKStall: 200 STATUS round trips through pcscd take far
// less than 200 x 44 ms. Without TCP_QUICKACK, Debian's vpcd waits for the
// card's delayed ACK on every message (44 ms a command). A regression
// guard for that stall, not a speed target.
func TestNoDelayedACKStall(t *testing.T) {
	d := pcscd.Start(t)
	card, _ := newCard(t, cardtest.VectorFixture(t).Personalisation(), emulator.Options{})
	serve(t, d, 0, card)
	contact := connect(t, pcscContext(t), d.ContactReader(0), scard.ProtocolT1)
	send(t, contact, selectSimtix)
	cmd := mustHex(t, statusCmd)
	start := time.Now()
	for range 200 {
		_, err := contact.Transmit(cmd)
		require.NoError(t, err)
	}
	took := time.Since(start)
	t.Logf("200 STATUS through pcscd: %v (%v each)", took, took/200)
	assert.Less(t, took, 2*time.Second, "the 44 ms delayed-ACK stall is back")
}
