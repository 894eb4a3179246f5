package imagefile

import (
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// rawImage builds a file from header fields as given, with a correct
// checksum, so that decode's other checks can be reached.
func rawImage(version, flags uint16, pageSize, memLen uint32, labelLen uint16, body []byte) []byte {
	b := []byte(magic)
	b = binary.BigEndian.AppendUint16(b, version)
	b = binary.BigEndian.AppendUint16(b, flags)
	b = binary.BigEndian.AppendUint32(b, pageSize)
	b = binary.BigEndian.AppendUint32(b, memLen)
	b = binary.BigEndian.AppendUint16(b, labelLen)
	b = append(b, body...)
	sum := sha256.Sum256(b)
	return append(b, sum[:]...)
}

func TestEncodeLayout(t *testing.T) {
	img := Image{PageSize: 16, Memory: make([]byte, 32), Label: "ab"}
	for i := range img.Memory {
		img.Memory[i] = byte(i)
	}
	got := encode(img)
	want := rawImage(1, 0, 16, 32, 2, append([]byte("ab"), img.Memory...))
	assert.Equal(t, want, got)
	assert.Equal(t, "SIMTIXNV\x00\x01\x00\x00\x00\x00\x00\x10\x00\x00\x00\x20\x00\x02ab", string(got[:headerSize+2]))
	assert.Len(t, got, encodedSize(img))

	back, err := decode(got)
	require.NoError(t, err)
	assert.Equal(t, img, back)

	// appendImage appends after what dst holds, allocating nothing when
	// dst has room.
	dst := make([]byte, 3, 3+len(got))
	allocs := testing.AllocsPerRun(10, func() { dst = appendImage(dst[:3], img) })
	assert.Zero(t, allocs)
	assert.Equal(t, got, dst[3:])
}

func TestDecodeChecks(t *testing.T) {
	mem16 := make([]byte, 16)
	for _, tc := range []struct {
		name string
		data []byte
		want error
		msg  string
	}{
		{"empty", nil, ErrNotImage, "not a simtix card image: the file is empty"},
		{"other file", []byte("#!/bin/sh\necho hello, this is not an image at all\n"), ErrNotImage, `not a simtix card image: no "SIMTIXNV" magic at the start`},
		{"short other file", []byte("hi"), ErrNotImage, `not a simtix card image: no "SIMTIXNV" magic at the start`},
		{"cut in the magic", []byte("SIMTI"), ErrCorrupt, "damaged: truncated: 5 bytes, less than the 54 of a header and checksum"},
		{"cut in the header", []byte("SIMTIXNV\x00\x01"), ErrCorrupt, "damaged: truncated: 10 bytes, less than the 54 of a header and checksum"},
		{"newer version", rawImage(2, 0, 16, 16, 0, mem16), ErrVersion, "unsupported format version 2: this simtix reads versions up to 1 (was the image made by a newer simtix?)"},
		{"newer version, other layout", append(rawImage(0xFFFF, 0xFFFF, 0, 0, 0, nil), 1, 2, 3), ErrVersion, "unsupported format version 65535: this simtix reads versions up to 1 (was the image made by a newer simtix?)"},
		{"version 0", rawImage(0, 0, 16, 16, 0, mem16), ErrCorrupt, "damaged: format version 0 does not exist"},
		{"flags", rawImage(1, 4, 16, 16, 0, mem16), ErrCorrupt, "damaged: unknown flags 0x0004"},
		{"memory length past the end", rawImage(1, 0, 16, 32, 0, mem16), ErrCorrupt, "damaged: truncated: 70 bytes where the header announces 86"},
		{"label length past the end", rawImage(1, 0, 16, 16, 0xFFFF, mem16), ErrCorrupt, "damaged: truncated: 70 bytes where the header announces 65605"},
		{"huge memory length", rawImage(1, 0, 16, 0xFFFFFFFF, 0, mem16), ErrCorrupt, "damaged: truncated: 70 bytes where the header announces 4294967349"},
		{"trailing bytes", rawImage(1, 0, 16, 0, 0, mem16), ErrCorrupt, "damaged: 16 trailing bytes after the 54 the header announces"},
		{"page size too small", rawImage(1, 0, 8, 16, 0, mem16), ErrCorrupt, "damaged: page size 8 is outside 16..65536"},
		{"page size zero", rawImage(1, 0, 0, 16, 0, mem16), ErrCorrupt, "damaged: page size 0 is outside 16..65536"},
		{"page size too large", rawImage(1, 0, 1<<17, 16, 0, mem16), ErrCorrupt, "damaged: page size 131072 is outside 16..65536"},
		{"no memory", rawImage(1, 0, 16, 0, 0, nil), ErrCorrupt, "damaged: the memory is empty"},
		{"partial page", rawImage(1, 0, 32, 16, 0, mem16), ErrCorrupt, "damaged: memory length 16 is not a multiple of the page size 32"},
		{"label too long", rawImage(1, 0, 16, 16, 257, make([]byte, 257+16)), ErrCorrupt, "damaged: label of 257 bytes is over the limit of 256"},
		{"checksum", func() []byte { b := rawImage(1, 0, 16, 16, 0, mem16); b[len(b)-1]++; return b }(), ErrCorrupt, damagedMessage},
	} {
		t.Run(tc.name, func(t *testing.T) {
			img, err := decode(tc.data)
			require.ErrorIs(t, err, tc.want)
			assert.Equal(t, tc.msg, err.Error())
			assert.Zero(t, img)
		})
	}
}

func FuzzDecode(f *testing.F) {
	f.Add(encode(testImage(16, 1, "", 0)))
	f.Add(encode(testImage(32, 3, "simtix card", 1)))
	f.Fuzz(func(t *testing.T, data []byte) {
		img, err := decode(data)
		if err != nil {
			require.True(t, errors.Is(err, ErrCorrupt) || errors.Is(err, ErrNotImage) || errors.Is(err, ErrVersion), "%v", err)
			require.Zero(t, img, "no half-loaded image")
			return
		}
		require.NoError(t, validate(img))
		require.Equal(t, data, encode(img), "an image re-encodes to the same bytes")
	})
}
