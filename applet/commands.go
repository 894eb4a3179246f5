package applet

import (
	"bytes"
	"github.com/simtix/simtix/cardproto"
	"slices"

	"github.com/simtix/simtix/apdu"
	"github.com/simtix/simtix/cardkeys"
	"github.com/simtix/simtix/ticketfmt"
	"github.com/simtix/simtix/tlv"
)

// layout reads command data strictly: the fields in the order given, of the
// sizes given, and nothing else. Any deviation is 6A80.
type layout struct {
	r   *tlv.Reader
	bad bool
}

func newLayout(b []byte) *layout { return &layout{r: tlv.NewReader(b)} }

// field reads the next field, which must have tag t and minLen-maxLen bytes.
func (l *layout) field(t tlv.Tag, minLen, maxLen int) []byte {
	if l.bad {
		return nil
	}
	o, err := l.r.Expect(t)
	if err != nil || len(o.Value) < minLen || len(o.Value) > maxLen {
		l.bad = true
		return nil
	}
	return o.Value
}

// optional reads the next field if its tag is t.
func (l *layout) optional(t tlv.Tag, minLen, maxLen int) ([]byte, bool) {
	if l.bad {
		return nil, false
	}
	if tag, ok := l.r.PeekTag(); !ok || tag != t {
		return nil, false
	}
	v := l.field(t, minLen, maxLen)
	return v, !l.bad
}

// object reads the next data object, which must have tag t, whole.
func (l *layout) object(t tlv.Tag) []byte {
	if l.bad {
		return nil
	}
	o, err := l.r.Expect(t)
	if err != nil {
		l.bad = true
		return nil
	}
	return o.Raw
}

func (l *layout) done() error {
	if l.bad || l.r.End() != nil {
		return swError(apdu.SWWrongData)
	}
	return nil
}

// authorise checks an authorisation: its MAC first (6982), then that it is
// for the card's epoch and counter, and that the counter can still move
// (6984).
func (c *Card) authorise(auth, mac []byte, want func(cardkeys.Authorisation) []byte) error {
	a, err := cardkeys.ParseAuthorisation(auth)
	if err != nil {
		return swError(apdu.SWWrongData)
	}
	if !cardkeys.Equal(mac, want(a)) {
		return swError(apdu.SWSecurityStatus)
	}
	if a.Epoch != c.s.epoch || a.Counter != c.s.counter || c.s.counter == 0xFFFFFFFF {
		return swError(apdu.SWStaleAuthorization)
	}
	return nil
}

// changed finishes a change the network side or a gate made: the counter
// moves on if it was authorised, and the storage-changed notification rises.
func changed(next *state, authorised bool) {
	if authorised {
		next.counter++
	}
	next.notify.raise()
}

func (c *Card) list(*call) ([]byte, error) { return c.inventory(), nil }

func (c *Card) read(x *call) ([]byte, error) {
	l := newLayout(x.data)
	id := l.field(ticketfmt.TagID, 10, 10)
	if err := l.done(); err != nil {
		return nil, err
	}
	_, r := c.s.find(ticketfmt.ID(id))
	if r == nil {
		return nil, swError(apdu.SWReferenceNotFound)
	}
	return ticketState(r, true), nil
}

func (c *Card) find(x *call) ([]byte, error) {
	l := newLayout(x.data)
	typ, hasType := l.optional(ticketfmt.TagType, 1, 1)
	seller, hasSeller := l.optional(ticketfmt.TagSeller, 1, ticketfmt.MaxSellerLen)
	dateRaw := l.field(ticketfmt.TagDate, 4, 4)
	notBeforeRaw, hasNotBefore := l.optional(ticketfmt.TagTime, 2, 2)
	if err := l.done(); err != nil {
		return nil, err
	}
	date, err := ticketfmt.DecodeDate(dateRaw)
	if err != nil {
		return nil, swError(apdu.SWWrongData)
	}
	var notBefore ticketfmt.TimeOfDay
	if hasNotBefore {
		if notBefore, err = ticketfmt.DecodeTimeOfDay(notBeforeRaw); err != nil {
			return nil, swError(apdu.SWWrongData)
		}
	}
	var best *record
	for _, r := range c.s.records {
		t := r.ticket
		if r.state != cardproto.StateUnchecked || t.Date != date ||
			hasType && t.Type != typ[0] ||
			hasSeller && t.Seller != string(seller) ||
			hasNotBefore && t.Time.Compare(notBefore) < 0 {
			continue
		}
		if best == nil || t.Time.Compare(best.ticket.Time) < 0 {
			best = r
		}
	}
	if best == nil {
		return nil, swError(apdu.SWReferenceNotFound)
	}
	return ticketState(best, false), nil
}

func (c *Card) check(x *call) ([]byte, error) {
	l := newLayout(x.data)
	id := l.field(ticketfmt.TagID, 10, 10)
	gate := l.field(cardproto.TagGateID, cardkeys.GateIDSize, cardkeys.GateIDSize)
	when := l.field(cardproto.TagCheckTime, checkTimeSize, checkTimeSize)
	nonce := l.field(cardproto.TagNonce, cardkeys.NonceSize, cardkeys.NonceSize)
	if err := l.done(); err != nil {
		return nil, err
	}
	if _, err := ticketfmt.DecodeDateTime(when); err != nil {
		return nil, swError(apdu.SWWrongData)
	}
	i, r := c.s.find(ticketfmt.ID(id))
	if r == nil {
		return nil, swError(apdu.SWReferenceNotFound)
	}
	if r.state == cardproto.StateChecked {
		if !bytes.Equal(r.gate[:], gate) || !bytes.Equal(r.when[:], when) {
			return nil, swError(apdu.SWConditionsNotSatisfied)
		}
	} else {
		next := c.s.clone()
		checked := *r
		checked.state, checked.slot = cardproto.StateChecked, next.freeSlot()
		copy(checked.gate[:], gate)
		copy(checked.when[:], when)
		next.records[i] = &checked
		changed(next, false)
		if err := c.commit(next); err != nil {
			return nil, err
		}
	}
	msg := cardkeys.ReceiptMessage(c.p.serial, r.raw, gate, when, nonce)
	sig, err := cardkeys.SignReceipt(c.p.cardKey, msg)
	if err != nil {
		return nil, err
	}
	return build(func(b *tlv.Builder) { b.AddBytes(cardproto.TagReceipt, sig) }), nil
}

func (c *Card) store(x *call) ([]byte, error) {
	l := newLayout(x.data)
	raw := l.object(ticketfmt.TagTicket)
	auth := l.field(cardproto.TagAuth, cardkeys.AuthSize, cardkeys.AuthSize)
	mac := l.field(cardproto.TagMAC, cardkeys.MACSize, cardkeys.MACSize)
	if err := l.done(); err != nil {
		return nil, err
	}
	err := c.authorise(auth, mac, func(a cardkeys.Authorisation) []byte {
		return cardkeys.StoreMAC(c.p.keys, c.p.serial, a, raw)
	})
	if err != nil {
		return nil, err
	}
	t, err := ticketfmt.Unmarshal(raw)
	if err != nil || t.Carrier != c.p.serial {
		return nil, swError(apdu.SWWrongData)
	}
	if _, r := c.s.find(t.ID); r != nil {
		return nil, swError(apdu.SWAlreadyExists)
	}
	rec := &record{raw: bytes.Clone(raw), ticket: t, state: cardproto.StateUnchecked, slot: noSlot}
	if u := c.s.usage(c.p); rec.cost() > u.free || u.stored >= c.p.maxTickets {
		return nil, swError(apdu.SWNotEnoughMemory)
	}
	next := c.s.clone()
	next.records = append(next.records, rec)
	changed(next, true)
	return nil, c.commit(next)
}

func (c *Card) delete(x *call) ([]byte, error) {
	l := newLayout(x.data)
	id := l.field(ticketfmt.TagID, 10, 10)
	expected := l.field(cardproto.TagState, 1, 1)
	auth := l.field(cardproto.TagAuth, cardkeys.AuthSize, cardkeys.AuthSize)
	mac := l.field(cardproto.TagMAC, cardkeys.MACSize, cardkeys.MACSize)
	if err := l.done(); err != nil {
		return nil, err
	}
	if expected[0] != cardproto.StateUnchecked && expected[0] != cardproto.StateChecked {
		return nil, swError(apdu.SWWrongData)
	}
	err := c.authorise(auth, mac, func(a cardkeys.Authorisation) []byte {
		return cardkeys.DeleteMAC(c.p.keys, c.p.serial, a, ticketfmt.ID(id), expected[0])
	})
	if err != nil {
		return nil, err
	}
	i, r := c.s.find(ticketfmt.ID(id))
	if r == nil {
		return nil, swError(apdu.SWReferenceNotFound)
	}
	if r.state != expected[0] {
		return nil, swError(apdu.SWConditionsNotSatisfied)
	}
	next := c.s.clone()
	next.records = slices.Delete(next.records, i, i+1)
	changed(next, true)
	return nil, c.commit(next)
}

func (c *Card) putCertificate(x *call) ([]byte, error) {
	l := newLayout(x.data)
	raw := l.object(ticketfmt.TagCertificate)
	auth := l.field(cardproto.TagAuth, cardkeys.AuthSize, cardkeys.AuthSize)
	mac := l.field(cardproto.TagMAC, cardkeys.MACSize, cardkeys.MACSize)
	if err := l.done(); err != nil {
		return nil, err
	}
	err := c.authorise(auth, mac, func(a cardkeys.Authorisation) []byte {
		return cardkeys.CertMAC(c.p.keys, c.p.serial, a, raw)
	})
	if err != nil {
		return nil, err
	}
	cert, err := ticketfmt.UnmarshalCertificate(raw)
	if err != nil || cert.Serial != c.p.serial || !cert.PublicKey.Equal(&c.p.cardKey.PublicKey) {
		return nil, swError(apdu.SWWrongData)
	}
	next := c.s.clone()
	next.cert = bytes.Clone(raw)
	changed(next, true)
	return nil, c.commit(next)
}

func (c *Card) beginSync(x *call) ([]byte, error) {
	l := newLayout(x.data)
	challenge := l.field(cardproto.TagNonce, cardkeys.ChallengeSize, cardkeys.ChallengeSize)
	if err := l.done(); err != nil {
		return nil, err
	}
	if c.s.epoch == 0xFFFFFFFF {
		return nil, swError(apdu.SWStaleAuthorization)
	}
	next := c.s.clone()
	next.epoch++
	if err := c.commit(next); err != nil {
		return nil, err
	}
	v := build(func(b *tlv.Builder) {
		c.addStatus(b)
		b.AddBytes(cardproto.TagCardKey, c.p.publicKey)
		b.AddBytes(cardproto.TagDigest, digest(c.inventory()))
	})
	mac := cardkeys.SyncMAC(c.p.keys, challenge, v)
	return build(func(b *tlv.Builder) {
		b.AddConstructed(cardproto.TagSync, func(b *tlv.Builder) {
			b.AddRaw(v)
			b.AddBytes(cardproto.TagMAC, mac)
		})
	}), nil
}

func (c *Card) fetch(*call) ([]byte, error) {
	if c.s.notify.pending == 0 {
		return nil, swError(apdu.SWConditionsNotSatisfied)
	}
	if !c.s.notify.fetched {
		next := c.s.clone()
		next.notify.fetched = true
		if err := c.commit(next); err != nil {
			return nil, err
		}
	}
	return c.notification(), nil
}

func (c *Card) terminalResponse(x *call) ([]byte, error) {
	l := newLayout(x.data)
	details := l.field(cardproto.TagCommandDetails, 3, 3)
	devices := l.field(cardproto.TagDeviceIdentities, 2, 2)
	l.field(cardproto.TagResult, 1, 1)
	if err := l.done(); err != nil {
		return nil, err
	}
	if details[1] != cardproto.NotificationType || details[2] != 0x00 || devices[0] != cardproto.DeviceTerminal || devices[1] != cardproto.DeviceUICC {
		return nil, swError(apdu.SWWrongData)
	}
	n := &c.s.notify
	if n.pending == 0 {
		return nil, swError(apdu.SWConditionsNotSatisfied)
	}
	if details[0] != n.pending {
		return nil, swError(apdu.SWWrongData)
	}
	next := c.s.clone()
	again := next.notify.changed
	next.notify = notification{last: n.last}
	if again {
		next.notify.raise()
	}
	return nil, c.commit(next)
}
