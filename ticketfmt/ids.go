package ticketfmt

import (
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
)

// Sizes of the identifiers.
const (
	idSize     = 10
	SerialSize = 10
	keyIDSize  = 4
)

// ErrHex means text that is not the hex form of an identifier.
var ErrHex = errors.New("invalid hex")

// ID is a ticket ID: 10 bytes, unique per ticket. Its text form is hex.
type ID [idSize]byte

// Serial is a card serial number: 10 bytes, set at personalisation. Its text
// form is hex (20 digits).
type Serial [SerialSize]byte

// KeyID names an issuer key: the first 4 bytes of SHA-256 of its
// SubjectPublicKeyInfo DER. Its text form is hex.
type KeyID [keyIDSize]byte

// ParseID parses the hex form of a ticket ID.
func ParseID(s string) (ID, error) {
	var v ID
	return v, parseHex(v[:], s, "ticket ID")
}

// ParseSerial parses the hex form of a card serial.
func ParseSerial(s string) (Serial, error) {
	var v Serial
	return v, parseHex(v[:], s, "card serial")
}

// ParseKeyID parses the hex form of an issuer key ID.
func ParseKeyID(s string) (KeyID, error) {
	var v KeyID
	return v, parseHex(v[:], s, "key ID")
}

// String formats the ID in lower-case hex.
func (v ID) String() string { return hex.EncodeToString(v[:]) }

// String formats the serial in lower-case hex.
func (v Serial) String() string { return hex.EncodeToString(v[:]) }

// String formats the key ID in lower-case hex.
func (v KeyID) String() string { return hex.EncodeToString(v[:]) }

// MarshalText implements encoding.TextMarshaler.
func (v ID) MarshalText() ([]byte, error) { return []byte(v.String()), nil }

// MarshalText implements encoding.TextMarshaler.
func (v Serial) MarshalText() ([]byte, error) { return []byte(v.String()), nil }

// MarshalText implements encoding.TextMarshaler.
func (v KeyID) MarshalText() ([]byte, error) { return []byte(v.String()), nil }

// UnmarshalText implements encoding.TextUnmarshaler.
func (v *ID) UnmarshalText(b []byte) error { return parseHex(v[:], string(b), "ticket ID") }

// UnmarshalText implements encoding.TextUnmarshaler.
func (v *Serial) UnmarshalText(b []byte) error { return parseHex(v[:], string(b), "card serial") }

// UnmarshalText implements encoding.TextUnmarshaler.
func (v *KeyID) UnmarshalText(b []byte) error { return parseHex(v[:], string(b), "key ID") }

// parseHex fills dst from hex text in upper or lower case, ignoring spaces.
func parseHex(dst []byte, s, what string) error {
	clean := strings.ReplaceAll(s, " ", "")
	if hex.DecodedLen(len(clean)) != len(dst) || len(clean)%2 != 0 {
		return fmt.Errorf("%s %q: %w: want %d hex digits", what, s, ErrHex, 2*len(dst))
	}
	if _, err := hex.Decode(dst, []byte(clean)); err != nil {
		return fmt.Errorf("%s %q: %w: %v", what, s, ErrHex, err)
	}
	return nil
}
