package cardproto

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/simtix/simtix/cardkeys"
	"github.com/simtix/simtix/ticketfmt"
	"github.com/simtix/simtix/tlv"
)

// ErrMalformed is wrapped by every parser here for an answer that breaks the
// spec's layout.
var ErrMalformed = errors.New("cardproto: malformed card answer")

func malformed(what string, err error) error {
	if err == nil {
		return fmt.Errorf("%w: %s", ErrMalformed, what)
	}
	return fmt.Errorf("%w: %s: %v", ErrMalformed, what, err)
}

// reader reads fixed fields in order, remembering the first error.
type reader struct {
	r   *tlv.Reader
	err error
}

func (r *reader) field(t tlv.Tag, size int) []byte {
	if r.err != nil {
		return nil
	}
	o, err := r.r.Expect(t)
	if err == nil && size >= 0 && len(o.Value) != size {
		err = fmt.Errorf("tag %v: %d bytes, want %d", t, len(o.Value), size)
	}
	if err != nil {
		r.err = err
		return nil
	}
	return o.Value
}

func (r *reader) object(t tlv.Tag) tlv.Object {
	if r.err != nil {
		return tlv.Object{}
	}
	o, err := r.r.Expect(t)
	r.err = err
	return o
}

func (r *reader) end() error {
	if r.err != nil {
		return r.err
	}
	return r.r.End()
}

func u16(b []byte) int { return int(binary.BigEndian.Uint16(b)) }

// StatusTemplate is the status template A5.
type StatusTemplate struct {
	Capacity    int
	Free        int
	Reclaimable int
	MaxTickets  int
	Stored      int
	Checked     int
	Overhead    int
	Counter     uint32
	Serial      ticketfmt.Serial
	Version     uint16
	Epoch       uint32
}

// AvailableBytes is the room the card reports to the network side: free
// plus reclaimable bytes.
func (s StatusTemplate) AvailableBytes() int { return s.Free + s.Reclaimable }

// AvailableTickets is the ticket count the card can still take once its
// checked tickets are deleted.
func (s StatusTemplate) AvailableTickets() int { return s.MaxTickets - s.Stored + s.Checked }

// ParseStatus parses a status template A5 (tag included) and nothing after.
func ParseStatus(b []byte) (StatusTemplate, error) {
	o, err := tlv.Single(b, TagStatus)
	if err != nil {
		return StatusTemplate{}, malformed("status template", err)
	}
	return parseStatusValue(o)
}

func parseStatusValue(o tlv.Object) (StatusTemplate, error) {
	r := reader{r: o.Children()}
	var s StatusTemplate
	s.Capacity = u16OrZero(r.field(TagCapacity, 2))
	s.Free = u16OrZero(r.field(TagFree, 2))
	s.Reclaimable = u16OrZero(r.field(TagReclaimable, 2))
	s.MaxTickets = byteOrZero(r.field(TagMaxTickets, 1))
	s.Stored = byteOrZero(r.field(TagStored, 1))
	s.Checked = byteOrZero(r.field(TagChecked, 1))
	s.Overhead = byteOrZero(r.field(TagOverhead, 1))
	if v := r.field(TagCounter, 4); v != nil {
		s.Counter = binary.BigEndian.Uint32(v)
	}
	copy(s.Serial[:], r.field(TagSerial, ticketfmt.SerialSize))
	s.Version = uint16(u16OrZero(r.field(TagVersion, 2)))
	if v := r.field(TagEpoch, 4); v != nil {
		s.Epoch = binary.BigEndian.Uint32(v)
	}
	if err := r.end(); err != nil {
		return StatusTemplate{}, malformed("status template", err)
	}
	return s, nil
}

func u16OrZero(b []byte) int {
	if b == nil {
		return 0
	}
	return u16(b)
}

func byteOrZero(b []byte) int {
	if b == nil {
		return 0
	}
	return int(b[0])
}

// FCI is SELECT's answer.
type FCI struct {
	// StatusTemplate is the status template (contact interface only).
	Status *StatusTemplate
	// Certificate is the card certificate E5, when the card has one.
	Certificate []byte
}

// ParseFCI parses SELECT's answer 6F {84 AID[, A5 status][, E5 certificate]}.
func ParseFCI(b []byte) (FCI, error) {
	o, err := tlv.Single(b, TagFCI)
	if err != nil {
		return FCI{}, malformed("FCI", err)
	}
	r := reader{r: o.Children()}
	aid := r.field(TagAID, len(AID))
	if r.err == nil && !bytes.Equal(aid, AID) {
		return FCI{}, malformed("FCI: another AID", nil)
	}
	var f FCI
	if tag, ok := r.r.PeekTag(); ok && tag == TagStatus && r.err == nil {
		st, err := parseStatusValue(r.object(TagStatus))
		if err != nil {
			return FCI{}, err
		}
		f.Status = &st
	}
	if tag, ok := r.r.PeekTag(); ok && tag == ticketfmt.TagCertificate && r.err == nil {
		f.Certificate = r.object(ticketfmt.TagCertificate).Raw
	}
	if err := r.end(); err != nil {
		return FCI{}, malformed("FCI", err)
	}
	return f, nil
}

// CheckRecord is a ticket's check record: the gate and the gate's local time.
type CheckRecord struct {
	Gate [cardkeys.GateIDSize]byte
	Time ticketfmt.DateTime
}

// Entry is one LIST entry E2.
type Entry struct {
	ID     ticketfmt.ID
	Date   ticketfmt.Date
	Time   ticketfmt.TimeOfDay
	Length int
	State  byte
	Check  *CheckRecord // for a checked ticket
}

// ParseList parses LIST's answer: E2 entries, concatenated.
func ParseList(b []byte) ([]Entry, error) {
	var out []Entry
	top := tlv.NewReader(b)
	for !top.Empty() {
		o, err := top.Expect(TagListEntry)
		if err != nil {
			return nil, malformed("LIST", err)
		}
		r := reader{r: o.Children()}
		var e Entry
		copy(e.ID[:], r.field(ticketfmt.TagID, 10))
		date := r.field(ticketfmt.TagDate, 4)
		tod := r.field(ticketfmt.TagTime, 2)
		e.Length = u16OrZero(r.field(TagLength, 2))
		state := r.field(TagState, 1)
		if r.err != nil {
			return nil, malformed("LIST entry", r.err)
		}
		if e.Date, err = ticketfmt.DecodeDate(date); err != nil {
			return nil, malformed("LIST entry date", err)
		}
		if e.Time, err = ticketfmt.DecodeTimeOfDay(tod); err != nil {
			return nil, malformed("LIST entry time", err)
		}
		e.State = state[0]
		if e.Check, err = parseCheck(&r, e.State); err != nil {
			return nil, err
		}
		if err := r.end(); err != nil {
			return nil, malformed("LIST entry", err)
		}
		out = append(out, e)
	}
	return out, nil
}

// parseCheck reads the optional 90, 91 pair that a checked ticket has.
func parseCheck(r *reader, state byte) (*CheckRecord, error) {
	switch state {
	case StateUnchecked:
		return nil, nil
	case StateChecked:
	default:
		return nil, malformed(fmt.Sprintf("state %02X", state), nil)
	}
	gate := r.field(TagGateID, cardkeys.GateIDSize)
	when := r.field(TagCheckTime, 7)
	if r.err != nil {
		return nil, malformed("check record", r.err)
	}
	c := &CheckRecord{}
	copy(c.Gate[:], gate)
	var err error
	if c.Time, err = ticketfmt.DecodeDateTime(when); err != nil {
		return nil, malformed("check time", err)
	}
	return c, nil
}

// TicketState is READ's and FIND's answer E3.
type TicketState struct {
	State byte
	Check *CheckRecord // READ of a checked ticket
	// Raw is the ticket E1 as stored.
	Raw []byte
	// Ticket is Raw decoded (strictly).
	Ticket *ticketfmt.Ticket
}

// ParseTicketState parses E3 {8F state[, 90, 91], E1 ticket}.
func ParseTicketState(b []byte) (TicketState, error) {
	o, err := tlv.Single(b, TagTicketState)
	if err != nil {
		return TicketState{}, malformed("E3", err)
	}
	r := reader{r: o.Children()}
	state := r.field(TagState, 1)
	if r.err != nil {
		return TicketState{}, malformed("E3", r.err)
	}
	ts := TicketState{State: state[0]}
	if ts.Check, err = parseCheck(&r, ts.State); err != nil {
		return TicketState{}, err
	}
	ts.Raw = r.object(ticketfmt.TagTicket).Raw
	if err := r.end(); err != nil {
		return TicketState{}, malformed("E3", err)
	}
	if ts.Ticket, err = ticketfmt.Unmarshal(ts.Raw); err != nil {
		return TicketState{}, malformed("E3 ticket", err)
	}
	return ts, nil
}

// SyncAnswer is BEGIN SYNC's answer E4.
type SyncAnswer struct {
	Status    StatusTemplate
	PublicKey []byte // uncompressed P-256 point
	Digest    []byte // SHA-256 of the inventory (LIST's answer)
	MAC       []byte
	// Signed is V, the bytes the MAC covers with the challenge.
	Signed []byte
}

// ParseSync parses E4 {A5 status, 8C card public key, 8D digest, 9B MAC}.
func ParseSync(b []byte) (SyncAnswer, error) {
	o, err := tlv.Single(b, TagSync)
	if err != nil {
		return SyncAnswer{}, malformed("E4", err)
	}
	r := reader{r: o.Children()}
	st := r.object(TagStatus)
	var a SyncAnswer
	a.PublicKey = r.field(TagCardKey, ticketfmt.PublicKeySize)
	a.Digest = r.field(TagDigest, sha256.Size)
	if r.err == nil {
		a.Signed = o.Value[:r.r.Offset()-o.ValueOffset]
	}
	a.MAC = r.field(TagMAC, cardkeys.MACSize)
	if err := r.end(); err != nil {
		return SyncAnswer{}, malformed("E4", err)
	}
	if a.Status, err = parseStatusValue(st); err != nil {
		return SyncAnswer{}, err
	}
	return a, nil
}

// Verify checks the answer's MAC with the card's keys and the challenge
// the box sent.
func (a SyncAnswer) Verify(k cardkeys.Keys, challenge []byte) error {
	if !cardkeys.Equal(a.MAC, cardkeys.SyncMAC(k, challenge, a.Signed)) {
		return errors.New("cardproto: BEGIN SYNC MAC does not verify")
	}
	return nil
}

// CheckInventory checks that list (LIST's answer bytes) is what the
// answer's digest covers.
func (a SyncAnswer) CheckInventory(list []byte) error {
	d := sha256.Sum256(list)
	if !bytes.Equal(d[:], a.Digest) {
		return errors.New("cardproto: LIST does not match the BEGIN SYNC inventory digest")
	}
	return nil
}

// Notification is a storage-changed notification D0.
type Notification struct {
	Number byte
	Status StatusTemplate
}

// ParseNotification parses D0 {81 03 {n, F0, 00}, 82 02 {81, 82}, A5 status}.
func ParseNotification(b []byte) (Notification, error) {
	o, err := tlv.Single(b, TagNotification)
	if err != nil {
		return Notification{}, malformed("D0", err)
	}
	r := reader{r: o.Children()}
	details := r.field(TagCommandDetails, 3)
	devices := r.field(TagDeviceIdentities, 2)
	st := r.object(TagStatus)
	if err := r.end(); err != nil {
		return Notification{}, malformed("D0", err)
	}
	if details[1] != NotificationType || details[2] != 0 || devices[0] != DeviceUICC || devices[1] != DeviceTerminal {
		return Notification{}, malformed("D0: not a simtix storage notification", nil)
	}
	s, err := parseStatusValue(st)
	if err != nil {
		return Notification{}, err
	}
	return Notification{Number: details[0], Status: s}, nil
}

// ParseReceipt parses CHECK's answer 9D receipt.
func ParseReceipt(b []byte) ([]byte, error) {
	o, err := tlv.Single(b, TagReceipt)
	if err != nil || len(o.Value) != ticketfmt.SignatureSize {
		return nil, malformed("receipt", err)
	}
	return o.Value, nil
}

// VerifyReceipt checks a CHECK receipt with the card's certified key.
func VerifyReceipt(pub *ecdsa.PublicKey, serial ticketfmt.Serial, ticketE1 []byte, c CheckRecord, nonce []byte, receipt []byte) error {
	msg := cardkeys.ReceiptMessage(serial, ticketE1, c.Gate[:], c.Time.AppendBCD(nil), nonce)
	return cardkeys.VerifyReceipt(pub, msg, receipt)
}

// ParseChannel parses MANAGE CHANNEL's answer: the new channel number.
func ParseChannel(b []byte) (int, error) {
	if len(b) != 1 || b[0] < 1 || b[0] > 3 {
		return 0, malformed(fmt.Sprintf("channel number %X", b), nil)
	}
	return int(b[0]), nil
}
