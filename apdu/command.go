// Package apdu codes ISO/IEC 7816-4 command and response APDUs, class bytes and status words for the card and the host.
// It does no I/O and no applet logic: it does not transmit, run GET RESPONSE loops, or join chained parts.
package apdu

import (
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// ErrMalformed is wrapped by every error about bytes that are not a valid
// command or response APDU, and by Command.Bytes for a command that cannot
// be coded.
var ErrMalformed = errors.New("apdu: malformed APDU")

// Limits of the APDU coding (ISO/IEC 7816-4 §5.1).
const (
	MaxShortData    = 255   // most command data in a short APDU (Lc 1 byte)
	MaxShortNe      = 256   // most expected response bytes in a short APDU (Le 00)
	MaxExtendedData = 65535 // most command data in an extended APDU (Lc 3 bytes)
	MaxExtendedNe   = 65536 // most expected response bytes in an extended APDU (Le 0000)
)

// ChainingBit is the class bit (b5) that marks every part of a command
// chain but the last.
const ChainingBit = 0x10

// Command is a command APDU.
//
// Ne is the number of response bytes expected: 0 means no Le field, 1 to
// 65536 an Le field (Le 00 in a short APDU is 256, 0000 in an extended
// one is 65536).
type Command struct {
	CLA, INS, P1, P2 byte
	// Data is the command data (Lc gives its length); nil or empty for none.
	Data []byte
	// Ne is the expected response length, 0 for no Le field.
	Ne int
	// Extended is set by ParseCommand when the APDU was in extended form.
	// When coding, it forces the extended form (except for case 1, which
	// has only one form).
	Extended bool
}

// ParseCommand decodes a command APDU in any of the cases of
// ISO/IEC 7816-4 §5.1: 1, 2S, 3S, 4S, 2E, 3E and 4E. Errors wrap
// ErrMalformed.
//
// The returned Data aliases b (with its capacity cut at its end, so that
// appending to it never overwrites b); copy it to keep it past a change of b.
func ParseCommand(b []byte) (Command, error) {
	if len(b) < 4 {
		return Command{}, fmt.Errorf("%w: %d bytes, shorter than a 4-byte header", ErrMalformed, len(b))
	}
	c := Command{CLA: b[0], INS: b[1], P1: b[2], P2: b[3]}
	body := b[4:]
	switch {
	case len(body) == 0: // case 1
		return c, nil
	case len(body) == 1: // case 2S
		c.Ne = shortNe(body[0])
		return c, nil
	case body[0] != 0: // case 3S or 4S
		lc := int(body[0])
		switch len(body) {
		case 1 + lc:
		case 1 + lc + 1:
			c.Ne = shortNe(body[len(body)-1])
		default:
			return Command{}, fmt.Errorf("%w: short Lc %d needs %d or %d bytes after the header, got %d",
				ErrMalformed, lc, 1+lc, 2+lc, len(body))
		}
		c.Data = body[1 : 1+lc : 1+lc]
		return c, nil
	case len(body) < 3:
		return Command{}, fmt.Errorf("%w: %d bytes after the header starting with 00: neither short nor extended",
			ErrMalformed, len(body))
	}
	// Extended: body[0] == 0 and at least 3 bytes.
	c.Extended = true
	if len(body) == 3 { // case 2E
		c.Ne = extendedNe(body[1], body[2])
		return c, nil
	}
	lc := int(body[1])<<8 | int(body[2])
	if lc == 0 {
		return Command{}, fmt.Errorf("%w: extended Lc 0000 followed by %d bytes", ErrMalformed, len(body)-3)
	}
	switch len(body) {
	case 3 + lc: // case 3E
	case 3 + lc + 2: // case 4E
		c.Ne = extendedNe(body[len(body)-2], body[len(body)-1])
	default:
		return Command{}, fmt.Errorf("%w: extended Lc %d needs %d or %d bytes after the header, got %d",
			ErrMalformed, lc, 3+lc, 5+lc, len(body))
	}
	c.Data = body[3 : 3+lc : 3+lc]
	return c, nil
}

func shortNe(le byte) int {
	if le == 0 {
		return MaxShortNe
	}
	return int(le)
}

func extendedNe(hi, lo byte) int {
	n := int(hi)<<8 | int(lo)
	if n == 0 {
		return MaxExtendedNe
	}
	return n
}

// Case returns the ISO/IEC 7816-4 case of the command: 1 (no data, no Le),
// 2 (Le only), 3 (data only) or 4 (data and Le).
func (c Command) Case() int {
	n := 1
	if len(c.Data) > 0 {
		n += 2
	}
	if c.Ne != 0 {
		n++
	}
	return n
}

// IsExtended reports whether Bytes codes c in extended form: when Extended
// is set, or when Data or Ne do not fit a short APDU. A case 1 command is
// never extended.
func (c Command) IsExtended() bool {
	if len(c.Data) == 0 && c.Ne == 0 {
		return false
	}
	return c.Extended || len(c.Data) > MaxShortData || c.Ne > MaxShortNe
}

// Len returns the length of the coded command, valid when Bytes succeeds.
func (c Command) Len() int {
	n := 4
	ext := c.IsExtended()
	if len(c.Data) > 0 {
		n += 1 + len(c.Data)
		if ext {
			n += 2
		}
	}
	if c.Ne != 0 {
		n++
		if ext {
			n++
			if len(c.Data) == 0 {
				n++
			}
		}
	}
	return n
}

// Bytes codes the command: in short form when Data has at most 255 bytes,
// Ne is at most 256 and Extended is false; else in extended form. It fails
// (wrapping ErrMalformed) when Data has more than 65535 bytes or Ne is
// outside 0-65536.
func (c Command) Bytes() ([]byte, error) {
	return c.AppendBytes(make([]byte, 0, c.Len()))
}

// AppendBytes appends the coded command to dst, as Bytes codes it, and
// returns the extended slice. On error dst is returned unchanged.
func (c Command) AppendBytes(dst []byte) ([]byte, error) {
	if len(c.Data) > MaxExtendedData {
		return dst, fmt.Errorf("%w: %d bytes of command data, more than %d", ErrMalformed, len(c.Data), MaxExtendedData)
	}
	if c.Ne < 0 || c.Ne > MaxExtendedNe {
		return dst, fmt.Errorf("%w: Ne %d outside 0-%d", ErrMalformed, c.Ne, MaxExtendedNe)
	}
	dst = append(dst, c.CLA, c.INS, c.P1, c.P2)
	if !c.IsExtended() {
		if len(c.Data) > 0 {
			dst = append(dst, byte(len(c.Data)))
			dst = append(dst, c.Data...)
		}
		if c.Ne != 0 {
			dst = append(dst, byte(c.Ne)) // 256 codes as 00
		}
		return dst, nil
	}
	dst = append(dst, 0)
	if len(c.Data) > 0 {
		dst = append(dst, byte(len(c.Data)>>8), byte(len(c.Data)))
		dst = append(dst, c.Data...)
	}
	if c.Ne != 0 {
		dst = append(dst, byte(c.Ne>>8), byte(c.Ne)) // 65536 codes as 0000
	}
	return dst, nil
}

// String returns the command in readable hex, e.g. "80 F2 00 00 (Le 256)"
// or "80 38 00 00 Lc 3: 01 02 03 (extended)".
func (c Command) String() string {
	var s strings.Builder
	fmt.Fprintf(&s, "%02X %02X %02X %02X", c.CLA, c.INS, c.P1, c.P2)
	if len(c.Data) > 0 {
		s.WriteString(" Lc ")
		s.WriteString(strconv.Itoa(len(c.Data)))
		s.WriteString(": ")
		s.WriteString(spacedHex(c.Data))
	}
	if c.Ne != 0 {
		s.WriteString(" (Le ")
		s.WriteString(strconv.Itoa(c.Ne))
		s.WriteString(")")
	}
	if c.IsExtended() {
		s.WriteString(" (extended)")
	}
	return s.String()
}

func spacedHex(b []byte) string {
	h := strings.ToUpper(hex.EncodeToString(b))
	var s strings.Builder
	s.Grow(len(h) + len(b))
	for i := 0; i < len(h); i += 2 {
		if i > 0 {
			s.WriteByte(' ')
		}
		s.WriteString(h[i : i+2])
	}
	return s.String()
}

// Chain splits c into command-chaining parts (ISO/IEC 7816-4 §5.3.3) of at
// most max data bytes each (255 if max <= 0). Every part but the last has
// the chaining bit (CLA | 0x10) and Ne 0; the last keeps c's CLA and Ne.
// All parts keep INS, P1, P2 and Extended. A command with at most max data
// bytes comes back as the only element. The parts' Data alias c.Data.
func (c Command) Chain(max int) []Command {
	if max <= 0 {
		max = MaxShortData
	}
	if len(c.Data) <= max {
		return []Command{c}
	}
	parts := make([]Command, 0, (len(c.Data)+max-1)/max)
	data := c.Data
	for len(data) > max {
		p := c
		p.CLA |= ChainingBit
		p.Ne = 0
		p.Data = data[:max:max]
		parts = append(parts, p)
		data = data[max:]
	}
	last := c
	last.Data = data
	return append(parts, last)
}
