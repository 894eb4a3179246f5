package apdu

import (
	"bytes"
	"encoding/hex"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// h decodes hex with spaces, for readable test vectors.
func h(s string) []byte {
	b, err := hex.DecodeString(strings.ReplaceAll(s, " ", ""))
	if err != nil {
		panic(err)
	}
	return b
}

// cat concatenates byte slices.
func cat(parts ...[]byte) []byte { return bytes.Join(parts, nil) }

// pattern returns n bytes of a non-repeating-looking pattern.
func pattern(n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i*7 + i/251)
	}
	return b
}

var aid = h("F0 53 49 4D 54 49 58 01")

// wellFormed lists every case in short and extended form, with the command
// it codes. The bytes are written by hand from ISO/IEC 7816-4 §5.1.
var wellFormed = []struct {
	name string
	b    []byte
	c    Command
}{
	{"1", h("00 A4 04 00"), Command{INS: 0xA4, P1: 0x04}},
	{"1 proprietary", h("80 F2 01 0C"), Command{CLA: 0x80, INS: 0xF2, P1: 0x01, P2: 0x0C}},
	{"2S Le 00", h("80 F2 00 00 00"), Command{CLA: 0x80, INS: 0xF2, Ne: 256}},
	{"2S Le 01", h("80 F2 00 00 01"), Command{CLA: 0x80, INS: 0xF2, Ne: 1}},
	{"2S Le FF", h("00 C0 00 00 FF"), Command{INS: 0xC0, Ne: 255}},
	{"3S Lc 01", h("80 10 00 00 01 AA"), Command{CLA: 0x80, INS: 0x10, Data: h("AA")}},
	{"3S SELECT", cat(h("00 A4 04 0C 08"), aid), Command{INS: 0xA4, P1: 4, P2: 0x0C, Data: aid}},
	{"3S Lc FF", cat(h("80 38 00 00 FF"), pattern(255)), Command{CLA: 0x80, INS: 0x38, Data: pattern(255)}},
	{"4S Le 00", cat(h("00 A4 04 00 08"), aid, h("00")), Command{INS: 0xA4, P1: 4, Data: aid, Ne: 256}},
	{"4S Le 10", h("80 32 00 00 02 80 01 10"), Command{CLA: 0x80, INS: 0x32, Data: h("80 01"), Ne: 16}},
	{"4S Lc FF Le 01", cat(h("80 38 00 00 FF"), pattern(255), h("01")), Command{CLA: 0x80, INS: 0x38, Data: pattern(255), Ne: 1}},
	{"2E Le 0000", h("80 30 00 00 00 00 00"), Command{CLA: 0x80, INS: 0x30, Ne: 65536, Extended: true}},
	{"2E Le 0001", h("80 30 00 00 00 00 01"), Command{CLA: 0x80, INS: 0x30, Ne: 1, Extended: true}},
	{"2E Le 0100", h("80 30 00 00 00 01 00"), Command{CLA: 0x80, INS: 0x30, Ne: 256, Extended: true}},
	{"2E Le 0101", h("80 30 00 00 00 01 01"), Command{CLA: 0x80, INS: 0x30, Ne: 257, Extended: true}},
	{"2E Le FFFF", h("00 C0 00 00 00 FF FF"), Command{INS: 0xC0, Ne: 65535, Extended: true}},
	{"3E Lc 0001", h("80 10 00 00 00 00 01 AA"), Command{CLA: 0x80, INS: 0x10, Data: h("AA"), Extended: true}},
	{"3E Lc 0100", cat(h("80 38 00 00 00 01 00"), pattern(256)), Command{CLA: 0x80, INS: 0x38, Data: pattern(256), Extended: true}},
	{"3E Lc FFFF", cat(h("80 38 00 00 00 FF FF"), pattern(65535)), Command{CLA: 0x80, INS: 0x38, Data: pattern(65535), Extended: true}},
	{"4E Le 0000", h("80 32 00 00 00 00 02 80 01 00 00"), Command{CLA: 0x80, INS: 0x32, Data: h("80 01"), Ne: 65536, Extended: true}},
	{"4E Le 0001", h("80 32 00 00 00 00 02 80 01 00 01"), Command{CLA: 0x80, INS: 0x32, Data: h("80 01"), Ne: 1, Extended: true}},
	{"4E Lc 0100 Le 0100", cat(h("80 38 00 00 00 01 00"), pattern(256), h("01 00")), Command{CLA: 0x80, INS: 0x38, Data: pattern(256), Ne: 256, Extended: true}},
	{"4E Lc FFFF Le FFFF", cat(h("80 38 00 00 00 FF FF"), pattern(65535), h("FF FF")), Command{CLA: 0x80, INS: 0x38, Data: pattern(65535), Ne: 65535, Extended: true}},
}

func TestParseCommand(t *testing.T) {
	for _, tt := range wellFormed {
		t.Run(tt.name, func(t *testing.T) {
			c, err := ParseCommand(tt.b)
			require.NoError(t, err)
			assert.Equal(t, tt.c, c)
		})
	}
}

func TestCommandBytes(t *testing.T) {
	for _, tt := range wellFormed {
		t.Run(tt.name, func(t *testing.T) {
			b, err := tt.c.Bytes()
			require.NoError(t, err)
			assert.Equal(t, tt.b, b)
			assert.Equal(t, len(tt.b), tt.c.Len())

			dst := []byte{0xEE}
			dst, err = tt.c.AppendBytes(dst)
			require.NoError(t, err)
			assert.Equal(t, cat([]byte{0xEE}, tt.b), dst)
		})
	}
}

func TestCommandRoundTrip(t *testing.T) {
	for _, tt := range wellFormed {
		t.Run(tt.name, func(t *testing.T) {
			// Bytes → Parse gives the same command.
			b, err := tt.c.Bytes()
			require.NoError(t, err)
			c, err := ParseCommand(b)
			require.NoError(t, err)
			assert.Equal(t, tt.c, c)

			// Parse → Bytes gives the same bytes.
			c, err = ParseCommand(tt.b)
			require.NoError(t, err)
			b, err = c.Bytes()
			require.NoError(t, err)
			assert.Equal(t, tt.b, b)
		})
	}
}

func TestLeMaximum(t *testing.T) {
	for _, tt := range []struct {
		b  []byte
		ne int
	}{
		{h("00 C0 00 00 00"), 256},
		{h("00 B0 00 00 01 AA 00"), 256},
		{h("00 C0 00 00 00 00 00"), 65536},
		{h("00 B0 00 00 00 00 01 AA 00 00"), 65536},
	} {
		c, err := ParseCommand(tt.b)
		require.NoError(t, err)
		assert.Equal(t, tt.ne, c.Ne, "% X", tt.b)
	}
}

func TestCommandBytesChoosesForm(t *testing.T) {
	for _, tt := range []struct {
		name string
		c    Command
		want []byte
	}{
		{"short Ne 256", Command{INS: 0xC0, Ne: 256}, h("00 C0 00 00 00")},
		{"Ne 257 needs extended", Command{INS: 0xC0, Ne: 257}, h("00 C0 00 00 00 01 01")},
		{"Ne 65536", Command{INS: 0xC0, Ne: 65536}, h("00 C0 00 00 00 00 00")},
		{"data 256 needs extended", Command{INS: 0x38, Data: pattern(256)}, cat(h("00 38 00 00 00 01 00"), pattern(256))},
		{"short data, Ne 65536", Command{INS: 0x32, Data: h("AA"), Ne: 65536}, h("00 32 00 00 00 00 01 AA 00 00")},
		{"long data, Ne 1", Command{INS: 0x38, Data: pattern(300), Ne: 1}, cat(h("00 38 00 00 00 01 2C"), pattern(300), h("00 01"))},
		{"case 1 has one form", Command{INS: 0x70, Extended: true}, h("00 70 00 00")},
		{"empty data is no data", Command{INS: 0x70, Data: []byte{}}, h("00 70 00 00")},
	} {
		t.Run(tt.name, func(t *testing.T) {
			b, err := tt.c.Bytes()
			require.NoError(t, err)
			assert.Equal(t, tt.want, b)
			assert.Equal(t, len(tt.want), tt.c.Len())
		})
	}
}

func TestCommandBytesErrors(t *testing.T) {
	for _, tt := range []struct {
		name string
		c    Command
	}{
		{"data 65536", Command{Data: make([]byte, 65536)}},
		{"Ne -1", Command{Ne: -1}},
		{"Ne 65537", Command{Ne: 65537}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := tt.c.Bytes()
			require.ErrorIs(t, err, ErrMalformed)
			dst := []byte{1, 2}
			out, err := tt.c.AppendBytes(dst)
			require.ErrorIs(t, err, ErrMalformed)
			assert.Equal(t, []byte{1, 2}, out)
		})
	}
}

// malformed lists the lengths ParseCommand must refuse, with a word of the
// message it must give.
var malformed = []struct {
	name string
	b    []byte
	msg  string
}{
	{"empty", nil, "shorter than a 4-byte header"},
	{"1 byte", h("00"), "shorter"},
	{"2 bytes", h("00 A4"), "shorter"},
	{"3 bytes", h("00 A4 04"), "shorter"},
	{"6 bytes, 00 at b[4]", h("00 A4 04 00 00 00"), "neither short nor extended"},
	{"3S Lc 02, 1 data byte", h("00 A4 04 00 02 AA"), "short Lc 2"},
	{"3S Lc 02, 4 bytes after Lc", h("00 A4 04 00 02 AA BB CC DD"), "short Lc 2"},
	{"4S Le 2 bytes", h("00 A4 04 00 01 AA 00 00"), "short Lc 1"},
	{"Lc FF, 10 data bytes", cat(h("00 A4 04 00 FF"), pattern(10)), "short Lc 255"},
	{"Lc FF, 258 bytes after Lc", cat(h("00 A4 04 00 FF"), pattern(258)), "short Lc 255"},
	{"extended Lc 0000, 1 byte", h("00 A4 04 00 00 00 00 00"), "extended Lc 0000"},
	{"extended Lc 0000, Le 2 bytes", h("00 A4 04 00 00 00 00 01 00"), "extended Lc 0000"},
	{"extended Lc 0002, 1 data byte", h("00 A4 04 00 00 00 02 AA"), "extended Lc 2"},
	{"extended Lc 0002, Le 1 byte", h("00 A4 04 00 00 00 02 AA BB 00"), "extended Lc 2"},
	{"extended Lc 0002, Le 3 bytes", h("00 A4 04 00 00 00 02 AA BB 00 00 00"), "extended Lc 2"},
	{"extended Lc FFFF, 4 data bytes", h("00 A4 04 00 00 FF FF AA BB CC DD"), "extended Lc 65535"},
	{"extended Lc 0100 with 255 bytes", cat(h("00 38 00 00 00 01 00"), pattern(255)), "extended Lc 256"},
}

func TestParseCommandMalformed(t *testing.T) {
	for _, tt := range malformed {
		t.Run(tt.name, func(t *testing.T) {
			c, err := ParseCommand(tt.b)
			require.ErrorIs(t, err, ErrMalformed)
			assert.Contains(t, err.Error(), tt.msg)
			assert.Zero(t, c)
		})
	}
}

func TestParseCommandDataAliasing(t *testing.T) {
	b := h("80 32 00 00 02 80 01 10")
	c, err := ParseCommand(b)
	require.NoError(t, err)
	assert.Equal(t, 2, cap(c.Data), "capacity must stop at the data")
	_ = append(c.Data, 0xFF)
	assert.Equal(t, byte(0x10), b[7], "appending to Data must not overwrite Le")
	b[5] = 0x99
	assert.Equal(t, byte(0x99), c.Data[0], "Data aliases the input, as documented")
}

func TestCommandCase(t *testing.T) {
	for _, tt := range wellFormed {
		want := int(tt.name[0] - '0')
		assert.Equal(t, want, tt.c.Case(), tt.name)
	}
}

func TestCommandString(t *testing.T) {
	for _, tt := range []struct {
		c    Command
		want string
	}{
		{Command{CLA: 0x80, INS: 0xF2, Ne: 256}, "80 F2 00 00 (Le 256)"},
		{Command{INS: 0xA4, P1: 4, P2: 0x0C, Data: aid}, "00 A4 04 0C Lc 8: F0 53 49 4D 54 49 58 01"},
		{Command{CLA: 0x80, INS: 0x32, Data: h("80 01"), Ne: 65536}, "80 32 00 00 Lc 2: 80 01 (Le 65536) (extended)"},
		{Command{CLA: 0x01, INS: 0x70, P1: 0x80, P2: 0x01}, "01 70 80 01"},
	} {
		assert.Equal(t, tt.want, tt.c.String())
	}
}

func TestChain(t *testing.T) {
	for _, tt := range []struct {
		name  string
		c     Command
		max   int
		sizes []int
	}{
		{"600 bytes, default max", Command{CLA: 0x80, INS: 0x38, Data: pattern(600), Ne: 256}, 0, []int{255, 255, 90}},
		{"510 bytes, exact multiple", Command{CLA: 0x80, INS: 0x38, Data: pattern(510)}, 255, []int{255, 255}},
		{"256 bytes", Command{CLA: 0x00, INS: 0xDB, P1: 1, P2: 2, Data: pattern(256), Ne: 10}, -1, []int{255, 1}},
		{"250 bytes by 100, channel 3", Command{CLA: 0x83, INS: 0x3E, Data: pattern(250), Ne: 3}, 100, []int{100, 100, 50}},
		{"1024 bytes by 255", Command{CLA: 0x80, INS: 0x38, Data: pattern(1024)}, 255, []int{255, 255, 255, 255, 4}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			parts := tt.c.Chain(tt.max)
			require.Len(t, parts, len(tt.sizes))
			var joined []byte
			for i, p := range parts {
				assert.Len(t, p.Data, tt.sizes[i], "part %d", i)
				assert.Equal(t, tt.c.INS, p.INS)
				assert.Equal(t, tt.c.P1, p.P1)
				assert.Equal(t, tt.c.P2, p.P2)
				if i < len(parts)-1 {
					assert.Equal(t, tt.c.CLA|0x10, p.CLA, "part %d has the chaining bit", i)
					assert.Zero(t, p.Ne, "part %d has no Le", i)
				} else {
					assert.Equal(t, tt.c.CLA, p.CLA, "last part keeps CLA")
					assert.Equal(t, tt.c.Ne, p.Ne, "last part keeps Ne")
				}
				b, err := p.Bytes()
				require.NoError(t, err)
				assert.Equal(t, p.Data, b[5:5+len(p.Data)], "part %d is short", i)
				joined = append(joined, p.Data...)
			}
			assert.Equal(t, tt.c.Data, joined)
		})
	}
}

func TestChainFits(t *testing.T) {
	for _, c := range []Command{
		{CLA: 0x80, INS: 0x30, Ne: 256},
		{CLA: 0x80, INS: 0x38, Data: pattern(255), Ne: 1},
		{CLA: 0x80, INS: 0x38, Data: pattern(1), Extended: true},
	} {
		assert.Equal(t, []Command{c}, c.Chain(0))
	}
	c := Command{INS: 0x38, Data: pattern(1000)}
	assert.Equal(t, []Command{c}, c.Chain(1000))
}

func BenchmarkParseCommand(b *testing.B) {
	for _, bb := range []struct {
		name string
		b    []byte
	}{
		{"4S", cat(h("80 38 00 00 C8"), pattern(200), h("00"))},
		{"4E", cat(h("80 38 00 00 00 04 00"), pattern(1024), h("00 00"))},
	} {
		b.Run(bb.name, func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(bb.b)))
			for b.Loop() {
				if _, err := ParseCommand(bb.b); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkCommandBytes(b *testing.B) {
	c := Command{CLA: 0x80, INS: 0x38, Data: pattern(200), Ne: 256}
	b.Run("Bytes", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := c.Bytes(); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("AppendBytes", func(b *testing.B) {
		b.ReportAllocs()
		buf := make([]byte, 0, 512)
		for b.Loop() {
			var err error
			if buf, err = c.AppendBytes(buf[:0]); err != nil {
				b.Fatal(err)
			}
		}
	})
}
