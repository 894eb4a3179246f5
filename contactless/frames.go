package contactless

import "fmt"

// Party is the sender of a frame.
type Party int

// The two parties of ISO/IEC 14443.
const (
	// PCD is the reader: the gate.
	PCD Party = iota
	// PICC is the card.
	PICC
)

// String returns "PCD" or "PICC".
func (p Party) String() string {
	if p == PCD {
		return "PCD"
	}
	return "PICC"
}

// Frame is one frame on the air.
type Frame struct {
	// From is the sender.
	From Party
	// Name says what the frame is: "I" (an I-block), "I chained" (an
	// I-block with the chaining bit), "R(ACK)", "S(WTX)", or an activation
	// frame ("REQA", "ATQA", "ANTICOLLISION", "UID", "SELECT", "SAK",
	// "RATS", "ATS", "PPS", "PPS response").
	Name string
	// Bytes is the frame's length in bytes, prologue and CRC included.
	// A short frame (REQA) has 7 bits and no whole byte: 0.
	Bytes int
	// Bits is the frame's length on the air in bit periods: the start bit,
	// 9 per byte (8 data bits and odd parity) and the end of communication
	// counted as one bit, 2 + 9·Bytes (ISO/IEC 14443-3 6.2.3, standard
	// frame, the same at fc/128 to fc/16 in both directions); 9 for a
	// short frame.
	Bits int
}

// String returns the frame as "PCD I 12 bytes".
func (f Frame) String() string {
	return fmt.Sprintf("%v %s %d bytes", f.From, f.Name, f.Bytes)
}

func frame(from Party, name string, n int) Frame {
	return Frame{From: from, Name: name, Bytes: n, Bits: 2 + 9*n}
}

// A short frame: start, 7 data bits, end (ISO/IEC 14443-3 6.2.3.1).
func shortFrame(name string) Frame { return Frame{From: PCD, Name: name, Bits: 9} }

// Frame names.
const (
	nameI       = "I"
	nameIChain  = "I chained"
	nameRAck    = "R(ACK)"
	nameSWTX    = "S(WTX)"
	nameREQA    = "REQA"
	nameATQA    = "ATQA"
	nameAnticol = "ANTICOLLISION"
	nameUID     = "UID"
	nameSelect  = "SELECT"
	nameSAK     = "SAK"
	nameRATS    = "RATS"
	nameATS     = "ATS"
	namePPS     = "PPS"
	namePPSResp = "PPS response"
)

// prologue returns the length of a block's prologue: PCB, then CID when
// used, then NAD when used and asked for.
func (m Model) prologue(nad bool) int {
	n := 1
	if m.CID {
		n++
	}
	if m.NAD && nad {
		n++
	}
	return n
}

// iBlocks appends the I-blocks that carry an APDU of n bytes from a sender
// whose receiver takes frames of at most limit bytes, each block but the last
// followed by the receiver's R(ACK). NAD, when used, is in the first block
// only.
func (m Model) iBlocks(dst []Frame, from Party, n, limit int) []Frame {
	ack := PICC
	if from == PICC {
		ack = PCD
	}
	first := true
	for {
		pro := m.prologue(first)
		room := limit - pro - CRCLen
		if n <= room {
			return append(dst, frame(from, nameI, pro+n+CRCLen))
		}
		dst = append(dst, frame(from, nameIChain, pro+room+CRCLen), frame(ack, nameRAck, m.prologue(false)+CRCLen))
		n -= room
		first = false
	}
}

// Plan returns the frames of one APDU exchange, in order: the command in
// I-blocks of at most FSC bytes (chained, each block but the last
// acknowledged by the card's R(ACK)), wtx rounds of S(WTX) request and
// answer while the card works, then the response in I-blocks of at most FSD
// bytes (chained likewise, acknowledged by the reader). cmdLen and respLen
// are the APDUs' lengths, the response's status word included. Plan panics
// on an invalid model.
func (m Model) Plan(cmdLen, respLen, wtx int) []Frame {
	m.mustValidate()
	var fs []Frame
	fs = m.iBlocks(fs, PCD, cmdLen, m.FSC)
	for range wtx {
		// PCB, [CID], INF = WTXM, CRC; the reader echoes it.
		n := m.prologue(false) + 1 + CRCLen
		fs = append(fs, frame(PICC, nameSWTX, n), frame(PCD, nameSWTX, n))
	}
	return m.iBlocks(fs, PICC, respLen, m.FSD)
}

// ActivationFrames returns the frames of a Type A activation at 106 kbit/s
// (ISO/IEC 14443-3 6.5 and 14443-4 clause 5): REQA and ATQA; per cascade
// level ANTICOLLISION (SEL, NVB) and the UID part (4 bytes and BCC), then
// SELECT (SEL, NVB, 4 bytes, BCC, CRC_A) and SAK (with CRC_A); RATS and the
// ATS; and, when the model's rate is above 106 kbit/s, PPS (PPSS, PPS0,
// PPS1) and its answer.
func (m Model) ActivationFrames() []Frame {
	m.mustValidate()
	fs := []Frame{shortFrame(nameREQA), frame(PICC, nameATQA, 2)}
	for range cascadeLevels(m.UIDSize) {
		fs = append(fs,
			frame(PCD, nameAnticol, 2), frame(PICC, nameUID, 5),
			frame(PCD, nameSelect, 7+CRCLen), frame(PICC, nameSAK, 1+CRCLen))
	}
	fs = append(fs, frame(PCD, nameRATS, 2+CRCLen), frame(PICC, nameATS, m.ATSLen+CRCLen))
	if m.Rate != Rate106 {
		fs = append(fs, frame(PCD, namePPS, 3+CRCLen), frame(PICC, namePPSResp, 1+CRCLen))
	}
	return fs
}

// cascadeLevels returns how many cascade levels a UID of n bytes takes.
func cascadeLevels(n int) int {
	switch n {
	case 7:
		return 2
	case 10:
		return 3
	}
	return 1
}
