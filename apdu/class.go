package apdu

import (
	"errors"
	"fmt"
)

// ErrClassNotSupported is wrapped by ParseClass for class bytes that are
// reserved (20-3F), proprietary without the interindustry structure (A0-FE)
// or invalid (FF).
var ErrClassNotSupported = errors.New("apdu: class not supported")

// ClassKind says how a class byte is coded (ISO/IEC 7816-4 §5.4.1).
type ClassKind uint8

// The kinds of class byte.
const (
	// KindOther is a class this package does not decode: 20-3F (reserved
	// for future use), A0-FE (proprietary) and FF (invalid).
	KindOther ClassKind = iota
	// KindFirstInterindustry is 00-1F: channels 0-3 in b2-b1, secure
	// messaging in b4-b3, chaining in b5.
	KindFirstInterindustry
	// KindFurtherInterindustry is 40-7F: channels 4-19 in b4-b1 (plus 4),
	// chaining in b5, secure messaging in b6.
	KindFurtherInterindustry
	// KindProprietary is 80-9F, which by convention (GlobalPlatform, ETSI)
	// has the structure of the first interindustry classes.
	KindProprietary
)

// String returns the name of the kind.
func (k ClassKind) String() string {
	switch k {
	case KindFirstInterindustry:
		return "first interindustry"
	case KindFurtherInterindustry:
		return "further interindustry"
	case KindProprietary:
		return "proprietary"
	default:
		return "other"
	}
}

// Class is a decoded class byte.
type Class struct {
	// Kind is how the class byte is coded.
	Kind ClassKind
	// Channel is the logical channel: 0-3, or 4-19 for the further
	// interindustry classes.
	Channel int
	// Chaining is b5 (0x10): the command is not the last of a chain.
	Chaining bool
	// SecureMessaging is the secure messaging indication, 0 for none. For
	// 00-1F and 80-9F it is b4-b3: 1 proprietary, 2 ISO/IEC 7816-4 §6 with
	// the header not processed, 3 with the header authenticated. For 40-7F
	// it is b6: 1 for ISO/IEC 7816-4 §6 with the header not processed.
	SecureMessaging int
}

// ParseClass decodes a class byte. For 20-3F, A0-FE and FF it returns a
// Class of KindOther and an error wrapping ErrClassNotSupported.
func ParseClass(cla byte) (Class, error) {
	switch {
	case cla <= 0x1F, cla >= 0x80 && cla <= 0x9F:
		k := KindFirstInterindustry
		if cla >= 0x80 {
			k = KindProprietary
		}
		return Class{
			Kind:            k,
			Channel:         int(cla & 0x03),
			Chaining:        cla&ChainingBit != 0,
			SecureMessaging: int(cla>>2) & 0x03,
		}, nil
	case cla >= 0x40 && cla <= 0x7F:
		return Class{
			Kind:            KindFurtherInterindustry,
			Channel:         4 + int(cla&0x0F),
			Chaining:        cla&ChainingBit != 0,
			SecureMessaging: int(cla>>5) & 0x01,
		}, nil
	}
	return Class{Kind: KindOther}, fmt.Errorf("%w: CLA %02X", ErrClassNotSupported, cla)
}

// WithChannel returns cla with its logical channel set to ch, keeping the
// chaining bit and the secure messaging indication.
//
// Channels 0-3 fit every class 00-1F, 40-7F and 80-9F; a class 40-7F moves
// to 00-1F, with its secure messaging bit becoming b4-b3 = 10. Channels
// 4-19 fit only the interindustry classes 00-1F and 40-7F; a class 00-1F
// moves to 40-7F, any secure messaging becoming b6 = 1. WithChannel panics
// for any other class or channel: a channel is a program's own choice, not
// card input.
func WithChannel(cla byte, ch int) byte {
	c, err := ParseClass(cla)
	if err != nil {
		panic(fmt.Sprintf("apdu: WithChannel: CLA %02X has no logical channel", cla))
	}
	if ch < 0 || ch > 19 || ch > 3 && c.Kind == KindProprietary {
		panic(fmt.Sprintf("apdu: WithChannel: channel %d out of range for CLA %02X", ch, cla))
	}
	chain := cla & ChainingBit
	if ch <= 3 {
		switch c.Kind {
		case KindFurtherInterindustry:
			sm := byte(0)
			if c.SecureMessaging != 0 {
				sm = 0x08
			}
			return chain | sm | byte(ch)
		default:
			return cla&^0x03 | byte(ch)
		}
	}
	sm := byte(0)
	if c.SecureMessaging != 0 {
		sm = 0x20
	}
	return 0x40 | sm | chain | byte(ch-4)
}
