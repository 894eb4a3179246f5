// Package tlv reads and writes BER-TLV data objects as ISO/IEC 7816-4
// (annex D) uses them: tags of 1 to 3 bytes and definite, minimal lengths up
// to 65535.
//
// It is modelled on golang.org/x/crypto/cryptobyte: the Reader never panics
// and never reads past its input, and the Builder computes every length
// itself. It knows nothing of what the tags mean; ticketfmt and the applet do.
package tlv

import (
	"errors"
	"fmt"
	"strconv"
)

// MaxLength is the largest value length the encoding allows (`82 FF FF`).
const MaxLength = 65535

// Errors returned, wrapped in *Error, by Reader and Builder.
var (
	// ErrTruncated means the input ends inside a tag, a length or a value.
	ErrTruncated = errors.New("truncated")
	// ErrInvalidTag means a tag that breaks the ISO/IEC 7816-4 tag rules or
	// is longer than 3 bytes.
	ErrInvalidTag = errors.New("invalid tag")
	// ErrIndefiniteLength means the length byte 80 (indefinite form).
	ErrIndefiniteLength = errors.New("indefinite length")
	// ErrNonMinimalLength means a length in a longer form than needed.
	ErrNonMinimalLength = errors.New("length not in minimal form")
	// ErrLengthTooLarge means a length field of more than 2 length bytes, or
	// a value longer than MaxLength.
	ErrLengthTooLarge = errors.New("length over 65535")
)

// Error is the error of a malformed or unexpected data object. It names the
// tag (when it could be read) and the byte offset where the problem is; its
// message has no package prefix, so that callers can put their own before it
// ("ticket: tag 83 at offset 41: ...").
type Error struct {
	// Offset is the offset of the data object's first byte, counted from the
	// start of the outermost input.
	Offset int
	// Tag is the tag of the data object, or 0 if it could not be read.
	Tag Tag
	// Err is the cause: one of this package's Err values or a caller's own.
	Err error
}

// Error implements error.
func (e *Error) Error() string {
	if e.Tag == 0 {
		return fmt.Sprintf("at offset %d: %v", e.Offset, e.Err)
	}
	return fmt.Sprintf("tag %v at offset %d: %v", e.Tag, e.Offset, e.Err)
}

// Unwrap returns the cause.
func (e *Error) Unwrap() error { return e.Err }

// Tag is a BER-TLV tag, as the number its bytes spell big-endian: E1 is
// 0xE1, 9F1F is 0x9F1F.
type Tag uint32

// Size is the number of bytes of the encoded tag (1 to 3).
func (t Tag) Size() int {
	switch {
	case t <= 0xFF:
		return 1
	case t <= 0xFFFF:
		return 2
	default:
		return 3
	}
}

// Constructed reports whether the tag marks a constructed object (b6 of its
// first byte).
func (t Tag) Constructed() bool {
	first := byte(t >> (8 * uint(t.Size()-1)))
	return first&0x20 != 0
}

// Valid reports whether t encodes as a well-formed tag of 1 to 3 bytes.
func (t Tag) Valid() bool {
	if t > 0xFFFFFF {
		return false
	}
	var buf [3]byte
	enc := t.append(buf[:0])
	got, n, err := parseTag(enc)
	return err == nil && n == len(enc) && got == t
}

// String formats the tag in upper-case hex, two digits per byte.
func (t Tag) String() string {
	return fmt.Sprintf("%0*X", 2*t.Size(), uint32(t))
}

func (t Tag) append(b []byte) []byte {
	switch t.Size() {
	case 3:
		b = append(b, byte(t>>16))
		fallthrough
	case 2:
		b = append(b, byte(t>>8))
		fallthrough
	default:
		return append(b, byte(t))
	}
}

// parseTag reads a tag at the start of b and returns it with its size.
func parseTag(b []byte) (Tag, int, error) {
	if len(b) == 0 {
		return 0, 0, ErrTruncated
	}
	t := Tag(b[0])
	if b[0]&0x1F != 0x1F {
		return t, 1, nil
	}
	for i := 1; ; i++ {
		if i >= len(b) {
			return 0, 0, ErrTruncated
		}
		c := b[i]
		if i == 1 && c&0x7F == 0 {
			return 0, 0, ErrInvalidTag
		}
		t = t<<8 | Tag(c)
		if c&0x80 == 0 {
			return t, i + 1, nil
		}
		if i == 2 {
			return 0, 0, ErrInvalidTag
		}
	}
}

// parseLength reads a definite, minimal length at the start of b and returns
// it with the size of the length field.
func parseLength(b []byte) (int, int, error) {
	if len(b) == 0 {
		return 0, 0, ErrTruncated
	}
	switch l := b[0]; {
	case l < 0x80:
		return int(l), 1, nil
	case l == 0x80:
		return 0, 0, ErrIndefiniteLength
	case l == 0x81:
		if len(b) < 2 {
			return 0, 0, ErrTruncated
		}
		if b[1] < 0x80 {
			return 0, 0, ErrNonMinimalLength
		}
		return int(b[1]), 2, nil
	case l == 0x82:
		if len(b) < 3 {
			return 0, 0, ErrTruncated
		}
		n := int(b[1])<<8 | int(b[2])
		if n < 0x100 {
			return 0, 0, ErrNonMinimalLength
		}
		return n, 3, nil
	default:
		return 0, 0, ErrLengthTooLarge
	}
}

// LengthSize is the size of the minimal length field for a value of n bytes
// (1 to 3), or 0 when n is negative or over MaxLength.
func LengthSize(n int) int {
	switch {
	case n < 0 || n > MaxLength:
		return 0
	case n < 0x80:
		return 1
	case n <= 0xFF:
		return 2
	default:
		return 3
	}
}

// Size is the encoded size of a data object with tag t and a value of n
// bytes, or 0 when n is out of range.
func Size(t Tag, n int) int {
	ls := LengthSize(n)
	if ls == 0 {
		return 0
	}
	return t.Size() + ls + n
}

func appendLength(b []byte, n int) []byte {
	switch {
	case n < 0x80:
		return append(b, byte(n))
	case n <= 0xFF:
		return append(b, 0x81, byte(n))
	default:
		return append(b, 0x82, byte(n>>8), byte(n))
	}
}

// MarshalText formats the tag as String does, so that JSON shows "9E".
func (t Tag) MarshalText() ([]byte, error) { return []byte(t.String()), nil }

// UnmarshalText parses a tag in hex, such as "9F1F", and checks it is valid.
func (t *Tag) UnmarshalText(b []byte) error {
	v, err := strconv.ParseUint(string(b), 16, 32)
	if err != nil || len(b)%2 != 0 || !Tag(v).Valid() || Tag(v).Size() != len(b)/2 {
		return fmt.Errorf("tag %q: %w", b, ErrInvalidTag)
	}
	*t = Tag(v)
	return nil
}
