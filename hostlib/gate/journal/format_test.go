package journal

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"os"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/simtix/simtix/ticketfmt"
)

// record is a valid record numbered n: its ticket ID, nonce and receipt
// depend on n.
func record(n int) Record {
	r := Record{
		Gate: [4]byte{'G', 'A', 'T', '1'},
		Time: ticketfmt.DateTime{Date: ticketfmt.Date{Year: 2026, Month: 12, Day: 5}, Hour: 19, Minute: n % 60, Second: 7},
	}
	copy(r.TicketID[:], fmt.Sprintf("T%09d", n))
	copy(r.Serial[:], "8986001234")
	r.Nonce[0], r.Nonce[15] = byte(n), byte(n>>8)
	r.Receipt = bytes.Repeat([]byte{byte(n)}, ReceiptSize)
	return r
}

// file returns a journal file's bytes: the header, then a check frame for
// each record number and a mark frame for each negative number -m.
func file(frames ...int) []byte {
	b := header()
	for _, n := range frames {
		if n < 0 {
			b = append(b, markFrame(uint64(-n))...)
		} else {
			b = append(b, checkFrame(record(n))...)
		}
	}
	return b
}

func TestFrameSizes(t *testing.T) {
	assert.Len(t, header(), headerSize)
	assert.Len(t, checkFrame(record(1)), maxFrameSize)
	assert.Equal(t, 118, maxFrameSize)
	assert.Len(t, markFrame(1), frameOverhead+markSize)
}

func TestParse(t *testing.T) {
	c, err := parse(file(1, 2, -1, 3, -3))
	require.NoError(t, err)
	assert.Equal(t, []Record{record(1), record(2), record(3)}, c.checks)
	assert.Equal(t, 3, c.uploaded)
	assert.Equal(t, len(file(1, 2, -1, 3, -3)), c.valid)

	for name, tc := range map[string]struct {
		data []byte
		want error
	}{
		"empty":             {nil, ErrNotJournal},
		"other file":        {[]byte("SIMTIXNV\x00\x01\x00\x00 a card image"), ErrNotJournal},
		"header cut short":  {header()[:12], ErrCorrupt},
		"newer version":     {append([]byte(magic), 0, 2, 0, 0, 0, 0, 0, 0), ErrVersion},
		"header checksum":   {append(header()[:15:15], header()[15]^1), ErrCorrupt},
		"mark before check": {file(-1), ErrCorrupt},
		"mark beyond":       {file(1, -2), ErrCorrupt},
		"mark going back":   {file(1, 2, -2, -1), ErrCorrupt},
		"mark repeated":     {file(1, -1, -1), ErrCorrupt},
		"ticket twice":      {file(1, 2, 1), ErrCorrupt},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := parse(tc.data)
			require.ErrorIs(t, err, tc.want)
		})
	}

	flags := header()[:12]
	flags[11] = 1
	flags = binary.BigEndian.AppendUint32(flags, crc32.Checksum(flags, castagnoli))
	_, err = parse(flags)
	require.ErrorIs(t, err, ErrCorrupt)
	assert.ErrorContains(t, err, "flags")
}

func TestParseImpossibleContent(t *testing.T) {
	// A frame with a good checksum but a check time that is no date: no
	// torn write makes that, even at the end.
	r := record(1)
	r.Time.Month = 13
	data := append(header(), checkFrame(r)...)
	_, err := parse(data)
	require.ErrorIs(t, err, ErrCorrupt)
	assert.ErrorContains(t, err, "check time")
}

func TestParseTornTail(t *testing.T) {
	whole := file(1, 2, -2, 3)
	before := len(file(1, 2, -2))
	for cut := before; cut < len(whole); cut++ {
		c, err := parse(whole[:cut])
		require.NoError(t, err, "cut at %d", cut)
		assert.Equal(t, before, c.valid)
		assert.Len(t, c.checks, 2)
		assert.Equal(t, 2, c.uploaded)
	}
	// A crash may leave a whole frame's length of junk: zeros, or the
	// frame with its last bytes never written.
	for _, junk := range [][]byte{
		make([]byte, maxFrameSize),
		append(checkFrame(record(3))[:100:100], make([]byte, 18)...),
		bytes.Repeat([]byte{0xFF}, maxFrameSize),
	} {
		c, err := parse(append(file(1, 2), junk...))
		require.NoError(t, err)
		assert.Equal(t, len(file(1, 2)), c.valid)
	}
	// More junk than one append writes is damage.
	_, err := parse(append(file(1, 2), make([]byte, maxFrameSize+1)...))
	require.ErrorIs(t, err, ErrCorrupt)
	// So is junk with a valid frame after it.
	_, err = parse(append(append(file(1, 2), 0, 0, 0), markFrame(1)...))
	require.ErrorIs(t, err, ErrCorrupt)
}

func TestParseDamagedMiddle(t *testing.T) {
	whole := file(1, 2, -1, 3)
	for i := headerSize; i < len(file(1, 2, -1)); i++ {
		for _, bit := range []byte{0x01, 0x80} {
			data := bytes.Clone(whole)
			data[i] ^= bit
			_, err := parse(data)
			require.ErrorIs(t, err, ErrCorrupt, "byte %d ^ %#x", i, bit)
		}
	}
}

// FuzzDecode feeds parse arbitrary files. It must never panic or over-read;
// what it accepts must be canonical (each frame re-encodes to the same
// bytes), hold only records Append would take, and read the same once the
// torn tail is cut off.
func FuzzDecode(f *testing.F) {
	f.Add(file(1, 2, -1, 3))
	f.Add(file(1, 2, -1, 3)[:len(file(1, 2, -1, 3))-5])
	f.Add(header())
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := parse(data)
		if err != nil {
			for _, want := range []error{ErrNotJournal, ErrVersion, ErrCorrupt} {
				if errors.Is(err, want) {
					return
				}
			}
			t.Fatalf("parse: unexpected error %v", err)
		}
		if c.valid < headerSize || c.valid > len(data) || len(data)-c.valid > maxFrameSize {
			t.Fatalf("valid part %d of %d bytes", c.valid, len(data))
		}
		if c.uploaded < 0 || c.uploaded > len(c.checks) || len(c.ids) != len(c.checks) {
			t.Fatalf("uploaded %d of %d checks, %d IDs", c.uploaded, len(c.checks), len(c.ids))
		}
		// Canonical: re-encoding every frame gives the same bytes.
		re := header()
		for off := headerSize; off < c.valid; {
			fr, n, err := readFrame(data[off:c.valid])
			if err != nil {
				t.Fatalf("frame at %d: %v", off, err)
			}
			if fr.kind == kindCheck {
				if err := fr.check.validate(); err != nil {
					t.Fatalf("frame at %d: %v", off, err)
				}
				re = append(re, checkFrame(fr.check)...)
			} else {
				re = append(re, markFrame(fr.mark)...)
			}
			off += n
		}
		if !bytes.Equal(re, data[:c.valid]) {
			t.Fatalf("re-encoded %X\nfrom       %X", re, data[:c.valid])
		}
		again, err := parse(data[:c.valid])
		if err != nil || again.valid != c.valid || again.uploaded != c.uploaded || len(again.checks) != len(c.checks) {
			t.Fatalf("after cutting the tail: %v, %+v", err, again)
		}
	})
}

func TestWriteFailureBreaksTheJournal(t *testing.T) {
	path := t.TempDir() + "/j"
	j, err := Open(path)
	require.NoError(t, err)
	require.NoError(t, j.Append(record(1)))
	// Swap the file for a read-only one: the write fails, and so does
	// cutting the file back, so what is on disk is no longer known.
	require.NoError(t, j.f.Close())
	j.f, err = os.Open(path)
	require.NoError(t, err)
	err = j.Append(record(2))
	require.Error(t, err)
	assert.NotErrorIs(t, err, ErrBroken, "the first failure says what failed")
	assert.False(t, j.Has(record(2).TicketID))
	assert.ErrorIs(t, j.Append(record(3)), ErrBroken)
	assert.ErrorIs(t, j.MarkUploaded(1), ErrBroken)
	require.NoError(t, j.Close())

	j, err = Open(path)
	require.NoError(t, err)
	defer j.Close()
	assert.Equal(t, []Record{record(1)}, j.Records(), "reopening tells what is on disk")
}
