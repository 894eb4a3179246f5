package applet

import (
	"crypto/sha256"
	"github.com/simtix/simtix/cardproto"

	"github.com/simtix/simtix/ticketfmt"
	"github.com/simtix/simtix/tlv"
)

func build(f func(b *tlv.Builder)) []byte {
	b := tlv.NewBuilder(nil)
	f(b)
	out, err := b.Bytes()
	if err != nil {
		// Only fixed tags and bounded lengths are built here.
		panic("applet: building a response: " + err.Error())
	}
	return out
}

func (c *Card) addStatus(b *tlv.Builder) {
	u := c.s.usage(c.p)
	b.AddConstructed(cardproto.TagStatus, func(b *tlv.Builder) {
		b.AddUint16(cardproto.TagCapacity, uint16(c.p.capacity))
		b.AddUint16(cardproto.TagFree, uint16(u.free))
		b.AddUint16(cardproto.TagReclaimable, uint16(u.reclaimable))
		b.AddUint8(cardproto.TagMaxTickets, uint8(c.p.maxTickets))
		b.AddUint8(cardproto.TagStored, uint8(u.stored))
		b.AddUint8(cardproto.TagChecked, uint8(u.checked))
		b.AddUint8(cardproto.TagOverhead, RecordOverhead)
		b.AddUint32(cardproto.TagCounter, c.s.counter)
		b.AddBytes(cardproto.TagSerial, c.p.serial[:])
		b.AddUint16(cardproto.TagVersion, Version)
		b.AddUint32(cardproto.TagEpoch, c.s.epoch)
	})
}

func (c *Card) statusTemplate() []byte { return build(c.addStatus) }

// fci is SELECT's answer.
func (c *Card) fci(i Interface) []byte {
	return build(func(b *tlv.Builder) {
		b.AddConstructed(cardproto.TagFCI, func(b *tlv.Builder) {
			b.AddBytes(cardproto.TagAID, cardproto.AID)
			if i == Contact {
				c.addStatus(b)
			}
			b.AddRaw(c.s.cert)
		})
	})
}

// notification is the pending D0 object.
func (c *Card) notification() []byte {
	return build(func(b *tlv.Builder) {
		b.AddConstructed(cardproto.TagNotification, func(b *tlv.Builder) {
			b.AddBytes(cardproto.TagCommandDetails, []byte{c.s.notify.pending, cardproto.NotificationType, 0x00})
			b.AddBytes(cardproto.TagDeviceIdentities, []byte{cardproto.DeviceUICC, cardproto.DeviceTerminal})
			c.addStatus(b)
		})
	})
}

// inventory is what LIST answers: the E2 entries of every stored ticket in
// stored order.
func (c *Card) inventory() []byte {
	return build(func(b *tlv.Builder) {
		for _, r := range c.s.records {
			t := r.ticket
			b.AddConstructed(cardproto.TagListEntry, func(b *tlv.Builder) {
				b.AddBytes(ticketfmt.TagID, t.ID[:])
				b.AddBytes(ticketfmt.TagDate, t.Date.AppendBCD(nil))
				b.AddBytes(ticketfmt.TagTime, t.Time.AppendBCD(nil))
				b.AddUint16(cardproto.TagLength, uint16(len(r.raw)))
				addState(b, r, true)
			})
		}
	})
}

func addState(b *tlv.Builder, r *record, withCheck bool) {
	b.AddUint8(cardproto.TagState, r.state)
	if withCheck && r.state == cardproto.StateChecked {
		b.AddBytes(cardproto.TagGateID, r.gate[:])
		b.AddBytes(cardproto.TagCheckTime, r.when[:])
	}
}

// ticketState is READ's and FIND's E3 answer.
func ticketState(r *record, withCheck bool) []byte {
	return build(func(b *tlv.Builder) {
		b.AddConstructed(cardproto.TagTicketState, func(b *tlv.Builder) {
			addState(b, r, withCheck)
			b.AddRaw(r.raw)
		})
	})
}

func digest(b []byte) []byte {
	s := sha256.Sum256(b)
	return s[:]
}
