// Package contactless estimates how long a gate's exchange with the card
// takes over ISO/IEC 14443-4 (Type A): from the bytes of each command and
// response, a documented model of the framing and timing at 106, 212, 424
// and 848 kbit/s, and the card's modelled processing, signature and
// non-volatile memory writes (docs/contactless.md gives the figures and
// their sources).
//
// It is a model, not a radio: it never touches a card, and its figures are
// estimates to compare designs and catch regressions, not measurements.
package contactless

import (
	"errors"
	"fmt"
	"time"

	"github.com/simtix/simtix/internal/atr"
)

// Fc is the carrier frequency of ISO/IEC 14443-2, 13.56 MHz. Every time on
// the air is a whole number of carrier cycles (1/fc, about 73.7 ns); the
// model counts cycles and converts once.
const Fc = 13_560_000

// Timings of ISO/IEC 14443-3 (2018 edition, Type A) and 14443-4, in carrier
// cycles (1/fc).
const (
	// FDTPCDToPICC is the least frame delay time from the end of the
	// reader's (PCD's) frame to the start of the card's (PICC's) answer:
	// (n·128 + 20)/fc with n = 9 when the reader's last bit is 0, 1172/fc,
	// about 86 µs (ISO/IEC 14443-3 6.2.1.1; (9·128 + 84)/fc = 1236/fc after
	// a last bit 1). The model uses 1172/fc for every frame, at every rate,
	// and adds the card's processing on top of it.
	FDTPCDToPICC = 1172
	// FDTPICCToPCD is the least frame delay time from the end of the card's
	// frame to the start of the reader's next one, 1172/fc (ISO/IEC
	// 14443-3 6.2.1.2). The model assumes a reader that sends as soon as it
	// may; a gate's own delays go in Model.Terminal.
	FDTPICCToPCD = 1172
	// RequestGuardTime is the least time between the start bits of two
	// consecutive REQA commands, 7000/fc, about 516 µs (ISO/IEC 14443-3
	// 6.2.2). It matters only when a REQA goes unanswered and is repeated,
	// which a single activation does not do; it is given for reference.
	RequestGuardTime = 7000
	// FWTUnit is the unit of the frame waiting time and of the start-up
	// frame guard time, 256·16/fc, about 302 µs: FWT = FWTUnit·2^FWI
	// (ISO/IEC 14443-4, frame waiting time) and SFGT = FWTUnit·2^SFGI
	// (ISO/IEC 14443-4, ATS interface byte TB(1)).
	FWTUnit = 256 * 16
)

// Sizes of the ISO/IEC 14443-3 and 14443-4 framing, in bytes.
const (
	// CRCLen is the length of CRC_A (ISO/IEC 14443-3 6.2.4), the epilogue
	// (EDC) of every ISO/IEC 14443-4 block.
	CRCLen = 2
	// MinFrameSize and MaxFrameSize bound FSC and FSD: FSCI and FSDI 0-8
	// code 16-256 bytes (ISO/IEC 14443-4), and 9-C up to 4096 bytes in its
	// later editions.
	MinFrameSize = 16
	MaxFrameSize = 4096
)

// Rate is a bit rate of ISO/IEC 14443, in nominal kbit/s, used in both
// directions. A bit lasts 128/fc at 106 kbit/s (9.44 µs, 105.9 kbit/s
// exactly), 64/fc at 212, 32/fc at 424 and 16/fc at 848.
type Rate int

// The bit rates of ISO/IEC 14443-2: fc/128, fc/64, fc/32 and fc/16.
const (
	Rate106 Rate = 106
	Rate212 Rate = 212
	Rate424 Rate = 424
	Rate848 Rate = 848
)

// Rates lists the bit rates from the slowest.
func Rates() []Rate { return []Rate{Rate106, Rate212, Rate424, Rate848} }

// ETU returns the duration of one bit (elementary time unit) in carrier
// cycles: 128, 64, 32 or 16; 0 for an unknown rate.
func (r Rate) ETU() int64 {
	switch r {
	case Rate106:
		return 128
	case Rate212:
		return 64
	case Rate424:
		return 32
	case Rate848:
		return 16
	}
	return 0
}

// BitTime returns the duration of one bit, rounded to the nanosecond.
func (r Rate) BitTime() time.Duration { return Cycles(r.ETU()) }

// String returns the rate as "106 kbit/s".
func (r Rate) String() string { return fmt.Sprintf("%d kbit/s", int(r)) }

// Cycles converts a number of carrier cycles to a duration, rounded to the
// nanosecond.
func Cycles(n int64) time.Duration {
	return time.Duration((n*int64(time.Second) + Fc/2) / Fc)
}

// Default figures of the card, the assumptions of docs/contactless.md.
const (
	// DefaultProcessing is the card's fixed cost of one command APDU:
	// dispatch to the applet and building the answer. An assumption for a
	// Java Card UICC, not a measurement.
	DefaultProcessing = 2 * time.Millisecond
	// DefaultPerByte is the card's cost per byte of command and response
	// APDU (parsing TLV, copying, reading the ticket out of NVM). An
	// assumption.
	DefaultPerByte = 10 * time.Microsecond
	// DefaultSignature is one ECDSA P-256 signature with SHA-256 over a few
	// hundred bytes on a SIM-class chip: JCAlgTest measured 97 to 142 ms on
	// Java Cards of the SmartMX and SLE78 generations (NXP J2E145G, G+D
	// SmartCafe 6.0, Infineon JTOP 80K), Infineon's OPTIGA Trust Charge
	// documents about 60 ms, and an NXP JCOP4 P71 does a P-256 ECDH in
	// 20 ms. 100 ms stands for an ordinary, not the newest, SIM.
	DefaultSignature = 100 * time.Millisecond
	// DefaultPageWrite is one erase and write of a 64-byte NVM page. Serial
	// EEPROMs give 5-6 ms at most per page and memory-card chips 2.5-5 ms
	// per erase or write; a secure controller's EEPROM or flash is faster.
	// An assumption.
	DefaultPageWrite = 2 * time.Millisecond
	// DefaultFieldGuard is the wait between switching the field on and the
	// first REQA: ISO/IEC 14443-3 gives a card 5 ms in an unmodulated field
	// before it must answer.
	DefaultFieldGuard = 5 * time.Millisecond
	// DefaultFSC and DefaultFSD are the card's and the reader's largest
	// frames: FSCI and FSDI 8, 256 bytes, as a phone's card emulation
	// announces in its ATS (05 78 80 70 02) and common readers in RATS (E0 80).
	DefaultFSC = 256
	DefaultFSD = 256
	// DefaultFWI is the frame waiting integer of that ATS (TB(1) = 70):
	// FWT = FWTUnit·2^7, about 38.7 ms.
	DefaultFWI = 7
)

// Model is the timing model of one card and one reader. Every field is
// documented with its default (DefaultModel); a zero Model is not valid.
type Model struct {
	// Rate is the bit rate after activation, in both directions. The
	// activation itself always runs at 106 kbit/s.
	Rate Rate
	// FSC is the largest frame the card accepts and FSD the largest the
	// reader accepts, in bytes including PCB, CID, NAD and CRC (ISO/IEC
	// 14443-4: FSCI in the ATS, FSDI in RATS). A command APDU longer than
	// FSC's room is sent in chained I-blocks, a response longer than FSD's
	// room likewise, each block but the last acknowledged by an R(ACK).
	FSC, FSD int
	// CID and NAD tell whether blocks carry a card identifier byte (every
	// block) and a node address byte (the first block of a chain).
	CID, NAD bool
	// FWI is the card's frame waiting integer: when the card needs longer
	// than FWT = FWTUnit·2^FWI to answer, it asks for more time with
	// S(WTX) blocks, one round per FWT (WTXM = 1, the most rounds).
	FWI int
	// SFGI is the card's start-up frame guard integer: the reader waits
	// SFGT = FWTUnit·2^SFGI after the ATS (none for 0).
	SFGI int
	// UIDSize is the card's UID length, 4, 7 or 10 bytes: one, two or three
	// cascade levels of anticollision.
	UIDSize int
	// ATSLen is the length of the ATS without its CRC: TL, T0, TA(1),
	// TB(1), TC(1) and the historical bytes.
	ATSLen int
	// FieldGuard is the wait between field on and the first REQA.
	FieldGuard time.Duration
	// Processing is the card's fixed cost per command APDU.
	Processing time.Duration
	// PerByte is the card's cost per byte of command and response APDU.
	PerByte time.Duration
	// Signature is the cost of one ECDSA P-256 signature (with its hash).
	Signature time.Duration
	// PageWrite is the cost of one NVM page write.
	PageWrite time.Duration
	// Terminal is the gate's own time per command APDU (its reader's
	// firmware, its host, its checks between answers): zero by default, to
	// be measured on a real gate and added.
	Terminal time.Duration
}

// DefaultModel returns the model of docs/contactless.md at rate r: FSC and
// FSD 256, no CID or NAD, FWI 7, SFGI 0, a 4-byte UID, an ATS carrying the
// card's historical bytes, and the Default figures of the card.
func DefaultModel(r Rate) Model {
	return Model{
		Rate:       r,
		FSC:        DefaultFSC,
		FSD:        DefaultFSD,
		FWI:        DefaultFWI,
		UIDSize:    4,
		ATSLen:     5 + len(atr.Historical()),
		FieldGuard: DefaultFieldGuard,
		Processing: DefaultProcessing,
		PerByte:    DefaultPerByte,
		Signature:  DefaultSignature,
		PageWrite:  DefaultPageWrite,
	}
}

// ErrInvalidModel is wrapped by Validate's errors.
var ErrInvalidModel = errors.New("contactless: invalid model")

// Validate reports whether m describes a possible card and reader: a known
// rate, FSC and FSD within 16-4096 bytes, FWI and SFGI within 0-14, a UID of
// 4, 7 or 10 bytes, an ATS that fits FSD and no negative duration.
func (m Model) Validate() error {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: "+format, append([]any{ErrInvalidModel}, args...)...)
	}
	switch {
	case m.Rate.ETU() == 0:
		return bad("bit rate %d kbit/s is not 106, 212, 424 or 848", int(m.Rate))
	case m.FSC < MinFrameSize || m.FSC > MaxFrameSize:
		return bad("FSC %d outside %d-%d", m.FSC, MinFrameSize, MaxFrameSize)
	case m.FSD < MinFrameSize || m.FSD > MaxFrameSize:
		return bad("FSD %d outside %d-%d", m.FSD, MinFrameSize, MaxFrameSize)
	case m.FWI < 0 || m.FWI > 14:
		return bad("FWI %d outside 0-14", m.FWI)
	case m.SFGI < 0 || m.SFGI > 14:
		return bad("SFGI %d outside 0-14", m.SFGI)
	case m.UIDSize != 4 && m.UIDSize != 7 && m.UIDSize != 10:
		return bad("UID of %d bytes, not 4, 7 or 10", m.UIDSize)
	case m.ATSLen < 1 || m.ATSLen+CRCLen > m.FSD:
		return bad("ATS of %d bytes with FSD %d", m.ATSLen, m.FSD)
	case m.FieldGuard < 0 || m.Processing < 0 || m.PerByte < 0 || m.Signature < 0 || m.PageWrite < 0 || m.Terminal < 0:
		return bad("negative duration")
	}
	return nil
}

func (m Model) mustValidate() {
	if err := m.Validate(); err != nil {
		panic(err.Error())
	}
}

// FWT returns the frame waiting time, FWTUnit·2^FWI.
func (m Model) FWT() time.Duration { return Cycles(int64(FWTUnit) << m.FWI) }
