package journal

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"

	"github.com/simtix/simtix/cardkeys"
	"github.com/simtix/simtix/ticketfmt"
)

// The file format, described in the package documentation.
const (
	magic         = "SIMTIXJL"
	formatVersion = 1
	headerSize    = 16

	kindCheck = 'C'
	kindMark  = 'U'

	frameOverhead = 1 + 2 + 4
	checkSize     = len(ticketfmt.ID{}) + ticketfmt.SerialSize + cardkeys.GateIDSize + timeSize + cardkeys.NonceSize + ReceiptSize
	timeSize      = 7 // BCD YYYYMMDDhhmmss
	markSize      = 8
	// maxFrameSize is the size of the largest frame: one append never
	// writes more.
	maxFrameSize = frameOverhead + checkSize
)

// ReceiptSize is the size of a check receipt: ECDSA P-256, raw r‖s.
const ReceiptSize = ticketfmt.SignatureSize

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// header returns the version 1 header.
func header() []byte {
	b := make([]byte, 0, headerSize)
	b = append(b, magic...)
	b = binary.BigEndian.AppendUint16(b, formatVersion)
	b = binary.BigEndian.AppendUint16(b, 0)
	return binary.BigEndian.AppendUint32(b, crc32.Checksum(b, castagnoli))
}

// appendFrame appends one frame of the given kind around payload.
func appendFrame(b []byte, kind byte, payload []byte) []byte {
	start := len(b)
	b = append(b, kind)
	b = binary.BigEndian.AppendUint16(b, uint16(len(payload)))
	b = append(b, payload...)
	return binary.BigEndian.AppendUint32(b, crc32.Checksum(b[start:], castagnoli))
}

// checkFrame returns the frame of a check. r must be valid.
func checkFrame(r Record) []byte {
	p := make([]byte, 0, checkSize)
	p = append(p, r.TicketID[:]...)
	p = append(p, r.Serial[:]...)
	p = append(p, r.Gate[:]...)
	p = r.Time.AppendBCD(p)
	p = append(p, r.Nonce[:]...)
	p = append(p, r.Receipt...)
	return appendFrame(make([]byte, 0, frameOverhead+checkSize), kindCheck, p)
}

// markFrame returns the frame of an upload mark.
func markFrame(uploaded uint64) []byte {
	return appendFrame(make([]byte, 0, frameOverhead+markSize), kindMark, binary.BigEndian.AppendUint64(nil, uploaded))
}

// frame is one decoded frame: a check (kind 'C') or a mark (kind 'U').
type frame struct {
	kind  byte
	check Record
	mark  uint64
}

// Reasons readFrame refuses a frame. errShort and errGarbage are what a
// torn append leaves; errContent (a frame whose checksum matches but whose
// content is impossible) is never one.
var (
	errShort   = errors.New("frame cut short")
	errGarbage = errors.New("not a frame")
	errContent = errors.New("impossible frame")
)

// readFrame decodes the frame at the start of b and returns it with its
// size. It never reads beyond b and never panics.
func readFrame(b []byte) (frame, int, error) {
	if len(b) < 3 {
		return frame{}, 0, errShort
	}
	kind, n := b[0], int(binary.BigEndian.Uint16(b[1:3]))
	switch {
	case kind == kindCheck && n == checkSize, kind == kindMark && n == markSize:
	default:
		return frame{}, 0, fmt.Errorf("%w: kind %#02x, length %d", errGarbage, kind, n)
	}
	size := frameOverhead + n
	if len(b) < size {
		return frame{}, 0, fmt.Errorf("%w: %d of %d bytes", errShort, len(b), size)
	}
	body, sum := b[:size-4], binary.BigEndian.Uint32(b[size-4:size])
	if crc32.Checksum(body, castagnoli) != sum {
		return frame{}, 0, fmt.Errorf("%w: checksum mismatch", errGarbage)
	}
	p := body[3:]
	f := frame{kind: kind}
	if kind == kindMark {
		f.mark = binary.BigEndian.Uint64(p)
		return f, size, nil
	}
	r := &f.check
	p = p[copy(r.TicketID[:], p):]
	p = p[copy(r.Serial[:], p):]
	p = p[copy(r.Gate[:], p):]
	t, err := ticketfmt.DecodeDateTime(p[:timeSize])
	if err != nil {
		return frame{}, 0, fmt.Errorf("%w: check time: %v", errContent, err)
	}
	r.Time = t
	p = p[timeSize:]
	p = p[copy(r.Nonce[:], p):]
	r.Receipt = append([]byte(nil), p...)
	return f, size, nil
}

// contents is what a journal file holds.
type contents struct {
	checks   []Record
	ids      map[ticketfmt.ID]int // index in checks
	uploaded int
	// valid is the length of the header and the whole frames; whatever
	// follows is a torn last append, to be cut off.
	valid int
}

// parse decodes a journal file. Its errors wrap ErrNotJournal,
// ErrVersion or ErrCorrupt.
//
// A crash during an append leaves at most that one frame incomplete or
// damaged at the end of the file, and nothing after it (the file is cut
// back before anything else is appended). So a frame that fails to decode
// is taken for a torn append only if it is the last thing in the file: at
// most maxFrameSize bytes remain from it and no valid frame starts anywhere
// in them. Anything else (a damaged frame with frames after it, more junk
// than one append writes, a frame whose checksum matches but whose content
// is impossible) is damage no crash can cause, and is refused.
func parse(data []byte) (contents, error) {
	c := contents{ids: map[ticketfmt.ID]int{}}
	if len(data) < len(magic) || string(data[:len(magic)]) != magic {
		return c, fmt.Errorf("%w: no magic %q", ErrNotJournal, magic)
	}
	if len(data) < headerSize {
		return c, fmt.Errorf("%w: header cut short (%d bytes)", ErrCorrupt, len(data))
	}
	if v := binary.BigEndian.Uint16(data[8:10]); v != formatVersion {
		return c, fmt.Errorf("%w: version %d (this program reads %d)", ErrVersion, v, formatVersion)
	}
	if crc32.Checksum(data[:12], castagnoli) != binary.BigEndian.Uint32(data[12:16]) {
		return c, fmt.Errorf("%w: header checksum mismatch", ErrCorrupt)
	}
	if flags := binary.BigEndian.Uint16(data[10:12]); flags != 0 {
		return c, fmt.Errorf("%w: unknown flags %#04x", ErrCorrupt, flags)
	}
	off := headerSize
	for off < len(data) {
		f, n, err := readFrame(data[off:])
		if err != nil {
			if !errors.Is(err, errContent) && torn(data[off:]) {
				break
			}
			return c, fmt.Errorf("%w: frame at offset %d (%d bytes before the end): %v", ErrCorrupt, off, len(data)-off, err)
		}
		if err := c.apply(f); err != nil {
			return c, fmt.Errorf("%w: frame at offset %d: %v", ErrCorrupt, off, err)
		}
		off += n
	}
	c.valid = off
	return c, nil
}

// torn reports whether rest, which does not start with a valid frame, is
// what a torn append leaves: at most one frame's worth of bytes with no
// valid frame starting in them.
func torn(rest []byte) bool {
	if len(rest) > maxFrameSize {
		return false
	}
	for i := 1; i < len(rest); i++ {
		if _, _, err := readFrame(rest[i:]); err == nil || errors.Is(err, errContent) {
			return false
		}
	}
	return true
}

// apply adds a decoded frame to c, checking the rules that span frames.
func (c *contents) apply(f frame) error {
	switch f.kind {
	case kindCheck:
		if i, dup := c.ids[f.check.TicketID]; dup {
			return fmt.Errorf("ticket %v journaled twice (checks %d and %d)", f.check.TicketID, i+1, len(c.checks)+1)
		}
		c.ids[f.check.TicketID] = len(c.checks)
		c.checks = append(c.checks, f.check)
	case kindMark:
		if f.mark <= uint64(c.uploaded) || f.mark > uint64(len(c.checks)) {
			return fmt.Errorf("upload mark %d after mark %d and %d checks", f.mark, c.uploaded, len(c.checks))
		}
		c.uploaded = int(f.mark)
	}
	return nil
}
