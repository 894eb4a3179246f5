// Package cardkeys is the symmetric and signature cryptography shared by the
// card and the network side: the card keys derived from the issuer's master
// secret, the authorisation MACs, the sync MAC and the check receipt.
//
// It holds no keys and keeps no state; the applet, the server and the gate
// each call it with their own.
package cardkeys

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/simtix/simtix/ticketfmt"
)

// Sizes of the protocol's values.
const (
	KeySize       = 32
	MACSize       = 16
	AuthSize      = 8
	ChallengeSize = 16
	NonceSize     = 16
	GateIDSize    = 4
)

// ErrMasterKey means a master secret that is not 32 bytes.
var ErrMasterKey = errors.New("master secret must be 32 bytes")

// Keys are the card's symmetric keys.
type Keys struct {
	// Auth authenticates the card to the network side (BEGIN SYNC).
	Auth [KeySize]byte
	// Store authorises the network side's changes to the card.
	Store [KeySize]byte
}

// Derive returns the keys of the card with the given serial:
// HKDF-SHA256(master, salt = serial, info "simtix/auth" or "simtix/store").
func Derive(master []byte, serial ticketfmt.Serial) (Keys, error) {
	if len(master) != KeySize {
		return Keys{}, fmt.Errorf("%w (got %d)", ErrMasterKey, len(master))
	}
	var k Keys
	for _, d := range []struct {
		dst  *[KeySize]byte
		info string
	}{{&k.Auth, "simtix/auth"}, {&k.Store, "simtix/store"}} {
		b, err := hkdf.Key(sha256.New, master, serial[:], d.info, KeySize)
		if err != nil {
			return Keys{}, fmt.Errorf("derive %s: %w", d.info, err)
		}
		copy(d.dst[:], b)
	}
	return k, nil
}

// Authorisation is the 9A value: the epoch and counter an authorisation was
// issued for.
type Authorisation struct {
	Epoch   uint32
	Counter uint32
}

// Bytes returns epoch ‖ counter, 4 bytes big-endian each.
func (a Authorisation) Bytes() []byte {
	b := make([]byte, AuthSize)
	binary.BigEndian.PutUint32(b, a.Epoch)
	binary.BigEndian.PutUint32(b[4:], a.Counter)
	return b
}

// ParseAuthorisation reads a 9A value.
func ParseAuthorisation(b []byte) (Authorisation, error) {
	if len(b) != AuthSize {
		return Authorisation{}, fmt.Errorf("authorisation of %d bytes, want %d", len(b), AuthSize)
	}
	return Authorisation{Epoch: binary.BigEndian.Uint32(b), Counter: binary.BigEndian.Uint32(b[4:])}, nil
}

func mac(key []byte, parts ...[]byte) []byte {
	h := hmac.New(sha256.New, key)
	for _, p := range parts {
		h.Write(p)
	}
	return h.Sum(nil)[:MACSize]
}

func sum(b []byte) []byte {
	s := sha256.Sum256(b)
	return s[:]
}

// StoreMAC is the MAC of a STORE authorisation:
// HMAC(K_store, "STORE" ‖ serial ‖ epoch ‖ counter ‖ SHA-256(E1 ticket)).
func StoreMAC(k Keys, serial ticketfmt.Serial, a Authorisation, ticketE1 []byte) []byte {
	return mac(k.Store[:], []byte("STORE"), serial[:], a.Bytes(), sum(ticketE1))
}

// DeleteMAC is the MAC of a DELETE authorisation:
// HMAC(K_store, "DELETE" ‖ serial ‖ epoch ‖ counter ‖ ID ‖ expected state).
func DeleteMAC(k Keys, serial ticketfmt.Serial, a Authorisation, id ticketfmt.ID, expected byte) []byte {
	return mac(k.Store[:], []byte("DELETE"), serial[:], a.Bytes(), id[:], []byte{expected})
}

// CertMAC is the MAC of a PUT CERTIFICATE authorisation:
// HMAC(K_store, "CERT" ‖ serial ‖ epoch ‖ counter ‖ SHA-256(E5 certificate)).
func CertMAC(k Keys, serial ticketfmt.Serial, a Authorisation, certE5 []byte) []byte {
	return mac(k.Store[:], []byte("CERT"), serial[:], a.Bytes(), sum(certE5))
}

// SyncMAC is the MAC of a BEGIN SYNC answer: HMAC(K_auth, "SYNC" ‖
// challenge ‖ V), V being the value of E4 before its 9B field.
func SyncMAC(k Keys, challenge, v []byte) []byte {
	return mac(k.Auth[:], []byte("SYNC"), challenge, v)
}

// Equal compares two MACs in constant time.
func Equal(a, b []byte) bool { return hmac.Equal(a, b) }

// ReceiptMessage is what a check receipt signs: "CHECK" ‖ serial ‖
// SHA-256(E1 ticket) ‖ gate ID ‖ check time ‖ nonce.
func ReceiptMessage(serial ticketfmt.Serial, ticketE1, gateID, checkTime, nonce []byte) []byte {
	msg := make([]byte, 0, 5+len(serial)+sha256.Size+len(gateID)+len(checkTime)+len(nonce))
	msg = append(msg, "CHECK"...)
	msg = append(msg, serial[:]...)
	msg = append(msg, sum(ticketE1)...)
	msg = append(msg, gateID...)
	msg = append(msg, checkTime...)
	return append(msg, nonce...)
}

// SignReceipt signs a receipt message with the card key: ECDSA P-256 over
// SHA-256, raw r‖s, with a deterministic nonce (RFC 6979), so that the card
// needs no random source.
func SignReceipt(key *ecdsa.PrivateKey, msg []byte) ([]byte, error) {
	d := sha256.Sum256(msg)
	der, err := key.Sign(nil, d[:], crypto.SHA256)
	if err != nil {
		return nil, fmt.Errorf("receipt: %w", err)
	}
	return ticketfmt.RawSignature(der)
}

// VerifyReceipt checks a receipt with the card's certified public key.
func VerifyReceipt(pub *ecdsa.PublicKey, msg, receipt []byte) error {
	if err := ticketfmt.VerifyRaw(pub, msg, receipt); err != nil {
		return fmt.Errorf("receipt: %w", err)
	}
	return nil
}
