package tlv

import (
	"encoding/binary"
	"fmt"
)

// Builder appends data objects to a byte slice. Lengths are never given by
// the caller: AddConstructed measures what its continuation wrote. The first
// error (an invalid tag, a value over MaxLength) sticks and is returned by
// Bytes; nothing after it is written.
type Builder struct {
	buf []byte
	err error
}

// NewBuilder returns a Builder that appends to buf (which may be nil, or an
// empty slice with capacity for the expected size).
func NewBuilder(buf []byte) *Builder {
	return &Builder{buf: buf}
}

// Bytes returns the bytes written so far, or the first error.
func (b *Builder) Bytes() ([]byte, error) {
	if b.err != nil {
		return nil, b.err
	}
	return b.buf, nil
}

// Len is the number of bytes written so far.
func (b *Builder) Len() int { return len(b.buf) }

// Err returns the first error, if any.
func (b *Builder) Err() error { return b.err }

func (b *Builder) header(t Tag, n int) bool {
	if b.err != nil {
		return false
	}
	if !t.Valid() {
		b.err = &Error{Offset: len(b.buf), Tag: t, Err: ErrInvalidTag}
		return false
	}
	if n > MaxLength {
		b.err = &Error{Offset: len(b.buf), Tag: t, Err: fmt.Errorf("%w: %d bytes", ErrLengthTooLarge, n)}
		return false
	}
	b.buf = t.append(b.buf)
	b.buf = appendLength(b.buf, n)
	return true
}

// AddBytes appends a primitive object with tag t and value v.
func (b *Builder) AddBytes(t Tag, v []byte) {
	if b.header(t, len(v)) {
		b.buf = append(b.buf, v...)
	}
}

// AddString appends a primitive object with tag t and the bytes of s.
func (b *Builder) AddString(t Tag, s string) {
	if b.header(t, len(s)) {
		b.buf = append(b.buf, s...)
	}
}

// AddUint8 appends a 1-byte object.
func (b *Builder) AddUint8(t Tag, v uint8) {
	if b.header(t, 1) {
		b.buf = append(b.buf, v)
	}
}

// AddUint16 appends a 2-byte big-endian object.
func (b *Builder) AddUint16(t Tag, v uint16) {
	if b.header(t, 2) {
		b.buf = binary.BigEndian.AppendUint16(b.buf, v)
	}
}

// AddUint32 appends a 4-byte big-endian object.
func (b *Builder) AddUint32(t Tag, v uint32) {
	if b.header(t, 4) {
		b.buf = binary.BigEndian.AppendUint32(b.buf, v)
	}
}

// AddRaw appends bytes that already are encoded data objects (such as an
// Object's Raw field) as they are.
func (b *Builder) AddRaw(raw []byte) {
	if b.err == nil {
		b.buf = append(b.buf, raw...)
	}
}

// AddConstructed appends an object with tag t whose value is whatever f
// writes to the Builder it is given (this same Builder: its length is
// measured when f returns).
func (b *Builder) AddConstructed(t Tag, f func(*Builder)) {
	if !b.header(t, 0) {
		return
	}
	lenPos := len(b.buf) - 1
	start := len(b.buf)
	f(b)
	if b.err != nil {
		return
	}
	n := len(b.buf) - start
	var extra int
	switch {
	case n < 0x80:
		b.buf[lenPos] = byte(n)
		return
	case n <= 0xFF:
		extra = 1
	case n <= MaxLength:
		extra = 2
	default:
		b.err = &Error{Offset: lenPos - t.Size(), Tag: t, Err: fmt.Errorf("%w: %d bytes", ErrLengthTooLarge, n)}
		return
	}
	for range extra {
		b.buf = append(b.buf, 0)
	}
	copy(b.buf[start+extra:], b.buf[start:start+n])
	appendLength(b.buf[:lenPos], n)
}
