package apdu

import (
	"errors"
	"fmt"
)

// StatusWord is the trailer SW1-SW2 of a response APDU.
type StatusWord uint16

// Status words the simtix card answers (card-applet.md), named after their
// ISO/IEC 7816-4 meaning.
const (
	// SWSuccess 9000: normal processing.
	SWSuccess StatusWord = 0x9000
	// SWWriteFailed 6400: execution error, non-volatile memory unchanged
	// (the card's write failed; nothing changed).
	SWWriteFailed StatusWord = 0x6400
	// SWWrongLength 6700: wrong length (Lc or Le, malformed APDU, chain too
	// long).
	SWWrongLength StatusWord = 0x6700
	// SWChannelNotSupported 6881: logical channel not supported (or not
	// open).
	SWChannelNotSupported StatusWord = 0x6881
	// SWLastCommandExpected 6883: last command of the chain expected (a
	// chained part does not continue the pending chain).
	SWLastCommandExpected StatusWord = 0x6883
	// SWSecurityStatus 6982: security status not satisfied (wrong MAC, or a
	// command not allowed on this interface).
	SWSecurityStatus StatusWord = 0x6982
	// SWStaleAuthorization 6984: in ISO/IEC 7816-4 "reference data not
	// usable"; simtix answers it for an authorisation whose epoch or counter
	// does not match the card's.
	SWStaleAuthorization StatusWord = 0x6984
	// SWConditionsNotSatisfied 6985: conditions of use not satisfied.
	SWConditionsNotSatisfied StatusWord = 0x6985
	// SWNotSelected 6986: in ISO/IEC 7816-4 "command not allowed (no current
	// EF)"; simtix answers it when the applet is not selected.
	SWNotSelected StatusWord = 0x6986
	// SWWrongData 6A80: incorrect parameters in the command data field.
	SWWrongData StatusWord = 0x6A80
	// SWFileNotFound 6A82: file or application not found.
	SWFileNotFound StatusWord = 0x6A82
	// SWNotEnoughMemory 6A84: not enough memory space.
	SWNotEnoughMemory StatusWord = 0x6A84
	// SWIncorrectP1P2 6A86: incorrect parameters P1-P2.
	SWIncorrectP1P2 StatusWord = 0x6A86
	// SWReferenceNotFound 6A88: referenced data or reference data not found.
	SWReferenceNotFound StatusWord = 0x6A88
	// SWAlreadyExists 6A89: file already exists (simtix: ticket ID already
	// stored).
	SWAlreadyExists StatusWord = 0x6A89
	// SWINSNotSupported 6D00: instruction code not supported or invalid.
	SWINSNotSupported StatusWord = 0x6D00
	// SWCLANotSupported 6E00: class not supported.
	SWCLANotSupported StatusWord = 0x6E00
	// SWUnknown 6F00: no precise diagnosis (internal error).
	SWUnknown StatusWord = 0x6F00
)

// SW1 returns the first status byte.
func (sw StatusWord) SW1() byte { return byte(sw >> 8) }

// SW2 returns the second status byte.
func (sw StatusWord) SW2() byte { return byte(sw) }

// OK reports whether sw ends a command successfully: 9000, or 91xx
// (normal ending with a pending proactive command, ETSI TS 102 221). 61xx
// is not OK: the response is not complete until GET RESPONSE.
func (sw StatusWord) OK() bool {
	return sw == SWSuccess || sw.SW1() == 0x91
}

// MoreData reports whether sw is 61xx (more response data to get with GET
// RESPONSE) and, if so, how many bytes remain: xx, or 256 for 00 (256 or
// more).
func (sw StatusWord) MoreData() (n int, ok bool) {
	return sw.countIn(0x61)
}

// WrongLe reports whether sw is 6Cxx (wrong Le) and, if so, the exact
// number of bytes available: xx, or 256 for 00.
func (sw StatusWord) WrongLe() (n int, ok bool) {
	return sw.countIn(0x6C)
}

// Notification reports whether sw is 91xx (normal ending, a proactive
// command is pending, ETSI TS 102 221) and, if so, its length to FETCH:
// xx, or 256 for 00.
func (sw StatusWord) Notification() (n int, ok bool) {
	return sw.countIn(0x91)
}

func (sw StatusWord) countIn(sw1 byte) (int, bool) {
	if sw.SW1() != sw1 {
		return 0, false
	}
	if sw.SW2() == 0 {
		return 256, true
	}
	return int(sw.SW2()), true
}

// MoreDataStatus returns 61xx for n remaining bytes: xx = n, or 00 when n
// is 256 or more. It panics if n < 1.
func MoreDataStatus(n int) StatusWord {
	if n < 1 {
		panic(fmt.Sprintf("apdu: MoreDataStatus(%d): no data remains", n))
	}
	return 0x6100 | StatusWord(min(n, 256)&0xFF)
}

// NotificationStatus returns 91xx for a pending proactive command of n
// bytes, 1-256 (256 codes as 00). It panics for any other n.
func NotificationStatus(n int) StatusWord {
	if n < 1 || n > 256 {
		panic(fmt.Sprintf("apdu: NotificationStatus(%d): length outside 1-256", n))
	}
	return 0x9100 | StatusWord(n&0xFF)
}

// Err returns nil when sw is OK, else an *Error carrying sw.
func (sw StatusWord) Err() error {
	if sw.OK() {
		return nil
	}
	return &Error{SW: sw}
}

// String returns sw in hex with its meaning, e.g.
// "6A82 (file or application not found)".
func (sw StatusWord) String() string {
	return fmt.Sprintf("%04X (%s)", uint16(sw), sw.Meaning())
}

// Meaning returns what sw means in ISO/IEC 7816-4 (and ETSI TS 102 221 for
// 91xx and 9300), e.g. "file or application not found", or "unknown".
func (sw StatusWord) Meaning() string {
	if m, ok := meanings[sw]; ok {
		return m
	}
	sw1, sw2 := sw.SW1(), sw.SW2()
	switch sw1 {
	case 0x61:
		n, _ := sw.MoreData()
		return fmt.Sprintf("more data: %d bytes", n)
	case 0x91:
		n, _ := sw.Notification()
		return fmt.Sprintf("normal ending, proactive command pending: %d bytes", n)
	case 0x63:
		if sw2&0xF0 == 0xC0 {
			return fmt.Sprintf("warning, non-volatile memory changed: counter %d", sw2&0x0F)
		}
	case 0x64:
		if sw2 >= 0x02 && sw2 <= 0x80 {
			return "execution error, non-volatile memory unchanged: triggering by the card"
		}
	case 0x6C:
		n, _ := sw.WrongLe()
		return fmt.Sprintf("wrong Le: %d bytes available", n)
	}
	if m, ok := groups[sw1]; ok {
		return m
	}
	return "unknown"
}

// meanings are the status words of ISO/IEC 7816-4:2020 §5.6 with an exact
// meaning.
var meanings = map[StatusWord]string{
	0x9000: "success",
	0x9300: "toolkit busy",
	0x6200: "warning, non-volatile memory unchanged",
	0x6281: "part of returned data may be corrupted",
	0x6282: "end of file or record reached before reading Ne bytes",
	0x6283: "selected file deactivated",
	0x6284: "file control information not formatted",
	0x6285: "selected file in termination state",
	0x6286: "no input data available from a sensor",
	0x6287: "a referenced record is deactivated",
	0x6300: "warning, non-volatile memory changed",
	0x6381: "file filled up by the last write",
	0x6400: "execution error, non-volatile memory unchanged",
	0x6401: "immediate response required by the card",
	0x6500: "execution error, non-volatile memory changed",
	0x6581: "memory failure",
	0x6600: "security-related issue",
	0x6700: "wrong length",
	0x6800: "function in CLA not supported",
	0x6881: "logical channel not supported",
	0x6882: "secure messaging not supported",
	0x6883: "last command of the chain expected",
	0x6884: "command chaining not supported",
	0x6900: "command not allowed",
	0x6981: "command incompatible with file structure",
	0x6982: "security status not satisfied",
	0x6983: "authentication method blocked",
	0x6984: "reference data not usable",
	0x6985: "conditions of use not satisfied",
	0x6986: "command not allowed (no current EF)",
	0x6987: "expected secure messaging data objects missing",
	0x6988: "incorrect secure messaging data objects",
	0x6A00: "wrong parameters P1-P2",
	0x6A80: "incorrect parameters in the command data field",
	0x6A81: "function not supported",
	0x6A82: "file or application not found",
	0x6A83: "record not found",
	0x6A84: "not enough memory",
	0x6A85: "Nc inconsistent with TLV structure",
	0x6A86: "incorrect parameters P1-P2",
	0x6A87: "Nc inconsistent with parameters P1-P2",
	0x6A88: "referenced data not found",
	0x6A89: "file already exists",
	0x6A8A: "DF name already exists",
	0x6B00: "wrong parameters P1-P2",
	0x6D00: "instruction code not supported or invalid",
	0x6E00: "class not supported",
	0x6F00: "no precise diagnosis",
}

// groups are the meanings of SW1 alone, for the SW2 values not in meanings.
var groups = map[byte]string{
	0x62: "warning, non-volatile memory unchanged",
	0x63: "warning, non-volatile memory changed",
	0x64: "execution error, non-volatile memory unchanged",
	0x65: "execution error, non-volatile memory changed",
	0x66: "security-related issue",
	0x67: "wrong length",
	0x68: "function in CLA not supported",
	0x69: "command not allowed",
	0x6A: "wrong parameters P1-P2",
	0x6B: "wrong parameters P1-P2",
	0x6D: "instruction code not supported or invalid",
	0x6E: "class not supported",
	0x6F: "no precise diagnosis",
}

// Sentinel errors an *Error unwraps to, by status word. Match them with
// errors.Is.
var (
	ErrNotFound             = errors.New("apdu: not found")                       // 6A82, 6A88
	ErrNotEnoughMemory      = errors.New("apdu: not enough memory")               // 6A84
	ErrWriteFailed          = errors.New("apdu: write failed")                    // 6400, 6581
	ErrSecurityStatus       = errors.New("apdu: security status not satisfied")   // 6982
	ErrStaleAuthorization   = errors.New("apdu: stale authorization")             // 6984
	ErrConditionsOfUse      = errors.New("apdu: conditions of use not satisfied") // 6985
	ErrNotSelected          = errors.New("apdu: not selected")                    // 6986
	ErrWrongData            = errors.New("apdu: wrong data")                      // 6A80
	ErrWrongLength          = errors.New("apdu: wrong length")                    // 6700, 6Cxx
	ErrWrongP1P2            = errors.New("apdu: wrong P1-P2")                     // 6A86, 6B00
	ErrAlreadyExists        = errors.New("apdu: already exists")                  // 6A89
	ErrINSNotSupported      = errors.New("apdu: INS not supported")               // 6D00
	ErrCLANotSupported      = errors.New("apdu: CLA not supported")               // 6E00
	ErrChannelNotSupported  = errors.New("apdu: logical channel not supported")   // 6881
	ErrChainingNotContinued = errors.New("apdu: chain not continued")             // 6883
	ErrInternal             = errors.New("apdu: internal error")                  // 6F00
)

// sentinel returns the sentinel error for sw, or nil.
func (sw StatusWord) sentinel() error {
	switch sw {
	case SWFileNotFound, SWReferenceNotFound:
		return ErrNotFound
	case SWNotEnoughMemory:
		return ErrNotEnoughMemory
	case SWWriteFailed, 0x6581:
		return ErrWriteFailed
	case SWSecurityStatus:
		return ErrSecurityStatus
	case SWStaleAuthorization:
		return ErrStaleAuthorization
	case SWConditionsNotSatisfied:
		return ErrConditionsOfUse
	case SWNotSelected:
		return ErrNotSelected
	case SWWrongData:
		return ErrWrongData
	case SWWrongLength:
		return ErrWrongLength
	case SWIncorrectP1P2, 0x6B00:
		return ErrWrongP1P2
	case SWAlreadyExists:
		return ErrAlreadyExists
	case SWINSNotSupported:
		return ErrINSNotSupported
	case SWCLANotSupported:
		return ErrCLANotSupported
	case SWChannelNotSupported:
		return ErrChannelNotSupported
	case SWLastCommandExpected:
		return ErrChainingNotContinued
	case SWUnknown:
		return ErrInternal
	}
	if _, ok := sw.WrongLe(); ok {
		return ErrWrongLength
	}
	return nil
}

// Error is a status word that is not OK, as an error. It unwraps to the
// sentinel error for its status word (ErrNotFound for 6A82 and 6A88, ...),
// so that errors.Is(err, ErrNotFound) holds; errors.As gives the status
// word itself.
type Error struct {
	// SW is the status word the card answered.
	SW StatusWord
	// Op optionally names the command that failed, e.g. "STORE".
	Op string
}

// Error reads like "apdu: 6A84 not enough memory" or, with Op,
// "apdu: STORE: 6A84 not enough memory".
func (e *Error) Error() string {
	if e.Op != "" {
		return fmt.Sprintf("apdu: %s: %04X %s", e.Op, uint16(e.SW), e.SW.Meaning())
	}
	return fmt.Sprintf("apdu: %04X %s", uint16(e.SW), e.SW.Meaning())
}

// Unwrap returns the sentinel error for e.SW, or nil if it has none.
func (e *Error) Unwrap() error { return e.SW.sentinel() }

// Is reports whether target is an *Error with the same status word, so
// that errors.Is(err, &Error{SW: SWFileNotFound}) holds whatever the Op.
func (e *Error) Is(target error) bool {
	t, ok := target.(*Error)
	return ok && t != nil && t.SW == e.SW
}
