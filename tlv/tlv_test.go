package tlv

import (
	"bytes"
	"encoding/hex"
	"errors"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func unhex(t testing.TB, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(s)
	require.NoError(t, err)
	return b
}

func TestReaderReadsTagsAndLengths(t *testing.T) {
	tests := []struct {
		name   string
		in     string
		tag    Tag
		value  string
		header int
	}{
		{"one-byte tag, short length", "800101", 0x80, "01", 2},
		{"empty value", "8000", 0x80, "", 2},
		{"two-byte tag", "9f1f0142", 0x9F1F, "42", 3},
		{"three-byte tag", "5f810001aa", 0x5F8100, "aa", 4},
		{"length 81", "8181" + "80" + string(bytes.Repeat([]byte("00"), 0x80)), 0x81, string(bytes.Repeat([]byte("00"), 0x80)), 3},
		{"length 82", "e18201" + "00" + string(bytes.Repeat([]byte("ab"), 0x100)), 0xE1, string(bytes.Repeat([]byte("ab"), 0x100)), 4},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			in := unhex(t, tc.in)
			r := NewReader(in)
			obj, err := r.Next()
			require.NoError(t, err)
			assert.Equal(t, tc.tag, obj.Tag)
			assert.Equal(t, unhex(t, tc.value), obj.Value)
			assert.Equal(t, in, obj.Raw)
			assert.Equal(t, 0, obj.Offset)
			assert.Equal(t, tc.header, obj.ValueOffset)
			assert.True(t, r.Empty())
		})
	}
}

func TestReaderRejectsMalformed(t *testing.T) {
	tests := []struct {
		name   string
		in     string
		want   error
		offset int
	}{
		{"empty", "", ErrTruncated, 0},
		{"tag without length", "80", ErrTruncated, 0},
		{"multi-byte tag cut", "9f", ErrTruncated, 0},
		{"tag second byte 80", "9f8001", ErrInvalidTag, 0},
		{"tag second byte 00", "9f0001", ErrInvalidTag, 0},
		{"four-byte tag", "5f818101", ErrInvalidTag, 0},
		{"indefinite length", "e180", ErrIndefiniteLength, 0},
		{"81 for a short length", "80817f", ErrNonMinimalLength, 0},
		{"82 for a one-byte length", "808200ff", ErrNonMinimalLength, 0},
		{"83 length", "8083010000", ErrLengthTooLarge, 0},
		{"84 length", "808400000001", ErrLengthTooLarge, 0},
		{"value cut", "800301", ErrTruncated, 0},
		{"81 cut", "8081", ErrTruncated, 0},
		{"82 cut", "808201", ErrTruncated, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := NewReader(unhex(t, tc.in)).Next()
			require.ErrorIs(t, err, tc.want)
			var te *Error
			require.ErrorAs(t, err, &te)
			assert.Equal(t, tc.offset, te.Offset)
		})
	}
}

func TestChildrenKeepAbsoluteOffsets(t *testing.T) {
	in := unhex(t, "e1078001aa81820001")
	outer, err := Single(in, 0xE1)
	require.NoError(t, err)
	r := outer.Children()
	first, err := r.Expect(0x80)
	require.NoError(t, err)
	assert.Equal(t, 2, first.Offset)
	_, err = r.Next()
	var te *Error
	require.ErrorAs(t, err, &te)
	assert.Equal(t, 5, te.Offset)
	assert.Equal(t, Tag(0x81), te.Tag)
	assert.ErrorIs(t, err, ErrNonMinimalLength)
	assert.Contains(t, err.Error(), "tag 81 at offset 5")
}

func TestExpectOptionalEnd(t *testing.T) {
	r := NewReader(unhex(t, "800101820102830100"))
	_, ok, err := r.Optional(0x81)
	require.NoError(t, err)
	assert.False(t, ok, "Optional must not consume another tag")
	a, err := r.Expect(0x80)
	require.NoError(t, err)
	assert.Equal(t, []byte{1}, a.Value)
	b, ok, err := r.Optional(0x82)
	require.NoError(t, err)
	require.True(t, ok)
	assert.Equal(t, []byte{2}, b.Value)
	_, err = r.Expect(0x84)
	assert.ErrorIs(t, err, ErrUnexpected)
	err = r.End()
	require.ErrorIs(t, err, ErrUnexpected)
	var te *Error
	require.ErrorAs(t, err, &te)
	assert.Equal(t, 6, te.Offset)
	assert.Equal(t, Tag(0x83), te.Tag)

	_, err = NewReader(nil).Expect(0x80)
	assert.ErrorIs(t, err, ErrUnexpected)
	_, err = Single(unhex(t, "800100"+"00"), 0x80)
	assert.ErrorIs(t, err, ErrUnexpected, "Single refuses trailing bytes")
}

func TestBuilderLengthForms(t *testing.T) {
	for _, n := range []int{0, 1, 127, 128, 255, 256, 1000, MaxLength - 4} {
		b := NewBuilder(nil)
		b.AddConstructed(0xE1, func(b *Builder) {
			b.AddBytes(0x80, make([]byte, n))
		})
		out, err := b.Bytes()
		require.NoError(t, err)
		require.Equal(t, Size(0xE1, Size(0x80, n)), len(out), "n=%d", n)

		outer, err := Single(out, 0xE1)
		require.NoError(t, err, "n=%d", n)
		inner, err := Single(outer.Value, 0x80)
		require.NoError(t, err)
		assert.Len(t, inner.Value, n)
	}
}

func TestBuilderWritesExactBytes(t *testing.T) {
	b := NewBuilder(nil)
	b.AddConstructed(0xE4, func(b *Builder) {
		b.AddUint8(0x80, 7)
		b.AddUint16(0x81, 0x0102)
		b.AddUint32(0x82, 0x03040506)
		b.AddString(0x9F1F, "hi")
		b.AddConstructed(0xA5, func(b *Builder) {})
		b.AddRaw([]byte{0x8F, 0x01, 0x00})
	})
	out, err := b.Bytes()
	require.NoError(t, err)
	assert.Equal(t, "e417800107810201028204030405069f1f026869a5008f0100", hex.EncodeToString(out))
}

func TestBuilderErrors(t *testing.T) {
	b := NewBuilder(nil)
	b.AddBytes(0x1F, []byte{1})
	_, err := b.Bytes()
	assert.ErrorIs(t, err, ErrInvalidTag)

	b = NewBuilder(nil)
	b.AddBytes(0x80, make([]byte, MaxLength+1))
	_, err = b.Bytes()
	assert.ErrorIs(t, err, ErrLengthTooLarge)

	b = NewBuilder(nil)
	b.AddConstructed(0xE1, func(b *Builder) {
		b.AddBytes(0x80, make([]byte, MaxLength))
	})
	_, err = b.Bytes()
	assert.ErrorIs(t, err, ErrLengthTooLarge)

	b = NewBuilder(nil)
	b.AddConstructed(0xE1, func(b *Builder) { b.AddBytes(0x9F80, nil) })
	b.AddBytes(0x80, []byte{1})
	_, err = b.Bytes()
	assert.ErrorIs(t, err, ErrInvalidTag, "a child's error sticks")
}

func TestTagProperties(t *testing.T) {
	assert.True(t, Tag(0xE1).Constructed())
	assert.False(t, Tag(0x9E).Constructed())
	assert.True(t, Tag(0x7F21).Constructed())
	assert.Equal(t, "9F1F", Tag(0x9F1F).String())
	assert.Equal(t, "5F8100", Tag(0x5F8100).String())
	assert.Equal(t, "0A", Tag(0x0A).String())
	for _, bad := range []Tag{0x1F, 0x9F80, 0x9F00, 0x9F8180, 0x9F01 << 8, 0x01000000, 0x5F} {
		assert.False(t, bad.Valid(), "%v", bad)
	}
	for _, good := range []Tag{0x00, 0x80, 0xE1, 0x9F1F, 0x5F8101, 0xBF7F} {
		assert.True(t, good.Valid(), "%v", good)
	}
}

func TestSizeAndLengthSize(t *testing.T) {
	assert.Equal(t, 1, LengthSize(127))
	assert.Equal(t, 2, LengthSize(128))
	assert.Equal(t, 2, LengthSize(255))
	assert.Equal(t, 3, LengthSize(256))
	assert.Equal(t, 0, LengthSize(MaxLength+1))
	assert.Equal(t, 0, LengthSize(-1))
	assert.Equal(t, 2+10, Size(0x80, 10))
	assert.Equal(t, 0, Size(0x80, MaxLength+1))
}

// FuzzReader reads nested objects from arbitrary input: it must never panic,
// and every object it accepts must rebuild to the same bytes.
func FuzzReader(f *testing.F) {
	for _, s := range []string{"800101", "e1078001aa8182000101", "9f1f0142", "5f810001aa", "e180", "80817f", "8083010000", "e100"} {
		b, _ := hex.DecodeString(s)
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		var rebuild func(r *Reader, b *Builder) error
		rebuild = func(r *Reader, b *Builder) error {
			for !r.Empty() {
				obj, err := r.Next()
				if err != nil {
					var te *Error
					if !errors.As(err, &te) {
						t.Fatalf("error %v is not a *tlv.Error", err)
					}
					if te.Offset < 0 || te.Offset > len(in) {
						t.Fatalf("offset %d outside input of %d bytes", te.Offset, len(in))
					}
					return err
				}
				if obj.Tag.Constructed() {
					var inner error
					b.AddConstructed(obj.Tag, func(b *Builder) { inner = rebuild(obj.Children(), b) })
					if inner != nil {
						return inner
					}
				} else {
					b.AddBytes(obj.Tag, obj.Value)
				}
			}
			return nil
		}
		b := NewBuilder(nil)
		if err := rebuild(NewReader(in), b); err != nil {
			return
		}
		out, err := b.Bytes()
		if err != nil {
			t.Fatalf("rebuild of accepted input failed: %v", err)
		}
		if !bytes.Equal(out, in) {
			t.Fatalf("rebuild differs:\n in %x\nout %x", in, out)
		}
	})
}

func TestTagText(t *testing.T) {
	for _, tag := range []Tag{0x80, 0xE1, 0x9F1F, 0x5F8101} {
		b, err := tag.MarshalText()
		require.NoError(t, err)
		var back Tag
		require.NoError(t, back.UnmarshalText(b))
		assert.Equal(t, tag, back)
	}
	var tag Tag
	for _, bad := range []string{"", "8", "0080", "1F", "9F80", "zz"} {
		assert.ErrorIs(t, tag.UnmarshalText([]byte(bad)), ErrInvalidTag, "%q", bad)
	}
}
