package cardtest

import (
	"bytes"
	"encoding/hex"
	"fmt"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/simtix/simtix/apdu"
	"github.com/simtix/simtix/applet"
	"github.com/simtix/simtix/cardkeys"
	"github.com/simtix/simtix/cardproto"
	"github.com/simtix/simtix/ticketfmt"
	"github.com/simtix/simtix/tlv"
)

const (
	contact     = applet.Contact
	contactless = applet.Contactless
)

// Run runs the whole behaviour suite, each test on a new card from
// newTarget.
func Run(t *testing.T, newTarget Factory) {
	for _, tc := range []struct {
		name string
		f    func(t *testing.T, newTarget Factory)
	}{
		{"VectorSync", testVectorSync},
		{"VectorStoreAndCertificate", testVectorStoreAndCertificate},
		{"VectorCheck", testVectorCheck},
		{"SelectAndChannels", testSelectAndChannels},
		{"Interfaces", testInterfaces},
		{"Precedence", testPrecedence},
		{"FillUntilFull", testFillUntilFull},
		{"CountLimit", testCountLimit},
		{"StoreRefusals", testStoreRefusals},
		{"DeleteAndAuthorisations", testDeleteAndAuthorisations},
		{"CertificateRefusals", testCertificateRefusals},
		{"FindAndRead", testFindAndRead},
		{"CheckRules", testCheckRules},
		{"Chaining", testChaining},
		{"ExtendedLength", testExtendedLength},
		{"ResponseParts", testResponseParts},
		{"Notifications", testNotifications},
		{"NotificationNumbers", testNotificationNumbers},
		{"PowerCycle", testPowerCycle},
	} {
		t.Run(tc.name, func(t *testing.T) { tc.f(t, newTarget) })
	}
}

func testVectorSync(t *testing.T, newTarget Factory) {
	h := NewHarness(t, newTarget, VectorFixture(t))
	fci := h.Select(contact)
	require.NotNil(t, fci.Status)
	assert.Equal(t, uint32(0), fci.Status.Epoch)
	assert.Equal(t, uint32(0), fci.Status.Counter)
	assert.Nil(t, fci.Certificate)

	var ch [16]byte
	copy(ch[:], h.V.SyncChallenge)
	got := h.OK(contact, cardproto.BeginSync(ch))
	assert.Equal(t, hex.EncodeToString(h.V.SyncE4), hex.EncodeToString(got), "BEGIN SYNC answer of vectors.json")
	assert.Empty(t, h.OK(contact, cardproto.List()), "an empty card lists nothing")

	st := h.Status()
	assert.Equal(t, uint32(1), st.Epoch)
	assert.Equal(t, uint32(0), st.Counter, "BEGIN SYNC leaves the counter")
	assert.Equal(t, applet.RecordOverhead, st.Overhead)
}

func testVectorStoreAndCertificate(t *testing.T, newTarget Factory) {
	h := NewHarness(t, newTarget, VectorFixture(t))
	h.Select(contact)
	h.Sync()
	a := cardkeys.Authorisation{Epoch: 1, Counter: 0}

	// The certificate of vectors.json, with its MAC for epoch 1, counter 0.
	h.OK(contact, cardproto.PutCertificate(h.V.CardCertificateE5, a, h.V.CertMAC))
	fci := h.Select(contact)
	assert.Equal(t, h.V.CardCertificateE5, fci.Certificate)
	assert.Equal(t, uint32(1), fci.Status.Counter)

	// The same authorisation again is stale.
	h.SW(contact, cardproto.PutCertificate(h.V.CardCertificateE5, a, h.V.CertMAC), apdu.SWStaleAuthorization)

	// The store MAC of vectors.json is for counter 0: on a new card.
	h2 := NewHarness(t, newTarget, VectorFixture(t))
	h2.Select(contact)
	h2.Sync()
	h2.OK(contact, cardproto.Store(h.V.TicketE1, a, h.V.StoreMAC))
	st := h2.Status()
	assert.Equal(t, 1, st.Stored)
	assert.Equal(t, 2048-175-applet.RecordOverhead, st.Free)
	assert.Equal(t, uint32(1), st.Counter)
	entries, err := cardproto.ParseList(h2.OK(contact, cardproto.List()))
	require.NoError(t, err)
	require.Len(t, entries, 1)
	assert.Equal(t, 175, entries[0].Length)
	assert.Equal(t, ticketfmt.Date{Year: 2026, Month: 12, Day: 5}, entries[0].Date)

	// Its DELETE MAC (expected state 01) is for counter 0, now used: the MAC
	// verifies, the authorisation is stale.
	a2 := cardkeys.Authorisation{Epoch: 1, Counter: 0}
	id := ID(t, h.V.TicketE1)
	h2.SW(contact, cardproto.Delete(id, 0x01, a2, h.V.DeleteMACChecked), apdu.SWStaleAuthorization)
}

func testVectorCheck(t *testing.T, newTarget Factory) {
	h := NewHarness(t, newTarget, VectorFixture(t))
	h.Select(contact)
	h.Sync()
	h.OK(contact, cardproto.Store(h.V.TicketE1, cardkeys.Authorisation{Epoch: 1}, h.V.StoreMAC))

	fci := h.Select(contactless)
	assert.Nil(t, fci.Status, "the contactless FCI has no status")
	date := ticketfmt.Date{Year: 2026, Month: 12, Day: 5}
	ts, err := cardproto.ParseTicketState(h.OK(contactless, cardproto.Find(cardproto.Query{Date: date})))
	require.NoError(t, err)
	assert.Equal(t, h.V.TicketE1, ts.Raw)
	assert.Equal(t, cardproto.StateUnchecked, ts.State)

	var gate [4]byte
	var nonce [16]byte
	copy(gate[:], h.V.CheckGateID)
	copy(nonce[:], h.V.CheckNonce)
	when, err := ticketfmt.DecodeDateTime(h.V.CheckTime)
	require.NoError(t, err)
	receipt, err := cardproto.ParseReceipt(h.OK(contactless, cardproto.Check(ts.Ticket.ID, gate, when, nonce)))
	require.NoError(t, err)
	assert.Equal(t, h.V.CheckReceipt9D, receipt, "the receipt of vectors.json (RFC 6979)")

	// READ on the contact side shows the check.
	read, err := cardproto.ParseTicketState(h.OK(contact, cardproto.Read(ts.Ticket.ID)))
	require.NoError(t, err)
	assert.Equal(t, cardproto.StateChecked, read.State)
	require.NotNil(t, read.Check)
	assert.Equal(t, gate, read.Check.Gate)
	assert.Equal(t, when, read.Check.Time)

	// A retry by the same gate at the same time gets a receipt again, over
	// its new nonce; another gate is refused.
	nonce[0] ^= 0xFF
	again, err := cardproto.ParseReceipt(h.OK(contactless, cardproto.Check(ts.Ticket.ID, gate, when, nonce)))
	require.NoError(t, err)
	require.NoError(t, cardproto.VerifyReceipt(&h.F.CardKey.PublicKey, h.F.Serial, h.V.TicketE1,
		cardproto.CheckRecord{Gate: gate, Time: when}, nonce[:], again))
	other := gate
	other[3]++
	h.SW(contactless, cardproto.Check(ts.Ticket.ID, other, when, nonce), apdu.SWConditionsNotSatisfied)
	later := when
	later.Second++
	h.SW(contactless, cardproto.Check(ts.Ticket.ID, gate, later, nonce), apdu.SWConditionsNotSatisfied)
	// FIND finds only unchecked tickets.
	h.SW(contactless, cardproto.Find(cardproto.Query{Date: date}), apdu.SWReferenceNotFound)

	st := h.Status()
	assert.Equal(t, 1, st.Checked)
	assert.Equal(t, 175+applet.RecordOverhead, st.Reclaimable)
	assert.Equal(t, st.Capacity, st.AvailableBytes())
	assert.Equal(t, 32, st.AvailableTickets())
}

func testSelectAndChannels(t *testing.T, newTarget Factory) {
	h := NewHarness(t, newTarget, VectorFixture(t))
	for _, i := range []applet.Interface{contact, contactless} {
		// Nothing is selected at power-on.
		h.SW(i, cardproto.Find(cardproto.Query{Date: ticketfmt.Date{Year: 2026, Month: 1, Day: 1}}), apdu.SWNotSelected)
		h.SW(i, cardproto.SelectAID([]byte{0xA0, 0, 0, 0, 0x87, 0x10, 0x02}), apdu.SWFileNotFound)
		ch1, err := cardproto.ParseChannel(h.OK(i, cardproto.OpenChannel()))
		require.NoError(t, err)
		assert.Equal(t, 1, ch1)
		ch2, _ := cardproto.ParseChannel(h.OK(i, cardproto.OpenChannel()))
		ch3, _ := cardproto.ParseChannel(h.OK(i, cardproto.OpenChannel()))
		assert.Equal(t, []int{2, 3}, []int{ch2, ch3})
		h.SW(i, cardproto.OpenChannel(), apdu.SWChannelNotSupported)

		// Selection is per channel: select on channel 2 only.
		sel := cardproto.OnChannel(cardproto.SelectNoFCI(), 2)
		assert.Empty(t, h.OK(i, sel))
		if i == contact {
			assert.Empty(t, h.OK(i, cardproto.OnChannel(cardproto.Status(), 1)), "STATUS with nothing selected answers no data")
			st, err := cardproto.ParseStatus(h.OK(i, cardproto.OnChannel(cardproto.Status(), 2)))
			require.NoError(t, err)
			assert.Equal(t, h.F.Serial, st.Serial)
			h.SW(i, cardproto.OnChannel(cardproto.List(), 1), apdu.SWNotSelected)
			h.OK(i, cardproto.OnChannel(cardproto.List(), 2))
		}
		// A failed SELECT keeps the selection.
		h.SW(i, cardproto.OnChannel(cardproto.SelectAID([]byte{1, 2, 3, 4, 5}), 2), apdu.SWFileNotFound)
		if i == contact {
			h.OK(i, cardproto.OnChannel(cardproto.List(), 2))
		}

		h.OK(i, cardproto.CloseChannel(2))
		h.SW(i, cardproto.CloseChannel(2), apdu.SWChannelNotSupported)
		h.SW(i, cardproto.OnChannel(cardproto.SelectNoFCI(), 2), apdu.SWChannelNotSupported)
		// Reopened, it starts with nothing selected.
		n, _ := cardproto.ParseChannel(h.OK(i, cardproto.OpenChannel()))
		assert.Equal(t, 2, n)
		if i == contact {
			h.SW(i, cardproto.OnChannel(cardproto.List(), 2), apdu.SWNotSelected)
		}
		h.SW(i, apdu.Command{CLA: 0x00, INS: 0x70, P1: 0x80, P2: 0x00}, apdu.SWIncorrectP1P2)
		h.SW(i, apdu.Command{CLA: 0x00, INS: 0x70, P1: 0x80, P2: 0x04}, apdu.SWIncorrectP1P2)
		h.SW(i, apdu.Command{CLA: 0x00, INS: 0x70, P1: 0x00, P2: 0x01, Ne: 1}, apdu.SWIncorrectP1P2)
		// Further channels (classes 40-7F) are not supported.
		h.SW(i, apdu.Command{CLA: 0x40, INS: 0xA4, P1: 0x04, P2: 0x00, Data: cardproto.AID}, apdu.SWChannelNotSupported)
		for n := 1; n <= 3; n++ {
			h.OK(i, cardproto.CloseChannel(n))
		}
	}
}

func testInterfaces(t *testing.T, newTarget Factory) {
	h := NewHarness(t, newTarget, VectorFixture(t))
	h.Select(contact)
	h.Select(contactless)
	date := ticketfmt.Date{Year: 2026, Month: 12, Day: 5}
	var gate [4]byte
	var nonce [16]byte
	var ch [16]byte
	ticket := h.Issue(0)
	a := cardkeys.Authorisation{}
	for _, cmd := range []apdu.Command{
		cardproto.Status(), cardproto.TerminalProfile([]byte{1}), cardproto.Fetch(),
		cardproto.TerminalResponse(1, 0), cardproto.List(), cardproto.Read(ticketfmt.ID{}),
		cardproto.BeginSync(ch), h.StoreCmd(ticket, a), h.DeleteCmd(ticketfmt.ID{}, 0, a),
		cardproto.PutCertificate(h.V.CardCertificateE5, a, make([]byte, 16)),
	} {
		h.SW(contactless, cmd, apdu.SWSecurityStatus)
	}
	for _, cmd := range []apdu.Command{
		cardproto.Find(cardproto.Query{Date: date}),
		cardproto.Check(ticketfmt.ID{}, gate, ticketfmt.DateTime{Date: date}, nonce),
	} {
		h.SW(contact, cmd, apdu.SWSecurityStatus)
	}
	// Both interfaces reach the same storage.
	h.Sync()
	require.Equal(t, apdu.SWSuccess, h.Store(ticket).SW)
	ts, err := cardproto.ParseTicketState(h.OK(contactless, cardproto.Find(cardproto.Query{Date: ticketfmt.Date{Year: 2026, Month: 12, Day: 5}})))
	require.NoError(t, err)
	assert.Equal(t, ticket, ts.Raw)
}

// testPrecedence checks the status word order of card-applet.md on APDUs
// that break several rules at once.
func testPrecedence(t *testing.T, newTarget Factory) {
	h := NewHarness(t, newTarget, VectorFixture(t))
	cases := []struct {
		name  string
		apdu  string
		iface applet.Interface
		want  apdu.StatusWord
	}{
		{"too short", "80F200", contact, apdu.SWWrongLength},
		{"class 20", "20F2000000", contact, apdu.SWCLANotSupported},
		{"class A0", "A0A40400", contact, apdu.SWCLANotSupported},
		{"class FF", "FFA40400", contact, apdu.SWCLANotSupported},
		{"secure messaging 0C", "0CA4040008F053494D54495801", contact, apdu.SWCLANotSupported},
		{"secure messaging 84", "84F2000000", contact, apdu.SWCLANotSupported},
		{"ISO command with class 80", "80A4040008F053494D54495801", contact, apdu.SWCLANotSupported},
		{"card command with class 00", "00F2000000", contact, apdu.SWCLANotSupported},
		{"class 40 beats unknown INS", "40FF0000", contact, apdu.SWChannelNotSupported},
		{"closed channel beats unknown INS", "81FF0000", contact, apdu.SWChannelNotSupported},
		{"closed channel beats class", "83F2000000", contact, apdu.SWChannelNotSupported},
		{"class beats closed channel", "03F2000000", contact, apdu.SWCLANotSupported},
		{"unknown INS", "80FF0000", contact, apdu.SWINSNotSupported},
		{"unknown INS beats selection", "80FE000000", contactless, apdu.SWINSNotSupported},
		{"not selected beats interface", "8036000000", contact, apdu.SWNotSelected},
		{"not selected beats P1P2", "8030010000", contact, apdu.SWNotSelected},
		{"interface beats P1P2", "80F2030000", contactless, apdu.SWSecurityStatus},
		{"P1P2 beats length", "80F20300020102", contact, apdu.SWIncorrectP1P2},
		{"STATUS P2 02", "80F2000200", contact, apdu.SWIncorrectP1P2},
		{"SELECT P1 00", "00A4000008F053494D54495801", contact, apdu.SWIncorrectP1P2},
		{"SELECT P2 02", "00A4040208F053494D54495801", contact, apdu.SWIncorrectP1P2},
		{"GET RESPONSE P1", "00C0010000", contact, apdu.SWIncorrectP1P2},
		{"data on STATUS", "80F20000020102", contact, apdu.SWWrongLength},
		{"no data on SELECT", "00A4040000", contact, apdu.SWWrongLength},
		{"Lc too long", "00A4040009F053494D54495801", contact, apdu.SWWrongLength},
		{"Lc and Le do not add up", "00A4040007F053494D5449580101", contact, apdu.SWWrongLength},
		{"extended Lc 0", "00A404000000000000", contact, apdu.SWWrongLength},
		{"TERMINAL PROFILE of 33 bytes", "8010000021" + string(bytes.Repeat([]byte("00"), 33)), contact, apdu.SWWrongLength},
		{"TERMINAL PROFILE of 0 bytes", "80100000", contact, apdu.SWWrongLength},
		{"FETCH with nothing pending", "8012000000", contact, apdu.SWConditionsNotSatisfied},
		{"TERMINAL RESPONSE with nothing pending", "80140000" + "0C" + "810301F000" + "82028281" + "830100", contact, apdu.SWConditionsNotSatisfied},
		{"TERMINAL RESPONSE malformed", "80140000" + "03" + "830100", contact, apdu.SWWrongData},
		{"GET RESPONSE with nothing pending", "00C0000000", contact, apdu.SWConditionsNotSatisfied},
		{"MANAGE CHANNEL with data", "0070000001" + "00", contact, apdu.SWWrongLength},
	}
	for _, tc := range cases {
		r := h.RawHex(tc.iface, tc.apdu)
		assert.Equal(t, tc.want, r.SW, "%s: %s", tc.name, tc.apdu)
		assert.Empty(t, r.Data, tc.name)
	}

	h.Select(contact)
	h.Sync()
	a := h.Auth()
	ticket := h.Issue(0)
	good := h.StoreCmd(ticket, a)
	// Layout (6A80) before MAC (6982) before authorisation (6984).
	swapped := apdu.Command{CLA: 0x80, INS: 0x38, Data: append(append([]byte(nil), good.Data[len(ticket):]...), ticket...)}
	h.SW(contact, swapped, apdu.SWWrongData)
	trailing := good
	trailing.Data = append(append([]byte(nil), good.Data...), 0x00)
	h.SW(contact, trailing, apdu.SWWrongData)
	badMAC := cardproto.Store(ticket, cardkeys.Authorisation{Epoch: a.Epoch + 5}, make([]byte, 16))
	h.SW(contact, badMAC, apdu.SWSecurityStatus)
	stale := h.StoreCmd(ticket, cardkeys.Authorisation{Epoch: a.Epoch - 1, Counter: a.Counter})
	h.SW(contact, stale, apdu.SWStaleAuthorization)
	// A non-canonical ticket under a valid authorisation: 6A80 after the MAC.
	bad := append([]byte(nil), ticket...)
	bad[len(bad)-1] ^= 1 // still canonical: the card does not verify signatures
	h.OK(contact, h.StoreCmd(bad, a))
	a.Counter++
	noncanon := tamperLength(t, h.Issue(1))
	h.SW(contact, h.StoreCmd(noncanon, a), apdu.SWWrongData)
	assert.Equal(t, a.Counter, h.Status().Counter, "a refused STORE does not use the counter")
}

// tamperLength re-encodes a ticket's seller with a non-minimal length: the
// STORE command's layout still holds an E1 object, the ticket in it is not
// canonical.
func tamperLength(t *testing.T, ticket []byte) []byte {
	outer, err := tlv.Single(ticket, ticketfmt.TagTicket)
	require.NoError(t, err)
	r := outer.Children()
	b := tlv.NewBuilder(nil)
	b.AddConstructed(ticketfmt.TagTicket, func(b *tlv.Builder) {
		for !r.Empty() {
			o, err := r.Next()
			require.NoError(t, err)
			if o.Tag == ticketfmt.TagSeller {
				b.AddRaw(append([]byte{0x82, 0x81, byte(len(o.Value))}, o.Value...))
			} else {
				b.AddRaw(o.Raw)
			}
		}
	})
	out, err := b.Bytes()
	require.NoError(t, err)
	_, err = ticketfmt.Unmarshal(out)
	require.Error(t, err)
	return out
}

func testFillUntilFull(t *testing.T, newTarget Factory) {
	h := NewHarness(t, newTarget, VectorFixture(t))
	h.Select(contact)
	h.Sync()
	used := 0
	stored := 0
	for n := 0; ; n++ {
		ticket := h.Issue(n)
		before := h.Status()
		r := h.Store(ticket)
		if r.SW == apdu.SWNotEnoughMemory {
			assert.Greater(t, len(ticket)+applet.RecordOverhead, before.Free, "refused only when it does not fit")
			after := h.Status()
			assert.Equal(t, before, after, "a refused STORE changes nothing")
			break
		}
		require.Equal(t, apdu.SWSuccess, r.SW, "ticket %d", n)
		used += len(ticket) + applet.RecordOverhead
		stored++
		st := h.Status()
		require.Equal(t, 2048-used, st.Free, "free bytes are exact")
		require.Equal(t, stored, st.Stored)
		require.Equal(t, before.Counter+1, st.Counter)
	}
	assert.GreaterOrEqual(t, stored, 10)
	entries, err := cardproto.ParseList(h.All(contact, cardproto.List()))
	require.NoError(t, err)
	assert.Len(t, entries, stored)
	a := h.Sync()
	list := h.All(contact, cardproto.List())
	require.NoError(t, a.CheckInventory(list), "the sync digest covers LIST")
}

func testCountLimit(t *testing.T, newTarget Factory) {
	f := VectorFixture(t)
	f.MaxTickets = 2
	h := NewHarness(t, newTarget, f)
	h.Select(contact)
	h.Sync()
	require.Equal(t, apdu.SWSuccess, h.Store(h.Issue(0)).SW)
	require.Equal(t, apdu.SWSuccess, h.Store(h.Issue(1)).SW)
	assert.Equal(t, apdu.SWNotEnoughMemory, h.Store(h.Issue(2)).SW)
	st := h.Status()
	assert.Equal(t, 0, st.AvailableTickets())
}

func testStoreRefusals(t *testing.T, newTarget Factory) {
	h := NewHarness(t, newTarget, VectorFixture(t))
	h.Select(contact)
	h.Sync()
	ticket := h.Issue(0)
	require.Equal(t, apdu.SWSuccess, h.Store(ticket).SW)
	assert.Equal(t, apdu.SWAlreadyExists, h.Store(ticket).SW, "same ID")
	before := h.Status()
	// A ticket bound to another card.
	ts, err := ticketfmt.Unmarshal(h.Issue(1))
	require.NoError(t, err)
	ts.Carrier[0] ^= 1
	require.NoError(t, ts.Sign(h.F.Issuer))
	other, err := ts.Marshal()
	require.NoError(t, err)
	assert.Equal(t, apdu.SWWrongData, h.Store(other).SW, "bound to another card")
	assert.Equal(t, before, h.Status(), "refusals change nothing")
}

func testDeleteAndAuthorisations(t *testing.T, newTarget Factory) {
	h := NewHarness(t, newTarget, VectorFixture(t))
	h.Select(contact)
	h.Select(contactless)
	h.Sync()
	t1, t2 := h.Issue(0), h.Issue(1)
	require.Equal(t, apdu.SWSuccess, h.Store(t1).SW)
	require.Equal(t, apdu.SWSuccess, h.Store(t2).SW)
	id1, id2 := ID(t, t1), ID(t, t2)

	var ticketID ticketfmt.ID
	h.SW(contact, h.DeleteCmd(ticketID, 0, h.Auth()), apdu.SWReferenceNotFound)
	h.SW(contact, h.DeleteCmd(id1, cardproto.StateChecked, h.Auth()), apdu.SWConditionsNotSatisfied)
	// An expected state other than 00 or 01 is malformed, before the MAC.
	h.SW(contact, h.DeleteCmd(id1, 0x02, h.Auth()), apdu.SWWrongData)
	a := h.Auth()
	del := h.DeleteCmd(id1, cardproto.StateUnchecked, a)
	h.OK(contact, del)
	h.SW(contact, del, apdu.SWStaleAuthorization)
	// A BEGIN SYNC voids the authorisations issued before it.
	a = h.Auth()
	next := h.DeleteCmd(id2, cardproto.StateUnchecked, a)
	h.Sync()
	h.SW(contact, next, apdu.SWStaleAuthorization)
	st := h.Status()
	assert.Equal(t, 1, st.Stored)

	// A checked ticket is deleted with expected state 01.
	var gate [4]byte
	var nonce [16]byte
	h.OK(contactless, cardproto.Check(id2, gate, ticketfmt.DateTime{Date: ticketfmt.Date{Year: 2026, Month: 12, Day: 5}, Hour: 19}, nonce))
	h.SW(contact, h.DeleteCmd(id2, cardproto.StateUnchecked, h.Auth()), apdu.SWConditionsNotSatisfied)
	h.OK(contact, h.DeleteCmd(id2, cardproto.StateChecked, h.Auth()))
	st = h.Status()
	assert.Equal(t, 0, st.Stored)
	assert.Equal(t, 2048, st.Free)
	assert.Equal(t, 0, st.Reclaimable)
}

func testCertificateRefusals(t *testing.T, newTarget Factory) {
	h := NewHarness(t, newTarget, VectorFixture(t))
	h.Select(contact)
	h.Sync()
	put := func(cert []byte) apdu.Command {
		a := h.Auth()
		return cardproto.PutCertificate(cert, a, cardkeys.CertMAC(h.F.Keys, h.F.Serial, a, cert))
	}
	// A certificate for another key.
	other := ticketfmt.Certificate{Serial: h.F.Serial, PublicKey: &h.F.Issuer.PublicKey}
	require.NoError(t, other.Sign(h.F.Issuer))
	raw, err := other.Marshal()
	require.NoError(t, err)
	h.SW(contact, put(raw), apdu.SWWrongData)
	// For another serial.
	c := ticketfmt.Certificate{Serial: h.F.Serial, PublicKey: &h.F.CardKey.PublicKey}
	c.Serial[9]++
	require.NoError(t, c.Sign(h.F.Issuer))
	raw, err = c.Marshal()
	require.NoError(t, err)
	h.SW(contact, put(raw), apdu.SWWrongData)
	// The right one, then a replacement.
	c.Serial = h.F.Serial
	require.NoError(t, c.Sign(h.F.Issuer))
	raw, err = c.Marshal()
	require.NoError(t, err)
	h.OK(contact, put(raw))
	h.OK(contact, put(h.V.CardCertificateE5))
	assert.Equal(t, h.V.CardCertificateE5, h.Select(contactless).Certificate)
}

func testFindAndRead(t *testing.T, newTarget Factory) {
	h := NewHarness(t, newTarget, VectorFixture(t))
	h.Select(contact)
	h.Select(contactless)
	h.Sync()
	day := ticketfmt.Date{Year: 2027, Month: 3, Day: 1}
	mk := func(typ uint8, seller string, hour int) []byte {
		return h.IssueTicket(&ticketfmt.Ticket{Type: typ, Seller: seller, Date: day, Time: ticketfmt.TimeOfDay{Hour: hour}, Price: 100})
	}
	late := mk(1, "Opera", 20)
	early := mk(2, "Rail", 8)
	tie := mk(1, "Opera", 8) // same time as early, stored after it
	for _, tk := range [][]byte{late, early, tie} {
		require.Equal(t, apdu.SWSuccess, h.Store(tk).SW)
	}
	find := func(q cardproto.Query) []byte {
		ts, err := cardproto.ParseTicketState(h.OK(contactless, cardproto.Find(q)))
		require.NoError(t, err)
		assert.Nil(t, ts.Check)
		return ts.Raw
	}
	one, two := uint8(1), uint8(2)
	assert.Equal(t, early, find(cardproto.Query{Date: day}), "earliest, ties in stored order")
	assert.Equal(t, tie, find(cardproto.Query{Date: day, Type: &one}))
	assert.Equal(t, early, find(cardproto.Query{Date: day, Type: &two}))
	assert.Equal(t, late, find(cardproto.Query{Date: day, Seller: "Opera", NotBefore: &ticketfmt.TimeOfDay{Hour: 9}}))
	assert.Equal(t, tie, find(cardproto.Query{Date: day, Seller: "Opera"}))
	h.SW(contactless, cardproto.Find(cardproto.Query{Date: day, Seller: "Cinema"}), apdu.SWReferenceNotFound)
	h.SW(contactless, cardproto.Find(cardproto.Query{Date: ticketfmt.Date{Year: 2027, Month: 3, Day: 2}}), apdu.SWReferenceNotFound)
	// Malformed queries.
	h.SW(contactless, apdu.Command{CLA: 0x80, INS: 0x34, Data: []byte{0x83, 0x04, 0x20, 0x27, 0x02, 0x30}, Ne: 256}, apdu.SWWrongData)
	h.SW(contactless, apdu.Command{CLA: 0x80, INS: 0x34, Data: []byte{0x84, 0x02, 0x08, 0x00, 0x83, 0x04, 0x20, 0x27, 0x03, 0x01}, Ne: 256}, apdu.SWWrongData)
	h.SW(contactless, apdu.Command{CLA: 0x80, INS: 0x34, Data: []byte{0x83, 0x04, 0x20, 0x27, 0x03, 0x01, 0x84, 0x02, 0x25, 0x00}, Ne: 256}, apdu.SWWrongData)

	got, err := cardproto.ParseTicketState(h.OK(contact, cardproto.Read(ID(t, late))))
	require.NoError(t, err)
	assert.Equal(t, late, got.Raw)
	h.SW(contact, cardproto.Read(ticketfmt.ID{9}), apdu.SWReferenceNotFound)
	h.SW(contact, apdu.Command{CLA: 0x80, INS: 0x32, Data: []byte{0x80, 0x01, 0x00}, Ne: 256}, apdu.SWWrongData)
}

func testCheckRules(t *testing.T, newTarget Factory) {
	h := NewHarness(t, newTarget, VectorFixture(t))
	h.Select(contact)
	h.Select(contactless)
	h.Sync()
	ticket := h.Issue(0)
	require.Equal(t, apdu.SWSuccess, h.Store(ticket).SW)
	id := ID(t, ticket)
	gate := [4]byte{'G', 'A', 'T', '1'}
	var nonce [16]byte
	when := ticketfmt.DateTime{Date: ticketfmt.Date{Year: 2026, Month: 2, Day: 28}, Hour: 23, Minute: 59, Second: 59}
	bad := cardproto.Check(id, gate, when, nonce)
	copy(bad.Data[18:], []byte{0x20, 0x26, 0x02, 0x29}) // 2026-02-29
	h.SW(contactless, bad, apdu.SWWrongData)
	h.SW(contactless, cardproto.Check(ticketfmt.ID{1}, gate, when, nonce), apdu.SWReferenceNotFound)
	before := h.Status()
	h.OK(contactless, cardproto.Check(id, gate, when, nonce))
	after := h.Status()
	assert.Equal(t, before.Counter, after.Counter, "CHECK needs no authorisation and leaves the counter")
	assert.Equal(t, 1, after.Checked)
	assert.Equal(t, before.Free, after.Free)
}

func testChaining(t *testing.T, newTarget Factory) {
	h := NewHarness(t, newTarget, VectorFixture(t))
	h.Select(contact)
	h.Sync()
	ticket := h.Issue(0)
	store := h.StoreCmd(ticket, h.Auth())
	parts := store.Chain(64)
	require.Greater(t, len(parts), 2)
	for _, p := range parts[:len(parts)-1] {
		r := h.Send(contact, p)
		require.Equal(t, apdu.SWSuccess, r.SW, "parts before the last answer 9000")
	}
	h.OK(contact, parts[len(parts)-1])
	assert.Equal(t, 1, h.Status().Stored)

	// A part of another command while a chain is pending: 6883, the chain
	// dropped.
	t2 := h.Issue(1)
	parts = h.StoreCmd(t2, h.Auth()).Chain(64)
	h.OK(contact, parts[0])
	h.SW(contact, apdu.Command{CLA: 0x90, INS: 0x3A, Data: []byte{1}}, apdu.SWLastCommandExpected)
	h.SW(contact, parts[len(parts)-1], apdu.SWWrongData)
	// A command without the chaining bit drops the chain and runs.
	h.OK(contact, parts[0])
	h.Status()
	h.SW(contact, parts[len(parts)-1], apdu.SWWrongData)
	// More than 1024 bytes in all.
	h.OK(contact, apdu.Command{CLA: 0x90, INS: 0x38, Data: make([]byte, 255)})
	h.OK(contact, apdu.Command{CLA: 0x90, INS: 0x38, Data: make([]byte, 255)})
	h.OK(contact, apdu.Command{CLA: 0x90, INS: 0x38, Data: make([]byte, 255)})
	h.OK(contact, apdu.Command{CLA: 0x90, INS: 0x38, Data: make([]byte, 255)})
	h.SW(contact, apdu.Command{CLA: 0x80, INS: 0x38, Data: make([]byte, 5)}, apdu.SWWrongLength)
	// Chaining a command that takes no data.
	h.SW(contact, apdu.Command{CLA: 0x90, INS: 0xF2, Ne: 256}, apdu.SWWrongLength)
	// Chains are per channel: a chain on channel 1 survives commands on 0.
	n, err := cardproto.ParseChannel(h.OK(contact, cardproto.OpenChannel()))
	require.NoError(t, err)
	h.OK(contact, cardproto.OnChannel(cardproto.SelectNoFCI(), n))
	parts = h.StoreCmd(t2, h.Auth()).Chain(100)
	h.OK(contact, cardproto.OnChannel(parts[0], n))
	h.Status()
	for _, p := range parts[1:] {
		h.OK(contact, cardproto.OnChannel(p, n))
	}
	assert.Equal(t, 2, h.Status().Stored)
}

func testExtendedLength(t *testing.T, newTarget Factory) {
	h := NewHarness(t, newTarget, VectorFixture(t))
	h.Select(contact)
	h.Sync()
	big := h.IssueTicket(&ticketfmt.Ticket{Type: 1, Seller: string(bytes.Repeat([]byte("S"), 64)),
		Date: ticketfmt.Date{Year: 2026, Month: 12, Day: 31}, Time: ticketfmt.TimeOfDay{Hour: 20}, Price: 1,
		Seat: string(bytes.Repeat([]byte("s"), 32)), Instructions: string(bytes.Repeat([]byte("i"), 128))})
	require.Len(t, big, ticketfmt.MaxSize)
	cmd := h.StoreCmd(big, h.Auth())
	require.Greater(t, len(cmd.Data), 255)
	h.OK(contact, cmd) // Bytes() picks the extended form
	stored := 1
	for n := 3; h.Store(h.Issue(n)).SW == apdu.SWSuccess; n++ {
		stored++
	}
	list := cardproto.List()
	list.Ne, list.Extended = 65536, true
	data := h.OK(contact, list)
	entries, err := cardproto.ParseList(data)
	require.NoError(t, err)
	assert.Len(t, entries, stored)
	assert.Greater(t, len(data), 256, "the whole inventory in one extended response")
	// Over 1024 bytes of data in one APDU.
	h.SW(contact, apdu.Command{CLA: 0x80, INS: 0x38, Data: make([]byte, 1025)}, apdu.SWWrongLength)
}

func testResponseParts(t *testing.T, newTarget Factory) {
	h := NewHarness(t, newTarget, VectorFixture(t))
	h.Select(contact)
	h.Sync()
	for n := 0; h.Store(h.Issue(n)).SW == apdu.SWSuccess; n++ {
	}
	whole := h.OK(contact, apdu.Command{CLA: 0x80, INS: 0x30, Ne: 65536, Extended: true})
	require.Greater(t, len(whole), 300)

	// Short Le absent means 256: the first 256 bytes, then 61xx.
	r := h.RawHex(contact, "80300000")
	require.Equal(t, 256, len(r.Data))
	rest := len(whole) - 256
	wantMore := apdu.MoreDataStatus(rest)
	require.Equal(t, wantMore, r.SW)
	got := append([]byte(nil), r.Data...)
	// GET RESPONSE with a small Le, then 00.
	r = h.Send(contact, cardproto.GetResponse(10))
	got = append(got, r.Data...)
	require.Equal(t, apdu.MoreDataStatus(rest-10), r.SW)
	for r.SW.SW1() == 0x61 {
		r = h.Send(contact, cardproto.GetResponse(256))
		got = append(got, r.Data...)
	}
	assert.Equal(t, apdu.SWSuccess, r.SW)
	assert.Equal(t, whole, got)
	h.SW(contact, cardproto.GetResponse(256), apdu.SWConditionsNotSatisfied)

	// Another command discards the rest of a response.
	r = h.Send(contact, apdu.Command{CLA: 0x80, INS: 0x30, Ne: 16})
	require.Equal(t, 0x61, int(r.SW.SW1()))
	h.Status()
	h.SW(contact, cardproto.GetResponse(256), apdu.SWConditionsNotSatisfied)

	// Le shorter than the status template.
	r = h.Send(contact, apdu.Command{CLA: 0x80, INS: 0xF2, Ne: 5})
	assert.Len(t, r.Data, 5)
	assert.Equal(t, apdu.MoreDataStatus(54-5), r.SW)
	r = h.Send(contact, cardproto.GetResponse(0x100))
	assert.Len(t, r.Data, 49)
	assert.Equal(t, apdu.SWSuccess, r.SW)
}

func testNotifications(t *testing.T, newTarget Factory) {
	h := NewHarness(t, newTarget, VectorFixture(t))
	h.Select(contact)
	h.Select(contactless)
	h.Sync()
	ticket := h.Issue(0)
	// Before TERMINAL PROFILE the handset never sees 91xx.
	require.Equal(t, apdu.SWSuccess, h.Store(ticket).SW)
	require.Equal(t, apdu.SWSuccess, h.Send(contact, cardproto.Status()).SW)

	r := h.Send(contact, cardproto.TerminalProfile(cardproto.DefaultProfile))
	n, ok := r.SW.Notification()
	require.True(t, ok, "TERMINAL PROFILE's own answer is 91xx: %v", r.SW)
	r = h.Send(contact, cardproto.Fetch())
	require.Equal(t, apdu.SWSuccess, r.SW, "FETCH answers 9000")
	require.Len(t, r.Data, n)
	note, err := cardproto.ParseNotification(r.Data)
	require.NoError(t, err)
	assert.Equal(t, byte(1), note.Number)
	assert.Equal(t, 1, note.Status.Stored)

	// Still pending until TERMINAL RESPONSE: every 9000 is 91xx.
	_, ok = h.Send(contact, cardproto.Status()).SW.Notification()
	assert.True(t, ok)
	// The gate never sees it.
	var gate [4]byte
	var nonce [16]byte
	id := ID(t, ticket)
	r = h.Send(contactless, cardproto.Check(id, gate, ticketfmt.DateTime{Date: ticketfmt.Date{Year: 2026, Month: 1, Day: 1}}, nonce))
	assert.Equal(t, apdu.SWSuccess, r.SW)

	// The CHECK came after the FETCH: TERMINAL RESPONSE clears number 1 and
	// raises number 2 at once.
	h.SW(contact, cardproto.TerminalResponse(7, 0), apdu.SWWrongData)
	r = h.Send(contact, cardproto.TerminalResponse(1, 0))
	_, ok = r.SW.Notification()
	require.True(t, ok, "a newer change is pending: %v", r.SW)
	note, err = cardproto.ParseNotification(h.OK(contact, cardproto.Fetch()))
	require.NoError(t, err)
	assert.Equal(t, byte(2), note.Number)
	assert.Equal(t, 1, note.Status.Checked)
	h.SW(contact, cardproto.TerminalResponse(2, 0), apdu.SWSuccess)
	h.SW(contact, cardproto.Status(), apdu.SWSuccess)
	h.SW(contact, cardproto.TerminalResponse(2, 0), apdu.SWConditionsNotSatisfied)
	h.SW(contact, cardproto.Fetch(), apdu.SWConditionsNotSatisfied)

	// Changes before the FETCH update the pending notification.
	require.Equal(t, uint16(0x91), uint16(h.Store(h.Issue(1)).SW.SW1()))
	require.Equal(t, uint16(0x91), uint16(h.Store(h.Issue(2)).SW.SW1()))
	note, err = cardproto.ParseNotification(h.OK(contact, cardproto.Fetch()))
	require.NoError(t, err)
	assert.Equal(t, byte(3), note.Number)
	assert.Equal(t, 3, note.Status.Stored)
	h.SW(contact, cardproto.TerminalResponse(3, 0), apdu.SWSuccess)

	// Chain parts answer 9000 even with a notification pending.
	require.Equal(t, uint16(0x91), uint16(h.Store(h.Issue(3)).SW.SW1()))
	parts := h.StoreCmd(h.Issue(4), h.Auth()).Chain(64)
	for _, p := range parts[:len(parts)-1] {
		h.SW(contact, p, apdu.SWSuccess)
	}
	_, ok = h.Send(contact, parts[len(parts)-1]).SW.Notification()
	assert.True(t, ok)
}

func testNotificationNumbers(t *testing.T, newTarget Factory) {
	h := NewHarness(t, newTarget, VectorFixture(t))
	h.Select(contact)
	h.Select(contactless)
	h.Sync()
	h.Send(contact, cardproto.TerminalProfile([]byte{0xFF}))
	ticket := h.Issue(0)
	require.True(t, h.Store(ticket).SW.OK())
	id := ID(t, ticket)
	// Each CHECK retry changes nothing; alternate STORE and DELETE instead.
	for n := 1; n <= 257; n++ {
		note, err := cardproto.ParseNotification(h.OK(contact, cardproto.Fetch()))
		require.NoError(t, err)
		want := byte((n-1)%255 + 1)
		require.Equal(t, want, note.Number, "notification %d", n)
		h.OK(contact, cardproto.TerminalResponse(note.Number, 0))
		if n%2 == 1 {
			h.OK(contact, h.DeleteCmd(id, 0, h.Auth()))
		} else {
			h.OK(contact, h.StoreCmd(ticket, h.Auth()))
		}
	}
}

func testPowerCycle(t *testing.T, newTarget Factory) {
	h := NewHarness(t, newTarget, VectorFixture(t))
	h.Select(contact)
	h.Sync()
	h.Send(contact, cardproto.TerminalProfile([]byte{0xFF}))
	require.Equal(t, uint16(0x91), uint16(h.Store(h.Issue(0)).SW.SW1()))
	h.OK(contact, cardproto.OpenChannel())
	h.Reset(contact)
	// Volatile state is gone: selection, channels, TERMINAL PROFILE.
	h.SW(contact, cardproto.List(), apdu.SWNotSelected)
	h.SW(contact, cardproto.OnChannel(cardproto.SelectNoFCI(), 1), apdu.SWChannelNotSupported)
	st := h.Select(contact).Status
	require.NotNil(t, st)
	assert.Equal(t, 1, st.Stored, "non-volatile state is kept")
	assert.Equal(t, uint32(1), st.Epoch)
	h.SW(contact, cardproto.Status(), apdu.SWSuccess)
	// The pending notification survives.
	r := h.Send(contact, cardproto.TerminalProfile([]byte{0xFF}))
	_, ok := r.SW.Notification()
	assert.True(t, ok, fmt.Sprintf("pending after power-on: %v", r.SW))
}
