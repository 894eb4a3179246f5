package atr

import (
	"bufio"
	"bytes"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// mustHex decodes hex digits, ignoring spaces.
func mustHex(t testing.TB, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(strings.ReplaceAll(s, " ", ""))
	require.NoError(t, err)
	return b
}

// The ATRs, byte for byte; their TCKs were checked with pcsc-tools'
// ATR_analysis ("correct checksum").
const (
	contactT1Hex   = "3B 88 81 1F C7 80 56 53 49 4D 54 49 58 15"
	contactT0Hex   = "3B 88 80 1F C7 80 56 53 49 4D 54 49 58 14"
	contactlessHex = "3B 88 80 01 80 56 53 49 4D 54 49 58 CD"
)

func TestBytes(t *testing.T) {
	assert.Equal(t, mustHex(t, contactT1Hex), Contact(false))
	assert.Equal(t, mustHex(t, contactT0Hex), Contact(true))
	assert.Equal(t, mustHex(t, contactlessHex), Contactless())
	assert.Equal(t, append([]byte{0x80, 0x56}, "SIMTIX"...), Historical())
}

func TestFreshSlices(t *testing.T) {
	for _, f := range []func() []byte{
		func() []byte { return Contact(false) },
		func() []byte { return Contact(true) },
		Contactless,
		Historical,
	} {
		a := f()
		a[len(a)-1] ^= 0xFF
		assert.NotEqual(t, a, f(), "a caller's change must not reach the next call")
	}
}

func TestRoundTrip(t *testing.T) {
	tests := []struct {
		name      string
		atr       []byte
		protocols []int
	}{
		{"contact T=1", Contact(false), []int{1}},
		{"contact T=0", Contact(true), []int{0}},
		{"contactless", Contactless(), []int{0, 1}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a, err := Parse(tt.atr)
			require.NoError(t, err)
			assert.Equal(t, tt.atr, a.Raw)
			assert.Equal(t, byte(0x3B), a.TS)
			assert.Equal(t, tt.protocols, a.Protocols)
			assert.Equal(t, Historical(), a.Historical)
			assert.Equal(t, []byte(Product), a.Historical[2:], "historical bytes name the product")
			assert.LessOrEqual(t, len(tt.atr), MaxLen)
			// Both modes and contactless carry a TCK (T=1, or T=15 with T=0).
			require.True(t, a.HasTCK)
			assert.Equal(t, tt.atr[len(tt.atr)-1], a.TCK)
			var x byte
			for _, c := range tt.atr[1:] {
				x ^= c
			}
			assert.Zero(t, x, "XOR of T0..TCK")
		})
	}
	// T=1 mode offers no T=0, T=0 mode no T=1.
	t1, err := Parse(Contact(false))
	require.NoError(t, err)
	assert.True(t, t1.Offers(1))
	assert.False(t, t1.Offers(0))
	t0, err := Parse(Contact(true))
	require.NoError(t, err)
	assert.True(t, t0.Offers(0))
	assert.False(t, t0.Offers(1))
	assert.False(t, t0.Offers(15), "T=15 is not a protocol")
}

func TestContactlessForm(t *testing.T) {
	b := Contactless()
	n := len(Historical())
	assert.Equal(t, []byte{0x3B, 0x80 | byte(n), 0x80, 0x01}, b[:4], "PC/SC Part 3: 3B 8n 80 01")
	assert.Equal(t, Historical(), b[4:4+n])
	assert.Len(t, b, 4+n+1)
}

func TestParseValid(t *testing.T) {
	tests := []struct {
		name      string
		hex       string
		protocols []int
		hist      string
		tck       bool
	}{
		{"minimal", "3B 00", []int{0}, "", false},
		{"inverse convention", "3F 00", []int{0}, "", false},
		{"T=0 by default, historical bytes", "3B 02 14 50", []int{0}, "14 50", false},
		{"TA1 TB1 TC1, no TD1", "3B 70 11 00 FF", []int{0}, "", false},
		{"explicit T=0 only, no TCK", "3B 80 00", []int{0}, "", false},
		{"T=1 only", "3B 80 01 81", []int{1}, "", true},
		{"T=0 and T=1", "3B 80 80 01 01", []int{0, 1}, "", true},
		{"T=0 then T=15", "3B 80 80 1F C7 D8", []int{0}, "", true},
		{"repeated T=1 listed once", "3B 80 81 31 FE 45 8B", []int{1}, "", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := mustHex(t, tt.hex)
			if tt.tck { // the literal TCKs above are checked here too
				var x byte
				for _, c := range b[1:] {
					x ^= c
				}
				require.Zero(t, x, "test vector's TCK")
			}
			a, err := Parse(b)
			require.NoError(t, err)
			assert.Equal(t, tt.protocols, a.Protocols)
			assert.Equal(t, mustHex(t, tt.hist), a.Historical)
			assert.Equal(t, tt.tck, a.HasTCK)
			assert.Equal(t, b, a.Raw)
		})
	}
}

func TestParseMaxLen(t *testing.T) {
	// TS, T0 = 8F, TD1..TD14 = 81 (T=1, another TD follows), TD15 = 01, 15
	// historical bytes, TCK: 2 + 15 + 15 + 1 = 33 bytes, the most allowed.
	b := []byte{0x3B, 0x8F}
	for range 14 {
		b = append(b, 0x81)
	}
	b = append(b, 0x01)
	b = append(b, bytes.Repeat([]byte{'x'}, 15)...)
	b = appendTCK(b)
	require.Len(t, b, MaxLen)
	a, err := Parse(b)
	require.NoError(t, err)
	assert.Equal(t, []int{1}, a.Protocols)

	_, err = Parse(append(b[:len(b):len(b)], 0x00))
	assert.ErrorIs(t, err, ErrTooLong)
}

func TestParseErrors(t *testing.T) {
	withBadTCK := func(b []byte) []byte {
		b = bytes.Clone(b)
		b[len(b)-1] ^= 0x01
		return b
	}
	tests := []struct {
		name string
		atr  []byte
		want error
	}{
		{"nil", nil, ErrTruncated},
		{"TS only", []byte{0x3B}, ErrTruncated},
		{"bad TS 3C", []byte{0x3C, 0x00}, ErrBadTS},
		{"bad TS 00", []byte{0x00, 0x00}, ErrBadTS},
		{"bad TS 3B inverted", []byte{0x03, 0x00}, ErrBadTS},
		{"TA1 missing", []byte{0x3B, 0x10}, ErrTruncated},
		{"TC1 missing", []byte{0x3B, 0x70, 0x11, 0x00}, ErrTruncated},
		{"TD1 missing", []byte{0x3B, 0x80}, ErrTruncated},
		{"TD2 missing", []byte{0x3B, 0x80, 0x80}, ErrTruncated},
		{"TA3 missing", []byte{0x3B, 0x80, 0x80, 0x1F}, ErrTruncated},
		{"historical bytes missing", []byte{0x3B, 0x02, 0x14}, ErrTruncated},
		{"TCK missing", []byte{0x3B, 0x80, 0x01}, ErrTruncated},
		{"TCK missing for T=15", []byte{0x3B, 0x80, 0x80, 0x1F, 0xC7}, ErrTruncated},
		{"contact T=1 cut before TCK", Contact(false)[:len(Contact(false))-1], ErrTruncated},
		{"contactless cut in historical bytes", Contactless()[:8], ErrTruncated},
		{"bad TCK contact T=1", withBadTCK(Contact(false)), ErrBadTCK},
		{"bad TCK contact T=0", withBadTCK(Contact(true)), ErrBadTCK},
		{"bad TCK contactless", withBadTCK(Contactless()), ErrBadTCK},
		{"bad TCK T=1", []byte{0x3B, 0x80, 0x01, 0x80}, ErrBadTCK},
		{"T=15 in TD1", []byte{0x3B, 0x80, 0x0F, 0x8F}, ErrBadTD1},
		{"byte after T=0 ATR", []byte{0x3B, 0x00, 0x00}, ErrTooLong},
		{"byte after TCK", append(Contact(false), 0x00), ErrTooLong},
		{"34 bytes", append([]byte{0x3B, 0x0F}, make([]byte, 32)...), ErrTooLong},
		{"far too long", make([]byte, 300), ErrTooLong},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a, err := Parse(tt.atr)
			require.Error(t, err)
			assert.ErrorIs(t, err, tt.want)
			assert.Equal(t, ATR{}, a)
		})
	}
}

// listPatterns reads a pcsc-tools smartcard_list.txt and returns its ATR
// patterns, compiled as ATR_analysis uses them: each line that is not a
// comment (#), empty or a description (tab first) is a Perl regular
// expression matched case-insensitively against the whole ATR written as
// upper-case hex bytes separated by spaces (m/^$line$/i). Lines that Go's
// RE2 cannot compile are counted in skipped.
func listPatterns(t *testing.T, path string) (pats []*regexp.Regexp, skipped int) {
	t.Helper()
	f, err := os.Open(path)
	require.NoError(t, err)
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || strings.HasPrefix(line, "#") || strings.HasPrefix(line, "\t") {
			continue
		}
		re, err := regexp.Compile("(?i)^" + line + "$")
		if err != nil {
			t.Logf("%s: pattern %q: %v", path, line, err)
			skipped++
			continue
		}
		pats = append(pats, re)
	}
	require.NoError(t, sc.Err())
	return pats, skipped
}

// atrString writes an ATR as pcsc-tools does: "3B 88 81 ...".
func atrString(b []byte) string {
	s := make([]string, len(b))
	for i, c := range b {
		s[i] = fmt.Sprintf("%02X", c)
	}
	return strings.Join(s, " ")
}

func TestNotKnownCard(t *testing.T) {
	lists := []string{filepath.Join("testdata", "smartcard_list.txt")}
	const system = "/usr/share/pcsc/smartcard_list.txt"
	if _, err := os.Stat(system); err == nil {
		lists = append(lists, system)
	} else {
		t.Logf("%s absent: checking the copy in testdata only", system)
	}
	ours := map[string][]byte{
		"contact T=1": Contact(false),
		"contact T=0": Contact(true),
		"contactless": Contactless(),
	}
	for _, list := range lists {
		t.Run(list, func(t *testing.T) {
			pats, skipped := listPatterns(t, list)
			require.Greater(t, len(pats), 1000, "the list should hold thousands of ATRs")
			assert.Less(t, skipped, len(pats)/100, "too many patterns RE2 cannot compile")

			// Control: the matcher identifies cards that are in the list,
			// by an exact entry and by a wildcard one.
			known := func(s string) bool {
				for _, re := range pats {
					if re.MatchString(s) {
						return true
					}
				}
				return false
			}
			assert.True(t, known("3B 02 14 50"), "Schlumberger Multiflex 3k")
			assert.True(t, known("3B 65 00 00 9C 11 01 01 03"), "entry 3B 65 00 00 9C 1[01] 01 01 03")
			assert.True(t, known("3B 3B 94 00 80 65 AF 03 0D 01 74 83 0F 90 00"), "entry 3B 3B .. 00 80 6. A[FE] 03 0[CD] .. .. 83 .. 90 00")

			for name, b := range ours {
				s := atrString(b)
				for _, re := range pats {
					assert.False(t, re.MatchString(s), "%s ATR %s matches known card pattern %q", name, s, re.String())
				}
			}
		})
	}
}

func FuzzParse(f *testing.F) {
	f.Add(Contact(false))
	f.Add(Contact(true))
	f.Add(Contactless())
	f.Add([]byte{0x3B, 0x00})
	f.Fuzz(func(t *testing.T, b []byte) {
		in := bytes.Clone(b)
		a, err := Parse(b)
		require.Equal(t, in, b, "Parse must not change its input")
		if err != nil {
			require.Equal(t, ATR{}, a)
			return
		}
		require.LessOrEqual(t, len(b), MaxLen)
		require.Equal(t, b, a.Raw)
		require.Contains(t, []byte{0x3B, 0x3F}, a.TS)
		require.Len(t, a.Historical, int(b[1]&0x0F))
		require.NotEmpty(t, a.Protocols)
		require.NotContains(t, a.Protocols, 15)
		if a.HasTCK {
			var x byte
			for _, c := range b[1:] {
				x ^= c
			}
			require.Zero(t, x)
			require.Equal(t, b[len(b)-1], a.TCK)
		} else {
			require.Equal(t, []int{0}, a.Protocols)
		}
		if len(b) > 0 && len(a.Raw) > 0 {
			a.Raw[0] ^= 0xFF // a copy: the input stays as it was
			require.Equal(t, in, b)
		}
	})
}
