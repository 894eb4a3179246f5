package ticketfmt

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/asn1"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"slices"
)

// Errors of signing and verification.
var (
	// ErrKeyType means a key that is not ECDSA P-256.
	ErrKeyType = errors.New("not an ECDSA P-256 key")
	// ErrUnknownKey means a key ID that names none of the verifier's keys.
	ErrUnknownKey = errors.New("unknown issuer key")
	// ErrBadSignature means a signature that does not verify.
	ErrBadSignature = errors.New("signature does not verify")
)

// KeyIDOf returns the key ID of an ECDSA P-256 public key: the first 4
// bytes of SHA-256 of its SubjectPublicKeyInfo DER.
func KeyIDOf(pub crypto.PublicKey) (KeyID, error) {
	k, ok := pub.(*ecdsa.PublicKey)
	if !ok || k.Curve != elliptic.P256() {
		return KeyID{}, fmt.Errorf("%w: %T", ErrKeyType, pub)
	}
	der, err := x509.MarshalPKIXPublicKey(k)
	if err != nil {
		return KeyID{}, fmt.Errorf("key ID: %w", err)
	}
	sum := sha256.Sum256(der)
	var id KeyID
	copy(id[:], sum[:])
	return id, nil
}

// signRaw signs SHA-256(tbs) with signer and returns the raw signature r‖s.
// The signer may return ASN.1 DER (crypto/ecdsa, TPM keys) or raw bytes.
func signRaw(signer crypto.Signer, tbs []byte) ([]byte, error) {
	digest := sha256.Sum256(tbs)
	sig, err := signer.Sign(rand.Reader, digest[:], crypto.SHA256)
	if err != nil {
		return nil, fmt.Errorf("sign: %w", err)
	}
	if len(sig) == SignatureSize {
		return sig, nil
	}
	return RawSignature(sig)
}

// RawSignature converts an ASN.1 DER ECDSA P-256 signature, as crypto.Signer
// implementations return it, to the raw r‖s form of 64 bytes.
func RawSignature(der []byte) ([]byte, error) {
	var rs struct{ R, S *big.Int }
	rest, err := asn1.Unmarshal(der, &rs)
	if err != nil || len(rest) != 0 || rs.R == nil || rs.S == nil || rs.R.Sign() <= 0 || rs.S.Sign() <= 0 ||
		rs.R.BitLen() > 256 || rs.S.BitLen() > 256 {
		return nil, fmt.Errorf("sign: malformed ECDSA signature (%d bytes)", len(der))
	}
	raw := make([]byte, SignatureSize)
	rs.R.FillBytes(raw[:32])
	rs.S.FillBytes(raw[32:])
	return raw, nil
}

// VerifyRaw checks a raw r‖s ECDSA P-256 signature over SHA-256(msg).
func VerifyRaw(pub *ecdsa.PublicKey, msg, sig []byte) error {
	if len(sig) != SignatureSize {
		return fmt.Errorf("%w: %d bytes", ErrBadSignature, len(sig))
	}
	digest := sha256.Sum256(msg)
	r := new(big.Int).SetBytes(sig[:32])
	s := new(big.Int).SetBytes(sig[32:])
	if !ecdsa.Verify(pub, digest[:], r, s) {
		return ErrBadSignature
	}
	return nil
}

// KeySet is the set of issuer public keys a verifier trusts, looked up by
// key ID. Keys are only ever added: after a rotation the old keys still
// verify what they signed. The zero value is an empty set.
type KeySet struct {
	keys map[KeyID]*ecdsa.PublicKey
}

// NewKeySet returns a set holding pubs.
func NewKeySet(pubs ...crypto.PublicKey) (*KeySet, error) {
	s := &KeySet{}
	for _, p := range pubs {
		if _, err := s.Add(p); err != nil {
			return nil, err
		}
	}
	return s, nil
}

// Add adds an ECDSA P-256 public key and returns its key ID.
func (s *KeySet) Add(pub crypto.PublicKey) (KeyID, error) {
	id, err := KeyIDOf(pub)
	if err != nil {
		return KeyID{}, err
	}
	if s.keys == nil {
		s.keys = make(map[KeyID]*ecdsa.PublicKey)
	}
	s.keys[id] = pub.(*ecdsa.PublicKey)
	return id, nil
}

// Lookup returns the key with the given ID.
func (s *KeySet) Lookup(id KeyID) (*ecdsa.PublicKey, error) {
	k, ok := s.keys[id]
	if !ok {
		return nil, fmt.Errorf("%w: key ID %v", ErrUnknownKey, id)
	}
	return k, nil
}

// IDs returns the key IDs of the set in ascending order.
func (s *KeySet) IDs() []KeyID {
	ids := make([]KeyID, 0, len(s.keys))
	for id := range s.keys {
		ids = append(ids, id)
	}
	slices.SortFunc(ids, func(a, b KeyID) int { return slices.Compare(a[:], b[:]) })
	return ids
}

// Len is the number of keys in the set.
func (s *KeySet) Len() int { return len(s.keys) }

// MarshalPEM encodes the set as PEM "PUBLIC KEY" blocks (SubjectPublicKeyInfo),
// in ascending key ID order.
func (s *KeySet) MarshalPEM() ([]byte, error) {
	var out []byte
	for _, id := range s.IDs() {
		der, err := x509.MarshalPKIXPublicKey(s.keys[id])
		if err != nil {
			return nil, fmt.Errorf("key %v: %w", id, err)
		}
		out = append(out, pem.EncodeToMemory(&pem.Block{
			Type:    "PUBLIC KEY",
			Headers: map[string]string{"Key-ID": id.String()},
			Bytes:   der,
		})...)
	}
	return out, nil
}

// ParseKeySetPEM reads PEM "PUBLIC KEY" blocks of ECDSA P-256 keys, such as
// a server's DATA_DIR/issuer-keys.pem. Anything else in the data is an
// error: a gate must not start with a half-read key file.
func ParseKeySetPEM(data []byte) (*KeySet, error) {
	s := &KeySet{}
	for n := 1; ; n++ {
		var block *pem.Block
		block, data = pem.Decode(data)
		if block == nil {
			break
		}
		if block.Type != "PUBLIC KEY" {
			return nil, fmt.Errorf("issuer keys: block %d is %q, want PUBLIC KEY", n, block.Type)
		}
		pub, err := x509.ParsePKIXPublicKey(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("issuer keys: block %d: %w", n, err)
		}
		if _, err := s.Add(pub); err != nil {
			return nil, fmt.Errorf("issuer keys: block %d: %w", n, err)
		}
	}
	if len(bytes.TrimSpace(data)) != 0 {
		return nil, errors.New("issuer keys: data after the last PEM block")
	}
	if s.Len() == 0 {
		return nil, errors.New("issuer keys: no PUBLIC KEY block found")
	}
	return s, nil
}

// Sign sets the ticket's key ID from the signer's public key and signs it:
// the signature covers MarshalUnsigned's bytes. The signer must hold an
// ECDSA P-256 key (a crypto/ecdsa key, a TPM-held key...).
func (t *Ticket) Sign(signer crypto.Signer) error {
	id, err := KeyIDOf(signer.Public())
	if err != nil {
		return fmt.Errorf("ticket: %w", err)
	}
	t.KeyID = id
	tbs, err := t.MarshalUnsigned()
	if err != nil {
		return err
	}
	sig, err := signRaw(signer, tbs)
	if err != nil {
		return fmt.Errorf("ticket: %w", err)
	}
	t.Signature = sig
	return nil
}

// Verify checks the ticket's signature with the key its key ID names in
// keys. The error wraps ErrUnsigned, ErrUnknownKey or ErrBadSignature.
func (t *Ticket) Verify(keys *KeySet) error {
	if len(t.Signature) != SignatureSize {
		return fmt.Errorf("ticket %v: %w", t.ID, ErrUnsigned)
	}
	pub, err := keys.Lookup(t.KeyID)
	if err != nil {
		return fmt.Errorf("ticket %v: %w", t.ID, err)
	}
	tbs, err := t.MarshalUnsigned()
	if err != nil {
		return err
	}
	if err := VerifyRaw(pub, tbs, t.Signature); err != nil {
		return fmt.Errorf("ticket %v: %w", t.ID, err)
	}
	return nil
}
