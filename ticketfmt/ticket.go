// Package ticketfmt is the simtix ticket format: the compact, canonical
// BER-TLV ticket template E1 and the card certificate E5, their strict
// decoders, and their ECDSA P-256 issuer signatures.
//
// It does not know where a ticket is kept or whether it has been used: the
// card and the network side keep that beside the ticket bytes, which never
// change after issue.
package ticketfmt

import (
	"errors"
	"fmt"
	"unicode/utf8"

	"github.com/simtix/simtix/tlv"
)

// Tags of the ticket template and its fields (ticket-format.md).
const (
	TagTicket       tlv.Tag = 0xE1
	TagID           tlv.Tag = 0x80
	TagType         tlv.Tag = 0x81
	TagSeller       tlv.Tag = 0x82
	TagDate         tlv.Tag = 0x83
	TagTime         tlv.Tag = 0x84
	TagPrice        tlv.Tag = 0x85
	TagSeat         tlv.Tag = 0x86
	TagInstructions tlv.Tag = 0x87
	TagCarrier      tlv.Tag = 0x88
	TagKeyID        tlv.Tag = 0x8B
	TagSignature    tlv.Tag = 0x9E
)

// Limits of the text fields, in UTF-8 bytes, and of a whole ticket.
const (
	MaxSellerLen       = 64
	MaxSeatLen         = 32
	MaxInstructionsLen = 128
	// FixedSize is what the fields of fixed size take, with their tags and
	// lengths: ID, type, date, time, price, binding, key ID and signature.
	FixedSize = 115
	// MaxSize is the size of the largest valid ticket.
	MaxSize = 350
)

// Errors of the ticket format. Decoding errors are *tlv.Error values (tag
// and offset) that wrap one of these, or one of the tlv package's.
var (
	// ErrSize means a field of the wrong size, or an input larger than any
	// valid ticket.
	ErrSize = errors.New("wrong size")
	// ErrOrder means a field out of ascending tag order.
	ErrOrder = errors.New("field out of order")
	// ErrDuplicate means a field that appears twice.
	ErrDuplicate = errors.New("duplicate field")
	// ErrUnknownTag means a tag that is not part of the template.
	ErrUnknownTag = errors.New("unknown tag")
	// ErrMissing means a required field that is absent.
	ErrMissing = errors.New("required field missing")
	// ErrEmpty means an optional text field that is present but empty.
	ErrEmpty = errors.New("empty optional field")
	// ErrUTF8 means text that is not valid UTF-8.
	ErrUTF8 = errors.New("invalid UTF-8")
	// ErrUnsigned means a ticket or certificate without its signature where
	// one is needed.
	ErrUnsigned = errors.New("not signed")
)

// SignatureSize is the size of a raw ECDSA P-256 signature r‖s.
const SignatureSize = 64

// Ticket is an electronic ticket: the fields of the template E1.
type Ticket struct {
	// ID is unique per ticket, assigned by the issuer.
	ID ID `json:"id"`
	// Type is issuer-defined (1 admission, 2 train, 3 cinema...).
	Type uint8 `json:"type"`
	// Seller is the seller's name, 1-64 bytes of UTF-8.
	Seller string `json:"seller"`
	// Date is the use date.
	Date Date `json:"date"`
	// Time is the use time, local time of the venue.
	Time TimeOfDay `json:"time"`
	// Price is in minor currency units.
	Price uint32 `json:"price"`
	// Seat is optional ("" when absent), at most 32 bytes of UTF-8.
	Seat string `json:"seat,omitempty"`
	// Instructions are optional ("" when absent), at most 128 bytes of UTF-8.
	Instructions string `json:"instructions,omitempty"`
	// Carrier is the serial of the card the ticket is bound to.
	Carrier Serial `json:"carrier"`
	// KeyID names the issuer key that signed the ticket.
	KeyID KeyID `json:"key_id"`
	// Signature is the issuer's raw r‖s signature (64 bytes), or nil for a
	// ticket not signed yet.
	Signature []byte `json:"signature,omitempty"`
}

// field describes one field of a template: its tag, its size range, and
// whether it must be present.
type field struct {
	tag      tlv.Tag
	min, max int
	required bool
}

var ticketFields = [...]field{
	{TagID, idSize, idSize, true},
	{TagType, 1, 1, true},
	{TagSeller, 1, MaxSellerLen, true},
	{TagDate, dateSize, dateSize, true},
	{TagTime, timeSize, timeSize, true},
	{TagPrice, 4, 4, true},
	{TagSeat, 1, MaxSeatLen, false},
	{TagInstructions, 1, MaxInstructionsLen, false},
	{TagCarrier, SerialSize, SerialSize, true},
	{TagKeyID, keyIDSize, keyIDSize, true},
	{TagSignature, SignatureSize, SignatureSize, true},
}

// Size is the encoded size of the signed ticket, in bytes.
func (t *Ticket) Size() int {
	return tlv.Size(TagTicket, t.fieldsSize()+tlv.Size(TagSignature, SignatureSize))
}

// fieldsSize is the size of the fields before the signature.
func (t *Ticket) fieldsSize() int {
	n := FixedSize - tlv.Size(TagSignature, SignatureSize)
	for _, s := range [...]string{t.Seller, t.Seat, t.Instructions} {
		if s != "" {
			n += tlv.Size(TagSeller, len(s))
		}
	}
	return n
}

// Validate checks every field but the signature against the format's rules.
func (t *Ticket) Validate() error {
	if err := checkText(TagSeller, t.Seller, MaxSellerLen, true); err != nil {
		return err
	}
	if !t.Date.Valid() {
		return fieldErr(TagDate, fmt.Errorf("%w: %v", ErrNoSuchDate, t.Date))
	}
	if !t.Time.Valid() {
		return fieldErr(TagTime, fmt.Errorf("%w: %v", ErrNoSuchDate, t.Time))
	}
	if err := checkText(TagSeat, t.Seat, MaxSeatLen, false); err != nil {
		return err
	}
	return checkText(TagInstructions, t.Instructions, MaxInstructionsLen, false)
}

func checkText(tag tlv.Tag, s string, maxLen int, required bool) error {
	switch {
	case s == "" && required:
		return fieldErr(tag, ErrMissing)
	case len(s) > maxLen:
		return fieldErr(tag, fmt.Errorf("%w: %d bytes, at most %d", ErrSize, len(s), maxLen))
	case !utf8.ValidString(s):
		return fieldErr(tag, ErrUTF8)
	}
	return nil
}

func fieldErr(tag tlv.Tag, err error) error {
	return fmt.Errorf("ticket: field %v: %w", tag, err)
}

// Marshal returns the canonical encoding of the signed ticket.
func (t *Ticket) Marshal() ([]byte, error) {
	if len(t.Signature) != SignatureSize {
		return nil, fieldErr(TagSignature, fmt.Errorf("%w: %d signature bytes", ErrUnsigned, len(t.Signature)))
	}
	return t.marshal(true)
}

// MarshalUnsigned returns the bytes the issuer signs: the template E1 with
// every field but the signature 9E.
func (t *Ticket) MarshalUnsigned() ([]byte, error) {
	return t.marshal(false)
}

func (t *Ticket) marshal(signed bool) ([]byte, error) {
	if err := t.Validate(); err != nil {
		return nil, err
	}
	n := t.fieldsSize()
	if signed {
		n += tlv.Size(TagSignature, SignatureSize)
	}
	var bcd [dateSize + timeSize]byte
	t.Time.AppendBCD(t.Date.AppendBCD(bcd[:0]))
	b := tlv.NewBuilder(make([]byte, 0, tlv.Size(TagTicket, n)))
	b.AddConstructed(TagTicket, func(b *tlv.Builder) {
		b.AddBytes(TagID, t.ID[:])
		b.AddUint8(TagType, t.Type)
		b.AddString(TagSeller, t.Seller)
		b.AddBytes(TagDate, bcd[:dateSize])
		b.AddBytes(TagTime, bcd[dateSize:])
		b.AddUint32(TagPrice, t.Price)
		if t.Seat != "" {
			b.AddString(TagSeat, t.Seat)
		}
		if t.Instructions != "" {
			b.AddString(TagInstructions, t.Instructions)
		}
		b.AddBytes(TagCarrier, t.Carrier[:])
		b.AddBytes(TagKeyID, t.KeyID[:])
		if signed {
			b.AddBytes(TagSignature, t.Signature)
		}
	})
	return b.Bytes()
}

// Unmarshal decodes a ticket and checks every rule of the format: a single
// E1 template with nothing after it, fields in ascending tag order, each at
// most once, no unknown tags, minimal lengths, sizes in range, no empty
// optional field, valid UTF-8, real BCD dates and times, and the signature
// field present. It does not verify the signature (see Verify). The error
// names the offending tag and byte offset.
func Unmarshal(b []byte) (*Ticket, error) {
	var t Ticket
	if err := decodeTemplate(b, TagTicket, ticketFields[:], MaxSize, t.setField); err != nil {
		return nil, fmt.Errorf("ticket: %w", err)
	}
	return &t, nil
}

func (t *Ticket) setField(obj tlv.Object) error {
	v := obj.Value
	var err error
	switch obj.Tag {
	case TagID:
		copy(t.ID[:], v)
	case TagType:
		t.Type = v[0]
	case TagSeller:
		t.Seller, err = decodeText(v)
	case TagDate:
		t.Date, err = DecodeDate(v)
	case TagTime:
		t.Time, err = DecodeTimeOfDay(v)
	case TagPrice:
		t.Price = uint32(v[0])<<24 | uint32(v[1])<<16 | uint32(v[2])<<8 | uint32(v[3])
	case TagSeat:
		t.Seat, err = decodeText(v)
	case TagInstructions:
		t.Instructions, err = decodeText(v)
	case TagCarrier:
		copy(t.Carrier[:], v)
	case TagKeyID:
		copy(t.KeyID[:], v)
	case TagSignature:
		t.Signature = append([]byte(nil), v...)
	}
	return err
}

func decodeText(v []byte) (string, error) {
	if !utf8.Valid(v) {
		return "", ErrUTF8
	}
	return string(v), nil
}

// decodeTemplate reads b as the single template tag whose fields are those
// of fields (in ascending tag order), checks the rules common to every
// template and hands each field to set.
func decodeTemplate(b []byte, tag tlv.Tag, fields []field, maxSize int, set func(tlv.Object) error) error {
	if len(b) > maxSize {
		return &tlv.Error{Offset: 0, Tag: tag, Err: fmt.Errorf("%w: %d bytes, at most %d", ErrSize, len(b), maxSize)}
	}
	tpl, err := tlv.Single(b, tag)
	if err != nil {
		return err
	}
	r := tpl.Children()
	last := -1
	var seen uint32
	for !r.Empty() {
		obj, err := r.Next()
		if err != nil {
			return err
		}
		i := fieldIndex(fields, obj.Tag)
		switch {
		case i < 0:
			return obj.Errorf(ErrUnknownTag, "not in template %v", tag)
		case seen&(1<<i) != 0:
			return obj.Errorf(ErrDuplicate, "second %v", obj.Tag)
		case i < last:
			return obj.Errorf(ErrOrder, "after %v", fields[last].tag)
		}
		last = i
		seen |= 1 << i
		f := fields[i]
		switch n := len(obj.Value); {
		case n == 0 && !f.required:
			return obj.Errorf(ErrEmpty, "optional field present but empty")
		case n < f.min || n > f.max:
			if f.min == f.max {
				return obj.Errorf(ErrSize, "%d bytes, want %d", n, f.min)
			}
			return obj.Errorf(ErrSize, "%d bytes, want %d to %d", n, f.min, f.max)
		}
		if err := set(obj); err != nil {
			return &tlv.Error{Offset: obj.Offset, Tag: obj.Tag, Err: err}
		}
	}
	for i, f := range fields {
		if f.required && seen&(1<<i) == 0 {
			return &tlv.Error{Offset: r.Offset(), Tag: f.tag, Err: ErrMissing}
		}
	}
	return nil
}

func fieldIndex(fields []field, tag tlv.Tag) int {
	for i, f := range fields {
		if f.tag == tag {
			return i
		}
	}
	return -1
}
