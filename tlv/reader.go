package tlv

import (
	"errors"
	"fmt"
)

// ErrUnexpected is the cause of an error from Reader.Expect, Reader.End and
// Reader.Optional when the input holds another object than the one the
// caller asks for, or holds something after the last one.
var ErrUnexpected = errors.New("unexpected data object")

// Object is one data object read by a Reader. Its slices alias the Reader's
// input.
type Object struct {
	// Tag is the object's tag.
	Tag Tag
	// Value is the object's value field.
	Value []byte
	// Raw is the whole object: tag, length and value.
	Raw []byte
	// Offset is the offset of the object's first byte in the outermost input.
	Offset int
	// ValueOffset is the offset of the first value byte in the outermost
	// input.
	ValueOffset int
}

// Children returns a Reader over the object's value, with offsets still
// counted from the start of the outermost input.
func (o Object) Children() *Reader {
	return &Reader{buf: o.Value, base: o.ValueOffset}
}

// Errorf returns an *Error about this object.
func (o Object) Errorf(err error, format string, args ...any) error {
	return &Error{Offset: o.Offset, Tag: o.Tag, Err: fmt.Errorf("%w: "+format, append([]any{err}, args...)...)}
}

// Reader reads consecutive data objects from a byte slice. It never panics
// and never reads past its input; every error it returns is an *Error.
type Reader struct {
	buf  []byte
	off  int
	base int
}

// NewReader returns a Reader over b, counting offsets from the start of b.
func NewReader(b []byte) *Reader {
	return &Reader{buf: b}
}

// Empty reports whether all input has been read.
func (r *Reader) Empty() bool { return r.off >= len(r.buf) }

// Offset is the offset of the next unread byte in the outermost input.
func (r *Reader) Offset() int { return r.base + r.off }

// Remaining returns the unread input.
func (r *Reader) Remaining() []byte { return r.buf[r.off:] }

// Next reads the next data object. At the end of the input it returns an
// *Error wrapping ErrTruncated; call Empty first to tell the end from a
// truncated object.
func (r *Reader) Next() (Object, error) {
	obj, n, err := r.peek()
	if err != nil {
		return Object{}, err
	}
	r.off += n
	return obj, nil
}

// PeekTag returns the tag of the next object without consuming anything.
// It returns false at the end of the input or when no tag can be read.
func (r *Reader) PeekTag() (Tag, bool) {
	t, _, err := parseTag(r.buf[r.off:])
	return t, err == nil
}

func (r *Reader) peek() (Object, int, error) {
	b := r.buf[r.off:]
	start := r.Offset()
	tag, tn, err := parseTag(b)
	if err != nil {
		return Object{}, 0, &Error{Offset: start, Err: err}
	}
	l, ln, err := parseLength(b[tn:])
	if err != nil {
		return Object{}, 0, &Error{Offset: start, Tag: tag, Err: err}
	}
	hdr := tn + ln
	if l > len(b)-hdr {
		return Object{}, 0, &Error{Offset: start, Tag: tag, Err: fmt.Errorf("%w: value of %d bytes, %d left", ErrTruncated, l, len(b)-hdr)}
	}
	return Object{
		Tag:         tag,
		Value:       b[hdr : hdr+l : hdr+l],
		Raw:         b[: hdr+l : hdr+l],
		Offset:      start,
		ValueOffset: start + hdr,
	}, hdr + l, nil
}

// Expect reads the next object and checks that its tag is t.
func (r *Reader) Expect(t Tag) (Object, error) {
	if r.Empty() {
		return Object{}, &Error{Offset: r.Offset(), Tag: t, Err: fmt.Errorf("%w: missing", ErrUnexpected)}
	}
	obj, n, err := r.peek()
	if err != nil {
		return Object{}, err
	}
	if obj.Tag != t {
		return Object{}, obj.Errorf(ErrUnexpected, "want tag %v", t)
	}
	r.off += n
	return obj, nil
}

// Optional reads the next object if its tag is t. It returns false, and
// consumes nothing, if the input is empty or the next tag is another.
func (r *Reader) Optional(t Tag) (Object, bool, error) {
	if r.Empty() {
		return Object{}, false, nil
	}
	obj, n, err := r.peek()
	if err != nil {
		return Object{}, false, err
	}
	if obj.Tag != t {
		return Object{}, false, nil
	}
	r.off += n
	return obj, true, nil
}

// End returns an error if any input is left.
func (r *Reader) End() error {
	if r.Empty() {
		return nil
	}
	tag, _ := r.PeekTag()
	return &Error{Offset: r.Offset(), Tag: tag, Err: fmt.Errorf("%w: trailing data", ErrUnexpected)}
}

// Single reads b as exactly one data object with tag t and nothing after it.
func Single(b []byte, t Tag) (Object, error) {
	r := NewReader(b)
	obj, err := r.Expect(t)
	if err != nil {
		return Object{}, err
	}
	return obj, r.End()
}
