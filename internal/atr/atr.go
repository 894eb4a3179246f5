// Package atr builds the simtix card's Answers-to-Reset, contact (ISO/IEC 7816-3) and contactless
// (PC/SC Part 3), and parses ATRs: TS, interface bytes by TDi chaining, historical bytes, TCK.
package atr

import (
	"errors"
	"fmt"
	"slices"
)

// Product is the product name carried in the historical bytes of both ATRs.
const Product = "SIMTIX"

// MaxLen is the longest ATR that ISO/IEC 7816-3 allows: TS and 32 more bytes.
const MaxLen = 33

// The causes of Parse's errors; every error it returns wraps one of them.
var (
	// ErrTruncated: the ATR ends before the bytes that T0 and the TDi
	// announce (interface bytes, historical bytes, TCK).
	ErrTruncated = errors.New("atr: truncated")
	// ErrTooLong: the ATR is longer than MaxLen bytes, or bytes follow its end.
	ErrTooLong = errors.New("atr: too long")
	// ErrBadTS: the initial character is neither 3B (direct convention) nor
	// 3F (inverse convention).
	ErrBadTS = errors.New("atr: bad TS")
	// ErrBadTCK: the XOR of the bytes from T0 to TCK inclusive is not zero.
	ErrBadTCK = errors.New("atr: bad TCK")
	// ErrBadTD1: TD1 indicates T=15, which ISO/IEC 7816-3 forbids there.
	ErrBadTD1 = errors.New("atr: T=15 in TD1")
)

// Interface bytes used by Contact and Contactless.
const (
	// td1T0 and td1T1: TD2 follows; the first offered protocol is T=0 or T=1.
	td1T0 = 0x80
	td1T1 = 0x81
	// td2T15: TA3 follows, a global interface byte (T=15).
	td2T15 = 0x1F
	// ta3Class: clock stop, no preference (XI = 11); classes A, B and C
	// (UI = 000111), as a UICC announces them (ETSI TS 102 221).
	ta3Class = 0xC7
	// td2T1: TD2 of the PC/SC Part 3 contactless form, T=1, nothing follows.
	td2T1 = 0x01
)

// Historical returns the historical bytes of both ATRs (a new slice each
// call): the category indicator 80 (a sequence of COMPACT-TLV data objects
// follows, no mandatory status indicator), then one object with tag 5 (card
// issuer's data) and length 6 holding the ASCII product name "SIMTIX":
//
//	80 56 53 49 4D 54 49 58
func Historical() []byte {
	h := []byte{0x80, 0x50 | byte(len(Product))}
	return append(h, Product...)
}

// Contact returns the contact ATR (a new slice each call). Normal mode
// (t0 false) offers T=1 only, so that PC/SC connects with T=1:
//
//	3B 88 81 1F C7 80 56 53 49 4D 54 49 58 15
//
// T=0 mode (t0 true) offers T=0 only:
//
//	3B 88 80 1F C7 80 56 53 49 4D 54 49 58 14
//
// TS 3B is the direct convention; T0 88 announces TD1 and 8 historical
// bytes; there is no TA1 (default Fi/Di, no PPS needed) and no TB1/TC1.
// TD1 names the protocol and announces TD2 = 1F (T=15), whose TA3 = C7
// gives the UICC's clock-stop and voltage classes (A, B, C). The
// historical bytes are Historical's. A TCK ends both forms: ISO/IEC 7816-3
// requires it whenever T=15 is indicated, even with T=0.
func Contact(t0 bool) []byte {
	hist := Historical()
	td1 := byte(td1T1)
	if t0 {
		td1 = td1T0
	}
	b := []byte{0x3B, 0x80 | byte(len(hist)), td1, td2T15, ta3Class}
	b = append(b, hist...)
	return appendTCK(b)
}

// Contactless returns the PC/SC Part 3 ATR of an ISO 14443-4 card (a new
// slice each call), 3B 8n 80 01, the n historical bytes, TCK, with
// Historical's bytes as the historical bytes:
//
//	3B 88 80 01 80 56 53 49 4D 54 49 58 CD
//
// Parse reports it as offering T=0 and T=1: PC/SC Part 3 fixes TD1 = 80
// (TD2 follows, T=0) and TD2 = 01 (T=1).
func Contactless() []byte {
	hist := Historical()
	b := []byte{0x3B, 0x80 | byte(len(hist)), td1T0, td2T1}
	b = append(b, hist...)
	return appendTCK(b)
}

// appendTCK appends the check byte that makes the XOR of every byte after
// TS, the check byte included, zero.
func appendTCK(b []byte) []byte {
	var x byte
	for _, c := range b[1:] {
		x ^= c
	}
	return append(b, x)
}

// ATR is a decoded Answer-to-Reset. Its slices are Parse's own copies.
type ATR struct {
	// Raw is the whole ATR, TS to TCK.
	Raw []byte
	// TS is the initial character: 3B direct, 3F inverse convention.
	TS byte
	// Protocols lists the transmission protocols offered, in the order the
	// TDi name them, each once; T=15 (global interface bytes) is not a
	// protocol and is left out. Without TD1 it is [0].
	Protocols []int
	// Historical holds the historical bytes (K of them, K from T0).
	Historical []byte
	// HasTCK tells whether the ATR ends with a TCK: exactly when a TDi
	// indicates a protocol other than T=0.
	HasTCK bool
	// TCK is the check byte when HasTCK is set, else 0.
	TCK byte
}

// Offers reports whether the ATR offers protocol T=t.
func (a ATR) Offers(t int) bool {
	return slices.Contains(a.Protocols, t)
}

// Parse decodes an ATR: TS, T0, the interface bytes TAi, TBi, TCi and TDi
// as chained by T0 and each TDi, the historical bytes, and the TCK, which
// must be present exactly when a protocol other than T=0 is indicated and
// which must make the XOR of the bytes from T0 to TCK zero. Its errors wrap
// ErrTooLong (over MaxLen bytes, or bytes after the end), ErrTruncated,
// ErrBadTS, ErrBadTD1 or ErrBadTCK.
func Parse(b []byte) (ATR, error) {
	if len(b) > MaxLen {
		return ATR{}, fmt.Errorf("%w: %d bytes, at most %d", ErrTooLong, len(b), MaxLen)
	}
	if len(b) < 2 {
		return ATR{}, fmt.Errorf("%w: %d bytes, need TS and T0", ErrTruncated, len(b))
	}
	if b[0] != 0x3B && b[0] != 0x3F {
		return ATR{}, fmt.Errorf("%w: %02X, want 3B or 3F", ErrBadTS, b[0])
	}
	a := ATR{TS: b[0]}
	y := b[1] >> 4 // presence bits of TAi, TBi, TCi, TDi
	k := int(b[1] & 0x0F)
	p := 2
	for i := 1; y != 0; i++ {
		for bit, name := range [...]string{"TA", "TB", "TC"} {
			if y&(1<<bit) == 0 {
				continue
			}
			if p >= len(b) {
				return ATR{}, fmt.Errorf("%w: %s%d missing", ErrTruncated, name, i)
			}
			p++
		}
		if y&0x8 == 0 {
			break
		}
		if p >= len(b) {
			return ATR{}, fmt.Errorf("%w: TD%d missing", ErrTruncated, i)
		}
		td := b[p]
		p++
		t := int(td & 0x0F)
		if i == 1 && t == 15 {
			return ATR{}, fmt.Errorf("%w: TD1 = %02X", ErrBadTD1, td)
		}
		if t != 0 {
			a.HasTCK = true
		}
		if t != 15 && !slices.Contains(a.Protocols, t) {
			a.Protocols = append(a.Protocols, t)
		}
		y = td >> 4
	}
	if len(a.Protocols) == 0 {
		a.Protocols = []int{0}
	}
	if len(b)-p < k {
		return ATR{}, fmt.Errorf("%w: %d historical bytes announced, %d present", ErrTruncated, k, len(b)-p)
	}
	a.Historical = slices.Clone(b[p : p+k])
	p += k
	if a.HasTCK {
		if p >= len(b) {
			return ATR{}, fmt.Errorf("%w: TCK missing", ErrTruncated)
		}
		a.TCK = b[p]
		p++
		var x byte
		for _, c := range b[1:p] {
			x ^= c
		}
		if x != 0 {
			return ATR{}, fmt.Errorf("%w: %02X, want %02X", ErrBadTCK, a.TCK, a.TCK^x)
		}
	}
	if p != len(b) {
		return ATR{}, fmt.Errorf("%w: %d bytes after the end", ErrTooLong, len(b)-p)
	}
	a.Raw = slices.Clone(b)
	return a, nil
}
