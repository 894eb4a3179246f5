package contactless

import (
	"fmt"
	"time"
)

// Breakdown is an estimated time and what it is made of. Total is always
// the sum of Air, Processing, Write and Terminal.
type Breakdown struct {
	// Air is the time on the air: every frame, and before each the least
	// frame delay time the protocol requires (FDTPCDToPICC before the
	// card's frames, FDTPICCToPCD before the reader's); for an activation
	// also the field guard and SFGT.
	Air time.Duration
	// Processing is the card's computing: Model.Processing per APDU,
	// Model.PerByte per APDU byte, Model.Signature per signature.
	Processing time.Duration
	// Write is the card's NVM page writes: Model.PageWrite each.
	Write time.Duration
	// Terminal is the gate's own time, Model.Terminal per APDU.
	Terminal time.Duration
	// Total is the estimated time: Air + Processing + Write + Terminal.
	Total time.Duration
	// APDUs is the number of command APDUs (0 for an activation).
	APDUs int
	// Frames is the number of frames on the air, both directions.
	Frames int
	// Bytes is the number of bytes on the air, prologues and CRCs
	// included.
	Bytes int
	// WTX is the number of S(WTX) rounds the card needed.
	WTX int
	// PageWrites is the number of NVM page writes counted in Write.
	PageWrites int
	// Signatures is the number of signatures counted in Processing.
	Signatures int
}

// Add returns the sum of b and o, as of one exchange after the other.
func (b Breakdown) Add(o Breakdown) Breakdown {
	return Breakdown{
		Air:        b.Air + o.Air,
		Processing: b.Processing + o.Processing,
		Write:      b.Write + o.Write,
		Terminal:   b.Terminal + o.Terminal,
		Total:      b.Total + o.Total,
		APDUs:      b.APDUs + o.APDUs,
		Frames:     b.Frames + o.Frames,
		Bytes:      b.Bytes + o.Bytes,
		WTX:        b.WTX + o.WTX,
		PageWrites: b.PageWrites + o.PageWrites,
		Signatures: b.Signatures + o.Signatures,
	}
}

// String returns the breakdown in milliseconds, e.g. "173.97 ms (air
// 56.83, card 111.14, writes 6.00) in 3 APDUs, 18 frames, 588 bytes, 2
// S(WTX)".
func (b Breakdown) String() string {
	s := fmt.Sprintf("%s ms (air %s, card %s, writes %s", millis(b.Total), millis(b.Air), millis(b.Processing), millis(b.Write))
	if b.Terminal > 0 {
		s += ", gate " + millis(b.Terminal)
	}
	s += fmt.Sprintf(") in %d APDU%s, %d frames, %d bytes", b.APDUs, plural(b.APDUs), b.Frames, b.Bytes)
	if b.WTX > 0 {
		s += fmt.Sprintf(", %d S(WTX)", b.WTX)
	}
	return s
}

func plural(n int) string {
	if n == 1 {
		return ""
	}
	return "s"
}

func millis(d time.Duration) string { return fmt.Sprintf("%.2f", float64(d)/float64(time.Millisecond)) }

// air returns the time on the air of frames at bit period etu, each
// preceded by its least frame delay time, in carrier cycles.
func air(fs []Frame, etu int64) int64 {
	var c int64
	for _, f := range fs {
		if f.From == PICC {
			c += FDTPCDToPICC
		} else {
			c += FDTPICCToPCD
		}
		c += int64(f.Bits) * etu
	}
	return c
}

func bytesOf(fs []Frame) int {
	n := 0
	for _, f := range fs {
		n += f.Bytes
	}
	return n
}

// CardTime returns the card's modelled time for one APDU exchange: its
// processing (Processing, PerByte over both APDUs, Signature if it signs)
// and its page writes.
func (m Model) CardTime(cmdLen, respLen, pageWrites int, signs bool) (processing, write time.Duration) {
	processing = m.Processing + time.Duration(cmdLen+respLen)*m.PerByte
	if signs {
		processing += m.Signature
	}
	return processing, time.Duration(pageWrites) * m.PageWrite
}

// WTXRounds returns how many S(WTX) rounds a card that works for d needs:
// none within FWT, else one per further FWT begun (ISO/IEC 14443-4, frame
// waiting time extension, with WTXM = 1).
func (m Model) WTXRounds(d time.Duration) int {
	fwt := m.FWT()
	if d <= fwt {
		return 0
	}
	return int((d+fwt-1)/fwt) - 1
}

// Exchange estimates one APDU exchange: the command cmd, the card's
// response resp (data and status word), the NVM pages the card wrote for it
// and whether it signed. Only the lengths of cmd and resp matter. Exchange
// panics on an invalid model (see Validate).
func (m Model) Exchange(cmd, resp []byte, pageWrites int, signs bool) Breakdown {
	return m.ExchangeLen(len(cmd), len(resp), pageWrites, signs)
}

// ExchangeLen is Exchange given the lengths of the APDUs.
func (m Model) ExchangeLen(cmdLen, respLen, pageWrites int, signs bool) Breakdown {
	m.mustValidate()
	processing, write := m.CardTime(cmdLen, respLen, pageWrites, signs)
	wtx := m.WTXRounds(processing + write)
	fs := m.Plan(cmdLen, respLen, wtx)
	b := Breakdown{
		Air:        Cycles(air(fs, m.Rate.ETU())),
		Processing: processing,
		Write:      write,
		Terminal:   m.Terminal,
		APDUs:      1,
		Frames:     len(fs),
		Bytes:      bytesOf(fs),
		WTX:        wtx,
		PageWrites: pageWrites,
	}
	if signs {
		b.Signatures = 1
	}
	b.Total = b.Air + b.Processing + b.Write + b.Terminal
	return b
}

// Activation estimates the Type A activation before the first APDU: the
// field guard, then ActivationFrames at 106 kbit/s (the PPS answer, when
// there is one, included), each after its least frame delay time but the
// first, and SFGT after the ATS. It is all air time; the card computes nothing the
// model counts. Activation panics on an invalid model.
func (m Model) Activation() Breakdown {
	fs := m.ActivationFrames()
	// The field guard, not a frame delay time, comes before the REQA.
	c := air(fs, Rate106.ETU()) - FDTPICCToPCD
	if m.SFGI > 0 {
		c += int64(FWTUnit) << m.SFGI
	}
	b := Breakdown{
		Air:    m.FieldGuard + Cycles(c),
		Frames: len(fs),
		Bytes:  bytesOf(fs),
	}
	b.Total = b.Air
	return b
}
