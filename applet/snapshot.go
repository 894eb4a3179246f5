package applet

import (
	"crypto/ecdsa"

	"github.com/simtix/simtix/cardproto"
	"github.com/simtix/simtix/ticketfmt"
)

// Snapshot is the card's whole non-volatile state, decoded: for `simtix
// card show`, and for tests that compare the state before and after a
// command.
type Snapshot struct {
	Serial ticketfmt.Serial
	// PublicKey is the card's public key.
	PublicKey   *ecdsa.PublicKey
	Capacity    int
	MaxTickets  int
	Overhead    int
	Free        int
	Reclaimable int
	Epoch       uint32
	Counter     uint32
	// Notification is the storage-changed notification's state.
	Notification NotificationState
	// Certificate is the card certificate E5, or nil.
	Certificate []byte
	// Tickets are the stored tickets in stored order.
	Tickets []StoredTicket
}

// NotificationState is the persistent state of the storage-changed
// notification.
type NotificationState struct {
	// Pending is the pending notification's number, 0 for none.
	Pending byte
	// Fetched reports whether the pending one has been fetched.
	Fetched bool
	// Changed reports a change since it was fetched.
	Changed bool
	// Last is the last number used.
	Last byte
}

// StoredTicket is one record of the ticket file.
type StoredTicket struct {
	// Raw is the ticket E1 as stored.
	Raw []byte
	// Ticket is Raw decoded.
	Ticket *ticketfmt.Ticket
	// State is cardproto.StateUnchecked or cardproto.StateChecked.
	State byte
	// Check is the gate and time of a checked ticket.
	Check *cardproto.CheckRecord
}

// Size is what the record takes in the ticket file: the ticket and h.
func (t StoredTicket) Size() int { return len(t.Raw) + RecordOverhead }

// Snapshot returns the card's non-volatile state.
func (c *Card) Snapshot() Snapshot {
	u := c.s.usage(c.p)
	snap := Snapshot{
		Serial: c.p.serial, PublicKey: &c.p.cardKey.PublicKey, Capacity: c.p.capacity, MaxTickets: c.p.maxTickets, Overhead: RecordOverhead,
		Free: u.free, Reclaimable: u.reclaimable, Epoch: c.s.epoch, Counter: c.s.counter,
		Notification: NotificationState{Pending: c.s.notify.pending, Fetched: c.s.notify.fetched,
			Changed: c.s.notify.changed, Last: c.s.notify.last},
		Certificate: append([]byte(nil), c.s.cert...),
	}
	if len(snap.Certificate) == 0 {
		snap.Certificate = nil
	}
	for _, r := range c.s.records {
		st := StoredTicket{Raw: append([]byte(nil), r.raw...), Ticket: r.ticket, State: r.state}
		if r.state == cardproto.StateChecked {
			when, err := ticketfmt.DecodeDateTime(r.when[:])
			if err == nil {
				st.Check = &cardproto.CheckRecord{Gate: r.gate, Time: when}
			}
		}
		snap.Tickets = append(snap.Tickets, st)
	}
	return snap
}
