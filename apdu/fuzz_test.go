package apdu

import (
	"bytes"
	"errors"
	"testing"
)

// FuzzParseCommand checks that ParseCommand never panics, that it fails
// only with ErrMalformed, and that whatever parses codes back to the same
// bytes and chains into parts that join back to the same data. The seed
// corpus is in testdata/fuzz/FuzzParseCommand.
func FuzzParseCommand(f *testing.F) {
	for _, tt := range wellFormed {
		if len(tt.b) < 600 {
			f.Add(tt.b)
		}
	}
	for _, tt := range malformed {
		f.Add(tt.b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := ParseCommand(b)
		if err != nil {
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("% X: error %v does not wrap ErrMalformed", b, err)
			}
			return
		}
		out, err := c.Bytes()
		if err != nil {
			t.Fatalf("% X parsed as %v, which does not code: %v", b, c, err)
		}
		if !bytes.Equal(out, b) {
			t.Fatalf("% X parsed as %v, which codes as % X", b, c, out)
		}
		if c.Len() != len(b) {
			t.Fatalf("% X: Len %d", b, c.Len())
		}
		if c.Case() < 1 || c.Case() > 4 || c.Ne < 0 || c.Ne > MaxExtendedNe {
			t.Fatalf("% X: case %d, Ne %d", b, c.Case(), c.Ne)
		}
		// Coded without Extended, it is short whenever it fits, and still
		// parses to the same command apart from Extended.
		c.Extended = false
		short, err := c.Bytes()
		if err != nil {
			t.Fatal(err)
		}
		back, err := ParseCommand(short)
		if err != nil {
			t.Fatalf("% X: % X does not parse: %v", b, short, err)
		}
		back.Extended = false
		if !equalCommands(back, c) {
			t.Fatalf("% X: %v came back as %v", b, c, back)
		}
		var joined []byte
		parts := c.Chain(0)
		for i, p := range parts {
			if len(p.Data) > MaxShortData {
				t.Fatalf("part %d has %d bytes", i, len(p.Data))
			}
			wantCLA, wantNe := c.CLA|ChainingBit, 0
			if i == len(parts)-1 {
				wantCLA, wantNe = c.CLA, c.Ne
			}
			if p.CLA != wantCLA || p.Ne != wantNe || p.INS != c.INS || p.P1 != c.P1 || p.P2 != c.P2 {
				t.Fatalf("part %d of %d of %v: %v", i, len(parts), c, p)
			}
			joined = append(joined, p.Data...)
		}
		if !bytes.Equal(joined, c.Data) {
			t.Fatalf("% X: chain parts do not join back", b)
		}
	})
}

func equalCommands(a, b Command) bool {
	return a.CLA == b.CLA && a.INS == b.INS && a.P1 == b.P1 && a.P2 == b.P2 &&
		bytes.Equal(a.Data, b.Data) && a.Ne == b.Ne && a.Extended == b.Extended
}

// FuzzParseResponse checks that ParseResponse never panics, fails only on
// fewer than 2 bytes, and that whatever parses codes back to the same bytes.
func FuzzParseResponse(f *testing.F) {
	for _, s := range []string{"", "90", "9000", "6A82", "0102039000", "AA6110", "912D"} {
		f.Add(h(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := ParseResponse(b)
		if len(b) < 2 {
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("% X: got %v, want ErrMalformed", b, err)
			}
			return
		}
		if err != nil {
			t.Fatalf("% X: %v", b, err)
		}
		if out := r.Bytes(); !bytes.Equal(out, b) {
			t.Fatalf("% X parsed as %v, which codes as % X", b, r, out)
		}
		if (r.Err() == nil) != r.SW.OK() {
			t.Fatalf("% X: Err %v but OK %v", b, r.Err(), r.SW.OK())
		}
	})
}
